/**
 * What scenarios use for pruned brown-small models: the shipped pruning
 * descriptions (models/brown-small/pruned/<method>-r<ratio>/pruning.json) and
 * the shipped calibrations (calibration/ci-cpu-2core/brown-small[-<method>-r<ratio>]/).
 * A calibration file of a pruned id must load for that id, match its pruning
 * description, and give every part a measured model (no roofline fallback:
 * ci-cpu-2core is not a data-sheet id).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { calibrationPath, loadCalibration } from '../src/compute/calibration.js';
import { resolveLatency } from '../src/compute/resolve.js';
import { getModel, makeSplitPlan } from '../src/model/catalog.js';
import { prunedModelSpec, pruningFromJson } from '../src/model/pruning.js';
import { COMPONENT_IDS } from '../src/model/types.js';
import { prunedModelId } from '../src/prune/front.js';

const base = getModel('brown-small');
const POINTS = ['comp', 'comp-notune', 'magnitude', 'random', 'layers'].flatMap((m) => [0.1, 0.2, 0.3].map((r) => ({ m, r })))
  .filter(({ m, r }) => !(m === 'layers' && r === 0.1)); // one layer is 25 %: layers-only at 10 % removes nothing (README)
const pruningPath = (m: string, r: number): string => join('models', 'brown-small', 'pruned', `${m}-r${r}`, 'pruning.json');

describe('shipped pruning descriptions of brown-small', () => {
  it.each(POINTS)('$m at $r: valid for brown-small, the method and ratio of its folder', ({ m, r }) => {
    const json = JSON.parse(readFileSync(pruningPath(m, r), 'utf8')) as { method: string; ratio: number; achievedRatio: number };
    const p = pruningFromJson(base, json, pruningPath(m, r));
    expect(json.method).toBe(m);
    expect(json.ratio).toBe(r);
    expect(p.layersKept.length).toBeLessThanOrEqual(base.numLayers);
    expect(Math.abs(json.achievedRatio - r)).toBeLessThan(m === 'layers' ? 0.25 : 0.01);
  });
});

describe('shipped calibrations of brown-small on ci-cpu-2core', () => {
  const withFile = POINTS.filter(({ m, r }) => existsSync(calibrationPath('calibration', 'ci-cpu-2core', prunedModelId('brown-small', m, r))));
  it('the unpruned model and COMP at 0.1, 0.2, 0.3 are shipped', () => {
    expect(existsSync(calibrationPath('calibration', 'ci-cpu-2core', 'brown-small'))).toBe(true);
    for (const r of [0.1, 0.2, 0.3]) expect(withFile).toContainEqual({ m: 'comp', r });
  });
  it.each(withFile)('$m at $r loads for its pruned id, records its pruning, and resolves every part as measured', ({ m, r }) => {
    const id = prunedModelId('brown-small', m, r);
    const file = loadCalibration(calibrationPath('calibration', 'ci-cpu-2core', id), { hardwareId: 'ci-cpu-2core', modelId: id });
    const p = pruningFromJson(base, JSON.parse(readFileSync(pruningPath(m, r), 'utf8')), pruningPath(m, r));
    expect(file.meta.baseModelId).toBe('brown-small');
    expect(file.meta.pruning).toMatchObject({ layersKept: p.layersKept, ffnWidths: p.ffnWidths });
    const spec = prunedModelSpec(base, p, id);
    const lat = resolveLatency({ hardwareId: 'ci-cpu-2core', model: spec, plan: makeSplitPlan(spec, 1, 1, 'attention-block'), calibrationDir: 'calibration' });
    for (const c of COMPONENT_IDS) expect(lat.provenance.components[c].source, c).toBe('measured');
    expect(lat.provenance.warnings).toEqual([]);
  });
});

/**
 * The quality/latency front of a prune grid (src/prune/front.ts): Pareto flags
 * against a brute-force check, measured facets from calibration files (closed
 * form of the piecewise model), and front.svg with one point per result.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { getHardware } from '../src/compute/hardware.js';
import { prunedFullModelMs } from '../src/compute/pruned.js';
import { validateCalibration } from '../src/compute/calibration.js';
import { getModel } from '../src/model/catalog.js';
import { decodeShapeOf, frontPoints, paretoFlags, prunedModelId, type FrontInput } from '../src/prune/front.js';
import { writePrunePlots } from '../src/prune/plots.js';
import type { PruneResult } from '../src/prune/run.js';

const tmp = mkdtempSync(join(tmpdir(), 'hatsim-prune-front-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Brute force: i is optimal iff no j is at least as good on both axes and strictly better on one. */
function bruteForce(p: { x: number; y: number }[], better: 'lower' | 'higher'): boolean[] {
  const yb = (a: number, b: number): boolean => (better === 'lower' ? a <= b : a >= b);
  const ys = (a: number, b: number): boolean => (better === 'lower' ? a < b : a > b);
  return p.map((pi, i) => !p.some((pj, j) => j !== i && pj.x <= pi.x && yb(pj.y, pi.y) && (pj.x < pi.x || ys(pj.y, pi.y))));
}

describe('paretoFlags', () => {
  it('flags the front of a constructed set (ties, duplicates, dominated points)', () => {
    // x = ms, y = perplexity (lower better)
    const pts = [
      { x: 10, y: 100 }, // 0: fastest... no: 5 is faster
      { x: 5, y: 120 }, // 1: fastest: optimal
      { x: 10, y: 100 }, // 2: duplicate of 0: both optimal
      { x: 12, y: 100 }, // 3: slower, same quality as 0: dominated
      { x: 10, y: 101 }, // 4: same x as 0, worse y: dominated
      { x: 20, y: 90 }, // 5: best quality: optimal
      { x: 25, y: 95 }, // 6: dominated by 5
      { x: 5, y: 120 }, // 7: duplicate of 1: optimal
    ];
    expect(paretoFlags(pts, 'lower')).toEqual([true, true, true, false, false, true, false, true]);
    expect(paretoFlags(pts, 'lower')).toEqual(bruteForce(pts, 'lower'));
    // y = agreement (higher better): the fastest point (x 5, y 120) dominates everything slower with lower y
    expect(paretoFlags(pts, 'higher')).toEqual(bruteForce(pts, 'higher'));
    expect(paretoFlags(pts, 'higher')).toEqual([false, true, false, false, false, false, false, true]);
  });

  it('agrees with the brute force on 400 random sets (with many ties)', () => {
    const rng = new Rng(7, 'front-test');
    for (let t = 0; t < 400; t++) {
      const n = 1 + rng.int(14);
      const pts = Array.from({ length: n }, () => ({ x: rng.int(6), y: rng.int(6) / 2 }));
      for (const b of ['lower', 'higher'] as const) expect(paretoFlags(pts, b), JSON.stringify({ pts, b })).toEqual(bruteForce(pts, b));
    }
    expect(paretoFlags([], 'lower')).toEqual([]);
  });
});

const model = getModel('brown-small');

function result(method: string, ratio: number, layersKept: number[], ffnWidths: number[], ppl: number, top1: number): PruneResult {
  const layers = [0, 1, 2, 3].map((i) => {
    const k = layersKept.indexOf(i);
    return { index: i, score: 0.1, kept: k >= 0, ffnBefore: 352, ffnAfter: k >= 0 ? ffnWidths[k] : 0, hiddenRelErr: 0 };
  });
  return {
    method, ratio, achievedRatio: ratio, countedParams: 1, removedParams: 0, paramsBefore: 1, paramsAfter: 1, layers,
    quality: { finalHiddenRelErr: 0.01, top1Match: top1, meanKl: 0.01, perplexityBefore: 146, perplexityAfter: ppl, heldOutTokens: 512 },
    memory: { peakRssBytes: 2e8, baselineRssBytes: 1e8, modelBytesFp32: 4e6, modelBytesFp16: 2e6 },
    durationMs: 1, options: {} as PruneResult['options'], source: 'test', calibration: 'test',
  } as PruneResult;
}

const RESULTS = [
  result('comp', 0.1, [0, 1, 2, 3], [352, 340, 304, 220], 146.2, 1.0),
  result('comp', 0.3, [0, 1, 3], [352, 300, 200], 145.4, 0.94),
  result('magnitude', 0.2, [0, 1, 2, 3], [282, 282, 282, 282], 146.4, 0.975),
  result('random', 0.2, [0, 1, 2, 3], [282, 282, 282, 282], 148.2, 0.83),
];
const inputs = (rs: PruneResult[]): FrontInput[] => rs.map((r) => ({
  method: r.method, ratio: r.ratio, quality: r.quality,
  pruning: { layersKept: r.layers.filter((l) => l.kept).map((l) => l.index), ffnWidths: r.layers.filter((l) => l.kept).map((l) => l.ffnAfter) },
}));

/** A calibration file whose parts are constants plus c1 per token (closed form at a 1-token decode). */
function calFile(dir: string, hw: string, id: string, partsMs: Record<string, number>): void {
  const comp = (c0: number) => ({ source: 'measured', pieces: [{ maxTokens: null, c0Ms: c0, c1MsPerToken: 0.001, c2MsPerTokenCtx: 0, c3MsPerCtx: 0 }] });
  const file = {
    format: 'hatsim-calibration', version: 1, hardwareId: hw, modelId: id, latencyUnit: 'ms',
    meta: { createdAt: '2026-12-01T00:00:00Z', tool: 'test' },
    components: Object.fromEntries(Object.entries(partsMs).map(([k, v]) => [k, comp(v)])),
  };
  validateCalibration(file, id);
  mkdirSync(join(dir, hw, id), { recursive: true });
  writeFileSync(join(dir, hw, id, 'model.json'), JSON.stringify(file));
}

describe('frontPoints', () => {
  it('data-sheet facets: one point per result plus the unpruned model, x = the roofline of the pruning description', () => {
    const { points, quality } = frontPoints(model, inputs(RESULTS), { hardware: ['jetson-orin-nx-16gb', 'jetson-tx2'] });
    expect(quality).toBe('perplexity');
    expect(points).toHaveLength(2 * (RESULTS.length + 1));
    const hw = getHardware('jetson-tx2');
    const tx2 = points.filter((p) => p.device === 'jetson-tx2 (roofline estimate)');
    expect(tx2.map((p) => p.label)).toEqual(['unpruned', 'comp 0.1', 'comp 0.3', 'magnitude 0.2', 'random 0.2']);
    expect(tx2[2].decodeMsPerToken).toBeCloseTo(prunedFullModelMs(model, { layersKept: [0, 1, 3], ffnWidths: [352, 300, 200] }, hw, decodeShapeOf(model)), 12);
    expect(tx2.every((p) => p.source === 'estimate')).toBe(true);
    // flags per facet equal the brute force of that facet
    expect(tx2.map((p) => p.pareto)).toEqual(bruteForce(tx2.map((p) => ({ x: p.decodeMsPerToken, y: p.quality })), 'lower'));
    // random 0.2 has the same widths as magnitude 0.2 (same latency) and worse perplexity: dominated
    expect(tx2[4].pareto).toBe(false);
  });

  it('without perplexity (seeded model) the quality is top-1 agreement (higher is better), the unpruned model at 1', () => {
    const seeded = RESULTS.map((r) => ({ ...r, quality: { ...r.quality, perplexityBefore: null, perplexityAfter: null } }));
    const { points, quality } = frontPoints(model, inputs(seeded), { hardware: ['jetson-tx2'] });
    expect(quality).toBe('top-1 agreement');
    // comp 0.1 agrees on every token (1.0) and is faster: it dominates the unpruned model
    expect(points[0]).toMatchObject({ label: 'unpruned', quality: 1, pareto: false });
    expect(points[1]).toMatchObject({ label: 'comp 0.1', quality: 1, pareto: true });
  });

  it('measured facets from calibration files of the pruned ids (missing parts from the unpruned file), closed form', () => {
    const dir = join(tmp, 'cal');
    calFile(dir, 'box', 'brown-small', { embedding: 0.01, decoderLayer: 1, adapter: 0.5, lmHead: 0.2 });
    calFile(dir, 'box', prunedModelId('brown-small', 'comp', 0.3), { embedding: 0.02, decoderLayer: 0.7, lmHead: 0.3 });
    calFile(dir, 'box', prunedModelId('brown-small', 'magnitude', 0.2), { decoderLayer: 0.8 }); // decoderLayer only
    calFile(dir, 'other', 'unrelated-model', { decoderLayer: 1 }); // no pruned id of this grid: no facet
    const { points } = frontPoints(model, inputs(RESULTS), { hardware: [], calibrationDir: dir });
    expect(new Set(points.map((p) => p.device))).toEqual(new Set(['box (measured)']));
    const by = Object.fromEntries(points.map((p) => [p.label, p]));
    expect(Object.keys(by).sort()).toEqual(['comp 0.3', 'magnitude 0.2', 'unpruned']);
    const t = 0.001; // c1 x 1 token
    expect(by.unpruned.decodeMsPerToken).toBeCloseTo(0.01 + t + 4 * (1 + t) + 0.2 + t, 12);
    expect(by['comp 0.3'].decodeMsPerToken).toBeCloseTo(0.02 + t + 3 * (0.7 + t) + 0.3 + t, 12);
    expect(by['magnitude 0.2'].decodeMsPerToken).toBeCloseTo(0.01 + t + 4 * (0.8 + t) + 0.2 + t, 12);
    expect(by['comp 0.3'].source).toBe('measured');
    // comp 0.3 is fastest and has the best perplexity: the only optimal point
    expect(points.filter((p) => p.pareto).map((p) => p.label)).toEqual(['comp 0.3']);
  });
});

describe('front.svg', () => {
  it('is written by writePrunePlots with one point per result per device plus the unpruned model', async () => {
    const dir = join(tmp, 'plots');
    const cal = join(tmp, 'cal2');
    calFile(cal, 'box', 'brown-small', { embedding: 0.01, decoderLayer: 1, lmHead: 0.2 });
    for (const r of RESULTS) calFile(cal, 'box', prunedModelId('brown-small', r.method, r.ratio), { embedding: 0.01, decoderLayer: 0.9, lmHead: 0.2 });
    const files = await writePrunePlots(dir, RESULTS, model, 'jetson-orin-nx-16gb', { frontHardware: ['jetson-orin-nx-16gb', 'jetson-agx-orin-64gb'], calibrationDir: cal });
    expect(files.map((f) => f.split('/').pop())).toContain('front.svg');
    expect(readFileSync(join(dir, 'front.svg'), 'utf8')).toMatch(/^<svg/);
    const spec = JSON.parse(readFileSync(join(dir, 'front.vl.json'), 'utf8')) as { data: { values: { device: string; label: string; source: string }[] } };
    const devices = [...new Set(spec.data.values.map((v) => v.device))];
    expect(devices).toEqual(['jetson-orin-nx-16gb (roofline estimate)', 'jetson-agx-orin-64gb (roofline estimate)', 'box (measured)']);
    for (const d of devices) {
      const labels = spec.data.values.filter((v) => v.device === d).map((v) => v.label).sort();
      expect(labels).toEqual(['unpruned', ...RESULTS.map((r) => `${r.method} ${r.ratio}`)].sort());
    }
    expect(spec.data.values.filter((v) => v.source === 'measured')).toHaveLength(RESULTS.length + 1);
  });
});

/**
 * `hatsim calibrate --as-model-id` / `--pruning`: a pruned variant's parts
 * (a `hatsim prune` output) profiled under the base model's dims and written
 * under the variant's id, which the loader then accepts for that id.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { calibrationPath, loadCalibration } from '../src/compute/calibration.js';
import { getModel } from '../src/model/catalog.js';
import { buildPartGraph } from '../src/calibrate/graph.js';
import { resolveOptions, runCalibration } from '../src/calibrate/run.js';

const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-calib-as-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A stand-in prune output: <dir>/pruning.json beside <dir>/model/<part>.onnx.
const pruneOut = join(tmp, 'comp-r0.2');
const onnxDir = join(pruneOut, 'model');
mkdirSync(onnxDir, { recursive: true });
const PRUNING = { format: 'hatsim-pruning/1', method: 'comp', ratio: 0.2, layersKept: [0, 1, 3], ffnWidths: [688, 600, 500] };
writeFileSync(join(pruneOut, 'pruning.json'), JSON.stringify(PRUNING));
buildPartGraph({ model: getModel('tiny-test'), part: 'embedding', variant: 'standard', dir: onnxDir, name: 'embedding' });

const base = { modelId: 'tiny-test', hardwareId: 'box', outDir: join(tmp, 'cal'), progress: false, log: () => {} };

describe('--as-model-id and --pruning', () => {
  it('a prune output profiled without --as-model-id is refused (it would pass as the unpruned model)', () => {
    expect(() => resolveOptions({ ...base, onnxDir })).toThrow(InputError);
    expect(() => resolveOptions({ ...base, onnxDir })).toThrow(/hatsim prune output .*pruning\.json exists.*--as-model-id/);
  });
  it('bad ids, another catalog model, --pruning without --as-model-id, a pruning.json that does not fit the model: InputError naming the flag', () => {
    const field = (f: () => unknown): string | undefined => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(InputError);
        return (e as InputError).field;
      }
      return 'no error';
    };
    expect(field(() => resolveOptions({ ...base, asModelId: '../x' }))).toBe('as-model-id');
    expect(field(() => resolveOptions({ ...base, asModelId: '' }))).toBe('as-model-id');
    expect(() => resolveOptions({ ...base, asModelId: 'tinyllama-1.1b' })).toThrow(/another catalog model's id/);
    expect(field(() => resolveOptions({ ...base, pruningFile: join(pruneOut, 'pruning.json') }))).toBe('as-model-id');
    expect(field(() => resolveOptions({ ...base, asModelId: 'v', pruningFile: join(tmp, 'none.json') }))).toBe('pruning');
    const bad = join(tmp, 'bad-pruning.json');
    writeFileSync(bad, JSON.stringify({ layersKept: [0, 7], ffnWidths: [688, 600] })); // tiny-test has 4 layers
    expect(() => resolveOptions({ ...base, asModelId: 'v', pruningFile: bad })).toThrow(/layersKept\[1\] = 7/);
  });
  it('resolves the write id and reads <onnx-dir>/../pruning.json by default', () => {
    const r = resolveOptions({ ...base, onnxDir, asModelId: 'tiny-test-comp-r0.2' });
    expect(r.writeId).toBe('tiny-test-comp-r0.2');
    expect(r.pruning).toMatchObject({ baseModelId: 'tiny-test', method: 'comp', ratio: 0.2, layersKept: [0, 1, 3], ffnWidths: [688, 600, 500] });
    expect(resolveOptions({ ...base, asModelId: 'x-variant' }).pruning).toBeNull();
    expect(resolveOptions(base).writeId).toBe('tiny-test');
  });
  it('writes <out>/<hw>/<as-model-id>/model.json with that modelId, loadable for the pruned id; a later run of another part keeps the first part and meta.pruning', async () => {
    const id = 'tiny-test-comp-r0.2';
    const r1 = await runCalibration({ ...base, onnxDir, asModelId: id, parts: ['embedding'], quick: true, heldOutPoints: 2 });
    expect(r1.modelPath).toBe(calibrationPath(base.outDir, 'box', id));
    const f1 = loadCalibration(r1.modelPath!, { hardwareId: 'box', modelId: id });
    expect(f1.meta.baseModelId).toBe('tiny-test');
    expect(f1.meta.pruning).toMatchObject({ layersKept: [0, 1, 3], ffnWidths: [688, 600, 500] });
    expect(f1.meta.notes).toMatch(/written as model tiny-test-comp-r0\.2: parts of tiny-test/);
    expect(() => loadCalibration(r1.modelPath!, { modelId: 'tiny-test' })).toThrow(/modelId = "tiny-test-comp-r0.2" does not match/);
    // a part pruning leaves alone (as the adapter) profiled from the generated graph, into the same file
    const r2 = await runCalibration({ ...base, asModelId: id, parts: ['lmHead'], quick: true, heldOutPoints: 2, variant: 'standard' });
    const f2 = loadCalibration(r2.modelPath!, { modelId: id });
    expect(Object.keys(f2.components).sort()).toEqual(['embedding', 'lmHead']);
    expect(f2.meta.pruning).toMatchObject({ layersKept: [0, 1, 3] });
  });
});

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { loadCalibration } from '../src/compute/calibration.js';
import { getModel } from '../src/model/catalog.js';
import { checkMemory, resolveOptions, runCalibration, trainGrid } from '../src/calibrate/run.js';
import { importVidur } from '../src/calibrate/vidur.js';

const out = mkdtempSync(join(os.tmpdir(), 'hatsim-calib-err-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

describe('bad calibration inputs give InputError', () => {
  const base = { modelId: 'tiny-test', hardwareId: 'x', outDir: out, progress: false, log: () => {} };
  it('unknown model', async () => {
    await expect(runCalibration({ ...base, modelId: 'gpt-9' })).rejects.toThrow(InputError);
    await expect(runCalibration({ ...base, modelId: 'gpt-9' })).rejects.toThrow(/unknown model id "gpt-9"/);
  });
  it('unknown part', () => {
    expect(() => resolveOptions({ ...base, parts: ['decoderLayer', 'mlp'] })).toThrow(/unknown part "mlp".*allowed: embedding, decoderLayer, adapter, lmHead/);
  });
  it.each([0, -1, 1.5, Number.NaN])('bad --threads %s', (threads) => {
    expect(() => resolveOptions({ ...base, threads })).toThrow(InputError);
    expect(() => resolveOptions({ ...base, threads })).toThrow(/--threads/);
  });
  it('bad hardware id and unknown EP', () => {
    expect(() => resolveOptions({ ...base, hardwareId: '../etc' })).toThrow(InputError);
    expect(() => resolveOptions({ ...base, ep: 'warp-drive' })).toThrow(/--ep "warp-drive"/);
  });
  it('missing --onnx-dir and missing part file', async () => {
    expect(() => resolveOptions({ ...base, onnxDir: join(out, 'nope') })).toThrow(InputError);
    await expect(runCalibration({ ...base, onnxDir: out, parts: ['embedding'], quick: true })).rejects.toThrow(/embedding\.onnx/);
  });
  it('a part that does not fit in memory is refused, naming the part, bytes needed and free memory', () => {
    const m = getModel('llama2-7b');
    expect(() => checkMemory(m, 'decoderLayer', 4, trainGrid(m, 'decoderLayer', false), 2e9)).toThrow(
      /part decoderLayer x4 stacked layers of llama2-7b needs about [\d.]+ GB .* only 2\.00 GB of memory is free/,
    );
    expect(() => checkMemory(getModel('tiny-test'), 'decoderLayer', 1, trainGrid(getModel('tiny-test'), 'decoderLayer', true), 2e9)).not.toThrow();
  });
});

const VIDUR = join(process.cwd(), '..', 'shared', 'data', 'profiles', 'vidur');
describe.skipIf(!existsSync(join(VIDUR, 'a40', 'Llama-2-7b-hf', 'mlp.csv')))('Vidur importer', () => {
  it('writes a valid imported calibration for a40 / llama2-7b', () => {
    const r = importVidur({ gpu: 'a40', vidurModel: 'Llama-2-7b-hf', hardwareId: 'a40', modelId: 'llama2-7b', vidurDir: VIDUR, outDir: out });
    const file = loadCalibration(r.modelPath, { hardwareId: 'a40', modelId: 'llama2-7b' });
    expect(file.components.decoderLayer?.source).toBe('imported');
    expect(file.components.embedding?.source).toBe('imported');
    expect(file.components.lmHead).toBeUndefined();
    expect(file.meta.notes).toMatch(/ESTIMATED/);
    expect(file.components.decoderLayer!.fit!.heldOutMedianAbsPctErr).toBeLessThan(10);
    // one decode token: sum of Vidur's operator medians at num_tokens=1 is ~0.75 ms
    const p = file.components.decoderLayer!.pieces[0];
    expect(p.c0Ms + p.c1MsPerToken).toBeGreaterThan(0.6);
    expect(p.c0Ms + p.c1MsPerToken).toBeLessThan(0.9);
    expect(p.c2MsPerTokenCtx).toBeGreaterThan(0);
  });
  it('unknown GPU folder is an InputError', () => {
    expect(() => importVidur({ gpu: 'z80', vidurModel: 'Llama-2-7b-hf', hardwareId: 'a40', modelId: 'llama2-7b', vidurDir: VIDUR, outDir: out })).toThrow(InputError);
  });
});

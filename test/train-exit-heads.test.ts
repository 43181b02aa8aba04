/**
 * Trained DTO-EE exit heads (src/train/exit-heads.ts): the ONNX export folds the lens into the LM
 * head exactly, training is seeded, and the shipped profile is what `hatsim exit-profile` measures
 * over the shipped heads on the validation split.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { measureExitProfile, readExitFeatures } from '../src/dtoee/exit-measure.js';
import { getModel } from '../src/model/catalog.js';
import { exitFeaturesFolder } from '../src/train/commands.js';
import { tokenData } from '../src/train/data.js';
import { exitHeadShapes, foldedHead, trainExitHeads, writeExitFeatures, writeHeadOnnx } from '../src/train/exit-heads.js';
import { loadModelFolder } from '../src/train/folder.js';
import { rmsNorm } from '../src/train/model.js';
import { initTf, tf } from '../src/train/tf.js';
import { loadWeights } from '../src/train/weights.js';

const REPO = resolve(__dirname, '..');
const DIR = join(REPO, 'models/brown-small');
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-exits-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const m = getModel('brown-small');

describe('trained exit heads', () => {
  it('the exported ONNX head computes (n + n A) W with n = RMSNorm_w(x)', async () => {
    await initTf();
    const H = m.hiddenSize, V = m.vocabSize, B = 5;
    const r = new Rng(3, 'lens');
    const lens = Float32Array.from({ length: H * H }, () => 0.05 * r.normal());
    const w = Float32Array.from({ length: H * V }, () => 0.1 * r.normal());
    const norm = Float32Array.from({ length: H }, () => 1 + 0.2 * r.normal());
    const x = Float32Array.from({ length: B * H }, () => r.normal());
    const path = writeHeadOnnx(m, tmp, 'head-test', norm, foldedHead(m, lens, w));
    const s = await ort.InferenceSession.create(path);
    const out = (await s.run({ hidden_states: new ort.Tensor('float32', x, [B, 1, H]) })).logits.data as Float32Array;
    const ref = tf.tidy(() => {
      const n = rmsNorm(tf.tensor2d(x, [B, H]), tf.tensor1d(norm)) as tf.Tensor2D;
      return tf.matMul(tf.add(n, tf.matMul(n, tf.tensor2d(lens, [H, H]))) as tf.Tensor2D, tf.tensor2d(w, [H, V])).dataSync() as Float32Array;
    });
    let maxErr = 0, scale = 0;
    for (let i = 0; i < ref.length; i++) { maxErr = Math.max(maxErr, Math.abs(out[i] - ref[i])); scale = Math.max(scale, Math.abs(ref[i])); }
    expect(scale).toBeGreaterThan(1);
    expect(maxErr).toBeLessThan(1e-4 * scale);
  }, 60_000);

  it('training is seeded (same values twice), starts at the shared head and lowers the training-split loss', async () => {
    const f = loadModelFolder(DIR);
    const data = tokenData(f.tokenizer);
    const cfg = { seed: 4, steps: 12, batch: 128, seq: 64, lrMax: 3e-3, warmup: 2, minLrFrac: 0.1, trainWindows: 16, valWindows: 4, head: 'lens' as const };
    const a = await trainExitHeads(f.model, f.values, data.train, data.validation, [2], cfg);
    const b = await trainExitHeads(f.model, f.values, data.train, data.validation, [2], cfg);
    expect(a.log.map((l) => l.loss)).toEqual(b.log.map((l) => l.loss));
    for (const [k, v] of a.values) expect(Array.from(v)).toEqual(Array.from(b.values.get(k)!));
    const first = a.log.slice(0, 3).reduce((s, l) => s + l.loss, 0), last = a.log.slice(-3).reduce((s, l) => s + l.loss, 0);
    expect(last).toBeLessThan(first);
    expect(Array.from(a.values.get('exit.2.lens.weight')!).some((x) => x !== 0)).toBe(true);
    // The full-head option trains an H x V head and its features measure.
    const full = await trainExitHeads(f.model, f.values, data.train, data.validation, [2], { ...cfg, steps: 3, head: 'full' });
    expect(full.values.get('exit.2.head.weight')!.length).toBe(m.hiddenSize * m.vocabSize);
    const out = join(tmp, 'full');
    writeExitFeatures(m, f.values, { values: full.values, kind: 'full' }, data.validation, { boundaries: [2], seq: 32, windows: 4, out, notes: 'full' });
    const prof = await measureExitProfile(readExitFeatures(out), { gridStep: 0.1 });
    expect(prof.stages[0].samples).toBe(128);
  }, 120_000);

  it('the shipped trained profile is what exit-profile measures over the shipped heads; the trained heads beat the shared one', async () => {
    const man = JSON.parse(readFileSync(join(DIR, 'manifest.json'), 'utf8')) as { exitHeads: { boundaries: number[]; heads: { boundary: number; initialValidationLoss: number; validationLoss: number }[] } };
    expect(man.exitHeads.boundaries).toEqual([1, 2, 3]);
    for (const h of man.exitHeads.heads) expect(h.validationLoss).toBeLessThan(h.initialValidationLoss);
    const out = join(tmp, 'features');
    await exitFeaturesFolder(DIR, out, { heads: 'trained', boundaries: [2], windows: 32, seq: 128 }, 'test');
    const p = await measureExitProfile(readExitFeatures(out), { confidence: 'max-softmax', gridStep: 0.05 });
    const shipped = JSON.parse(readFileSync(join(DIR, 'exit-profile.trained.validation.json'), 'utf8')) as typeof p;
    expect(p.stages).toEqual(shipped.stages);
    expect(p.finalAccuracy).toBe(shipped.finalAccuracy);
    const shared = JSON.parse(readFileSync(join(DIR, 'exit-profile.validation.json'), 'utf8')) as typeof p;
    expect(p.stages[0].exitAccuracy[0]).toBeGreaterThan(shared.stages[0].exitAccuracy[0]);
  }, 120_000);

  it('asking for a boundary without a trained head is an InputError naming the fix', () => {
    const f = loadModelFolder(DIR);
    const heads = loadWeights(join(DIR, 'exit-heads'), m, exitHeadShapes(m, [1, 2, 3]));
    heads.delete('exit.2.lens.weight');
    expect(() => writeExitFeatures(m, f.values, { values: heads, kind: 'lens' }, new Int32Array(1000), { boundaries: [2], seq: 16, windows: 2, out: join(tmp, 'x'), notes: '' })).toThrow(InputError);
    expect(() => writeExitFeatures(m, f.values, 'shared', new Int32Array(1000), { boundaries: [4], seq: 16, windows: 2, out: join(tmp, 'y'), notes: '' })).toThrow(/boundary 4/);
  });
});

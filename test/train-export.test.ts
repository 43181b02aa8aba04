import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import { exportOnnx, packQkv } from '../src/train/export.js';
import { baseShapes, disposeCtx, forward, initValues, makeCtx, toVariables } from '../src/train/model.js';
import { OnnxLm } from '../src/train/ort.js';
import { initTf, tf } from '../src/train/tf.js';

const dir = mkdtempSync(join(tmpdir(), 'hatsim-export-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('export of trained weights into the ONNX graphs', () => {
  it('packs q, k, v column blocks row by row', () => {
    const q = Float32Array.of(1, 2, 3, 4), k = Float32Array.of(5, 6), v = Float32Array.of(7, 8);
    expect([...packQkv(q, k, v, 2, 1)]).toEqual([1, 2, 5, 7, 3, 4, 6, 8]);
  });

  it('ONNX Runtime logits of the exported parts match the TensorFlow.js forward pass, with and without KV cache', async () => {
    await initTf();
    const m = getModel('brown-small');
    // Non-trivial weights: seeded init with norms perturbed so every weight matters.
    const shapes = baseShapes(m);
    const values = initValues(shapes.map((s) => (s.init === 'ones' ? { ...s, init: 'normal' as const, std: 0.5 } : { ...s, std: 0.08 })), 7, 'export-test');
    for (const s of shapes) if (s.init === 'ones') values.get(s.name)!.forEach((x, i, a) => { a[i] = 1 + x; });
    exportOnnx(m, values, dir);
    const ids = [5, 300, 77, 1023, 12, 900, 256, 3, 64, 511, 8, 700];
    const p = toVariables(shapes, values, false);
    const c = makeCtx(m, ids.length);
    const ref = tf.tidy(() => forward(p, c, tf.tensor2d(ids, [1, ids.length], 'int32')).dataSync() as Float32Array);
    disposeCtx(c);
    const lm = await OnnxLm.load(m, dir);
    const all = await lm.step(ids);
    const maxAbs = (a: Float32Array, b: Float32Array): number => a.reduce((mx, x, i) => Math.max(mx, Math.abs(x - b[i])), 0);
    const scale = ref.reduce((mx, x) => Math.max(mx, Math.abs(x)), 0);
    expect(scale).toBeGreaterThan(0.5);
    expect(maxAbs(all, ref)).toBeLessThan(1e-3 * scale);
    // prefix of 7 then 5 more tokens one at a time through the KV cache
    lm.reset();
    const V = m.vocabSize;
    const first = await lm.step(ids.slice(0, 7));
    expect(maxAbs(first, ref.subarray(0, 7 * V))).toBeLessThan(1e-3 * scale);
    for (let t = 7; t < ids.length; t++) {
      const row = await lm.step([ids[t]]);
      expect(maxAbs(row, ref.subarray(t * V, (t + 1) * V))).toBeLessThan(1e-3 * scale);
    }
    for (const v of p.values()) v.dispose();
  }, 120_000);
});

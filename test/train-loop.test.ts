import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { getModel } from '../src/model/catalog.js';
import type { ModelSpec } from '../src/model/types.js';
import { baseShapes, readValues } from '../src/train/model.js';
import { lrAt } from '../src/train/optim.js';
import { trainBase, TRAIN_DEFAULTS, type TrainConfig } from '../src/train/train.js';
import { loadWeights, saveWeights } from '../src/train/weights.js';

const tmp = mkdtempSync(join(tmpdir(), 'hatsim-trainloop-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// A tiny LLaMA-family model (not in the catalog) so that a few steps take seconds.
const tiny: ModelSpec = { ...getModel('brown-small'), id: 'tiny-train', numLayers: 2, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2, vocabSize: 64 };
// A learnable stream: a repeating pattern with a little structure.
const stream = Int32Array.from({ length: 4000 }, (_, i) => ((i * 7) % 13) + ((i % 5) * 10));
const cfg: TrainConfig = { ...TRAIN_DEFAULTS, steps: 6, batch: 4, seq: 16, warmup: 2, lrMax: 1e-2, evalEvery: 3, evalWindows: 4, ckptEvery: 2 };

describe('training loop', () => {
  it('is reproducible from the seed, resumes from a checkpoint to the same numbers, and the loss falls', async () => {
    const a = await trainBase(tiny, stream, stream, cfg);
    const b = await trainBase(tiny, stream, stream, cfg);
    expect(b.log.map((l) => l.loss)).toEqual(a.log.map((l) => l.loss));
    const c = await trainBase(tiny, stream, stream, { ...cfg, seed: 2 });
    expect(c.log[0].loss).not.toBe(a.log[0].loss);
    expect(a.log[5].loss).toBeLessThan(a.log[0].loss - 0.3);
    // interrupted after 3 steps (checkpoint at 3), then resumed
    const dir = join(tmp, 'run');
    const part = await trainBase(tiny, stream, stream, cfg, dir, undefined, 3);
    expect(part.steps).toBe(3);
    const resumed = await trainBase(tiny, stream, stream, cfg, dir);
    const losses = resumed.log.map((l) => l.loss);
    for (let i = 0; i < 6; i++) expect(losses[i]).toBeCloseTo(a.log[i].loss, 5);
    expect(resumed.valLoss).toBeCloseTo(a.valLoss, 5);
    const va = await readValues(a.params), vr = await readValues(resumed.params);
    for (const [k, v] of va) expect(Math.max(...v.map((x, i) => Math.abs(x - vr.get(k)![i])))).toBeLessThan(1e-5);
    // a different config does not resume silently
    await expect(trainBase(tiny, stream, stream, { ...cfg, lrMax: 5e-3 }, dir)).rejects.toThrow(/field "config"/);
  }, 180_000);

  it('learning rate: warm-up then cosine to the floor', () => {
    expect(lrAt(0, 100, 1, 10, 0.1)).toBeCloseTo(0.1);
    expect(lrAt(9, 100, 1, 10, 0.1)).toBeCloseTo(1);
    expect(lrAt(100, 100, 1, 10, 0.1)).toBeCloseTo(0.1);
    expect(lrAt(55, 100, 1, 10, 0.1)).toBeCloseTo(0.55);
  });
});

describe('weights files: bad input names the file and field', () => {
  const m = tiny;
  const shapes = baseShapes(m);
  const values = new Map(shapes.map((s) => [s.name, Float32Array.from({ length: s.dims.reduce((x, y) => x * y, 1) }, (_, i) => i * 1e-3)]));
  const base = join(tmp, 'w');
  it('round-trips', () => {
    saveWeights(base, m, values, shapes);
    const back = loadWeights(base, m, shapes);
    expect(back.get('layers.1.mlp.down.weight')).toEqual(values.get('layers.1.mlp.down.weight'));
  });
  it('rejects a checkpoint that does not match the catalog dims', () => {
    saveWeights(base, m, values, shapes);
    expect(() => loadWeights(base, { ...m, hiddenSize: 64 }, shapes)).toThrow(/field "dims.hiddenSize" is 32 but catalog model tiny-train has 64/);
    expect(() => loadWeights(base, { ...m, id: 'other' }, shapes)).toThrow(/field "model"/);
  });
  it('rejects truncated and corrupt data and a corrupt index', () => {
    saveWeights(base, m, values, shapes);
    const bin = readFileSync(`${base}.bin`);
    writeFileSync(`${base}.bin`, bin.subarray(0, bin.length - 8));
    expect(() => loadWeights(base, m, shapes)).toThrow(/w\.bin: \d+ bytes, field "totalBytes"/);
    const bad = Buffer.from(bin);
    bad[100] ^= 0xff;
    writeFileSync(`${base}.bin`, bad);
    expect(() => loadWeights(base, m, shapes)).toThrow(/field "sha256"/);
    writeFileSync(`${base}.bin`, bin);
    const idx = readFileSync(`${base}.json`, 'utf8');
    writeFileSync(`${base}.json`, idx.slice(0, idx.length / 2));
    expect(() => loadWeights(base, m, shapes)).toThrow(InputError);
    expect(() => loadWeights(base, m, shapes)).toThrow(/w\.json: not valid JSON/);
    const j = JSON.parse(idx);
    j.tensors[1].dims = [1, 2];
    writeFileSync(`${base}.json`, JSON.stringify(j));
    expect(() => loadWeights(base, m, shapes)).toThrow(/tensor "layers.0.input_norm.weight" has dims \[1,2\]/);
  });
});

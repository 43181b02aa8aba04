import { describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import type { ModelSpec } from '../src/model/types.js';
import { acceptanceOf, trainAdapter, ADAPTER_DEFAULTS, type AcceptanceOptions } from '../src/train/adapter.js';
import { loraFineTune, loraShapes, LORA_DEFAULTS } from '../src/train/lora.js';
import { baseShapes, disposeCtx, forward, initValues, makeCtx, readValues, toVariables } from '../src/train/model.js';
import { evalLoss, trainBase, TRAIN_DEFAULTS } from '../src/train/train.js';
import { evalWindows } from '../src/train/data.js';
import { initTf, tf } from '../src/train/tf.js';
import { exitProfile } from '../src/train/exits.js';
import { embed, head, layersRange } from '../src/train/model.js';

const tiny: ModelSpec = { ...getModel('brown-small'), id: 'tiny-train', numLayers: 3, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKvHeads: 2, vocabSize: 64 };
const streamA = Int32Array.from({ length: 4000 }, (_, i) => ((i * 7) % 13) + ((i % 5) * 10));
const streamB = Int32Array.from({ length: 4000 }, (_, i) => ((i * 3) % 11) * 5 + (i % 3));

async function tinyBase(): Promise<Map<string, Float32Array>> {
  const r = await trainBase(tiny, streamA, streamA, { ...TRAIN_DEFAULTS, steps: 8, batch: 4, seq: 16, warmup: 2, lrMax: 1e-2, evalEvery: 100, evalWindows: 2 });
  const v = await readValues(r.params);
  for (const t of r.params.values()) t.dispose();
  return v;
}

describe('HAT adapter distillation and acceptance', () => {
  it('distillation lowers KL(full || SLM) and leaves the base weights alone', async () => {
    await initTf();
    // a peaked random base (std 0.25) so that the SLM starts far from the full model
    const base = initValues(baseShapes(tiny).map((x) => (x.init === 'normal' ? { ...x, std: 0.25 } : x)), 5, 'peaked');
    const copy = new Map([...base].map(([k, v]) => [k, v.slice()]));
    const r = await trainAdapter(tiny, base, streamA, streamA, { ...ADAPTER_DEFAULTS, steps: 15, batch: 4, seq: 16, lrMax: 1e-2, warmup: 1, evalWindows: 8 });
    expect(r.initialValidationKl).toBeGreaterThan(0);
    expect(r.validationKl).toBeLessThan(r.initialValidationKl * 0.9);
    for (const [k, v] of base) expect(v).toEqual(copy.get(k));
    expect([...r.values.keys()].every((k) => k.startsWith('adapter.'))).toBe(true);
  }, 120_000);

  it('a drafter identical to the verifier is always accepted; another one gives rates in [0,1] and non-increasing reach', async () => {
    await initTf();
    const vA = initValues(baseShapes(tiny), 1, 'a'), vB = initValues(baseShapes(tiny), 2, 'b');
    const pA = toVariables(baseShapes(tiny), vA, false), pB = toVariables(baseShapes(tiny), vB, false);
    const o: AcceptanceOptions = { draftLen: 4, contexts: 12, contextLen: 8, batch: 6, seed: 3, temperature: 1, inputLayers: 1, outputLayers: 1 };
    const same = acceptanceOf(tiny, (c, ids) => forward(pA, c, ids), (c, ids) => forward(pA, c, ids), streamA, o, 'greedy');
    expect(same.positions.map((x) => x.rate)).toEqual([1, 1, 1, 1]);
    expect(same.meanAcceptedPerRound).toBe(4);
    const sameS = acceptanceOf(tiny, (c, ids) => forward(pA, c, ids), (c, ids) => forward(pA, c, ids), streamA, o, 'sampled');
    for (const x of sameS.positions) { expect(x.rate).toBe(1); expect(x.expectedRate!).toBeCloseTo(1, 5); }
    for (const mode of ['greedy', 'sampled'] as const) {
      const diff = acceptanceOf(tiny, (c, ids) => forward(pB, c, ids), (c, ids) => forward(pA, c, ids), streamA, o, mode);
      expect(diff.positions[0].reached).toBe(12);
      for (let k = 0; k < 4; k++) {
        expect(diff.positions[k].rate).toBeGreaterThanOrEqual(0);
        expect(diff.positions[k].rate).toBeLessThanOrEqual(1);
        if (k > 0) expect(diff.positions[k].reached).toBe(diff.positions[k - 1].accepted);
      }
      if (mode === 'sampled') expect(diff.positions[0].expectedRate!).toBeLessThan(0.999);
    }
    for (const t of [...pA.values(), ...pB.values()]) t.dispose();
  }, 120_000);
});

describe('LoRA fine-tuning on a shard', () => {
  it('starts at the base model (B = 0), lowers the shard loss, trains only A and B', async () => {
    const base = await tinyBase();
    const cfg = { ...LORA_DEFAULTS, steps: 12, batch: 4, seq: 16, lr: 1e-2, evalWindows: 8, targets: ['q' as const, 'v' as const, 'down' as const] };
    const r = await loraFineTune(tiny, base, streamB, streamB, cfg);
    // loss before = base model's loss on the same windows
    const p = toVariables(baseShapes(tiny), base, false);
    const c = makeCtx(tiny, 16);
    const baseLoss = evalLoss(c, (ids) => forward(p, c, ids), evalWindows(streamB, 16, 8));
    disposeCtx(c);
    for (const t of p.values()) t.dispose();
    expect(r.lossBefore).toBeCloseTo(baseLoss, 5);
    expect(r.lossAfter).toBeLessThan(r.lossBefore - 0.2);
    expect([...r.lora.keys()].sort()).toEqual(loraShapes(tiny, cfg).map((s) => s.name).sort());
    expect(r.lora.get('layers.0.attn.q.weight.lora_a')!.length).toBe(32 * 4);
    expect(() => loraShapes(tiny, { rank: 0, targets: ['q'] })).toThrow(/rank/);
  }, 120_000);
});

describe('exit profile', () => {
  it('exitProb starts at 1 and never rises; accuracy at tau 0 is the exit head accuracy over all tasks', async () => {
    const base = await tinyBase();
    const p = toVariables(baseShapes(tiny), base, false);
    const prof = exitProfile(tiny, p, streamA, { boundaries: [1, 2], seq: 16, windows: 6, confidence: 'max-softmax', step: 0.1, notes: 't' });
    expect(prof.thresholds).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(prof.stages.map((s) => s.layers)).toEqual([[0, 1], [1, 2]]);
    expect(prof.finalLayers).toEqual([2, 3]);
    // independent count: exit head after layer 1 on the same windows
    const w = evalWindows(streamA, 16, 6);
    const ok = tf.tidy(() => {
      const ids = tf.tensor2d(w.flatMap((a) => [...a.x]), [6, 16], 'int32');
      const c = makeCtx(tiny, 16);
      const am = head(p, layersRange(p, c, embed(p, ids), 0, 1)).argMax(-1).dataSync();
      disposeCtx(c);
      return Array.from(am).filter((x, i) => x === w[Math.floor(i / 16)].y[i % 16]).length;
    });
    for (const s of prof.stages) {
      expect(s.samples).toBe(96);
      expect(s.exitProb[0]).toBe(1);
      for (let k = 1; k < s.exitProb.length; k++) expect(s.exitProb[k]).toBeLessThanOrEqual(s.exitProb[k - 1]);
      expect(s.exitAccuracy.every((a) => a >= 0 && a <= 1)).toBe(true);
    }
    expect(prof.stages[0].exitAccuracy[0]).toBeCloseTo(ok / 96, 6);
    expect(() => exitProfile(tiny, p, streamA, { boundaries: [3], seq: 16, windows: 2, confidence: 'margin', step: 0.5, notes: '' })).toThrow(/exit boundary 3/);
    for (const t of p.values()) t.dispose();
  }, 60_000);
});

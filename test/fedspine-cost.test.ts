/** FedSpine cost model: pruned structure, LoRA sizes (closed forms), step time and memory invariants. */
import { describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import { getHardware } from '../src/compute/hardware.js';
import { InputError } from '../src/core/errors.js';
import { DEFAULT_TRAINING, deviceCostModel, forwardFlops, loraParams, loraWireBytes, memoryBytes, pruneStructure } from '../src/fedspine/cost.js';
import { REPO } from './helpers.js';
import { join } from 'node:path';

const roberta = getModel('roberta-base-sized');
const CAL = join(REPO, 'calibration');

describe('pruned structure', () => {
  it('removes the ratio of heads and FFN channels in every layer, at least one of each kept', () => {
    const s = pruneStructure(roberta, 0.5);
    expect(s.layers).toHaveLength(12);
    for (const l of s.layers) expect(l).toEqual({ heads: 6, kvHeads: 6, ffn: 1536 });
    expect(pruneStructure(roberta, 0.99).layers[0]).toEqual({ heads: 1, kvHeads: 1, ffn: 31 });
  });
  it('GQA: whole KV groups are removed', () => {
    const tl = getModel('tinyllama-1.1b'); // 32 heads, 4 KV heads
    expect(pruneStructure(tl, 0.5).layers[0]).toMatchObject({ kvHeads: 2, heads: 16 });
  });
  it('per-layer ratios override the uniform one', () => {
    const s = pruneStructure(roberta, 0, Array.from({ length: 12 }, (_, i) => (i < 6 ? 0 : 0.5)));
    expect(s.layers[0].heads).toBe(12);
    expect(s.layers[11].heads).toBe(6);
  });
  it('a ratio outside [0, 1) is an InputError naming the field', () => {
    expect(() => pruneStructure(roberta, 1)).toThrow(InputError);
    expect(() => pruneStructure(roberta, -0.1)).toThrow(/ratio.*\[0, 1\)/);
  });
});

describe('LoRA bytes: r (d_in + d_out) per adapted matrix, pruned side shrunk', () => {
  it('unpruned q,v at rank 8: 12 layers x 2 matrices x 8 x (768 + 768)', () => {
    const s = pruneStructure(roberta, 0);
    expect(loraParams(roberta, s, 8, ['q', 'v'])).toBe(12 * 2 * 8 * (768 + 768));
    expect(loraWireBytes(roberta, s, 8, { loraTargets: ['q', 'v'], wireBytesPerElem: 2 })).toBe(12 * 2 * 8 * 1536 * 2);
    expect(loraWireBytes(roberta, s, 8, { loraTargets: ['q', 'v'], wireBytesPerElem: 4 })).toBe(12 * 2 * 8 * 1536 * 4);
  });
  it('pruned at 0.5: q/v outputs have 6 heads x 64, down has 1536 inputs', () => {
    const s = pruneStructure(roberta, 0.5);
    expect(loraParams(roberta, s, 4, ['q', 'v'])).toBe(12 * 2 * 4 * (768 + 384));
    expect(loraParams(roberta, s, 4, ['o', 'down'])).toBe(12 * 4 * ((384 + 768) + (1536 + 768)));
  });
});

describe('training-step time and memory', () => {
  const tx2 = getHardware('jetson-tx2');
  const m = deviceCostModel({ hardwareId: 'jetson-tx2', memoryCapacityBytes: tx2.memoryBytes, model: roberta, training: DEFAULT_TRAINING, calibrationDir: CAL });

  it('step = forward x (2 x frozen share + 3 x LoRA share) at p = 0 (closed form)', () => {
    const s = pruneStructure(roberta, 0);
    const w = forwardFlops(roberta, s, 8, DEFAULT_TRAINING);
    const expected = m.fullForwardMs * (2 * w.frozen + 3 * w.lora) / w.frozen;
    expect(m.cost(0, 8).stepMs).toBeCloseTo(expected, 9);
    expect(m.cost(0, 8).stepMs).toBeGreaterThan(2 * m.fullForwardMs);
    expect(m.latencySource).toBe('estimate');
  });
  it('backward factors are options: 1 and 1 give the forward alone (plus the LoRA forward)', () => {
    const f = deviceCostModel({ hardwareId: 'jetson-tx2', memoryCapacityBytes: tx2.memoryBytes, model: roberta, training: { ...DEFAULT_TRAINING, frozenStepFactor: 1, loraStepFactor: 0 }, calibrationDir: CAL });
    expect(f.cost(0, 8).stepMs).toBeCloseTo(f.fullForwardMs, 9);
  });
  it('step time falls with the ratio and grows with the rank; memory too', () => {
    let prev = Infinity;
    for (const p of [0, 0.2, 0.4, 0.6]) { const c = m.cost(p, 8); expect(c.stepMs).toBeLessThan(prev); prev = c.stepMs; }
    expect(m.cost(0.2, 64).stepMs).toBeGreaterThan(m.cost(0.2, 4).stepMs);
    expect(m.cost(0.2, 64).memory.totalBytes).toBeGreaterThan(m.cost(0.2, 4).memory.totalBytes);
    expect(m.cost(0.6, 8).memory.totalBytes).toBeLessThan(m.cost(0, 8).memory.totalBytes);
  });
  it('memory = weights + activations + LoRA x 16 B + reserve; infeasible when above the capacity', () => {
    const c = m.cost(0, 8);
    const s = pruneStructure(roberta, 0);
    expect(c.memory.loraBytes).toBe(loraParams(roberta, s, 8, ['q', 'v']) * 16);
    expect(c.memory.weightsBytes).toBe((2 * 50265 * 768 + 768 + 12 * (4 * 768 * 768 + 3 * 768 * 3072 + 2 * 768)) * 2);
    expect(c.memory.totalBytes).toBe(c.memory.weightsBytes + c.memory.activationsBytes + c.memory.loraBytes + c.memory.reservedBytes);
    expect(c.feasible).toBe(true);
    const big = { ...DEFAULT_TRAINING, batch: 64, seqLen: 512 };
    expect(memoryBytes(roberta, s, 8, big).totalBytes).toBeGreaterThan(tx2.memoryBytes);
    const mb = deviceCostModel({ hardwareId: 'jetson-tx2', memoryCapacityBytes: tx2.memoryBytes, model: roberta, training: big, calibrationDir: CAL });
    expect(mb.cost(0, 8).feasible).toBe(false);
    // Pruning shrinks weights and activations (the logits stay).
    expect(mb.cost(0.9, 8).memory.totalBytes).toBeLessThan(mb.cost(0, 8).memory.totalBytes);
  });
  it('the TX2 is slower than the AGX Xavier on the same configuration', () => {
    const agx = deviceCostModel({ hardwareId: 'jetson-agx-xavier-32gb', memoryCapacityBytes: 32 * 1024 ** 3, model: roberta, training: DEFAULT_TRAINING, calibrationDir: CAL });
    expect(agx.cost(0.3, 8).stepMs).toBeLessThan(m.cost(0.3, 8).stepMs);
  });
  it('uses a calibration file when one covers the (hardware, model) pair', () => {
    const tiny = getModel('tiny-test');
    const c = deviceCostModel({ hardwareId: 'ci-cpu-2core', memoryCapacityBytes: 8 * 1024 ** 3, model: tiny, training: { ...DEFAULT_TRAINING, seqLen: 32 }, calibrationDir: CAL });
    expect(c.latencySource).not.toBe('estimate');
    expect(c.cost(0.5, 4).stepMs).toBeLessThan(c.cost(0, 4).stepMs);
  });
  it('a rank below 1 or not an integer is an InputError', () => {
    expect(() => m.cost(0, 0)).toThrow(/rank/);
    expect(() => m.cost(0, 2.5)).toThrow(InputError);
  });
});

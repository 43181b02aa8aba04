/** The catalog's pruning description (model/pruning.ts) and the pruned roofline (compute/pruned.ts). */
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { getHardware } from '../src/compute/hardware.js';
import { prunedFullModelMs } from '../src/compute/pruned.js';
import { rooflineComponent } from '../src/compute/roofline.js';
import { singleShape } from '../src/compute/types.js';
import { componentSize, getModel, totalParams } from '../src/model/catalog.js';
import { checkPruning, modelMemoryBytes, prunedDecoderSize, prunedModelSpec, prunedTotalParams, pruningFromJson } from '../src/model/pruning.js';

const m7 = getModel('llama2-7b');
const all = (n: number, f: number) => ({ layersKept: [...Array(n).keys()], ffnWidths: new Array<number>(n).fill(f) });

describe('pruning description', () => {
  it('the unpruned description reproduces the catalog (params, latency)', () => {
    const p = all(32, 11008);
    expect(prunedTotalParams(m7, p)).toBe(totalParams(m7));
    const hw = getHardware('jetson-orin-nx-16gb');
    for (const shape of [singleShape(1, 512), singleShape(256, 0)]) {
      const ref = rooflineComponent(m7, 'embedding', 'attention-block', hw).batchMs(shape) + 32 * rooflineComponent(m7, 'decoderLayer', 'attention-block', hw).batchMs(shape) + rooflineComponent(m7, 'lmHead', 'attention-block', hw).batchMs(shape);
      expect(prunedFullModelMs(m7, p, hw, shape)).toBeCloseTo(ref, 9);
      expect(prunedFullModelMs(m7, null, hw, shape)).toBeCloseTo(ref, 9);
    }
  });

  it('closed forms: dropping k layers removes k x 202 M params; narrowing an FFN by n removes 3 h n params and 6 h n FLOPs/token', () => {
    const layer = componentSize(m7, 'decoderLayer');
    expect(layer.params).toBeGreaterThan(202e6);
    expect(layer.params).toBeLessThan(203e6);
    const kept = [...Array(32).keys()].filter((l) => l !== 5 && l !== 20);
    const p = { layersKept: kept, ffnWidths: kept.map((_, i) => (i === 0 ? 11008 - 1000 : 11008)) };
    expect(prunedTotalParams(m7, p)).toBe(totalParams(m7) - 2 * layer.params - 3 * 4096 * 1000);
    const dec = prunedDecoderSize(m7, p);
    expect(dec.flopsPerToken).toBe(30 * layer.flopsPerToken - (6 * 4096 + 4) * 1000);
    expect(dec.kvBytesPerToken).toBe(30 * layer.kvBytesPerToken);
  });

  it('the equivalent ModelSpec has the same totals; its decode roofline equals the per-layer sum', () => {
    const p = { layersKept: [0, 1, 3, 4, 6], ffnWidths: [9000, 8000, 10000, 7000, 11008] };
    const spec = prunedModelSpec(m7, p);
    expect(spec.numLayers).toBe(5);
    expect(totalParams(spec)).toBeCloseTo(prunedTotalParams(m7, p), 3);
    expect(5 * componentSize(spec, 'decoderLayer').flopsPerToken).toBeCloseTo(prunedDecoderSize(m7, p).flopsPerToken, 3);
    const hw = getHardware('jetson-orin-nx-16gb');
    const shape = singleShape(1, 256);
    const eq = rooflineComponent(spec, 'embedding', 'attention-block', hw).batchMs(shape) + 5 * rooflineComponent(spec, 'decoderLayer', 'attention-block', hw).batchMs(shape) + rooflineComponent(spec, 'lmHead', 'attention-block', hw).batchMs(shape);
    expect(eq).toBeCloseTo(prunedFullModelMs(m7, p, hw, shape), 9);
  });

  it('memory: LLaMA-2-7B fp16 with 2048 KV tokens needs more than an Orin NX 16 GB has; a 40 % layer-pruned one needs less', () => {
    const full = modelMemoryBytes(m7, null, 2048);
    expect(full).toBeCloseTo(2 * totalParams(m7) + 32 * 2 * 4096 * 2 * 2048, -3);
    const p = all(19, 11008);
    expect(modelMemoryBytes(m7, p, 2048)).toBeLessThan(full * 0.65);
  });

  it('bad descriptions are InputErrors naming the field', () => {
    expect(() => checkPruning(m7, { layersKept: [], ffnWidths: [] })).toThrow(/layersKept must list/);
    expect(() => checkPruning(m7, { layersKept: [0, 0], ffnWidths: [1, 1] })).toThrow(/ascending/);
    expect(() => checkPruning(m7, { layersKept: [0, 40], ffnWidths: [1, 1] })).toThrow(/\[0, 32\)/);
    expect(() => checkPruning(m7, { layersKept: [0], ffnWidths: [20000] })).toThrow(InputError);
    expect(() => pruningFromJson(m7, { layersKept: [0, 1], ffnWidths: [5] })).toThrow(/one width per kept layer/);
    expect(pruningFromJson(m7, { layersKept: [0, 2], ffnWidths: [5, 6], other: 1 }).ffnWidths).toEqual([5, 6]);
  });
});

import { describe, expect, it } from 'vitest';
import { getModel, makeSplitPlan } from '../src/model/catalog.js';
import { resolveLatency } from '../src/compute/resolve.js';
import type { BatchShape } from '../src/compute/types.js';
import { deviceLatency, PassMemo } from '../src/sim/latency.js';
import type { DeviceWork } from '../src/protocol/ops.js';

// The simulator memoises device pass latencies by shape (sim/latency.ts PassMemo): the
// memoised value must be exactly the latency model's, whatever order the shapes come in.
describe('device pass latency memo', () => {
  const m7 = getModel('llama2-7b');
  const plan = makeSplitPlan(m7, 2, 2, 'attention-block');
  const target = resolveLatency({ hardwareId: 'jetson-orin-nx-16gb', model: m7, plan, calibrationDir: '/nonexistent' });
  const tiny = getModel('tinyllama-1.1b');
  const drafter = resolveLatency({ hardwareId: 'jetson-orin-nx-16gb', model: tiny, plan: makeSplitPlan(tiny, 1, 1, 'attention-block'), calibrationDir: '/nonexistent' });
  const direct = (work: DeviceWork, tokens: number, ctx: number, logits: number): number => {
    const shape: BatchShape = { seqs: 1, tokens, tokCtx: tokens * ctx, ctx, tokSq: tokens * tokens };
    if (work === 'slm') return target.submodel('input').batchMs(shape, 0) + target.submodel('adapter').batchMs(shape, 0) + target.submodel('output').batchMs(shape, logits);
    return (work === 'drafter' ? drafter : target).submodel(work).batchMs(shape, logits);
  };

  it('returns the model\'s value for every shape, asked once or many times, in and out of the memo\'s range', () => {
    const lat = deviceLatency(target, drafter);
    const shapes: [DeviceWork, number, number, number][] = [];
    for (const work of ['input', 'adapter', 'output', 'slm', 'drafter'] as const) {
      for (const [tokens, logits] of [[1, 0], [1, 1], [5, 5], [63, 63], [64, 0], [512, 0], [5000, 1]]) {
        for (const ctx of [0, 1, 511, 1023, 1024, 4097, 2_000_000]) shapes.push([work, tokens, ctx, logits]);
      }
    }
    shapes.push(['output', 3, 10.5, 3]); // not an integer: computed directly
    for (let pass = 0; pass < 3; pass++) {
      for (const [w, t, c, l] of pass === 1 ? [...shapes].reverse() : shapes) expect(lat.passMs(w, t, c, l)).toBe(direct(w, t, c, l));
    }
    // Distinct shapes stay distinct (no key collisions).
    expect(lat.passMs('slm', 1, 700, 1)).not.toBe(lat.passMs('slm', 1, 701, 1));
    expect(lat.passMs('output', 5, 700, 5)).not.toBe(lat.passMs('output', 5, 700, 0));
  });

  it('computeMs of a repeated pass sums the passes in order', () => {
    const lat = deviceLatency(target, drafter);
    const op = (repeat: number, ctx: number, work: DeviceWork = 'slm') => ({ op: 'compute', work, tokens: 1, ctx, logits: 1, repeat, background: false, label: 'draft' }) as const;
    const want = (repeat: number, ctx: number, work: DeviceWork = 'slm'): number => {
      let total = 0;
      for (let i = 0; i < repeat; i++) total += direct(work, 1, ctx + i, 1);
      return total;
    };
    // Asked twice (the second from the memo), with other draft lengths and works in between.
    for (let pass = 0; pass < 2; pass++) {
      for (const r of [4, 1, 3, 63, 64]) for (const ctx of [300, 301, 2000]) {
        expect(lat.computeMs(op(r, ctx))).toBe(want(r, ctx));
        expect(lat.computeMs(op(r, ctx, 'drafter'))).toBe(want(r, ctx, 'drafter'));
      }
    }
    expect(lat.computeMs(op(4, 300))).not.toBe(lat.computeMs(op(3, 300)));
  });

  it('PassMemo gives a row with room for the context and none outside its range', () => {
    const memo = new PassMemo();
    const r = memo.row(2, 5, 5, 3000)!;
    expect(r.length).toBeGreaterThan(3000);
    expect(Number.isNaN(r[3000])).toBe(true);
    r[3000] = 1.5;
    expect(memo.row(2, 5, 5, 10)![3000]).toBe(1.5);
    expect(memo.row(2, 5, 5, 9000)![3000]).toBe(1.5); // grown, kept
    expect(memo.row(2, 5, 4, 3000)![3000]).toBeNaN();
    expect(memo.row(0, -1, 0, 0)).toBeNull();
    expect(memo.row(0, 1, 0, 1 << 21)).toBeNull();
    expect(memo.row(0, 1.5, 0, 0)).toBeNull();
    expect(memo.row(0, 64, 0, 0)).toBeNull(); // a prefill-sized pass: computed directly
  });
});

/** Heterogeneous-rank LoRA aggregation against a hand-computed example. */
import { describe, expect, it } from 'vitest';
import { aggregateLora, sliceLora, type LoraFactors } from '../src/fedspine/aggregate.js';
import { InputError } from '../src/core/errors.js';

const f = (rank: number, a: number[], b: number[]): LoraFactors => ({ rank, dIn: 2, dOut: 2, a: Float32Array.from(a), b: Float32Array.from(b) });
// Device 1: rank 1, 1 sample; device 2: rank 2, 3 samples. d_in = d_out = 2.
const u1 = { factors: f(1, [1, 2], [1, 2]), dataSize: 1 }; // A1 = [1 2], B1 = [1; 2]
const u2 = { factors: f(2, [3, 4, 5, 6], [1, 2, 3, 4]), dataSize: 3 }; // A2 = [3 4; 5 6], B2 = [1 2; 3 4]

describe('heterogeneous-rank aggregation (HetLoRA zero padding)', () => {
  it("'all': padded zeros count, weights 1/4 and 3/4 (hand computed)", () => {
    const g = aggregateLora([u1, u2], 2, { weighting: 'data', normalize: 'all' });
    // A = (1*[1 2; 0 0] + 3*[3 4; 5 6]) / 4 = [2.5 3.5; 3.75 4.5]
    expect(Array.from(g.a)).toEqual([2.5, 3.5, 3.75, 4.5]);
    // B = (1*[1 0; 2 0] + 3*[1 2; 3 4]) / 4 = [1 1.5; 2.75 3]
    expect(Array.from(g.b)).toEqual([1, 1.5, 2.75, 3]);
  });
  it("'holders': rank component 2 is device 2's alone", () => {
    const g = aggregateLora([u1, u2], 2, { weighting: 'data', normalize: 'holders' });
    expect(Array.from(g.a)).toEqual([2.5, 3.5, 5, 6]);
    expect(Array.from(g.b)).toEqual([1, 2, 2.75, 4]);
  });
  it("'norm' weighting: weights proportional to the factors' Frobenius norms", () => {
    const n1 = Math.sqrt(1 + 4 + 1 + 4), n2 = Math.sqrt(9 + 16 + 25 + 36 + 1 + 4 + 9 + 16);
    const g = aggregateLora([u1, u2], 2, { weighting: 'norm', normalize: 'all' });
    expect(g.a[0]).toBeCloseTo((n1 * 1 + n2 * 3) / (n1 + n2), 6);
    expect(g.a[2]).toBeCloseTo((n2 * 5) / (n1 + n2), 6);
  });
  it('pruned rows: a masked-out output row is not held by that device', () => {
    const pruned = { ...u2, outMask: Uint8Array.from([1, 0]) };
    const g = aggregateLora([u1, pruned], 2, { weighting: 'data', normalize: 'holders' });
    // B row 2: only device 1 holds (row 2, component 1) = 2; (row 2, component 2) nobody holds -> previous (none) = 0.
    expect(Array.from(g.b)).toEqual([1, 2, 2, 0]);
  });
  it('equal ranks and equal weights reduce to the plain mean (FedAvg)', () => {
    const g = aggregateLora([{ factors: f(1, [1, 3], [2, 4]), dataSize: 5 }, { factors: f(1, [3, 5], [0, 0]), dataSize: 5 }], 1);
    expect(Array.from(g.a)).toEqual([2, 4]);
    expect(Array.from(g.b)).toEqual([1, 2]);
  });
  it('slicing the global pair gives a device its first r components', () => {
    const g = f(2, [3, 4, 5, 6], [1, 2, 3, 4]);
    const s = sliceLora(g, 1);
    expect(Array.from(s.a)).toEqual([3, 4]);
    expect(Array.from(s.b)).toEqual([1, 3]);
  });
  it('a rank above the global rank is an InputError', () => {
    expect(() => aggregateLora([u2], 1)).toThrow(InputError);
  });
});

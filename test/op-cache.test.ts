import { describe, expect, it } from 'vitest';
import { compute, emit, OpCache } from '../src/protocol/ops.js';

// Protocols share immutable ops through OpCache (protocol/ops.ts): the cached op must be the
// one `make` builds for those arguments, the same object for the same arguments.
describe('OpCache', () => {
  it('builds an op once per (key, ctx) and returns that op afterwards', () => {
    let made = 0;
    const c = new OpCache((g, ctx) => { made++; return compute('slm', 1, ctx, 1, 'draft', g); });
    const a = c.get(4, 700);
    expect(a).toEqual(compute('slm', 1, 700, 1, 'draft', 4));
    expect(c.get(4, 700)).toBe(a);
    expect(made).toBe(1);
    expect(c.get(3, 700)).toEqual(compute('slm', 1, 700, 1, 'draft', 3));
    expect(c.get(4, 10)).toEqual(compute('slm', 1, 10, 1, 'draft', 4));
    expect(c.get(4, 700)).toBe(a); // growing a row keeps its ops
    expect(made).toBe(3);
  });

  it('builds a fresh op outside its range (large or non-integer context, negative key)', () => {
    let made = 0;
    const c = new OpCache((g, ctx) => { made++; return compute('input', 1, ctx, 0, 'x', g + 1); });
    for (const [k, ctx] of [[0, 1 << 20], [0, 2.5], [-1, 3], [5000, 3]]) {
      const a = c.get(k, ctx), b = c.get(k, ctx);
      expect(a).not.toBe(b);
      expect(a).toEqual(compute('input', 1, ctx, 0, 'x', k + 1));
    }
    expect(made).toBe(8);
  });

  it('emit(n) is an emit of n tokens, shared for small n', () => {
    for (const n of [0, 1, 5, 64, 65, 1000]) expect(emit(n)).toEqual({ op: 'emit', tokens: n });
    expect(emit(5)).toBe(emit(5));
  });
});

import { describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { formatNumber } from '../src/results/csv.js';

/** The CSV number format as first written (regex trimming): every file's bytes depend on it. */
function reference(x: number): string {
  if (Number.isNaN(x)) return '';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Number.isInteger(x)) return String(x);
  const s = x.toFixed(6).replace(/0+$/, '').replace(/\.$/, '');
  return s === '-0' ? '0' : s;
}

describe('formatNumber', () => {
  it('formats as the regex version on edge cases and 200,000 random numbers of every magnitude', () => {
    const edge = [0, -0, 1, -1, 0.5, -0.5, 100.0000001, -0.0000001, 0.0000004, 0.0000005, 1e-7, 123.4560001, 2 ** 53 - 0.5, 1e21, 1.5e300, NaN, Infinity, -Infinity, 10.1, 1e15 + 0.5];
    for (const x of edge) expect(formatNumber(x)).toBe(reference(x));
    const rng = new Rng(3, 'csv-format');
    for (let i = 0; i < 200_000; i++) {
      const x = (rng.uniform() - 0.5) * Math.pow(10, Math.floor(rng.uniform() * 24) - 10);
      expect(formatNumber(x)).toBe(reference(x));
    }
    expect(formatNumber(480.601201)).toBe('480.601201');
    expect(formatNumber(0.25)).toBe('0.25');
    expect(formatNumber(-0.0000001)).toBe('0');
  });
});

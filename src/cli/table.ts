/** Plain-text tables for the terminal. */
import { formatNumber } from '../results/csv.js';

export function fmt(x: unknown, digits = 1): string {
  if (typeof x !== 'number') return String(x ?? '');
  if (Number.isNaN(x)) return '-';
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1000 ? x.toFixed(0) : x.toFixed(digits);
}

export function table(headers: readonly string[], rows: readonly (readonly unknown[])[], digits = 1): string {
  const cells = rows.map((r) => r.map((c) => fmt(c, digits)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => (r[i] ?? '').length)));
  const line = (r: readonly string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)].join('\n');
}

export { formatNumber };

/**
 * CSV serialisation with a fixed number format, so the same numbers always
 * give the same bytes: integers as integers, other numbers with up to 6
 * significant decimals (trailing zeros trimmed), NaN as empty.
 */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return '';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (Number.isInteger(x)) return String(x);
  const s = x.toFixed(6);
  // Trim trailing zeros, then a trailing point (as s.replace(/0+$/, '').replace(/\.$/, ''), without regexes: one call per CSV cell).
  let end = s.length;
  while (s.charCodeAt(end - 1) === 48) end--;
  if (s.charCodeAt(end - 1) === 46) end--;
  const t = end === s.length ? s : s.slice(0, end);
  return t === '-0' ? '0' : t;
}

function cell(v: unknown): string {
  if (typeof v === 'number') return formatNumber(v);
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** One CSV row (no newline), as toCsv writes it. */
export function csvLine<T extends object>(r: T, cols: readonly (keyof T & string)[]): string {
  let s = '';
  for (let i = 0; i < cols.length; i++) s += (i === 0 ? '' : ',') + cell(r[cols[i]]);
  return s;
}

export function toCsv<T extends object>(rows: readonly T[], columns?: readonly (keyof T & string)[]): string {
  const cols = columns ?? (rows.length > 0 ? (Object.keys(rows[0]) as (keyof T & string)[]) : []);
  const out: string[] = [cols.join(',')];
  for (const r of rows) out.push(csvLine(r, cols));
  return out.join('\n') + '\n';
}

/**
 * Request trace reader: CSV with a header row and (at least) the columns
 * `arrived_at` (s), `num_prefill_tokens`, `num_decode_tokens`, as in the
 * Splitwise/Vidur traces. Extra columns are ignored; only the columns a caller
 * needs are required (a lengths-only trace may lack `arrived_at`).
 * Bad input raises an InputError naming the file, line, column and value.
 */
import { readFileSync, statSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { InputError } from '../core/errors.js';

export const TRACE_COLUMNS = ['arrived_at', 'num_prefill_tokens', 'num_decode_tokens'] as const;
export type TraceColumn = (typeof TRACE_COLUMNS)[number];

export interface TraceRow {
  /** Arrival time as written in the trace (s); NaN when the column was not read. */
  arrivedAtS: number;
  /** Prompt tokens (integer >= 1); NaN when not read. */
  promptTokens: number;
  /** Output tokens (integer >= 1); NaN when not read. */
  outputTokens: number;
  /** 1-based line in the file. */
  line: number;
}

/** The cells of every data row, flat (row r's cell i at r * width + i), and each row's 1-based line. */
export interface RawTrace { header: string[]; width: number; cells: string[]; lines: Int32Array }

const cache = new Map<string, { mtimeMs: number; size: number; raw: RawTrace }>();
/**
 * Files up to this size stay cached (sweeps re-read the same trace per point); a larger one
 * is parsed on each read, so a million-request trace is not kept for the whole run (issue 15).
 */
const CACHE_MAX_BYTES = 8 << 20;

function readRaw(file: string): RawTrace {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new InputError(`trace file not found: ${file}`);
  }
  const hit = cache.get(file);
  if (hit && hit.mtimeMs === st.mtimeMs && hit.size === st.size) return hit.raw;
  const text = readFileSync(file, 'utf8');
  const raw = plainRaw(text) ?? parsedRaw(file, text);
  if (st.size <= CACHE_MAX_BYTES) cache.set(file, { mtimeMs: st.mtimeMs, size: st.size, raw });
  return raw;
}

/**
 * A trace without quotes, a byte-order mark or blank-but-not-empty lines, every row as wide
 * as the header (the common case: numbers and commas), split directly: the same cells and
 * lines as csv-parse gives, without its per-record objects (a million-row trace took ~900 MB
 * through csv-parse). Anything else: null, and csv-parse reads it (and reports its errors).
 */
export function plainRaw(text: string): RawTrace | null {
  if (text.includes('"') || text.charCodeAt(0) === 0xfeff) return null;
  const lines = text.split('\n');
  let header: string[] | null = null;
  const cells: string[] = [];
  const at: number[] = [];
  for (let k = 0; k < lines.length; k++) {
    let l = lines[k];
    if (l.endsWith('\r')) l = l.slice(0, -1);
    if (l === '') continue;
    if (l.trim() === '') return null;
    const parts = l.split(',');
    if (header === null) { header = parts.map((h) => h.trim()); continue; }
    if (parts.length !== header.length) return null;
    for (const c of parts) cells.push(c.trim());
    at.push(k + 1);
  }
  if (header === null) return null;
  return { header, width: header.length, cells, lines: Int32Array.from(at) };
}

export function parsedRaw(file: string, text: string): RawTrace {
  let records: { record: string[]; info: { lines: number } }[];
  try {
    records = parse(text, {
      info: true,
      skip_empty_lines: true,
      trim: true,
      relax_column_count: false,
    }) as unknown as { record: string[]; info: { lines: number } }[];
  } catch (err) {
    const e = err as { message?: string; lines?: number };
    throw new InputError(`trace file ${file}${e.lines ? `:${e.lines}` : ''}: malformed CSV: ${e.message ?? String(err)}`);
  }
  if (records.length === 0) throw new InputError(`trace file ${file} is empty: expected a header row with ${TRACE_COLUMNS.join(',')}`);
  const header = records[0].record.map((h) => h.trim());
  const width = header.length;
  const cells: string[] = [];
  for (let r = 1; r < records.length; r++) for (let i = 0; i < width; i++) cells.push(records[r].record[i]);
  return { header, width, cells, lines: Int32Array.from(records.slice(1), (r) => r.info.lines) };
}

/**
 * Read a trace. `columns` lists the columns that must exist and be valid;
 * the others are read when present and valid-looking, else left NaN.
 */
export function readTrace(file: string, columns: readonly TraceColumn[] = TRACE_COLUMNS): TraceRow[] {
  const raw = readRaw(file);
  const index = new Map<TraceColumn, number>();
  const missing: string[] = [];
  for (const c of columns) {
    const i = raw.header.indexOf(c);
    if (i < 0) missing.push(c);
    else index.set(c, i);
  }
  if (missing.length > 0) {
    throw new InputError(`trace file ${file}: missing column${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (header has: ${raw.header.join(', ')}; required: ${columns.join(', ')})`);
  }
  const cell = (row: number, col: TraceColumn, kind: 'time' | 'tokens'): number => {
    const i = index.get(col);
    if (i === undefined) return NaN;
    const text = raw.cells[row * raw.width + i];
    const v = text === '' ? NaN : Number(text);
    const ok = kind === 'time' ? Number.isFinite(v) && v >= 0 : Number.isInteger(v) && v >= 1;
    if (!ok) {
      const allowed = kind === 'time' ? 'a number >= 0 (seconds)' : 'an integer >= 1';
      throw new InputError(`trace file ${file}:${raw.lines[row]}: column ${col}: bad value "${text}" (must be ${allowed})`);
    }
    return v;
  };
  const out: TraceRow[] = new Array<TraceRow>(raw.lines.length);
  for (let r = 0; r < raw.lines.length; r++) {
    out[r] = {
      arrivedAtS: cell(r, 'arrived_at', 'time'),
      promptTokens: cell(r, 'num_prefill_tokens', 'tokens'),
      outputTokens: cell(r, 'num_decode_tokens', 'tokens'),
      line: raw.lines[r],
    };
  }
  return out;
}

/** Forget cached traces (tests). */
export function clearTraceCache(): void {
  cache.clear();
}

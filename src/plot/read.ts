/**
 * Readers for the result files the plots use. Every reader checks that the
 * columns it needs are present and throws an InputError naming the file and
 * the missing column(s); numeric columns must parse as finite numbers.
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { evalPieces } from '../compute/calibration.js';
import { readCsvTable as readCsv, requireColumns, type CsvTable } from '../core/csv.js';
import { InputError } from '../core/errors.js';
import type { RequestRecord, SpanRecord, SummaryRecord } from '../results/types.js';

export { readCsvTable as readCsv, requireColumns, type CsvTable } from '../core/csv.js';

function num(table: CsvTable, row: Record<string, string>, col: string, line: number): number {
  const raw = row[col];
  const v = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isFinite(v)) {
    throw new InputError(`${table.file}: row ${line}: column '${col}' must be a finite number, got '${raw ?? ''}'`, col);
  }
  return v;
}

/**
 * Parses `numeric` columns of every row as numbers, keeps the rest as strings.
 * Columns in `required` must hold a number; in the others an empty cell (a
 * metric that does not apply, e.g. acceptance_rate of a non-speculative
 * system) becomes undefined.
 */
function typed<T>(table: CsvTable, numeric: readonly string[], required: readonly string[] = numeric): T[] {
  const req = new Set(required);
  return table.rows.map((row, i) => {
    const out: Record<string, string | number | undefined> = { ...row };
    for (const c of numeric) {
      if (!(c in row)) continue;
      out[c] = !req.has(c) && row[c].trim() === '' ? undefined : num(table, row, c, i + 2);
    }
    return out as T;
  });
}

// ---- requests.csv -------------------------------------------------------------------------------

/** Columns the figures need from requests.csv (a subset of RequestRecord). */
export const REQUEST_COLUMNS_NEEDED = [
  'system', 'device', 'request', 'ttft_ms', 'tbt_mean_ms', 'bytes_up', 'bytes_down',
  'raw_token_bytes_up', 'hidden_bytes_up', 'hidden_bytes_down',
] as const;

/** The plots only rely on these fields; the others are kept as parsed if present. */
export type RequestRow = Pick<RequestRecord, (typeof REQUEST_COLUMNS_NEEDED)[number]> & Partial<RequestRecord>;

const REQUEST_NUMERIC: readonly (keyof RequestRecord)[] = [
  'request', 'arrival_s', 'prompt_tokens', 'output_tokens', 'ttft_ms', 'tbt_mean_ms', 'tbt_max_ms', 'e2e_ms',
  'bytes_up', 'bytes_down', 'raw_token_bytes_up', 'hidden_bytes_up', 'hidden_bytes_down', 'device_queue_ms',
  'cloud_queue_ms', 'device_compute_ms', 'cloud_compute_ms', 'network_ms', 'rounds', 'drafted_tokens',
  'accepted_tokens', 'chunk_tokens', 'gpu',
];

export function readRequests(dir: string): RequestRow[] {
  const t = readCsv(join(dir, 'requests.csv'));
  requireColumns(t, REQUEST_COLUMNS_NEEDED);
  return typed<RequestRow>(t, REQUEST_NUMERIC, REQUEST_COLUMNS_NEEDED.filter((c) => c !== 'system' && c !== 'device'));
}

// ---- summary.csv / sweep.csv --------------------------------------------------------------------

export const SUMMARY_COLUMNS_NEEDED = [
  'system', 'requests', 'ttft_mean_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p99_ms',
] as const;

/** Every SummaryRecord column, in the contract's order (used to tell grid parameters apart in sweep.csv). */
export const SUMMARY_COLUMNS: readonly (keyof SummaryRecord)[] = [
  'system', 'requests', 'unfinished', 'ttft_mean_ms', 'ttft_p50_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p50_ms',
  'tbt_p99_ms', 'e2e_mean_ms', 'throughput_tok_s', 'bytes_up_per_request', 'bytes_down_per_request',
  'raw_token_bytes_up', 'hidden_bytes_up', 'cloud_queue_mean_ms', 'gpu_util_mean', 'acceptance_rate',
  'tokens_per_round', 'latency_source',
];
const SUMMARY_NUMERIC = SUMMARY_COLUMNS.filter((c) => c !== 'system' && c !== 'latency_source');

export type SummaryRow = Pick<SummaryRecord, (typeof SUMMARY_COLUMNS_NEEDED)[number]> & Partial<SummaryRecord>;

/**
 * Summary columns that must hold a number in every row. The TBT columns must exist but may be
 * empty: a single-pass task (dtoee, staged: one inference pass) has no time between tokens.
 */
const SUMMARY_VALUES_NEEDED = ['requests', 'ttft_mean_ms', 'ttft_p99_ms'] as const;

export function readSummary(dir: string): SummaryRow[] {
  const t = readCsv(join(dir, 'summary.csv'));
  requireColumns(t, SUMMARY_COLUMNS_NEEDED);
  return typed<SummaryRow>(t, SUMMARY_NUMERIC.filter((c) => t.columns.includes(c)), SUMMARY_VALUES_NEEDED);
}

/** Columns of sweep.csv that identify a point rather than a parameter or a metric. */
const SWEEP_ID_COLUMNS = new Set(['point', 'point_id', 'id', 'dir', 'shard']);

export interface SweepTable {
  file: string;
  /** Grid parameter columns (dotted scenario paths), in file order. */
  params: string[];
  /** Summary rows; parameter values are numbers when every value parses, else strings. */
  rows: (SummaryRow & Record<string, string | number>)[];
  /** Metric columns present (numeric summary columns). */
  metrics: string[];
}

export function readSweep(dir: string): SweepTable {
  const t = readCsv(join(dir, 'sweep.csv'));
  requireColumns(t, SUMMARY_COLUMNS_NEEDED);
  const summarySet = new Set<string>(SUMMARY_COLUMNS);
  // sweep.json (written by `hatsim sweep`) names the grid; without it, every non-summary column is a parameter.
  const gridPaths = readSweepGrid(dir);
  const params = gridPaths
    ? gridPaths.filter((p) => t.columns.includes(p))
    : t.columns.filter((c) => !summarySet.has(c) && !SWEEP_ID_COLUMNS.has(c));
  if (params.length === 0) {
    throw new InputError(
      `${t.file}: no grid parameter column (expected one column per swept parameter, named by its dotted path, e.g. 'devices.0.link.uplinkMbps')`,
    );
  }
  const numericParams = params.filter((p) => t.rows.every((r) => r[p].trim() !== '' && Number.isFinite(Number(r[p]))));
  const metrics = SUMMARY_NUMERIC.filter((c) => t.columns.includes(c));
  const rows = typed<SummaryRow & Record<string, string | number>>(t, [...metrics, ...numericParams], [...SUMMARY_VALUES_NEEDED, ...numericParams]);
  return { file: t.file, params, rows, metrics };
}

/** Grid parameter paths from `<dir>/sweep.json` (`grid: [{path, values}]`), if that file exists. */
function readSweepGrid(dir: string): string[] | undefined {
  const file = join(dir, 'sweep.json');
  if (!existsSync(file)) return undefined;
  try {
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { grid?: { path?: unknown }[] };
    const paths = (doc.grid ?? []).map((g) => g.path).filter((p): p is string => typeof p === 'string');
    return paths.length ? paths : undefined;
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

// ---- timeline.csv, gpu_util.csv, validation.csv ----------------------------------------------------

export const SPAN_COLUMNS_NEEDED = ['system', 'device', 'request', 'kind', 'label', 'start_ms', 'end_ms'] as const;

export function readTimeline(dir: string): SpanRecord[] {
  const t = readCsv(join(dir, 'timeline.csv'));
  requireColumns(t, SPAN_COLUMNS_NEEDED);
  return typed<SpanRecord>(t, ['request', 'start_ms', 'end_ms']);
}

export interface GpuUtilRow {
  system: string;
  gpu: number;
  time_s: number;
  busy_fraction: number;
}
export const GPU_UTIL_COLUMNS_NEEDED = ['system', 'gpu', 'time_s', 'busy_fraction'] as const;

export function readGpuUtil(dir: string): GpuUtilRow[] {
  const t = readCsv(join(dir, 'gpu_util.csv'));
  requireColumns(t, GPU_UTIL_COLUMNS_NEEDED);
  return typed<GpuUtilRow>(t, ['gpu', 'time_s', 'busy_fraction']);
}

export interface ValidationRow {
  system: string;
  metric: string;
  live: number;
  sim: number;
  error_pct: number;
}
export const VALIDATION_COLUMNS_NEEDED = ['system', 'metric', 'live', 'sim', 'error_pct'] as const;

export function readValidation(dir: string): ValidationRow[] {
  const t = readCsv(join(dir, 'validation.csv'));
  requireColumns(t, VALIDATION_COLUMNS_NEEDED);
  return typed<ValidationRow>(t, ['live', 'sim', 'error_pct']);
}

// ---- run.json --------------------------------------------------------------------------------

/** run.json is read loosely: only for display (scenario name, seed, version, wall time, provenance). */
export function readRunJson(dir: string): Record<string, unknown> | undefined {
  const file = join(dir, 'run.json');
  if (!existsSync(file)) return undefined;
  try {
    const v: unknown = JSON.parse(readFileSync(file, 'utf8'));
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not a JSON object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${(err as Error).message})`);
  }
}

// ---- calibration -----------------------------------------------------------------------------

export interface CalibrationPiece {
  maxTokens: number | null;
  c0Ms: number;
  c1MsPerToken: number;
  c2MsPerTokenCtx: number;
  c3MsPerCtx: number;
  c4MsPerSeq?: number;
  c5MsPerTokenSq?: number;
}
export interface CalibrationComponent {
  source: string;
  pieces: CalibrationPiece[];
  fit?: { samples?: number; r2?: number; heldOutSamples?: number; heldOutMedianAbsPctErr?: number; heldOutP90AbsPctErr?: number; statistic?: 'median' | 'p10' };
  samplesFile?: string;
}
export interface CalibrationSample {
  component: string;
  tokens: number;
  ctx: number;
  seqs: number;
  layers: number;
  median_ms: number;
  p10_ms: number;
  p90_ms: number;
  reps: number;
  split: string;
}
export interface Calibration {
  dir: string;
  hardwareId: string;
  modelId: string;
  components: Record<string, CalibrationComponent>;
  /** Empty when model.json names no samples file. */
  samples: CalibrationSample[];
}

export const SAMPLE_COLUMNS_NEEDED = ['component', 'tokens', 'ctx', 'seqs', 'layers', 'median_ms', 'p10_ms', 'p90_ms', 'reps', 'split'] as const;

/** Reads `<dir>/model.json` (calibration format v1) and its samples file. */
export function readCalibration(dir: string): Calibration {
  const file = join(dir, 'model.json');
  if (!existsSync(file)) throw new InputError(`${file}: file not found`);
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new InputError(`${file}: not valid JSON (${(err as Error).message})`);
  }
  for (const k of ['format', 'hardwareId', 'modelId', 'components']) {
    if (!(k in doc)) throw new InputError(`${file}: missing field '${k}'`, k);
  }
  if (doc.format !== 'hatsim-calibration') {
    throw new InputError(`${file}: field 'format' is '${String(doc.format)}', expected 'hatsim-calibration'`, 'format');
  }
  const components = doc.components as Record<string, CalibrationComponent>;
  for (const [name, comp] of Object.entries(components)) {
    if (!Array.isArray(comp?.pieces) || comp.pieces.length === 0) {
      throw new InputError(`${file}: components.${name}.pieces must be a non-empty array`, `components.${name}.pieces`);
    }
  }
  const sampleFiles = new Set(Object.values(components).map((c) => c.samplesFile).filter((f): f is string => !!f));
  const samples: CalibrationSample[] = [];
  for (const sf of sampleFiles) {
    const t = readCsv(join(dir, sf));
    requireColumns(t, SAMPLE_COLUMNS_NEEDED);
    samples.push(...typed<CalibrationSample>(t, ['tokens', 'ctx', 'seqs', 'layers', 'median_ms', 'p10_ms', 'p90_ms', 'reps']));
  }
  return { dir, hardwareId: String(doc.hardwareId), modelId: String(doc.modelId), components, samples };
}

/** Calibration directories under `dir`: itself, or `<dir>/<hw>/<model>/`, or `<dir>/<model>/`. */
export function findCalibrationDirs(dir: string): string[] {
  if (existsSync(join(dir, 'model.json'))) return [dir];
  const out: string[] = [];
  const subdirs = (d: string) =>
    readdirSync(d)
      .filter((n) => !n.startsWith('.') && statSync(join(d, n)).isDirectory())
      .sort()
      .map((n) => join(d, n));
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return out;
  for (const a of subdirs(dir)) {
    if (existsSync(join(a, 'model.json'))) out.push(a);
    else for (const b of subdirs(a)) if (existsSync(join(b, 'model.json'))) out.push(b);
  }
  return out;
}

/**
 * Model prediction for one samples.csv row. samples.csv holds batch sums of a
 * uniform batch (docs/calibration-format.md): per sequence n = tokens/seqs new
 * tokens after c = ctx/seqs past tokens, so sum(n*c) = tokens*ctx/seqs and
 * sum(c) = ctx; a decoderLayer sample measures `layers` stacked layers.
 */
export function predictSample(comp: CalibrationComponent, s: CalibrationSample): number {
  const seqs = Math.max(1, s.seqs);
  const shape = { seqs, tokens: s.tokens, tokCtx: (s.tokens * s.ctx) / seqs, ctx: s.ctx, tokSq: (s.tokens * s.tokens) / seqs };
  const perLayer = evalPieces(comp.pieces, shape);
  return perLayer * (s.component === 'decoderLayer' ? Math.max(1, s.layers) : 1);
}

/**
 * The files of a sweep directory:
 *
 *   <out>/sweep.json              what was swept (scenario, grid, base overrides, shard, points)
 *   <out>/sweep.csv               summary rows of all finished points + point + one column per grid path
 *   <out>/points/<id>/...         one results directory per point (results/write.ts), run.json last
 *
 * Shared by runSweep (sweep.ts) and mergeSweeps (merge.ts) so both build
 * sweep.csv the same way, byte for byte.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { SUMMARY_COLUMNS } from '../results/types.js';
import type { GridAxis, Shard } from './grid.js';
import type { PointStamp } from './point.js';

export const SWEEP_FORMAT = 'hatsim-sweep/1';

export interface SweepPointInfo {
  index: number;
  id: string;
  /** Parsed grid value per dotted path. */
  grid: Record<string, unknown>;
}

/** Contents of sweep.json. */
export interface SweepManifest {
  format: typeof SWEEP_FORMAT;
  tool: 'hatsim';
  version: string;
  /** Scenario path as given, and resolved. */
  scenario: string;
  scenarioAbs: string;
  scenarioName: string;
  /** sha256 of the scenario file's text: resume and merge refuse a changed scenario. */
  scenarioSha256: string;
  grid: GridAxis[];
  /** `--seed` / `--systems` / `--set` overrides applied to every point, in order. */
  baseOverrides: string[];
  /** Seed of the base scenario (points may differ when the grid sweeps `seed`). */
  seed: number;
  timelineRequests: number | null;
  /** null for a whole sweep (or a merge of all shards). */
  shard: Shard | null;
  /** Number of points of the whole grid. */
  totalPoints: number;
  /** The points this directory is responsible for (its shard's, or all). */
  points: SweepPointInfo[];
}

export const pointsDir = (out: string): string => join(out, 'points');
export const pointDir = (out: string, id: string): string => join(out, 'points', id);

export function readManifest(dir: string): SweepManifest | undefined {
  const file = join(dir, 'sweep.json');
  if (!existsSync(file)) return undefined;
  let m: unknown;
  try {
    m = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(`${file} is not valid JSON (${(e as Error).message}); delete the directory or use another --out`);
  }
  const rec = m as Partial<SweepManifest> | null;
  if (!rec || rec.format !== SWEEP_FORMAT || !Array.isArray(rec.grid) || !Array.isArray(rec.points)) {
    throw new InputError(`${file} is not a hatsim sweep description (format ${SWEEP_FORMAT}); delete the directory or use another --out`);
  }
  return rec as SweepManifest;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);
const show = (v: unknown): string => JSON.stringify(v);

/**
 * Differences between two sweep descriptions that make their points
 * incompatible (scenario text, grid, base overrides, timeline option; and the
 * shard unless `ignoreShard`). Empty when compatible.
 */
export function manifestDifferences(a: SweepManifest, b: SweepManifest, ignoreShard = false): string[] {
  const out: string[] = [];
  if (a.scenarioSha256 !== b.scenarioSha256) out.push(`the scenario file differs (${a.scenario} vs ${b.scenario}: contents changed)`);
  if (!same(a.grid, b.grid)) out.push(`the grid differs (${show(a.grid.map((g) => `${g.path}=${g.values.join(',')}`))} vs ${show(b.grid.map((g) => `${g.path}=${g.values.join(',')}`))})`);
  if (!same(a.baseOverrides, b.baseOverrides)) out.push(`the --seed/--systems/--set overrides differ (${show(a.baseOverrides)} vs ${show(b.baseOverrides)})`);
  if (a.timelineRequests !== b.timelineRequests) out.push(`--timeline-requests differs (${a.timelineRequests ?? 'default'} vs ${b.timelineRequests ?? 'default'})`);
  if (!ignoreShard && !same(a.shard, b.shard)) {
    const s = (x: Shard | null): string => (x ? `${x.index}/${x.count}` : 'none');
    out.push(`the shard differs (${s(a.shard)} vs ${s(b.shard)})`);
  }
  return out;
}

/** The recorded sweep stamp of a finished point (run.json `sweep`), or undefined when the point is not finished. */
export function readPointStamp(dir: string): PointStamp | undefined {
  const file = join(dir, 'run.json');
  if (!existsSync(file)) return undefined;
  try {
    const info = JSON.parse(readFileSync(file, 'utf8')) as { sweep?: PointStamp };
    return info.sweep ?? ({} as PointStamp);
  } catch {
    return undefined; // unreadable: treat as unfinished, it is rerun
  }
}

/** Why a finished point's stamp does not match the expected one (empty when it matches). */
export function stampDifferences(found: PointStamp, expected: PointStamp): string[] {
  const out: string[] = [];
  if (!same(found.gridText, expected.gridText)) out.push(`grid values ${show(found.gridText)} vs ${show(expected.gridText)}`);
  if (!same(found.baseOverrides, expected.baseOverrides)) out.push(`--seed/--systems/--set overrides ${show(found.baseOverrides)} vs ${show(expected.baseOverrides)}`);
  if (found.seed !== expected.seed) out.push(`seed ${show(found.seed)} vs ${expected.seed}`);
  if (found.scenarioSha256 !== expected.scenarioSha256) out.push('scenario file contents changed');
  if ((found.timelineRequests ?? null) !== expected.timelineRequests) out.push(`--timeline-requests ${show(found.timelineRequests)} vs ${show(expected.timelineRequests)}`);
  return out;
}

export const SUMMARY_HEADER = SUMMARY_COLUMNS.join(',');

/** The data lines of a point's summary.csv, checking its columns are the current ones. */
export function summaryLines(summaryCsv: string, where: string): string[] {
  const lines = summaryCsv.split('\n').filter((l) => l !== '');
  if (lines[0] !== SUMMARY_HEADER) {
    throw new InputError(`${where}: summary.csv columns differ from this hatsim version's (${SUMMARY_HEADER}); rerun the point (delete its directory)`);
  }
  return lines.slice(1);
}

function cell(v: unknown): string {
  let s: string;
  if (typeof v === 'number') s = Number.isFinite(v) ? String(v) : (Number.isNaN(v) ? '' : (v > 0 ? 'inf' : '-inf'));
  else if (typeof v === 'string') s = v;
  else if (typeof v === 'boolean') s = v ? 'true' : 'false';
  else if (v === null || v === undefined) s = '';
  else s = JSON.stringify(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * sweep.csv: columns `point`, one per grid path (dotted, as given), then the
 * summary.csv columns; rows of the finished points in point order, each
 * point's systems in summary.csv order.
 */
export function sweepCsv(axes: readonly GridAxis[], points: readonly SweepPointInfo[], summaries: ReadonlyMap<number, string>): string {
  const out: string[] = [['point', ...axes.map((a) => a.path), SUMMARY_HEADER].join(',')];
  for (const p of [...points].sort((a, b) => a.index - b.index)) {
    const text = summaries.get(p.index);
    if (text === undefined) continue;
    const prefix = [cell(p.id), ...axes.map((a) => cell(p.grid[a.path]))].join(',');
    for (const line of summaryLines(text, `point ${p.id}`)) out.push(`${prefix},${line}`);
  }
  return out.join('\n') + '\n';
}

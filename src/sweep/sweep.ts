/**
 * `runSweep`: run a scenario over the cartesian product of grid axes, one
 * results directory per point, a combined sweep.csv rewritten atomically
 * after every finished point, resumable and shardable. See docs/SWEEPS.md.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { VERSION } from '../results/write.js';
import { csvFileToParquet, writeRunParquet } from '../results/parquet.js';
import { loadScenario } from '../scenario/load.js';
import { axisOverrides, axisSpec, expandGrid, inShard, parseGrid, parseShard, type GridAxis, type GridPoint, type Shard } from './grid.js';
import type { PointStamp, PointTask } from './point.js';
import { runPool } from './pool.js';
import { defaultJobs } from './jobs.js';
import {
  SWEEP_FORMAT, manifestDifferences, pointDir, readManifest, readPointStamp, stampDifferences, sweepCsv,
  type SweepManifest, type SweepPointInfo,
} from './files.js';

export interface SweepOptions {
  /** Scenario YAML file. */
  scenario: string;
  /** Grid axes: `path=v1,v2,...` strings (as on the command line) or parsed axes. */
  grid: readonly (string | GridAxis)[];
  /** Overrides applied to every point before the grid values (`--set` syntax), e.g. ['cloud.gpus=2']. */
  overrides?: readonly string[];
  /** Scenario seed for every point (recorded as the base override `seed=N`, before `overrides`). */
  seed?: number;
  /** The sweep directory, used as is (the CLI appends shard-i-of-N when sharding). */
  out: string;
  /** Concurrent points; 1 runs inline without worker threads. Default min(2, cores). */
  jobs?: number;
  /** Run only the points with index % count === index-1: `{index: 2, count: 4}` or "2/4". */
  shard?: Shard | string | null;
  /** Requests of device 0 whose spans go to each point's timeline.csv (runScenario's default when absent). */
  timelineRequests?: number;
  /**
   * Also write Parquet copies (issue 15): each point's requests.parquet and summary.parquet,
   * and sweep.parquet, at the end of the call. Also on when sweep.parquet already exists,
   * so that it never falls behind sweep.csv.
   */
  parquet?: boolean;
  /** Abort to stop: no new point starts, workers are terminated, finished points are kept. */
  signal?: AbortSignal;
  onProgress?: (event: SweepProgress) => void;
}

export type SweepProgress =
  | { kind: 'start'; out: string; total: number; toRun: number; skipped: number; jobs: number }
  | { kind: 'point'; id: string; index: number; done: number; toRun: number; skipped: number; total: number; wallMs: number; warnings: string[] };

export interface SweepPointStatus extends SweepPointInfo {
  status: 'ran' | 'skipped' | 'pending';
  /** Wall time of the point (ms) when it ran in this call. */
  wallMs?: number;
  dir: string;
}

export interface SweepResult {
  out: string;
  sweepCsv: string;
  sweepJson: string;
  grid: GridAxis[];
  shard: Shard | null;
  /** This directory's points (the shard's, or all), in point order. */
  points: SweepPointStatus[];
  ran: number;
  skipped: number;
  /** Not finished (interrupted sweep). */
  pending: number;
  interrupted: boolean;
  wallMs: number;
}


const gridRecord = (axes: readonly GridAxis[], values: readonly unknown[]): Record<string, unknown> =>
  Object.fromEntries(axes.map((a, k) => [a.path, values[k]]));

function relabel(e: unknown, prefix: string): never {
  if (e instanceof InputError) {
    throw new InputError(`${prefix}${e.message.replaceAll('[from --set]', '[from --set/--grid]')}`, e.field);
  }
  throw e;
}

/**
 * Load every point's scenario before anything runs, so a bad path or value
 * fails at once. Returns each point's resolved seed.
 */
function validate(file: string, base: readonly string[], axes: readonly GridAxis[], points: readonly GridPoint[]): { baseSeed: number; name: string; seeds: number[] } {
  const baseScenario = loadScenario(file, [...base]);
  // One value at a time first, so every bad value is reported together and named by its axis.
  const problems: string[] = [];
  for (const a of axes) {
    for (const v of a.values) {
      try {
        loadScenario(file, [...base, ...axisOverrides(a, v)]);
      } catch (e) {
        if (!(e instanceof InputError)) throw e;
        problems.push(`--grid ${a.path}=${v}: ${e.message.replaceAll('[from --set]', '[from --grid]')}`);
      }
    }
  }
  if (problems.length === 1) throw new InputError(problems[0]);
  if (problems.length > 1) throw new InputError(`${problems.length} bad --grid values:\n  - ${problems.join('\n  - ')}`);
  const seeds = points.map((p) => {
    if (axes.length === 1 && !p.overrides.some((o) => o.startsWith('seed='))) return baseScenario.seed;
    try {
      return loadScenario(file, [...base, ...p.overrides]).seed;
    } catch (e) {
      return relabel(e, `--grid point ${p.id} (${p.overrides.join(', ')}): `);
    }
  });
  return { baseSeed: baseScenario.seed, name: baseScenario.name, seeds };
}

export async function runSweep(opts: SweepOptions): Promise<SweepResult> {
  const t0 = performance.now();
  const axes = parseGrid(opts.grid.map((g) => (typeof g === 'string' ? g : axisSpec(g))));
  const shard = typeof opts.shard === 'string' ? parseShard(opts.shard) : (opts.shard ?? null);
  if (shard) parseShard(`${shard.index}/${shard.count}`); // range check
  const jobs = opts.jobs ?? defaultJobs();
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new InputError(`--jobs: ${jobs} is not allowed; give a positive integer`, 'jobs');
  if (opts.timelineRequests !== undefined && (!Number.isSafeInteger(opts.timelineRequests) || opts.timelineRequests < 0)) {
    throw new InputError(`--timeline-requests: ${opts.timelineRequests} is not allowed; give a non-negative integer`, 'timelineRequests');
  }
  if (opts.seed !== undefined && (!Number.isSafeInteger(opts.seed) || opts.seed < 0)) {
    throw new InputError(`--seed: ${opts.seed} is not allowed; give a non-negative integer`, 'seed');
  }
  const base = [...(opts.seed !== undefined ? [`seed=${opts.seed}`] : []), ...(opts.overrides ?? [])];
  const scenarioAbs = resolve(opts.scenario);
  let scenarioText: string;
  try {
    scenarioText = readFileSync(scenarioAbs, 'utf8');
  } catch {
    throw new InputError(`scenario file not found: ${opts.scenario}`);
  }
  const sha = createHash('sha256').update(scenarioText).digest('hex');

  const all = expandGrid(axes);
  const { baseSeed, name, seeds } = validate(opts.scenario, base, axes, all);
  const mine = all.filter((p) => inShard(p.index, shard));
  const out = resolve(opts.out);
  const timelineRequests = opts.timelineRequests ?? null;

  const manifest: SweepManifest = {
    format: SWEEP_FORMAT, tool: 'hatsim', version: VERSION,
    scenario: opts.scenario, scenarioAbs, scenarioName: name, scenarioSha256: sha,
    grid: axes, baseOverrides: base, seed: baseSeed, timelineRequests, shard,
    totalPoints: all.length,
    points: mine.map((p) => ({ index: p.index, id: p.id, grid: gridRecord(axes, p.values) })),
  };
  const previous = readManifest(out);
  if (previous) {
    const diff = manifestDifferences(previous, manifest);
    if (diff.length > 0) {
      throw new InputError(`${out} holds a different sweep: ${diff.join('; ')}. Use a new --out, or delete ${out} to start over.`);
    }
  }

  // Resume: which points are finished, and do they belong to this sweep?
  const stampOf = (p: GridPoint): PointStamp => ({
    point: p.id, index: p.index, grid: gridRecord(axes, p.values),
    gridText: Object.fromEntries(axes.map((a, k) => [a.path, p.texts[k]])),
    baseOverrides: base, seed: seeds[p.index], scenarioSha256: sha, timelineRequests,
  });
  const summaries = new Map<number, string>();
  const mismatched: string[] = [];
  for (const p of mine) {
    const dir = pointDir(out, p.id);
    const stamp = readPointStamp(dir);
    if (!stamp) continue;
    const diff = stampDifferences(stamp, stampOf(p));
    if (diff.length > 0) { mismatched.push(`${p.id}: ${diff.join('; ')}`); continue; }
    const summaryFile = join(dir, 'summary.csv');
    if (existsSync(summaryFile)) summaries.set(p.index, readFileSync(summaryFile, 'utf8'));
  }
  if (mismatched.length > 0) {
    const shown = mismatched.slice(0, 5).map((m) => `\n  - ${m}`).join('') + (mismatched.length > 5 ? `\n  - ... and ${mismatched.length - 5} more` : '');
    throw new InputError(`${out} holds points computed with other settings (did you change --set, --seed or the scenario?):${shown}\nUse a new --out, or delete ${out} to start over.`);
  }

  writeFileAtomic(join(out, 'sweep.json'), JSON.stringify(manifest, null, 2) + '\n');
  const writeCsv = (): void => writeFileAtomic(join(out, 'sweep.csv'), sweepCsv(axes, manifest.points, summaries));
  writeCsv();

  const skipped = summaries.size;
  const todo = mine.filter((p) => !summaries.has(p.index));
  const tasks: PointTask[] = todo.map((p) => {
    const { seed, ...rest } = stampOf(p); // the worker records the seed of the scenario it loaded
    void seed;
    return {
      scenarioPath: scenarioAbs,
      overrides: [...base, ...p.overrides],
      dir: pointDir(out, p.id),
      ...(opts.timelineRequests !== undefined ? { timelineRequests: opts.timelineRequests } : {}),
      stamp: rest,
    };
  });
  opts.onProgress?.({ kind: 'start', out, total: mine.length, toRun: todo.length, skipped, jobs: Math.min(jobs, Math.max(1, todo.length)) });

  const wallOf = new Map<number, number>();
  let done = 0;
  const pool = await runPool(tasks, {
    jobs,
    signal: opts.signal,
    label: (i) => todo[i]?.id ?? `#${i}`,
    onDone: (i, outcome, wallMs) => {
      const p = todo[i];
      summaries.set(p.index, outcome.summaryCsv);
      wallOf.set(p.index, wallMs);
      writeCsv();
      done++;
      opts.onProgress?.({ kind: 'point', id: p.id, index: p.index, done, toRun: todo.length, skipped, total: mine.length, wallMs, warnings: outcome.warnings });
    },
  });

  if (opts.parquet === true || existsSync(join(out, 'sweep.parquet'))) {
    for (const p of mine) {
      const dir = pointDir(out, p.id);
      // Points run now get fresh files; resumed points get them only when missing.
      if (wallOf.has(p.index) || (summaries.has(p.index) && !existsSync(join(dir, 'requests.parquet')))) writeRunParquet(dir);
    }
    csvFileToParquet(join(out, 'sweep.csv'), join(out, 'sweep.parquet'));
  }

  const points: SweepPointStatus[] = manifest.points.map((p) => ({
    ...p,
    dir: pointDir(out, p.id),
    status: wallOf.has(p.index) ? 'ran' : summaries.has(p.index) ? 'skipped' : 'pending',
    ...(wallOf.has(p.index) ? { wallMs: wallOf.get(p.index) } : {}),
  }));
  return {
    out, sweepCsv: join(out, 'sweep.csv'), sweepJson: join(out, 'sweep.json'), grid: axes, shard, points,
    ran: done, skipped, pending: points.filter((p) => p.status === 'pending').length,
    interrupted: pool.interrupted, wallMs: performance.now() - t0,
  };
}

/**
 * The validation suite (issue 14 points 5 and 6): `hatsim validate --suite DIR` runs every
 * scenario of DIR/suite.yaml live on this machine and in the simulator, with and without the
 * host model, and writes one table (suite.csv, suite.json): scenario, half, role, system,
 * metric, live, simulated, error, and the same without the host model.
 *
 * Host model per scenario (its live runner: the topology runner for staged/dtoee systems, the
 * device-cloud runner for the HAT family):
 * - default: the shipped fits, <calibrationDir>/<hw>/host-fit.json (topology) and
 *   host-fit-devcloud.json (device-cloud), role `shipped`;
 * - `fitHalf` a|b: the host costs are fitted (calibrate/host-fit.ts) on the live runs of that
 *   half only, per runner, and every scenario is simulated with them; the other half's rows
 *   are `held-out`, the fit half's `fit`;
 * - `hosts`: one hatsim-host-fit/1 file for every scenario, or `none`.
 * Thresholded statistic per scenario as in validate (median over systems of |error| of mean
 * TTFT and of mean TBT); the suite reports the median and max over scenarios and rows.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { toCsv } from '../results/csv.js';
import type { SummaryRecord } from '../results/types.js';
import { loadScenario } from '../scenario/load.js';
import type { Scenario } from '../scenario/types.js';
import { SYSTEMS } from '../protocol/registry.js';
import { buildTestbed, runScenario } from '../sim/run.js';
import { defaultHostFit, fitDevCloudHost, fitHostFromLive, hostAtLoad, hostGroups, hostOverride, liveRunLoad, readHostFit, type HostFit } from '../calibrate/host-fit.js';
import { compareSummaries, readRequestsCsv, readSummaryCsv, runValidation, THRESHOLDED, VALIDATION_METRICS, type ValidationRow } from './validate.js';
import { replayLive, type ReplayRow } from './replay.js';

export type Runner = 'topology' | 'devcloud';
export type Half = 'a' | 'b';

export interface SuiteEntry { file: string; half: Half; emulate?: string }

/** Read DIR/suite.yaml (InputError naming the field). */
export function readSuite(dir: string): { entries: SuiteEntry[]; path: string } {
  const path = join(dir, 'suite.yaml');
  if (!existsSync(path)) throw new InputError(`--suite: ${path} not found: a suite folder holds suite.yaml listing its scenarios (scenarios/validation/suite.yaml)`, 'suite');
  let doc: unknown;
  try { doc = parseYaml(readFileSync(path, 'utf8')); } catch (e) { throw new InputError(`--suite: ${path} is not YAML (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, 'suite'); }
  const list = (doc as { scenarios?: unknown } | null)?.scenarios;
  if (!Array.isArray(list) || list.length === 0) throw new InputError(`--suite: ${path}: scenarios must be a non-empty list of { file, half: a|b }`, 'suite.scenarios');
  const entries = list.map((e: unknown, i): SuiteEntry => {
    const o = e as Partial<SuiteEntry> | null;
    if (!o || typeof o.file !== 'string') throw new InputError(`--suite: ${path}: scenarios[${i}].file must be a scenario file name`, `scenarios[${i}].file`);
    if (o.half !== 'a' && o.half !== 'b') throw new InputError(`--suite: ${path}: scenarios[${i}].half must be a or b`, `scenarios[${i}].half`);
    if (o.emulate !== undefined && typeof o.emulate !== 'string') throw new InputError(`--suite: ${path}: scenarios[${i}].emulate must be a hardware id`, `scenarios[${i}].emulate`);
    const extra = Object.keys(o).filter((k) => !['file', 'half', 'emulate'].includes(k));
    if (extra.length > 0) throw new InputError(`--suite: ${path}: scenarios[${i}]: unknown key ${extra[0]} (known: file, half, emulate)`, `scenarios[${i}]`);
    if (!existsSync(join(dir, o.file))) throw new InputError(`--suite: ${path}: scenarios[${i}].file ${o.file} not found in ${dir}`, `scenarios[${i}].file`);
    return { file: o.file, half: o.half, ...(o.emulate ? { emulate: o.emulate } : {}) };
  });
  return { entries, path };
}

export function runnerOf(s: Scenario): Runner {
  return s.systems.every((id) => SYSTEMS[id].pairs !== undefined) ? 'topology' : 'devcloud';
}

/** The scenario simulated with every node on `host` (null: no host model). */
export function simulateOnHost(scenarioPath: string, overrides: string[], host: HostFit['host'] | null): SummaryRecord[] {
  const base = loadScenario(scenarioPath, overrides);
  const s = host === null ? base : loadScenario(scenarioPath, [...overrides, hostOverride({ host } as HostFit, hostGroups(base))]);
  return runScenario(s).systems.map((x) => x.summary);
}

/** 1-minute load average before and after a live run (its run.json). */
function liveRunLoadRange(liveDir: string): { before: number; after: number } {
  const h = (JSON.parse(readFileSync(join(liveDir, 'run.json'), 'utf8')) as { host?: { loadAvgBefore?: number[]; loadAvgAfter?: number[] } }).host;
  return { before: h?.loadAvgBefore?.[0] ?? NaN, after: h?.loadAvgAfter?.[0] ?? NaN };
}

/** The live runner of a validate folder: live hops.csv = the topology runner. */
export function runnerOfValidation(dir: string): Runner {
  const vj = join(dir, 'validation.json');
  let liveDir = join(dir, 'live');
  if (existsSync(vj)) {
    const v = JSON.parse(readFileSync(vj, 'utf8')) as { liveDir?: unknown };
    if (typeof v.liveDir === 'string') liveDir = v.liveDir;
  }
  if (!existsSync(join(liveDir, 'requests.csv'))) throw new InputError(`--from-live: ${dir}: no live run (${liveDir}/requests.csv missing): give a hatsim validate output folder`, 'from-live');
  return existsSync(join(liveDir, 'hops.csv')) ? 'topology' : 'devcloud';
}

/** Host costs from validate folders (made with --hosts none) of one runner. */
export function fitHost(runner: Runner, dirs: readonly string[], cores: number): HostFit {
  if (runner === 'devcloud') return fitDevCloudHost(dirs, { cores }, simulateOnHost);
  if (dirs.length !== 1) throw new InputError(`--from-live: the topology runner's fit reads one validate folder (got ${dirs.length})`, 'from-live');
  return fitHostFromLive(dirs[0], { cores });
}

export interface SuiteRow {
  scenario: string;
  half: Half;
  /** fit | held-out | shipped | given | none */
  role: string;
  runner: Runner;
  system: string;
  metric: string;
  live: number;
  sim: number;
  error_pct: number;
  sim_nohost: number;
  error_nohost_pct: number;
}

export interface SuiteOptions {
  dir: string;
  outDir: string;
  fitHalf?: Half;
  /** A hatsim-host-fit/1 file for every scenario, or 'none'. */
  hosts?: string;
  /** Reuse the live runs of an earlier suite output folder (<reuse>/<scenario>/live). */
  reuse?: string;
  /** Only these scenario files of the suite. */
  only?: string[];
  log?: (line: string) => void;
}

/** loadAvg1m: of the live run (run.json), also when reused. */
export interface ScenarioStat { scenario: string; half: Half; role: string; runner: Runner; medianAbsErrorPct: Record<string, number>; medianAbsErrorNohostPct: Record<string, number>; loadAvg1m: { before: number; after: number } }

export interface SuiteResult {
  rows: SuiteRow[];
  scenarios: ScenarioStat[];
  replay: (ReplayRow & { scenario: string })[];
  /** Per role group (all, held-out or shipped, ...), per thresholded metric: median and max of |error| over the scenarios' statistics and over rows. */
  summary: Record<string, Record<string, { scenarioMedian: number; scenarioMax: number; rowMedian: number; rowMax: number; nohostScenarioMedian: number; nohostScenarioMax: number }>>;
  /** Per runner: the fit's host as fitted / shipped; hostsUsed: per scenario, at its live run's load. */
  hosts: Record<string, HostFit['host'] | null>;
  hostsUsed: Record<string, HostFit['host'] | null>;
  /** before / after: of the suite command; samples: each live run's (mean of its before and after). */
  loadAvg1m: { before: number; after: number; samples: number[] };
}

function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}
const maxOf = (xs: number[]): number => { const v = xs.filter(Number.isFinite); return v.length ? Math.max(...v) : NaN; };

function perMetricMedian(rows: readonly ValidationRow[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of THRESHOLDED) out[m] = median(rows.filter((r) => r.metric === m && !(Number.isNaN(r.live) && Number.isNaN(r.sim))).map((r) => Math.abs(r.error_pct)));
  return out;
}

export async function runSuite(opts: SuiteOptions): Promise<SuiteResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const dir = resolve(opts.dir);
  const { entries: all } = readSuite(dir);
  const entries = opts.only ? all.filter((e) => opts.only!.includes(e.file)) : all;
  if (opts.fitHalf && opts.hosts !== undefined) throw new InputError('--fit-half fits the host costs; do not also give --hosts', 'fit-half');
  const loadBefore = loadavg()[0];
  const samples: number[] = [];
  // 1. Live runs (or reused ones), each compared with the simulator without hosts.
  const runs: { e: SuiteEntry; s: Scenario; path: string; runner: Runner; out: string; liveDir: string; nohost: ValidationRow[]; load: { before: number; after: number } }[] = [];
  for (const e of entries) {
    const path = join(dir, e.file);
    const s = loadScenario(path);
    const out = join(opts.outDir, s.name);
    const reused = opts.reuse ? join(resolve(opts.reuse), s.name, 'live') : undefined;
    if (reused && !existsSync(join(reused, 'run.json'))) throw new InputError(`--reuse: ${reused} has no live run (run.json missing)`, 'reuse');
    log(`suite: ${s.name} (${e.file}, half ${e.half})${reused ? ` reusing ${reused}` : ' live'}...`);
    const v = await runValidation({ scenarioPath: path, outDir: out, maxErrorPct: 100, liveDir: reused, emulate: e.emulate, log: () => undefined });
    const liveDir = reused ?? join(out, 'live');
    samples.push(liveRunLoad(liveDir));
    runs.push({ e, s, path, runner: runnerOf(s), out, liveDir, nohost: v.rows, load: liveRunLoadRange(liveDir) });
  }
  // 2. The host per runner.
  const hostFor = new Map<string, { fit: HostFit | null; role: (h: Half) => string }>();
  const cores = cpus().length;
  for (const runner of ['topology', 'devcloud'] as Runner[]) {
    const mine = runs.filter((r) => r.runner === runner);
    if (mine.length === 0) continue;
    if (opts.fitHalf) {
      const fitDirs = mine.filter((r) => r.e.half === opts.fitHalf).map((r) => r.out);
      if (fitDirs.length === 0) throw new InputError(`--fit-half ${opts.fitHalf}: the suite has no ${runner}-runner scenario in half ${opts.fitHalf} to fit on`, 'fit-half');
      const fit = fitHost(runner, fitDirs, cores);
      writeFileAtomic(join(opts.outDir, `host-fit-${runner}-half-${opts.fitHalf}.json`), JSON.stringify(fit, null, 2) + '\n');
      hostFor.set(runner, { fit, role: (h) => (h === opts.fitHalf ? 'fit' : 'held-out') });
    } else if (opts.hosts === 'none') {
      hostFor.set(runner, { fit: null, role: () => 'none' });
    } else if (opts.hosts !== undefined) {
      hostFor.set(runner, { fit: readHostFit(opts.hosts), role: () => 'given' });
    } else {
      const p = defaultHostFit(mine[0].s, runner === 'topology');
      hostFor.set(runner, { fit: p ? readHostFit(p) : null, role: () => (p ? 'shipped' : 'none') });
    }
  }
  // 3. Simulate with the host; table rows, replay, statistics.
  const rows: SuiteRow[] = [];
  const hostsUsed: Record<string, HostFit['host'] | null> = {};
  const stats: ScenarioStat[] = [];
  const replay: (ReplayRow & { scenario: string })[] = [];
  for (const r of runs) {
    const h = hostFor.get(r.runner)!;
    const host = h.fit === null ? null : hostAtLoad(h.fit, liveRunLoad(r.liveDir));
    hostsUsed[r.s.name] = host;
    const liveSummary = readSummaryCsv(join(r.liveDir, 'summary.csv'));
    const withHost = host === null ? r.nohost : compareSummaries(liveSummary, simulateOnHost(r.path, [], host));
    const role = h.role(r.e.half);
    for (const x of withHost) {
      const n = r.nohost.find((y) => y.system === x.system && y.metric === x.metric)!;
      rows.push({ scenario: r.s.name, half: r.e.half, role, runner: r.runner, system: x.system, metric: x.metric, live: x.live, sim: x.sim, error_pct: x.error_pct, sim_nohost: n.sim, error_nohost_pct: n.error_pct });
    }
    stats.push({ scenario: r.s.name, half: r.e.half, role, runner: r.runner, medianAbsErrorPct: perMetricMedian(withHost), medianAbsErrorNohostPct: perMetricMedian(r.nohost), loadAvg1m: r.load });
    const simScenario = host === null ? r.s : loadScenario(r.path, [hostOverride({ host } as HostFit, hostGroups(r.s))]);
    for (const x of replayLive(buildTestbed(simScenario), readRequestsCsv(join(r.liveDir, 'requests.csv'))).result.rows) replay.push({ scenario: r.s.name, ...x });
  }
  const summary: SuiteResult['summary'] = {};
  const groups: Record<string, (st: ScenarioStat) => boolean> = { all: () => true };
  for (const role of new Set(stats.map((x) => x.role))) groups[role] = (st) => st.role === role;
  for (const [g, pick] of Object.entries(groups)) {
    const sts = stats.filter(pick);
    const names = new Set(sts.map((x) => x.scenario));
    summary[g] = {};
    for (const m of THRESHOLDED) {
      const rs = rows.filter((x) => names.has(x.scenario) && x.metric === m && !(Number.isNaN(x.live) && Number.isNaN(x.sim)));
      summary[g][m] = {
        scenarioMedian: median(sts.map((x) => x.medianAbsErrorPct[m])), scenarioMax: maxOf(sts.map((x) => x.medianAbsErrorPct[m])),
        rowMedian: median(rs.map((x) => Math.abs(x.error_pct))), rowMax: maxOf(rs.map((x) => Math.abs(x.error_pct))),
        nohostScenarioMedian: median(sts.map((x) => x.medianAbsErrorNohostPct[m])), nohostScenarioMax: maxOf(sts.map((x) => x.medianAbsErrorNohostPct[m])),
      };
    }
  }
  const result: SuiteResult = {
    rows, scenarios: stats, replay, summary,
    hosts: Object.fromEntries([...hostFor].map(([k, v]) => [k, v.fit?.host ?? null])),
    hostsUsed,
    loadAvg1m: { before: loadBefore, after: loadavg()[0], samples },
  };
  writeFileAtomic(join(opts.outDir, 'suite.csv'), toCsv(rows, ['scenario', 'half', 'role', 'runner', 'system', 'metric', 'live', 'sim', 'error_pct', 'sim_nohost', 'error_nohost_pct']));
  writeFileAtomic(join(opts.outDir, 'suite-replay.csv'), toCsv(replay, ['scenario', 'system', 'metric', 'requests', 'median_error_pct', 'abs_p50_pct', 'abs_p90_pct', 'abs_max_pct']));
  writeFileAtomic(join(opts.outDir, 'suite.json'), JSON.stringify({
    suite: dir, fitHalf: opts.fitHalf ?? null, hostsOption: opts.hosts ?? null, reuse: opts.reuse ? resolve(opts.reuse) : null,
    metrics: VALIDATION_METRICS, thresholded: THRESHOLDED,
    statistic: 'per scenario and metric (mean TTFT, mean TBT): median over systems of |sim - live| / live x 100; summary: median and max of that over the scenarios of a role (and over rows)',
    ...result,
  }, null, 2) + '\n');
  return result;
}

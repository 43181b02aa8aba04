/**
 * Sim-vs-live validation: run a scenario live on this machine (or reuse a
 * live results directory), simulate the same scenario and seed with the
 * calibration of this machine, and compare per system.
 *
 * Thresholded statistic (docs/LIVE.md): for each of mean TTFT and mean TBT,
 * the median over systems of |live - sim| / live; the run fails when either
 * median exceeds --max-error-pct. Other metrics are reported, not thresholded.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import { writeFileAtomic } from '../core/atomic.js';
import { toCsv } from '../results/csv.js';
import type { SummaryRecord } from '../results/types.js';
import { writeRunOutputs } from '../results/write.js';
import { loadScenario } from '../scenario/load.js';
import { runOutputs } from '../sim/outputs.js';
import { buildTestbed, deviceLink, runScenario } from '../sim/run.js';
import { SYSTEMS } from '../protocol/registry.js';

const runnerIsTopology = (s: { systems: readonly string[] }): boolean => s.systems.every((id) => SYSTEMS[id as keyof typeof SYSTEMS].pairs !== undefined);
import { cpSync } from 'node:fs';
import { loadavg } from 'node:os';
import { REPLAY_METRICS, replayLive, type LiveRequest, type ReplayResult } from './replay.js';
import { attributeLive, type AttributionSummary } from './attribution.js';
import { hostAtLoad, hostGroups, hostOverride, liveRunLoad, type HostFit } from '../calibrate/host-fit.js';
import { runCalibration } from '../calibrate/run.js';
import { runLiveLocal } from './local.js';

export const VALIDATION_METRICS = ['ttft_mean_ms', 'ttft_p50_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p99_ms', 'bytes_up_per_request', 'bytes_down_per_request'] as const;
export type ValidationMetric = (typeof VALIDATION_METRICS)[number];
export const THRESHOLDED: readonly ValidationMetric[] = ['ttft_mean_ms', 'tbt_mean_ms'];

export interface ValidationRow {
  system: string;
  metric: ValidationMetric;
  live: number;
  sim: number;
  /** (sim - live) / live x 100: positive = the simulator predicts more. */
  error_pct: number;
}

export interface Verdict {
  /** Per thresholded metric: median over systems of |error_pct|. */
  medianAbsErrorPct: Record<string, number>;
  maxErrorPct: number;
  pass: boolean;
}

export function compareSummaries(live: readonly SummaryRecord[], sim: readonly SummaryRecord[]): ValidationRow[] {
  const rows: ValidationRow[] = [];
  for (const l of live) {
    const s = sim.find((x) => x.system === l.system);
    if (!s) continue;
    for (const m of VALIDATION_METRICS) {
      const a = Number(l[m]), b = Number(s[m]);
      rows.push({ system: l.system, metric: m, live: a, sim: b, error_pct: a !== 0 && Number.isFinite(a) && Number.isFinite(b) ? ((b - a) / a) * 100 : a === b ? 0 : NaN });
    }
  }
  return rows;
}

function median(xs: number[]): number {
  const v = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = Math.floor(v.length / 2);
  return v.length % 2 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function verdict(rows: readonly ValidationRow[], maxErrorPct: number): Verdict {
  const med: Record<string, number> = {};
  let pass = true;
  for (const m of THRESHOLDED) {
    // A metric undefined in both runs (TBT of single-token tasks) does not apply to that system.
    const applicable = rows.filter((r) => r.metric === m && !(Number.isNaN(r.live) && Number.isNaN(r.sim)));
    const v = median(applicable.map((r) => Math.abs(r.error_pct)));
    med[m] = v;
    if (applicable.length > 0 && !(v <= maxErrorPct)) pass = false;
  }
  return { medianAbsErrorPct: med, maxErrorPct, pass };
}

/** A results CSV as records: the text columns as read, every other column a number ('' = NaN). */
function readNumericCsv<T>(path: string, textColumns: readonly string[]): T[] {
  return readCsvRecords(path).map((r) => {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) out[k] = textColumns.includes(k) ? v : v === '' ? NaN : Number(v);
    return out as T;
  });
}

export function readSummaryCsv(path: string): SummaryRecord[] {
  return readNumericCsv<SummaryRecord>(path, ['system', 'latency_source']);
}

export interface ValidateOptions {
  scenarioPath: string;
  overrides?: string[];
  /** Extra overrides for the simulator only (e.g. to show that a broken model is caught). */
  simOverrides?: string[];
  outDir: string;
  maxErrorPct: number;
  /** Reuse this live results directory instead of running live again. */
  liveDir?: string;
  emulate?: string;
  /**
   * Calibrate this machine first (quick grid) into <outDir>/calibration and
   * simulate with it, instead of the scenario's calibrationDir. Every hardware
   * id of the scenario gets this machine's profile (a live local run puts all
   * of them on this machine).
   */
  calibrate?: boolean;
  /** Simulate every node on this fitted host (calibrate --from-live), at the live run's load. */
  hostFit?: HostFit;
  log?: (line: string) => void;
}

export interface ValidationResult {
  rows: ValidationRow[];
  verdict: Verdict;
  liveSummary: SummaryRecord[];
  simSummary: SummaryRecord[];
  liveErrors: string[];
  warnings: string[];
  /** The simulator on the live run's exact arrivals, request by request (live/replay.ts). */
  replay: ReplayResult;
  /** 1-minute load average before and after (other work on this machine). */
  loadAvg1m: { before: number; after: number };
  /** Per system: mean compute / queueing / wire / host ms of a live request (live/attribution.ts); empty for the topology runner. */
  attribution: AttributionSummary[];
}

/** requests.csv of a run as numbers (system and device as text). */
export function readRequestsCsv(path: string): LiveRequest[] {
  return readNumericCsv<LiveRequest>(path, ['system', 'device']);
}

export async function runValidation(opts: ValidateOptions): Promise<ValidationResult> {
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const loadBefore = loadavg()[0];
  mkdirSync(opts.outDir, { recursive: true });
  const scenario = loadScenario(opts.scenarioPath, opts.overrides ?? []);
  const simOverrides = [...(opts.simOverrides ?? [])];
  if (opts.calibrate) {
    const root = join(opts.outDir, 'calibration');
    const hw = [...new Set(scenario.topology.nodes.flatMap((n) => (n.hardware === null ? [] : [n.hardware])))];
    const models = [...new Set([scenario.model, ...(scenario.systems.includes('sd') ? [scenario.policies.sd.drafterModel] : [])])];
    for (const m of models) {
      log(`validate: calibrating ${m} on this machine as ${hw[0]} (quick grid)...`);
      await runCalibration({ modelId: m, hardwareId: hw[0], quick: true, outDir: root, layerScaling: false, progress: false, log: () => undefined });
      for (const h of hw.slice(1)) cpSync(join(root, hw[0], m), join(root, h, m), { recursive: true });
    }
    simOverrides.unshift(`calibrationDir=${root}`);
  }
  const warnings: string[] = [];
  let liveSummary: SummaryRecord[];
  let liveErrors: string[] = [];
  if (opts.liveDir) {
    const p = join(opts.liveDir, 'summary.csv');
    if (!existsSync(join(opts.liveDir, 'run.json'))) throw new Error(`--live-dir ${opts.liveDir}: no complete live run (run.json missing)`);
    liveSummary = readSummaryCsv(p);
    const info = JSON.parse(readFileSync(join(opts.liveDir, 'run.json'), 'utf8')) as { errors?: string[]; seed?: number };
    liveErrors = info.errors ?? [];
    if (info.seed !== scenario.seed) warnings.push(`live run used seed ${info.seed}, the simulation ${scenario.seed}`);
  } else {
    log(`validate: running ${scenario.name} live (${scenario.systems.length} systems)...`);
    const live = await runLiveLocal({ scenarioPath: opts.scenarioPath, overrides: opts.overrides, outDir: join(opts.outDir, 'live'), emulate: opts.emulate, log });
    liveSummary = live.summary;
    liveErrors = live.errors;
  }
  const liveDir = opts.liveDir ? resolvePath(opts.liveDir) : join(opts.outDir, 'live');
  // The host model at this live run's load (a device-cloud fit scales its background load, calibrate/host-fit.ts hostAtLoad).
  let hostApplied: HostFit['host'] | null = null;
  if (opts.hostFit) {
    hostApplied = hostAtLoad(opts.hostFit, liveRunLoad(liveDir));
    simOverrides.push(hostOverride({ host: hostApplied } as HostFit, hostGroups(scenario)));
  }
  const simScenario = loadScenario(opts.scenarioPath, [...(opts.overrides ?? []), ...simOverrides]);
  // The simulator side: this machine's calibration (the scenario's hardware ids).
  const sim = runScenario(simScenario);
  for (const p of sim.provenance) {
    for (const [c, v] of Object.entries(p.components)) {
      if (v.source !== 'measured') warnings.push(`${p.hardwareId}/${p.modelId} ${c}: latency source is ${v.source}, not a calibration of this machine (run hatsim calibrate)`);
    }
  }
  writeRunOutputs(join(opts.outDir, 'sim'), runOutputs(sim));
  const simTb = buildTestbed(simScenario);
  const replay = replayLive(simTb, readRequestsCsv(join(liveDir, 'requests.csv'))).result;
  if (replay.acceptMismatches > 0) warnings.push(`replay: ${replay.acceptMismatches} requests drew different acceptances live and simulated (rounds, drafted or accepted tokens differ)`);
  // Replies' link model: each device's path from its server (the simulator's compiled network).
  const downLink = (d: number): { mbps: number; latencyMs: number } | undefined => {
    const dev = simTb.devices[d];
    if (!dev || runnerIsTopology(simScenario)) return undefined;
    const l = deviceLink(simTb, dev).link;
    return { mbps: l.downlinkMbps, latencyMs: l.downLatencyMs ?? l.latencyMs };
  };
  const att = attributeLive(liveDir, downLink);
  if (att) writeFileAtomic(join(opts.outDir, 'attribution.csv'), toCsv(att.rows, ['system', 'device', 'request', 'e2e_ms', 'compute_ms', 'queueing_ms', 'wire_ms', 'host_ms', 'sum_ms', 'outside_ms']));
  const attribution = att?.summary ?? [];
  const rows = compareSummaries(liveSummary, sim.systems.map((s) => s.summary));
  const v = verdict(rows, opts.maxErrorPct);
  if (liveSummary.some((s) => s.unfinished > 0)) { v.pass = false; warnings.push('live run has unfinished requests'); }
  const loadAvg1m = { before: loadBefore, after: loadavg()[0] };
  writeFileAtomic(join(opts.outDir, 'replay.csv'), toCsv(replay.rows, ['system', 'metric', 'requests', 'median_error_pct', 'abs_p50_pct', 'abs_p90_pct', 'abs_max_pct']));
  writeFileAtomic(join(opts.outDir, 'validation.csv'), toCsv(rows, ['system', 'metric', 'live', 'sim', 'error_pct']));
  writeFileAtomic(join(opts.outDir, 'validation.json'), JSON.stringify({
    scenario: scenario.name, scenarioPath: resolvePath(opts.scenarioPath), overrides: opts.overrides ?? [], seed: scenario.seed, simOverrides, calibratedHere: opts.calibrate ?? false, emulate: opts.emulate ?? null,
    liveDir, loadAvg1m, hostApplied,
    statistic: 'per metric in [ttft_mean_ms, tbt_mean_ms]: median over systems of |sim - live| / live x 100; fail if any > maxErrorPct or any live request unfinished',
    ...v, warnings, liveErrors,
    attribution: { parts: 'per live request, each ms of arrival..end in one part: compute > queueing > wire > host (live/attribution.ts); means per system', systems: attribution },
    replay: { metrics: REPLAY_METRICS, statistic: 'per system and metric: over requests, (sim - live) / live x 100 with every request arriving at its live time', ...replay },
  }, null, 2) + '\n');
  return { rows, verdict: v, liveSummary, simSummary: sim.systems.map((s) => s.summary), liveErrors, warnings, replay, loadAvg1m, attribution };
}

/**
 * Host costs from a live run (issue 14 point 3): `hatsim calibrate --from-live <dir>` reads a
 * `hatsim validate` output folder (its live/ and sim/ runs of the same scenario and seed,
 * the simulated side without hosts) and fits the host parameters of sim/host.ts:
 *
 *   dispatchMs = median over node visits of (live compute_ms - simulated compute_ms)
 *   messageMs  = median over requests of (live network_ms - simulated network_ms) / (2 x messages)
 *
 * where a request's messages are its node visits + 1 (into the first stage, between stages,
 * back to the device: the topology runner's staged and dtoee systems) and each message pays
 * messageMs at its sender and at its receiver. Medians, not means, so a few passes slowed by
 * another process do not set the cost [assumption]. The fit is written as a
 * hatsim-host-fit/1 JSON that `hatsim validate --hosts FILE` applies to the simulated side.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { readCsvRecords } from '../core/csv.js';
import { quantileSorted } from 'simple-statistics';
import { InputError } from '../core/errors.js';
import type { Scenario } from '../scenario/types.js';

export interface HostFit {
  format: 'hatsim-host-fit/1';
  /** shareBatching: the cloud's steps run on the host too (the device-cloud runner's CPU server). */
  host: { name: string; cores: number; dispatchMs: number; messageMs: number; shareBatching?: boolean; backgroundLoad?: number };
  samples: { visits: number; requests: number };
  dispatch: { p10Ms: number; medianMs: number; p90Ms: number };
  message: { p10Ms: number; medianMs: number; p90Ms: number };
  source: string;
  loadAvg1mAtFit: number;
  /** Device-cloud fits: the 1-minute load average of each live run fitted on (run.json, mean of before and after). */
  liveLoadAvg1m?: number[];
  notes: string;
}

type Row = Record<string, string>;

function readCsv(path: string, what: string): Row[] {
  return readCsvRecords(path, { prefix: '--from-live: ', expected: `a hatsim validate output folder with ${what}`, field: 'from-live' });
}

function num(r: Row, col: string, file: string): number {
  const v = Number(r[col]);
  if (r[col] === undefined || !Number.isFinite(v)) throw new InputError(`--from-live: ${file}: column ${col} must be a number (got ${JSON.stringify(r[col])})`, 'from-live');
  return v;
}

function spread(xs: number[]): { p10Ms: number; medianMs: number; p90Ms: number } {
  const s = [...xs].sort((a, b) => a - b);
  return { p10Ms: quantileSorted(s, 0.1), medianMs: quantileSorted(s, 0.5), p90Ms: quantileSorted(s, 0.9) };
}

export function fitHostFromLive(dir: string, opts: { name?: string; cores: number }): HostFit {
  // The live run: <dir>/live, or the folder validate was given with --live-dir (validation.json liveDir).
  let liveDir = join(dir, 'live');
  const vj = join(dir, 'validation.json');
  if (!existsSync(liveDir) && existsSync(vj)) {
    const v = JSON.parse(readFileSync(vj, 'utf8')) as { liveDir?: unknown };
    if (typeof v.liveDir === 'string') liveDir = v.liveDir;
  }
  const liveHopsPath = join(liveDir, 'hops.csv'), simHopsPath = join(dir, 'sim', 'hops.csv');
  const liveReqPath = join(liveDir, 'requests.csv'), simReqPath = join(dir, 'sim', 'requests.csv');
  const liveHops = readCsv(liveHopsPath, 'live/hops.csv (a topology-runner system: staged, dtoee)');
  const simHops = readCsv(simHopsPath, 'sim/hops.csv');
  const liveReq = readCsv(liveReqPath, 'live/requests.csv');
  const simReq = readCsv(simReqPath, 'sim/requests.csv');
  const runJson = join(dir, 'sim', 'run.json');
  if (existsSync(runJson)) {
    const j = JSON.parse(readFileSync(runJson, 'utf8')) as { scenario?: { topology?: { hosts?: unknown[] } } };
    if ((j.scenario?.topology?.hosts?.length ?? 0) > 0) {
      throw new InputError(`--from-live: ${dir}/sim was simulated with hosts already; fit from a validation run without --hosts (the fit measures what the simulator without hosts misses)`, 'from-live');
    }
  }
  const key = (r: Row): string => `${r.system}|${r.device}|${r.request}`;
  const simVisit = new Map<string, number>();
  const visitsOf = new Map<string, number>();
  for (const r of simHops) {
    simVisit.set(`${key(r)}|${r.seq}`, num(r, 'compute_ms', simHopsPath));
    visitsOf.set(key(r), (visitsOf.get(key(r)) ?? 0) + 1);
  }
  const dispatch: number[] = [];
  for (const r of liveHops) {
    const sim = simVisit.get(`${key(r)}|${r.seq}`);
    if (sim !== undefined) dispatch.push(num(r, 'compute_ms', liveHopsPath) - sim);
  }
  const simNet = new Map(simReq.map((r) => [key(r), num(r, 'network_ms', simReqPath)]));
  const message: number[] = [];
  for (const r of liveReq) {
    const sim = simNet.get(key(r));
    const visits = visitsOf.get(key(r));
    if (sim === undefined || visits === undefined) continue;
    message.push((num(r, 'network_ms', liveReqPath) - sim) / (2 * (visits + 1)));
  }
  if (dispatch.length < 5 || message.length < 5) {
    throw new InputError(`--from-live: ${dir}: ${dispatch.length} node visits and ${message.length} requests match between live/ and sim/; need at least 5 of each (a topology-runner scenario: staged or dtoee, same seed)`, 'from-live');
  }
  const d = spread(dispatch), m = spread(message);
  return {
    format: 'hatsim-host-fit/1',
    host: { name: opts.name ?? 'local', cores: opts.cores, dispatchMs: Math.max(0, d.medianMs), messageMs: Math.max(0, m.medianMs) },
    samples: { visits: dispatch.length, requests: message.length },
    dispatch: d, message: m, source: dir, loadAvg1mAtFit: loadavg()[0],
    notes: 'dispatchMs: median of live - simulated compute per node visit; messageMs: median of (live - simulated network time) / (2 x messages) per request; negative medians clamp to 0 [assumption: every node of the run sits on this one host]',
  };
}

/** Read a hatsim-host-fit/1 file (InputError naming the file and field). */
export function readHostFit(path: string): HostFit {
  if (!existsSync(path)) throw new InputError(`--hosts: ${path} not found (write one with hatsim calibrate --from-live <validate dir>)`, 'hosts');
  let j: unknown;
  try { j = JSON.parse(readFileSync(path, 'utf8')); } catch (e) { throw new InputError(`--hosts: ${path} is not JSON (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, 'hosts'); }
  const o = j as Partial<HostFit> | null;
  if (!o || o.format !== 'hatsim-host-fit/1') throw new InputError(`--hosts: ${path}: format must be "hatsim-host-fit/1"`, 'hosts');
  const h = o.host;
  const ok = (x: unknown, lo: number): x is number => typeof x === 'number' && Number.isFinite(x) && x >= lo;
  if (!h || typeof h.name !== 'string' || !ok(h.cores, 1) || !Number.isInteger(h.cores) || !ok(h.dispatchMs, 0) || !ok(h.messageMs, 0)) {
    throw new InputError(`--hosts: ${path}: host must be { name, cores (integer >= 1), dispatchMs >= 0, messageMs >= 0 }`, 'hosts');
  }
  return o as HostFit;
}

/** The `--set` override placing every node group of the scenario on the fitted host. */
export function hostOverride(fit: HostFit, groups: readonly string[]): string {
  const h = fit.host;
  return `hosts=[{name: ${JSON.stringify(h.name)}, cores: ${h.cores}, dispatchMs: ${h.dispatchMs}, messageMs: ${h.messageMs}, shareBatching: ${h.shareBatching === true}, backgroundLoad: ${h.backgroundLoad ?? 0}, nodes: [${groups.map((g) => JSON.stringify(g)).join(', ')}]}]`;
}

/**
 * The shipped host fit a validation uses by default, when every computing node has one
 * hardware id (a live run on one machine) and the scenario declares no hosts of its own:
 * <calibrationDir>/<hw>/host-fit.json when every system runs on the topology runner
 * (`topologyRunner`: that runner's node processes, fitted on its staged/dtoee runs), else
 * <calibrationDir>/<hw>/host-fit-devcloud.json (the device-cloud runner of the HAT family:
 * device processes and a CPU cloud server, which pay different costs); null when absent.
 */
export function defaultHostFit(s: Scenario, topologyRunner: boolean): string | null {
  if ((s.topology.hosts?.length ?? 0) > 0) return null;
  const hw = [...new Set(s.topology.nodes.flatMap((n) => (n.hardware === null ? [] : [n.hardware])))];
  if (hw.length !== 1) return null;
  const p = join(s.calibrationDir, hw[0], topologyRunner ? HOST_FIT_FILE.topology : HOST_FIT_FILE.devcloud);
  return existsSync(p) ? p : null;
}

/** Node groups a host spans (every node but switches). */
export function hostGroups(s: Scenario): string[] {
  return [...new Set(s.topology.nodes.filter((n) => !n.name.startsWith('sw:')).map((n) => n.group))];
}

/** The 1-minute load average of a live run (run.json: mean of before and after), or NaN. */
export function liveRunLoad(liveDir: string): number {
  const p = join(liveDir, 'run.json');
  if (!existsSync(p)) return NaN;
  const h = (JSON.parse(readFileSync(p, 'utf8')) as { host?: { loadAvgBefore?: number[]; loadAvgAfter?: number[] } }).host;
  const a = h?.loadAvgBefore?.[0], b = h?.loadAvgAfter?.[0];
  return typeof a === 'number' && typeof b === 'number' ? (a + b) / 2 : NaN;
}

/**
 * The fitted host at another load (a device-cloud fit, which records the load of the runs it
 * was fitted on): background load in proportion to the 1-minute load average [assumption:
 * other programs' runnable jobs scale with the load average], and the message cost in
 * proportion to 1 + background load (a process handling a message waits behind the other
 * runnable jobs) [assumption]. A fit without that record, or an unknown load, is used as
 * written.
 */
export function hostAtLoad(fit: HostFit, loadAvg1m: number): HostFit['host'] {
  const fitLoads = (fit.liveLoadAvg1m ?? []).filter((x): x is number => typeof x === 'number' && Number.isFinite(x));
  const bg = fit.host.backgroundLoad ?? 0;
  if (fitLoads.length === 0 || !Number.isFinite(loadAvg1m)) return fit.host;
  const fitLoad = fitLoads.reduce((a, b) => a + b, 0) / fitLoads.length;
  const bgNow = fitLoad > 0 ? bg * (loadAvg1m / fitLoad) : 0;
  const messageMs = fit.host.messageMs * ((1 + bgNow) / (1 + bg));
  return { ...fit.host, backgroundLoad: Number(bgNow.toFixed(3)), messageMs };
}

/** File names of the shipped host fits beside a hardware's compute calibration. */
export const HOST_FIT_FILE = { topology: 'host-fit.json', devcloud: 'host-fit-devcloud.json' } as const;

/** What a device-cloud fit reads of a validate folder (validation.json). */
interface ValidationInfo { scenarioPath: string; overrides: string[]; liveDir: string }

function validationInfo(dir: string): ValidationInfo {
  const vj = join(dir, 'validation.json');
  if (!existsSync(vj)) throw new InputError(`--from-live: ${vj} not found: give a hatsim validate output folder`, 'from-live');
  const v = JSON.parse(readFileSync(vj, 'utf8')) as Partial<ValidationInfo> & { simOverrides?: string[] };
  if (typeof v.scenarioPath !== 'string' || typeof v.liveDir !== 'string') throw new InputError(`--from-live: ${vj} has no scenarioPath / liveDir (made by an older hatsim validate: run it again)`, 'from-live');
  if ((v.simOverrides ?? []).some((o) => o.startsWith('hosts='))) {
    throw new InputError(`--from-live: ${dir} was simulated with hosts already; fit from a validation run with --hosts none (the fit measures what the simulator without hosts misses)`, 'from-live');
  }
  return { scenarioPath: v.scenarioPath, overrides: v.overrides ?? [], liveDir: v.liveDir };
}

/**
 * The device-cloud runner's host (device processes and the CPU cloud server on this one
 * machine, all sharing its cores), from one or more `hatsim validate --hosts none` folders:
 *
 *   dispatchMs = median over every compute pass and cloud step of (live wall ms - the
 *                simulator's prediction, steps.csv sim_ms)
 *   messageMs  = the per-message cost (0 to 8 ms, 0.025 ms grid) minimising the median over
 *                (scenario, system, mean TTFT and mean TBT) of |sim - live| / live when the
 *                scenarios are simulated with this host (cores, dispatchMs, shareBatching)
 *
 * The message cost is not observed directly (the cloud's receive and send times are not
 * logged), so it is fitted through the simulator [assumption: one cost per message and
 * endpoint, as for the topology runner]. `simulate(scenarioPath, overrides, host)` returns
 * the summary rows of the scenario simulated with every node on `host` (injected: calibrate
 * does not import the simulator's runner; live/suite.ts simulateOnHost).
 */
export function fitDevCloudHost(
  dirs: readonly string[], opts: { name?: string; cores: number },
  simulate: (scenarioPath: string, overrides: string[], host: HostFit['host']) => { system: string; ttft_mean_ms: number; tbt_mean_ms: number }[],
): HostFit {
  if (dirs.length === 0) throw new InputError('--from-live: give at least one validate folder', 'from-live');
  const ops: { wallMs: number; simMs: number }[] = [];
  const runs: { info: ValidationInfo; live: Map<string, { ttft: number; tbt: number }>; load: number }[] = [];
  for (const dir of dirs) {
    const info = validationInfo(dir);
    const stepsPath = join(info.liveDir, 'steps.csv');
    const steps = readCsv(stepsPath, 'live/steps.csv (a device-cloud run)');
    if (steps.length > 0 && steps[0].sim_ms === undefined) throw new InputError(`--from-live: ${stepsPath} has no sim_ms column (a live run of an older hatsim: run validate again)`, 'from-live');
    for (const r of steps) {
      if (r.kind !== 'compute' && r.kind !== 'compute-bg' && r.kind !== 'step') continue;
      const simMs = num(r, 'sim_ms', stepsPath);
      if (simMs > 0) ops.push({ wallMs: num(r, 'end_ms', stepsPath) - num(r, 'start_ms', stepsPath), simMs });
    }
    const sumPath = join(info.liveDir, 'summary.csv');
    const live = new Map(readCsv(sumPath, 'live/summary.csv').map((r) => [r.system, { ttft: num(r, 'ttft_mean_ms', sumPath), tbt: Number(r.tbt_mean_ms) }]));
    runs.push({ info, live, load: liveRunLoad(info.liveDir) });
  }
  if (ops.length < 20) throw new InputError(`--from-live: ${ops.length} compute passes and cloud steps with a prediction in ${dirs.join(', ')}; need at least 20`, 'from-live');
  // Per op: wall = (sim + dispatch) x stretch, stretch = max(1, (1 + background) / cores) (one
  // own job running, the usual case of these runs). For each background load on a grid, the
  // dispatch is the median of wall / stretch - sim; keep the pair with the smallest median
  // relative residual.
  let pick = { backgroundLoad: 0, dispatchMs: 0, residual: Infinity, excess: [] as number[] };
  for (let bg = 0; bg <= 16 + 1e-9; bg += 0.25) {
    const stretch = Math.max(1, (1 + bg) / opts.cores);
    const excess = ops.map((o) => o.wallMs / stretch - o.simMs);
    const dispatch = Math.max(0, spread(excess).medianMs);
    const rel = ops.map((o) => Math.abs((o.simMs + dispatch) * stretch - o.wallMs) / o.wallMs).sort((a, b) => a - b);
    const residual = quantileSorted(rel, 0.5);
    if (residual < pick.residual - 1e-9) pick = { backgroundLoad: Number(bg.toFixed(2)), dispatchMs: dispatch, residual, excess };
  }
  const d = spread(pick.excess);
  const { dispatchMs, backgroundLoad } = pick;
  const liveLoadAvg1m = runs.map((r) => r.load);
  const objective = (messageMs: number): { median: number; errs: number[] } => {
    const fit = { host: { name: opts.name ?? 'local', cores: opts.cores, dispatchMs, messageMs, shareBatching: true, backgroundLoad }, liveLoadAvg1m } as HostFit;
    const errs: number[] = [];
    for (const { info, live, load } of runs) {
      const sim = simulate(info.scenarioPath, info.overrides, hostAtLoad(fit, load));
      for (const s of sim) {
        const l = live.get(s.system);
        if (!l) continue;
        errs.push(Math.abs((s.ttft_mean_ms - l.ttft) / l.ttft) * 100);
        if (l.tbt > 0 && Number.isFinite(l.tbt)) errs.push(Math.abs((s.tbt_mean_ms - l.tbt) / l.tbt) * 100);
      }
    }
    const sorted = [...errs].sort((a, b) => a - b);
    return { median: sorted.length ? quantileSorted(sorted, 0.5) : NaN, errs };
  };
  let best = { messageMs: 0, median: Infinity };
  for (let m = 0; m <= 8 + 1e-9; m += 0.025) {
    const o = objective(Number(m.toFixed(3)));
    if (o.median < best.median) best = { messageMs: Number(m.toFixed(3)), median: o.median };
  }
  return {
    format: 'hatsim-host-fit/1',
    host: { name: opts.name ?? 'local', cores: opts.cores, dispatchMs, messageMs: best.messageMs, shareBatching: true, backgroundLoad },
    samples: { visits: ops.length, requests: runs.length },
    dispatch: d, message: { p10Ms: best.messageMs, medianMs: best.messageMs, p90Ms: best.messageMs },
    source: dirs.join(','), loadAvg1mAtFit: loadavg()[0],
    liveLoadAvg1m,
    notes: `device-cloud runner: backgroundLoad and dispatchMs fitted per op, wall = (predicted + dispatch) x max(1, (1 + backgroundLoad) / cores), over ${ops.length} compute passes and cloud steps (steps.csv sim_ms; median relative residual ${(pick.residual * 100).toFixed(1)} %); messageMs fitted through the simulator on ${runs.length} scenario(s) (median |error| of mean TTFT and TBT ${best.median.toFixed(2)} % at the fit); shareBatching: the cloud's steps share the host's cores [assumption: every process of the run on this one host]`,
  };
}


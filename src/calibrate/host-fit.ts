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
import { parse } from 'csv-parse/sync';
import { quantileSorted } from 'simple-statistics';
import { InputError } from '../core/errors.js';
import type { Scenario } from '../scenario/types.js';

export interface HostFit {
  format: 'hatsim-host-fit/1';
  host: { name: string; cores: number; dispatchMs: number; messageMs: number };
  samples: { visits: number; requests: number };
  dispatch: { p10Ms: number; medianMs: number; p90Ms: number };
  message: { p10Ms: number; medianMs: number; p90Ms: number };
  source: string;
  loadAvg1mAtFit: number;
  notes: string;
}

type Row = Record<string, string>;

function readCsv(path: string, what: string): Row[] {
  if (!existsSync(path)) throw new InputError(`--from-live: ${path} not found: expected a hatsim validate output folder with ${what}`, 'from-live');
  try {
    return parse(readFileSync(path, 'utf8'), { columns: true, skip_empty_lines: true }) as Row[];
  } catch (e) {
    throw new InputError(`--from-live: ${path} is not a CSV (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, 'from-live');
  }
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
  return `hosts=[{name: ${JSON.stringify(h.name)}, cores: ${h.cores}, dispatchMs: ${h.dispatchMs}, messageMs: ${h.messageMs}, nodes: [${groups.map((g) => JSON.stringify(g)).join(', ')}]}]`;
}

/**
 * The shipped host fit a validation uses by default: <calibrationDir>/<hw>/host-fit.json when
 * every computing node has that one hardware id (a live run on one machine), the scenario
 * declares no hosts of its own, and every system runs on the topology runner (`topologyRunner`:
 * the fit's costs are those of that runner's node processes, measured on its staged/dtoee runs;
 * the device-cloud runner of the HAT family pays different ones); else null.
 */
export function defaultHostFit(s: Scenario, topologyRunner: boolean): string | null {
  if (!topologyRunner || (s.topology.hosts?.length ?? 0) > 0) return null;
  const hw = [...new Set(s.topology.nodes.flatMap((n) => (n.hardware === null ? [] : [n.hardware])))];
  if (hw.length !== 1) return null;
  const p = join(s.calibrationDir, hw[0], 'host-fit.json');
  return existsSync(p) ? p : null;
}

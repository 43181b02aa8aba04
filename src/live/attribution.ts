/**
 * Per-request attribution of a device-cloud live run (issue 14 point 1): every millisecond
 * of a request, from its arrival to its last token, goes to exactly one of
 *
 *   compute  a device pass of the request (steps.csv compute / compute-bg) or its cloud job
 *            computing (job-compute: from its first step to its reply being handed on),
 *   queueing its cloud job waiting for a step (job-queue), or the device busy with the
 *            previous request (device_queue_ms),
 *   wire     one of its frames in flight: a device frame from being handed to the shaper to
 *            being written (the shaper holds it for the modelled transmission and latency),
 *            a reply from being handed on at the cloud to being read at the device,
 *   host     none of these: event loop, timers, message handling, process scheduling.
 *
 * Overlaps resolve in that order (a pass running while a chunk is on the wire is compute).
 * The parts sum to the request's measured e2e by construction; the check is that the
 * intervals the logs give lie inside the request's window (`outsideMs`: time logged for the
 * request before its arrival or after its end, from clock offsets between processes or a
 * wrong log; near 0 on one machine).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvRecords } from '../core/csv.js';

export const PARTS = ['compute', 'queueing', 'wire', 'host'] as const;
export type Part = (typeof PARTS)[number];

export interface AttributionRow {
  system: string;
  device: string;
  request: number;
  e2e_ms: number;
  compute_ms: number;
  queueing_ms: number;
  wire_ms: number;
  host_ms: number;
  /** compute + queueing + wire + host (= e2e_ms up to rounding). */
  sum_ms: number;
  /** Logged time of the request outside [arrival, arrival + e2e]: the consistency check. */
  outside_ms: number;
}

export interface AttributionSummary {
  system: string;
  requests: number;
  /** Means over requests (ms). */
  e2e_ms: number;
  compute_ms: number;
  queueing_ms: number;
  wire_ms: number;
  host_ms: number;
  /** Largest |sum - e2e| and largest outside_ms over requests. */
  max_sum_error_ms: number;
  max_outside_ms: number;
  /**
   * Replies: measured wire time (handed on at the cloud to read at the device) minus the link
   * model's (frame serialisation + latency), median and p90 over replies (ms): the per-message
   * host cost observed directly (NaN without a link model).
   */
  reply_excess_p50_ms: number;
  reply_excess_p90_ms: number;
}

/** A device's downlink as the simulator models it (for the reply excess). */
export type DownLink = (device: number) => { mbps: number; latencyMs: number } | undefined;

type Row = Record<string, string>;
interface Interval { a: number; b: number; prio: number }

const PRIO: Record<Part, number> = { compute: 0, queueing: 1, wire: 2, host: 3 };

/** Length of [lo, hi] covered by each priority (the lowest priority number wins an overlap). */
export function sweep(intervals: readonly Interval[], lo: number, hi: number): { byPrio: number[]; outside: number } {
  const byPrio = [0, 0, 0, 0];
  let outside = 0;
  const pts = new Set<number>([lo, hi]);
  for (const iv of intervals) {
    if (!(iv.b > iv.a)) continue;
    outside += Math.max(0, Math.min(iv.b, lo) - iv.a) + Math.max(0, iv.b - Math.max(iv.a, hi));
    if (iv.a > lo && iv.a < hi) pts.add(iv.a);
    if (iv.b > lo && iv.b < hi) pts.add(iv.b);
  }
  const xs = [...pts].sort((x, y) => x - y);
  for (let i = 0; i + 1 < xs.length; i++) {
    const a = xs[i], b = xs[i + 1], mid = (a + b) / 2;
    let p = PRIO.host;
    for (const iv of intervals) if (iv.a <= mid && mid < iv.b && iv.prio < p) p = iv.prio;
    byPrio[p] += b - a;
  }
  return { byPrio, outside };
}

/** Attribution of every finished request of a device-cloud live run folder (requests.csv + steps.csv). */
export function attributeLive(liveDir: string, downLink?: DownLink): { rows: AttributionRow[]; summary: AttributionSummary[] } | null {
  const reqPath = join(liveDir, 'requests.csv'), stepsPath = join(liveDir, 'steps.csv');
  if (!existsSync(reqPath) || !existsSync(stepsPath)) return null;
  const reqs = readCsvRecords(reqPath) as Row[];
  const steps = readCsvRecords(stepsPath) as Row[];
  // Intervals per (system, device index, request).
  const ivs = new Map<string, Interval[]>();
  const replies = new Map<string, number[]>();
  const jobEnds = new Map<string, number[]>();
  const frameBytes = new Map<string, number>();
  const excessBySystem = new Map<string, number[]>();
  const add = (k: string, a: number, b: number, part: Part): void => { let l = ivs.get(k); if (!l) ivs.set(k, l = []); l.push({ a, b, prio: PRIO[part] }); };
  for (const r of steps) {
    const a = Number(r.start_ms), b = Number(r.end_ms);
    let dev: string | null = null;
    if (r.role.startsWith('device-')) dev = r.role.slice('device-'.length);
    else if (r.kind === 'job-queue' || r.kind === 'job-compute') dev = /^device (\d+)/.exec(r.label)?.[1] ?? null;
    if (dev === null) continue;
    const k = `${r.system}|${dev}|${r.request}`;
    if (r.kind === 'compute' || r.kind === 'compute-bg' || r.kind === 'job-compute') add(k, a, b, 'compute');
    else if (r.kind === 'job-queue') add(k, a, b, 'queueing');
    else if (r.kind === 'send' && r.label === 'request') add(k, a, b, 'wire');
    else if (r.kind === 'recv' && r.label === 'reply') { let l = replies.get(k); if (!l) replies.set(k, l = []); l.push(b); frameBytes.set(`${k}|${b}`, Number(r.frame_bytes)); }
    if (r.kind === 'job-compute') { let l = jobEnds.get(k); if (!l) jobEnds.set(k, l = []); l.push(b); }
  }
  // A reply is on the wire from its job's end (handed on at the cloud) to its arrival.
  for (const [k, ends] of jobEnds) {
    const got = (replies.get(k) ?? []).sort((x, y) => x - y);
    const [system, dev] = k.split('|');
    const link = downLink?.(Number(dev));
    for (const e of ends) {
      const i = got.findIndex((t) => t >= e - 0.5);
      if (i < 0) continue;
      const at = got[i];
      got.splice(i, 1);
      add(k, e, at, 'wire');
      if (link) {
        let l = excessBySystem.get(system);
        if (!l) excessBySystem.set(system, l = []);
        l.push(at - e - ((frameBytes.get(`${k}|${at}`) ?? 0) * 8) / (link.mbps * 1e3) - link.latencyMs);
      }
    }
  }
  const rows: AttributionRow[] = [];
  for (const q of reqs) {
    const e2e = Number(q.e2e_ms);
    if (!Number.isFinite(e2e)) continue;
    const dev = /(\d+)$/.exec(q.device)?.[1];
    const k = `${q.system}|${dev}|${q.request}`;
    const lo = Number(q.arrival_s) * 1000, hi = lo + e2e;
    const list = [...(ivs.get(k) ?? [])];
    const dq = Number(q.device_queue_ms);
    if (dq > 0) list.push({ a: lo, b: lo + dq, prio: PRIO.queueing });
    const { byPrio, outside } = sweep(list, lo, hi);
    const [compute, queueing, wire, host] = byPrio;
    rows.push({ system: q.system, device: q.device, request: Number(q.request), e2e_ms: e2e, compute_ms: compute, queueing_ms: queueing, wire_ms: wire, host_ms: host, sum_ms: compute + queueing + wire + host, outside_ms: outside });
  }
  const summary: AttributionSummary[] = [];
  for (const system of [...new Set(rows.map((r) => r.system))]) {
    const rs = rows.filter((r) => r.system === system);
    const mean = (f: (r: AttributionRow) => number): number => rs.reduce((a, r) => a + f(r), 0) / rs.length;
    summary.push({
      system, requests: rs.length, e2e_ms: mean((r) => r.e2e_ms), compute_ms: mean((r) => r.compute_ms), queueing_ms: mean((r) => r.queueing_ms),
      wire_ms: mean((r) => r.wire_ms), host_ms: mean((r) => r.host_ms),
      max_sum_error_ms: Math.max(...rs.map((r) => Math.abs(r.sum_ms - r.e2e_ms))), max_outside_ms: Math.max(...rs.map((r) => r.outside_ms)),
      ...excessQuantiles(excessBySystem.get(system) ?? []),
    });
  }
  return { rows, summary };
}

function excessQuantiles(xs: number[]): { reply_excess_p50_ms: number; reply_excess_p90_ms: number } {
  if (xs.length === 0) return { reply_excess_p50_ms: NaN, reply_excess_p90_ms: NaN };
  const v = [...xs].sort((a, b) => a - b);
  return { reply_excess_p50_ms: v[Math.floor((v.length - 1) * 0.5)], reply_excess_p90_ms: v[Math.floor((v.length - 1) * 0.9)] };
}

/**
 * Replay (issue 14 point 4): simulate a live run's exact arrivals and compare request by
 * request.
 *
 * A live run issues the simulator's workload (same prompt and output lengths per request),
 * but its arrival times are its own where they depend on completions (closed loop: think
 * time after the previous request finished live). Replay simulates each system with the
 * live run's arrival time of every request as a fixed (open) arrival, so a request's error
 * is the simulator's error on that request alone, not the drift of the loop. Acceptance
 * draws are the seeded streams of both runs (`accept/<device>`, the request's own stream on
 * the topology runner); replay checks they agree: rounds, drafted and accepted tokens per
 * request (`acceptMismatches`).
 *
 * Per system and metric (ttft_ms, tbt_mean_ms, e2e_ms): the distribution over requests of
 * |sim - live| / live x 100 (median, p90, max) and the signed median.
 */
import { quantileSorted } from 'simple-statistics';
import type { RequestRecord } from '../results/types.js';
import type { SystemId } from '../scenario/types.js';
import { simulateSystem, type SystemRun, type Testbed } from '../sim/run.js';

export const REPLAY_METRICS = ['ttft_ms', 'tbt_mean_ms', 'e2e_ms'] as const;
export type ReplayMetric = (typeof REPLAY_METRICS)[number];

/** One live request as read back from requests.csv (the columns replay uses). */
export type LiveRequest = Pick<RequestRecord, 'system' | 'device' | 'request' | 'arrival_s' | 'ttft_ms' | 'tbt_mean_ms' | 'e2e_ms' | 'rounds' | 'drafted_tokens' | 'accepted_tokens' | 'output_tokens'>;

export interface ReplayRow {
  system: string;
  metric: ReplayMetric;
  /** Requests compared (both finished; TBT: more than one output token). */
  requests: number;
  /** Signed median of (sim - live) / live x 100. */
  median_error_pct: number;
  abs_p50_pct: number;
  abs_p90_pct: number;
  abs_max_pct: number;
}

export interface ReplayResult {
  rows: ReplayRow[];
  /** Requests whose rounds, drafted or accepted tokens differ between live and replay (0: the same draws). */
  acceptMismatches: number;
  /** Live requests with no simulated counterpart (unfinished in one of the runs). */
  unmatched: number;
  /** Largest |live - simulated| arrival time over requests (s): 0 when the arrivals were replayed exactly. */
  maxArrivalDiffS: number;
}

/**
 * The testbed with every request of `system` arriving when it arrived live (open arrivals:
 * the closed loop's think time is already in the live times).
 */
export function replayTestbed(tb: Testbed, system: string, live: readonly LiveRequest[]): Testbed {
  const byKey = new Map<string, number>();
  for (const r of live) if (r.system === system) byKey.set(`${r.device}|${r.request}`, r.arrival_s);
  const workload = tb.workload.map((reqs, d) => reqs.map((w) => {
    const a = byKey.get(`${tb.devices[d].name}|${w.index}`);
    return a === undefined || !Number.isFinite(a) ? w : { ...w, arrivalS: a };
  }));
  const s = tb.scenario;
  // Any open arrival kind: simulateSystem only asks whether the loop is closed.
  const scenario = s.workload.arrival.kind === 'closed-loop' ? { ...s, workload: { ...s.workload, arrival: { kind: 'poisson' as const, ratePerS: 1 } } } : s;
  return { ...tb, scenario, workload };
}

function stats(errs: number[]): Omit<ReplayRow, 'system' | 'metric' | 'requests'> {
  if (errs.length === 0) return { median_error_pct: NaN, abs_p50_pct: NaN, abs_p90_pct: NaN, abs_max_pct: NaN };
  const signed = [...errs].sort((a, b) => a - b);
  const abs = errs.map(Math.abs).sort((a, b) => a - b);
  return { median_error_pct: quantileSorted(signed, 0.5), abs_p50_pct: quantileSorted(abs, 0.5), abs_p90_pct: quantileSorted(abs, 0.9), abs_max_pct: abs[abs.length - 1] };
}

/** Compare live requests with simulated ones, request by request. */
export function compareRequests(live: readonly LiveRequest[], sim: readonly RequestRecord[]): ReplayResult {
  const simBy = new Map(sim.map((r) => [`${r.system}|${r.device}|${r.request}`, r]));
  const rows: ReplayRow[] = [];
  let acceptMismatches = 0, unmatched = 0, maxArrivalDiffS = 0;
  const systems = [...new Set(live.map((r) => r.system))];
  const pairs: [LiveRequest, RequestRecord][] = [];
  for (const l of live) {
    const s = simBy.get(`${l.system}|${l.device}|${l.request}`);
    if (!s || !Number.isFinite(l.e2e_ms) || !Number.isFinite(s.e2e_ms)) { unmatched++; continue; }
    pairs.push([l, s]);
    if (l.rounds !== s.rounds || l.drafted_tokens !== s.drafted_tokens || l.accepted_tokens !== s.accepted_tokens) acceptMismatches++;
    maxArrivalDiffS = Math.max(maxArrivalDiffS, Math.abs(l.arrival_s - s.arrival_s));
  }
  for (const system of systems) {
    for (const metric of REPLAY_METRICS) {
      const errs: number[] = [];
      for (const [l, s] of pairs) {
        if (l.system !== system) continue;
        if (metric === 'tbt_mean_ms' && l.output_tokens <= 1) continue;
        const a = l[metric], b = s[metric];
        if (a > 0 && Number.isFinite(a) && Number.isFinite(b)) errs.push(((b - a) / a) * 100);
      }
      if (errs.length > 0) rows.push({ system, metric, requests: errs.length, ...stats(errs) });
    }
  }
  return { rows, acceptMismatches, unmatched, maxArrivalDiffS };
}

/** Simulate every system of the testbed on the live arrivals of `live` and compare. */
export function replayLive(tb: Testbed, live: readonly LiveRequest[]): { result: ReplayResult; runs: SystemRun[] } {
  const systems = [...new Set(live.map((r) => r.system))].filter((x) => tb.scenario.systems.includes(x as SystemId)) as SystemId[];
  const runs = systems.map((sys) => simulateSystem(replayTestbed(tb, sys, live), sys));
  return { result: compareRequests(live, runs.flatMap((r) => r.requests)), runs };
}

/** Per-system summary rows computed from request records. */
import type { SystemId } from '../scenario/types.js';
import { mean, quantileSorted, sortedCopy } from './stats.js';
import type { RequestRecord, SummaryRecord } from './types.js';

export interface SystemTotals {
  system: SystemId;
  unfinished: number;
  /** Simulated span from the first arrival to the last token (s). */
  spanS: number;
  gpuBusyMs: number;
  gpus: number;
  latencySource: string;
}

export function summarize(records: readonly RequestRecord[], t: SystemTotals): SummaryRecord {
  const rs = records.filter((r) => r.system === t.system);
  const ttft = sortedCopy(rs.map((r) => r.ttft_ms));
  const multi = rs.filter((r) => r.output_tokens > 1);
  const tbt = sortedCopy(multi.map((r) => r.tbt_mean_ms));
  let outTokens = 0, up = 0, down = 0, raw = 0, hidden = 0, drafted = 0, accepted = 0, rounds = 0, decodeTokens = 0;
  for (const r of rs) {
    outTokens += r.output_tokens; up += r.bytes_up; down += r.bytes_down; raw += r.raw_token_bytes_up; hidden += r.hidden_bytes_up;
    drafted += r.drafted_tokens; accepted += r.accepted_tokens; rounds += r.rounds;
    if (r.rounds > 0) decodeTokens += r.output_tokens - 1;
  }
  const n = rs.length;
  return {
    system: t.system,
    requests: n,
    unfinished: t.unfinished,
    ttft_mean_ms: mean(ttft),
    ttft_p50_ms: quantileSorted(ttft, 0.5),
    ttft_p99_ms: quantileSorted(ttft, 0.99),
    tbt_mean_ms: mean(tbt),
    tbt_p50_ms: quantileSorted(tbt, 0.5),
    tbt_p99_ms: quantileSorted(tbt, 0.99),
    e2e_mean_ms: mean(rs.map((r) => r.e2e_ms)),
    throughput_tok_s: t.spanS > 0 ? outTokens / t.spanS : NaN,
    bytes_up_per_request: n > 0 ? up / n : NaN,
    bytes_down_per_request: n > 0 ? down / n : NaN,
    raw_token_bytes_up: raw,
    hidden_bytes_up: hidden,
    cloud_queue_mean_ms: mean(rs.map((r) => r.cloud_queue_ms)),
    gpu_util_mean: t.spanS > 0 && t.gpus > 0 ? t.gpuBusyMs / 1000 / (t.spanS * t.gpus) : NaN,
    acceptance_rate: drafted > 0 ? accepted / drafted : NaN,
    tokens_per_round: rounds > 0 ? decodeTokens / rounds : NaN,
    latency_source: t.latencySource,
  };
}

/** Per-system summary rows computed from request records. */
import type { SystemId } from '../scenario/types.js';
import { mean, quantileSorted } from './stats.js';
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

/** A growable float64 column. */
class Column {
  private a = new Float64Array(1024);
  n = 0;
  push(x: number): void {
    if (this.n === this.a.length) { const b = new Float64Array(this.a.length * 2); b.set(this.a); this.a = b; }
    this.a[this.n++] = x;
  }
  sorted(): Float64Array { return this.a.subarray(0, this.n).sort(); }
}

/**
 * The summary of one system, fed one record at a time in row order (requests.csv's):
 * the same sums in the same order as a pass over all records, so the figures are the
 * same to the bit whether the records are in memory or streamed (results/request-store.ts).
 * Keeps 16 bytes per record (TTFT, TBT): exact quantiles and means over sorted values.
 */
export class SummaryAccumulator {
  private readonly ttft = new Column();
  private readonly tbt = new Column();
  private n = 0;
  private outTokens = 0; private up = 0; private down = 0; private raw = 0; private hidden = 0;
  private drafted = 0; private accepted = 0; private rounds = 0; private decodeTokens = 0;
  private e2eSum = 0; private queueSum = 0;

  add(r: RequestRecord): void {
    this.n++;
    this.ttft.push(r.ttft_ms);
    if (r.output_tokens > 1) this.tbt.push(r.tbt_mean_ms);
    this.outTokens += r.output_tokens; this.up += r.bytes_up; this.down += r.bytes_down; this.raw += r.raw_token_bytes_up; this.hidden += r.hidden_bytes_up;
    this.drafted += r.drafted_tokens; this.accepted += r.accepted_tokens; this.rounds += r.rounds;
    if (r.rounds > 0) this.decodeTokens += r.output_tokens - 1;
    this.e2eSum += r.e2e_ms;
    this.queueSum += r.cloud_queue_ms;
  }

  finish(t: SystemTotals): SummaryRecord {
    const n = this.n;
    const ttft = this.ttft.sorted(), tbt = this.tbt.sorted();
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
      e2e_mean_ms: n > 0 ? this.e2eSum / n : NaN,
      throughput_tok_s: t.spanS > 0 ? this.outTokens / t.spanS : NaN,
      bytes_up_per_request: n > 0 ? this.up / n : NaN,
      bytes_down_per_request: n > 0 ? this.down / n : NaN,
      raw_token_bytes_up: this.raw,
      hidden_bytes_up: this.hidden,
      cloud_queue_mean_ms: n > 0 ? this.queueSum / n : NaN,
      gpu_util_mean: t.spanS > 0 && t.gpus > 0 ? t.gpuBusyMs / 1000 / (t.spanS * t.gpus) : NaN,
      acceptance_rate: this.drafted > 0 ? this.accepted / this.drafted : NaN,
      tokens_per_round: this.rounds > 0 ? this.decodeTokens / this.rounds : NaN,
      latency_source: t.latencySource,
    };
  }
}

export function summarize(records: readonly RequestRecord[], t: SystemTotals): SummaryRecord {
  const acc = new SummaryAccumulator();
  for (const r of records) if (r.system === t.system) acc.add(r);
  return acc.finish(t);
}

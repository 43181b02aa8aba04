/**
 * Per-request state and accounting in a simulation. One object per request;
 * becomes a RequestRecord (results/types.ts) when the run ends.
 */
import { drawAccepted, type UniformSource } from '../policy/acceptance.js';
import type { Rng } from '../core/rng.js';
import type { BatchedRequest } from '../policy/batching.js';
import type { SystemId } from '../scenario/types.js';
import type { RequestRecord, SpanRecord } from '../results/types.js';

/** One `exec` visit of a request to a node, before it becomes a HopRecord. */
export interface HopRecordDraft { node: number; submitS: number; startS: number; endS: number }

/** Shared placeholder for a request's settled-delivery columns until its first settled delivery. */
const EMPTY: number[] = [];

export class RequestState implements BatchedRequest {
  startS = NaN;
  firstTokenS = NaN;
  lastTokenS = NaN;
  finishS = NaN;
  emitted = 0;
  maxGapS = 0;
  hiddenUp = 0; hiddenDown = 0; rawUp = 0; rawDown = 0; headerUp = 0; headerDown = 0;
  deviceComputeMs = 0; cloudComputeMs = 0; cloudQueueMs = 0; networkMs = 0;
  rounds = 0; drafted = 0; accepted = 0;
  chunkTokens = 0;
  replica = -1;
  /** Replica per batching cluster for `exec` work (sim/cloud.ts assignExec); null until used. */
  execReplicas: Map<object, number> | null = null;
  /** Nodes visited by `exec` work, in order (hops.csv); null for systems that never exec. */
  hops: HopRecordDraft[] | null = null;
  /** Staged systems: the stage the task exited at (0 = not recorded) and whether its answer was correct (-1 = unknown). */
  exitStage = 0;
  correct = -1;
  /** This request's decision stream (`draw` op), created at its first draw. */
  decide: Rng | null = null;
  /** Stamped by the cloud's batcher (policy/batching.ts): one job per request per step. */
  batchMark = 0;
  /** Spans for the timeline figure; null when the request is not sampled. */
  spans: SpanRecord[] | null = null;

  constructor(
    /** Unique within one system's simulation: identifies the request to the cloud's batching. */
    readonly id: number,
    readonly system: SystemId,
    readonly device: number,
    readonly deviceName: string,
    readonly index: number,
    public arrivalS: number,
    readonly promptTokens: number,
    readonly outputTokens: number,
  ) {}

  /**
   * Deliveries settled in closed form (sim/driver.ts: a message-then-emit branch on a
   * fixed-rate link): their time, network time and tokens, applied in time order by
   * `applyUntil` when the clock reaches them, so the request's figures are summed in the
   * same order as with one event per delivery. Times are nondecreasing (one FIFO pipe).
   */
  private settledS: number[] | null = null;
  private settledMs: number[] = EMPTY;
  private settledTokens: number[] = EMPTY;
  private settledHead = 0;

  get finished(): boolean { return !Number.isNaN(this.finishS); }

  /** A delivery at `atS` (>= every earlier one) that took `networkMs` and then emits `tokens`. */
  settle(atS: number, networkMs: number, tokens: number): void {
    if (this.settledS === null) { this.settledS = []; this.settledMs = []; this.settledTokens = []; }
    this.settledS.push(atS); this.settledMs.push(networkMs); this.settledTokens.push(tokens);
  }

  /** Apply the settled deliveries up to time `nowS` (call before the request's own network time or tokens change). */
  applyUntil(nowS: number): void {
    const ts = this.settledS;
    if (ts === null) return;
    let h = this.settledHead;
    if (h === ts.length) return;
    while (h < ts.length && ts[h] <= nowS) {
      this.networkMs += this.settledMs[h];
      this.tokens(this.settledTokens[h], ts[h]);
      h++;
    }
    if (h === ts.length) { ts.length = 0; this.settledMs.length = 0; this.settledTokens.length = 0; h = 0; }
    this.settledHead = h;
  }

  /** A verification round: draw how many of `drafted` tokens are accepted (seeded) and count it. */
  verifyRound(rng: UniformSource, drafted: number, rate: number, rates: readonly number[] | null = null): number {
    const k = drawAccepted(rng, drafted, rate, rates);
    this.rounds++;
    this.drafted += drafted;
    this.accepted += k;
    return k;
  }

  tokens(n: number, nowS: number): void {
    if (n <= 0) return;
    if (this.emitted === 0) this.firstTokenS = nowS;
    else if (nowS - this.lastTokenS > this.maxGapS) this.maxGapS = nowS - this.lastTokenS;
    this.lastTokenS = nowS;
    this.emitted += n;
  }

  span(kind: string, label: string, startS: number, endS: number): void {
    if (this.spans === null || this.spans.length >= 20000) return;
    this.spans.push({
      system: this.system, device: this.deviceName, request: this.index, kind, label,
      start_ms: (startS - this.arrivalS) * 1000, end_ms: (endS - this.arrivalS) * 1000,
    });
  }

  toRecord(): RequestRecord {
    const ttftMs = (this.firstTokenS - this.arrivalS) * 1000;
    const tbtMeanMs = this.emitted > 1 ? ((this.lastTokenS - this.firstTokenS) * 1000) / (this.emitted - 1) : 0;
    return {
      system: this.system,
      device: this.deviceName,
      request: this.index,
      arrival_s: this.arrivalS,
      prompt_tokens: this.promptTokens,
      output_tokens: this.emitted,
      ttft_ms: ttftMs,
      tbt_mean_ms: tbtMeanMs,
      tbt_max_ms: this.maxGapS * 1000,
      e2e_ms: (this.lastTokenS - this.arrivalS) * 1000,
      bytes_up: this.hiddenUp + this.rawUp + this.headerUp,
      bytes_down: this.hiddenDown + this.rawDown + this.headerDown,
      raw_token_bytes_up: this.rawUp,
      hidden_bytes_up: this.hiddenUp,
      hidden_bytes_down: this.hiddenDown,
      device_queue_ms: (this.startS - this.arrivalS) * 1000,
      cloud_queue_ms: this.cloudQueueMs,
      device_compute_ms: this.deviceComputeMs,
      cloud_compute_ms: this.cloudComputeMs,
      network_ms: this.networkMs,
      rounds: this.rounds,
      drafted_tokens: this.drafted,
      accepted_tokens: this.accepted,
      chunk_tokens: this.chunkTokens,
      gpu: this.replica,
    };
  }
}

/**
 * Latency-model contracts. Profiling/prediction (this folder, calibrate/)
 * stays apart from scheduling (sim/): the simulator only ever asks
 * "how long does this submodel take for this batch shape?".
 */
import type { ComponentId, SubmodelId } from '../model/types.js';

/**
 * Aggregate shape of a batch of sequences processed in one forward pass.
 * For sequences i with n_i new tokens and c_i tokens of past context:
 *   seqs = #sequences, tokens = sum n_i, tokCtx = sum n_i*c_i,
 *   ctx = sum c_i, tokSq = sum n_i^2.
 * Linear latency models and rooflines are both functions of these sums, so a
 * batch of any size is evaluated in O(1).
 */
export interface BatchShape {
  seqs: number;
  tokens: number;
  tokCtx: number;
  ctx: number;
  tokSq: number;
}

export function singleShape(tokens: number, ctxTokens: number): BatchShape {
  return { seqs: 1, tokens, tokCtx: tokens * ctxTokens, ctx: ctxTokens, tokSq: tokens * tokens };
}

/** Add one sequence of `tokens` new tokens after `ctxTokens` past tokens to a batch shape (in place). */
export function addSequence(shape: BatchShape, tokens: number, ctxTokens: number): void {
  shape.seqs++;
  shape.tokens += tokens;
  shape.tokCtx += tokens * ctxTokens;
  shape.ctx += ctxTokens;
  shape.tokSq += tokens * tokens;
}

/** Where a latency figure comes from. Measured beats imported beats estimate. */
export type LatencySource = 'measured' | 'imported' | 'estimate';

/** Latency of one component (one decoder layer, the embedding, ...) on one piece of hardware. */
export interface ComponentLatencyModel {
  readonly component: ComponentId;
  readonly source: LatencySource;
  /** Human-readable origin: calibration file path or "roofline(jetson-agx-orin-64gb)". */
  readonly origin: string;
  /** Latency in ms of one forward pass over the batch. For lmHead, `shape.tokens` = positions needing logits. */
  batchMs(shape: BatchShape): number;
}

/** Latency of a submodel (composition of components) on one piece of hardware. */
export interface SubmodelLatencyModel {
  readonly submodel: SubmodelId;
  /** Worst (least trustworthy) source among the components used. */
  readonly source: LatencySource;
  /**
   * Latency in ms of one forward pass. `logitsTokens` = positions whose logits
   * are computed by the LM head (0 when the head is not run).
   */
  batchMs(shape: BatchShape, logitsTokens: number): number;
}

/** Per-run description of which latency sources were used, for run.json / describe. */
export interface LatencyProvenance {
  hardwareId: string;
  modelId: string;
  components: Record<ComponentId, { source: LatencySource; origin: string }>;
  warnings: string[];
}

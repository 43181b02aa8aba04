/**
 * Continuous batching: which queued work goes into the next step of one
 * replica. Pure (apart from stamping); used by the simulator's cloud
 * (sim/cloud.ts) and by the live cloud server.
 *
 * Rule: walk the queue in FIFO order; take at most one job per request (the
 * chunks and rounds of one request must run in order: KV-cache dependency);
 * give each job min(its remaining tokens, the budget left); stop when the
 * token budget or the sequence limit is reached. A job larger than the budget
 * left is split across steps (chunked prefill).
 */
import { addSequence, type BatchShape } from '../compute/types.js';

/** State shared by all jobs of one request: the batcher stamps it to allow one job per step. */
export interface BatchedRequest {
  batchMark: number;
}

export interface QueuedWork {
  /** The request the job belongs to (the same object for all its jobs). */
  readonly request: BatchedRequest;
  readonly tokens: number;
  /** Tokens already processed in earlier steps. */
  readonly done: number;
}

let stepStamp = 0;

/**
 * Fills `taken[i]` with the tokens job i gets in the next step (0 = not in it)
 * and returns the number of jobs in the step. `taken` must have room for the queue.
 */
export function formBatch(queue: readonly QueuedWork[], tokenBudget: number, maxBatchSeqs: number, taken: number[]): number {
  let budget = tokenBudget, seqs = 0;
  const stamp = ++stepStamp;
  let i = 0;
  for (; i < queue.length && budget > 0 && seqs < maxBatchSeqs; i++) {
    const job = queue[i];
    if (job.request.batchMark === stamp) { taken[i] = 0; continue; }
    job.request.batchMark = stamp;
    const t = Math.min(job.tokens - job.done, budget);
    taken[i] = t;
    budget -= t;
    seqs++;
  }
  for (; i < queue.length; i++) taken[i] = 0;
  return seqs;
}

/** A queued job as a step sees it. */
export interface StepWork extends QueuedWork {
  /** Context the job started from (its KV cache holds ctx + done tokens when it runs). */
  readonly ctx: number;
  /** Positions whose logits are computed in the step that completes the job. */
  readonly logits: number;
  /** Tokens taken in the step being formed (set by composeStep). */
  taken: number;
}

/**
 * Form the next step (formBatch) and describe it: stamps each job's `taken`,
 * resets `shape` and adds each taken job as one sequence of `taken` new tokens
 * after ctx + done past tokens, and returns the logits positions of the step
 * (a job's logits come with the step that completes it). `taken[i]` as in formBatch.
 * Shared by the simulated and the live cloud, so both price a step alike.
 */
export function composeStep(queue: readonly StepWork[], tokenBudget: number, maxBatchSeqs: number, taken: number[], shape: BatchShape): number {
  formBatch(queue, tokenBudget, maxBatchSeqs, taken);
  shape.seqs = 0; shape.tokens = 0; shape.tokCtx = 0; shape.ctx = 0; shape.tokSq = 0;
  let logits = 0;
  for (let i = 0; i < queue.length; i++) {
    const t = taken[i];
    if (t === 0) continue;
    const job = queue[i];
    job.taken = t;
    addSequence(shape, t, job.ctx + job.done);
    if (job.done + t === job.tokens) logits += job.logits;
  }
  return logits;
}

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

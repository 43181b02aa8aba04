/**
 * Continuous batching: which queued work goes into the next step of one
 * replica. Pure; used by the simulator's cloud (sim/cloud.ts) and by the live
 * cloud server.
 *
 * Rule: walk the queue in FIFO order; take at most one job per request (the
 * chunks and rounds of one request must run in order: KV-cache dependency);
 * give each job min(its remaining tokens, the budget left); stop when the
 * token budget or the sequence limit is reached. A job larger than the budget
 * left is split across steps (chunked prefill).
 */
export interface QueuedWork {
  /** Identifies the request (one job per request per step). */
  readonly requestId: number;
  readonly tokens: number;
  /** Tokens already processed in earlier steps. */
  readonly done: number;
}

/**
 * Fills `taken[i]` with the tokens job i gets in the next step (0 = not in it)
 * and returns the number of jobs in the step. `taken` must have room for the queue.
 */
export function formBatch(queue: readonly QueuedWork[], tokenBudget: number, maxBatchSeqs: number, taken: number[]): number {
  let budget = tokenBudget, seqs = 0;
  const inStep = new Set<number>();
  for (let i = 0; i < queue.length; i++) taken[i] = 0;
  for (let i = 0; i < queue.length && budget > 0 && seqs < maxBatchSeqs; i++) {
    const job = queue[i];
    if (inStep.has(job.requestId)) continue;
    inStep.add(job.requestId);
    const t = Math.min(job.tokens - job.done, budget);
    taken[i] = t;
    budget -= t;
    seqs++;
  }
  return seqs;
}

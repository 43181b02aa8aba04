/**
 * Prompt chunking for split prefill. Pure: no simulator imports.
 *
 * HAT's dynamic policy predicts the makespan of the prefill pipeline for each
 * candidate chunk size (1-D search over a geometric grid) and picks the
 * smallest. The predictor mirrors how protocols schedule chunks (protocol/
 * systems/split-prefill.ts): the device runs the input submodel of every
 * chunk back to back, each chunk is uploaded as soon as its input pass is
 * done (one ordered stream), the cloud processes chunks of one request in
 * order, downloads are ordered, and the device runs the output submodel of a
 * chunk once it has arrived and the device has finished earlier work.
 */
import type { ChunkPolicySpec } from '../scenario/types.js';

/** Per-stage latency predictions, in ms, for one chunk of `tokens` new tokens after `ctx` prompt tokens. */
export interface PipelineStages {
  deviceInputMs(tokens: number, ctx: number): number;
  /** Device work that follows every chunk's input pass but does not gate the upload (e.g. the adapter). */
  deviceSideMs(tokens: number, ctx: number): number;
  /** Time to push one chunk's upload onto the link (serialisation), excluding propagation. */
  upTxMs(tokens: number): number;
  upLatencyMs: number;
  cloudMs(tokens: number, ctx: number): number;
  downTxMs(tokens: number): number;
  downLatencyMs: number;
  deviceOutputMs(tokens: number, ctx: number, last: boolean): number;
}

/** The size of every chunk but the last: chunkTokens, within [1, promptTokens]. */
function chunkSize(promptTokens: number, chunkTokens: number): number {
  return Math.max(1, Math.min(chunkTokens, promptTokens));
}

/** Split `promptTokens` into chunks of `chunkTokens` (last one shorter). */
export function splitPrompt(promptTokens: number, chunkTokens: number): number[] {
  const size = chunkSize(promptTokens, chunkTokens);
  const out: number[] = [];
  for (let done = 0; done < promptTokens; done += size) out.push(Math.min(size, promptTokens - done));
  return out;
}

/**
 * Predicted time (ms) from the start of prefill until the last chunk's output
 * pass ends, on an otherwise idle device, link and cloud. The device runs
 * input passes back to back, then output passes as their chunks arrive, and
 * fills idle gaps with side work (adapter passes: background, never
 * preempted once started), exactly as the simulator schedules them.
 */
export function predictPipelineMs(chunks: readonly number[], st: PipelineStages): number {
  return pipelineMs(chunks, chunks.length, 0, 0, st);
}

/** Scratch for pipelineMs (arrivals, side and output pass times): the chunk search runs per request. */
let scratch = new Float64Array(3 * 64);

/** The pipeline makespan for `chunks`, or (chunks = null) for `promptTokens` cut in `K` chunks of `size`. */
function pipelineMs(chunks: readonly number[] | null, K: number, size: number, promptTokens: number, st: PipelineStages): number {
  if (scratch.length < 3 * K) scratch = new Float64Array(6 * K);
  const arrivals = scratch, sideOff = K, outOff = 2 * K;
  let inputEnd = 0, upTxEnd = 0, cloudEnd = 0, downTxEnd = 0, ctx = 0;
  // Transfer times depend on the chunk's size only: asked once per size (chunks of one size in a row).
  let txN = -1, upTx = 0, downTx = 0;
  for (let k = 0; k < K; k++) {
    const n = chunks !== null ? chunks[k] : Math.min(size, promptTokens - ctx);
    if (n !== txN) { txN = n; upTx = st.upTxMs(n); downTx = st.downTxMs(n); }
    inputEnd += st.deviceInputMs(n, ctx);
    upTxEnd = Math.max(upTxEnd, inputEnd) + upTx;
    cloudEnd = Math.max(cloudEnd, upTxEnd + st.upLatencyMs) + st.cloudMs(n, ctx);
    downTxEnd = Math.max(downTxEnd, cloudEnd) + downTx;
    arrivals[k] = downTxEnd + st.downLatencyMs;
    scratch[sideOff + k] = st.deviceSideMs(n, ctx);
    scratch[outOff + k] = st.deviceOutputMs(n, ctx, k === K - 1);
    ctx += n;
  }
  // Side pass k becomes ready when input pass k ends; all input passes end by `inputEnd`,
  // and no output can arrive before then, so side work starts at inputEnd at the earliest.
  let t = inputEnd, nextOut = 0, nextSide = 0;
  while (nextOut < K) {
    if (arrivals[nextOut] <= t) { t += scratch[outOff + nextOut++]; continue; }
    if (nextSide < K) { t += scratch[sideOff + nextSide++]; continue; }
    t = arrivals[nextOut];
  }
  return t;
}

/** Candidate chunk sizes: a geometric grid (x1.5) between min and max, plus the whole prompt when it fits. */
export function chunkCandidates(promptTokens: number, minTokens: number, maxTokens: number): number[] {
  const out: number[] = [];
  const hi = Math.min(maxTokens, promptTokens);
  for (let c = Math.min(minTokens, hi); c < hi; c = Math.ceil(c * 1.5)) out.push(c);
  out.push(hi);
  return out;
}

/** Chunk size in tokens for a prompt under the given policy. */
export function chooseChunkTokens(spec: ChunkPolicySpec, promptTokens: number, stages: PipelineStages | null): number {
  switch (spec.kind) {
    case 'none': return promptTokens;
    case 'fixed': return Math.min(spec.tokens, promptTokens);
    case 'dynamic': {
      if (!stages) throw new Error('dynamic chunk policy needs latency predictions');
      let best = promptTokens, bestMs = Infinity;
      for (const c of chunkCandidates(promptTokens, spec.minTokens, spec.maxTokens)) {
        // = predictPipelineMs(splitPrompt(promptTokens, c), stages), without building the chunk list.
        const size = chunkSize(promptTokens, c);
        const ms = pipelineMs(null, Math.ceil(promptTokens / size), size, promptTokens, stages);
        if (ms < bestMs - 1e-9) { bestMs = ms; best = c; }
      }
      return best;
    }
  }
}

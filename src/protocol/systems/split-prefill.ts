/**
 * Split prefill shared by ushape, hat-nochunk and hat: the prompt is cut in
 * chunks; for each chunk the device runs the input submodel, uploads the
 * hidden states, the cloud runs the middle submodel, the hidden states of
 * every position come back (the output layers need them for their KV cache;
 * REFERENCE §1) and the device runs the output submodel. Chunks run as
 * concurrent branches, so device compute, uplink, cloud and downlink of
 * successive chunks overlap; resources keep each stage in chunk order.
 */
import { chooseChunkTokens, splitPrompt, type PipelineStages } from '../../policy/chunk.js';
import type { ChunkPolicySpec } from '../../scenario/types.js';
import type { ProtocolEnv, RequestInfo } from '../context.js';
import { cloud, cloudLoad, compute, count, down, fork, join, load as loadOf, note, only, up, type CloudLoad, type Op, type Resume } from '../ops.js';

export function pipelineStages(env: ProtocolEnv, load: CloudLoad | null, withAdapter: boolean): PipelineStages {
  const p = env.predictor, hb = env.hiddenBytesPerToken;
  return {
    deviceInputMs: (n, ctx) => p.deviceMs('input', n, ctx, 0),
    deviceSideMs: withAdapter ? (n, ctx) => p.deviceMs('adapter', n, ctx, 0) : () => 0,
    upTxMs: (n) => p.txMs('up', n * hb),
    upLatencyMs: p.latencyMs('up'),
    cloudMs: (n, ctx) => p.cloudMs('middle', n, ctx, 0, load),
    downTxMs: (n) => p.txMs('down', n * hb),
    downLatencyMs: p.latencyMs('down'),
    deviceOutputMs: (n, ctx, last) => p.deviceMs('output', n, ctx, last ? 1 : 0),
  };
}

/** Chunk k's labels ("input c3", ...), built once per k (a request's prefill has a few chunks). */
const chunkLabels: { input: string; adapter: string; hidden: string; middle: string; output: string }[] = [];
function labelsOf(k: number): (typeof chunkLabels)[number] {
  return chunkLabels[k] ??= { input: `input c${k}`, adapter: `adapter c${k}`, hidden: `hidden c${k}`, middle: `middle c${k}`, output: `output c${k}` };
}

function* chunkBranch(env: ProtocolEnv, k: number, n: number, ctx: number, last: boolean, withAdapter: boolean, sideHandles: number[]): Generator<Op, void, Resume> {
  const hb = env.hiddenBytesPerToken, l = labelsOf(k);
  yield compute('input', n, ctx, 0, l.input);
  // The drafting adapter builds its KV cache for this chunk in the background:
  // it gates neither the upload nor the output passes, only the first draft.
  if (withAdapter) sideHandles.push(count(yield fork(only(compute('adapter', n, ctx, 0, l.adapter, 1, true)))));
  yield up(n * hb, 0, l.hidden);
  yield cloud('middle', n, ctx, 0, l.middle);
  yield down(n * hb, 0, l.hidden);
  yield compute('output', n, ctx, last ? 1 : 0, l.output);
}

/**
 * Runs the split prefill; returns when the first output token is known on the
 * device, with the handles of side work (adapter passes) still to be joined
 * before drafting starts.
 */
export function* splitPrefill(req: RequestInfo, env: ProtocolEnv, chunkSpec: ChunkPolicySpec, withAdapter: boolean): Generator<Op, number[], Resume> {
  const P = req.promptTokens;
  let chunkTokens = P;
  if (chunkSpec.kind === 'dynamic') {
    const load = loadOf(yield cloudLoad());
    chunkTokens = chooseChunkTokens(chunkSpec, P, pipelineStages(env, load, withAdapter));
  } else {
    chunkTokens = chooseChunkTokens(chunkSpec, P, null);
  }
  yield note('chunkTokens', chunkTokens);
  const chunks = splitPrompt(P, chunkTokens);
  const handles: number[] = [];
  const sideHandles: number[] = [];
  let ctx = 0;
  for (let k = 0; k < chunks.length; k++) {
    handles.push(count(yield fork(chunkBranch(env, k, chunks[k], ctx, k === chunks.length - 1, withAdapter, sideHandles))));
    ctx += chunks[k];
  }
  yield join(handles);
  return sideHandles;
}

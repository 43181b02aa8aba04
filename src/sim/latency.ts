/**
 * Binds latency models to what the simulator asks: the duration of a device
 * compute op, and the predictions policies use (protocol/context.ts Predictor).
 */
import { singleShape, type BatchShape, type SubmodelLatencyModel } from '../compute/types.js';
import type { ResolvedLatency } from '../compute/resolve.js';
import type { Direction, SimNetwork } from '../network/types.js';
import type { Predictor } from '../protocol/context.js';
import type { CloudLoad, CloudWork, ComputeOp, DeviceWork } from '../protocol/ops.js';

export interface DeviceLatency {
  /** Latency (ms) of `repeat` sequential passes of `work`. */
  computeMs(op: ComputeOp): number;
  /** Latency (ms) of one pass. */
  passMs(work: DeviceWork, tokens: number, ctx: number, logits: number): number;
}

/** Device latency from the target model's submodels and, for sd, the drafter model's. */
export function deviceLatency(target: ResolvedLatency | null, drafter: ResolvedLatency | null): DeviceLatency {
  // Resolved lazily (a device that never drafts needs no drafter model), then kept in fields.
  const models: Record<Exclude<DeviceWork, 'slm'>, SubmodelLatencyModel | null> = { input: null, adapter: null, output: null, drafter: null };
  const need = (work: Exclude<DeviceWork, 'slm'>): SubmodelLatencyModel => {
    const m = models[work];
    if (m !== null) return m;
    const source = work === 'drafter' ? drafter : target;
    if (!source) throw new Error(`no latency model bound for device work ${work}`);
    return (models[work] = source.submodel(work));
  };
  const shape: BatchShape = { seqs: 1, tokens: 0, tokCtx: 0, ctx: 0, tokSq: 0 };
  const passMs = (work: DeviceWork, tokens: number, ctx: number, logits: number): number => {
    shape.tokens = tokens; shape.tokCtx = tokens * ctx; shape.ctx = ctx; shape.tokSq = tokens * tokens;
    if (work === 'slm') {
      return need('input').batchMs(shape, 0) + need('adapter').batchMs(shape, 0) + need('output').batchMs(shape, logits);
    }
    return need(work).batchMs(shape, logits);
  };
  return {
    passMs,
    computeMs(op) {
      let total = 0;
      for (let i = 0; i < op.repeat; i++) total += passMs(op.work, op.tokens, op.ctx + i * op.tokens, op.logits);
      return total;
    },
  };
}

/**
 * Simulator-side predictor: the same latency models, no contention. Cloud
 * predictions with a load snapshot assume the job shares a step with one
 * token of every other active request on its replica plus the queued tokens
 * (up to one token budget).
 */
export function simPredictor(
  dev: DeviceLatency,
  cloudModel: SubmodelLatencyModel,
  cloudWork: CloudWork,
  tokenBudget: number,
  network: SimNetwork,
  deviceIndex: number,
  headerBytes: number,
  latencyMs: number,
): Predictor {
  return {
    deviceMs: (work, tokens, ctx, logits) => dev.passMs(work, tokens, ctx, logits),
    cloudMs(work: CloudWork, tokens: number, ctx: number, logits: number, load: CloudLoad | null): number {
      if (work !== cloudWork) throw new Error(`predictor asked for cloud work ${work}, cloud hosts ${cloudWork}`);
      const s = singleShape(tokens, ctx);
      if (load) {
        const others = Math.max(0, load.activeRequests - 1);
        const extra = Math.min(tokenBudget, others + load.queuedTokens);
        s.seqs += others; s.tokens += extra; s.tokCtx += extra * ctx; s.ctx += others * ctx; s.tokSq += extra;
      }
      return cloudModel.batchMs(s, logits);
    },
    txMs: (dir: Direction, payloadBytes: number) => network.idleTransferMs(deviceIndex, dir, payloadBytes + headerBytes) - latencyMs,
    latencyMs: () => latencyMs,
  };
}

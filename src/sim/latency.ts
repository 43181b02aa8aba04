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

/**
 * Memo limits (see PassMemo): rows for tokens and logits below MEMO_TOKENS (decode-sized
 * passes, asked again and again; a prefill pass of a whole prompt or chunk is rarely asked
 * twice and is computed directly), contexts below MEMO_CTX.
 */
const MEMO_TOKENS = 64, MEMO_CTX = 1 << 20;

/**
 * Values of a pure latency function of (kind, tokens, logits, ctx), kept per context
 * length: a row (Float64Array, NaN = not computed yet) per (kind, tokens, logits), found by
 * a small-integer key, indexed by ctx. The simulator asks for the same few passes over
 * and over (a draft step, a verification's output pass at every context length), so a
 * latency is computed once per shape instead of once per op; the value is the one the
 * model returns, so results do not change.
 */
export class PassMemo {
  private readonly rows = new Map<number, Float64Array>();

  /**
   * The row for these arguments with room for `ctx`, or null when they are outside the memo's
   * range (compute directly). `kind` < 16; `repeat`: passes summed (a repeated compute op).
   */
  row(kind: number, tokens: number, logits: number, ctx: number, repeat = 1): Float64Array | null {
    if (!(tokens >= 0 && tokens < MEMO_TOKENS && logits >= 0 && logits < MEMO_TOKENS && ctx >= 0 && ctx < MEMO_CTX && repeat >= 1 && repeat < MEMO_TOKENS)) return null;
    if ((tokens | 0) !== tokens || (logits | 0) !== logits || (ctx | 0) !== ctx || (repeat | 0) !== repeat) return null;
    const key = ((kind * MEMO_TOKENS + repeat) * MEMO_TOKENS + logits) * MEMO_TOKENS + tokens;
    const row = this.rows.get(key);
    if (row !== undefined && ctx < row.length) return row;
    let n = row === undefined ? 256 : row.length;
    while (n <= ctx) n *= 2;
    const grown = new Float64Array(Math.min(n, MEMO_CTX)).fill(NaN);
    if (row !== undefined) grown.set(row);
    this.rows.set(key, grown);
    return grown;
  }
}

/** PassMemo's kind of a device work. */
function workKind(work: DeviceWork): number {
  switch (work) {
    case 'input': return 0;
    case 'adapter': return 1;
    case 'output': return 2;
    case 'slm': return 3;
    case 'drafter': return 4;
  }
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
  const modelMs = (work: DeviceWork, tokens: number, ctx: number, logits: number): number => {
    shape.tokens = tokens; shape.tokCtx = tokens * ctx; shape.ctx = ctx; shape.tokSq = tokens * tokens;
    if (work === 'slm') {
      return need('input').batchMs(shape, 0) + need('adapter').batchMs(shape, 0) + need('output').batchMs(shape, logits);
    }
    return need(work).batchMs(shape, logits);
  };
  const memo = new PassMemo();
  const passMs = (work: DeviceWork, tokens: number, ctx: number, logits: number): number => {
    const row = memo.row(workKind(work), tokens, logits, ctx);
    if (row === null) return modelMs(work, tokens, ctx, logits);
    const known = row[ctx];
    return known === known ? known : (row[ctx] = modelMs(work, tokens, ctx, logits));
  };
  const repeatedMs = (op: ComputeOp): number => {
    let total = 0;
    for (let i = 0; i < op.repeat; i++) total += passMs(op.work, op.tokens, op.ctx + i * op.tokens, op.logits);
    return total;
  };
  return {
    passMs,
    computeMs(op) {
      if (op.repeat === 1) return passMs(op.work, op.tokens, op.ctx, op.logits);
      // A drafting op (repeat = draft length): the sum of its passes, memoised as one value (kinds 5..9).
      const row = memo.row(5 + workKind(op.work), op.tokens, op.logits, op.ctx, op.repeat);
      if (row === null) return repeatedMs(op);
      const known = row[op.ctx];
      return known === known ? known : (row[op.ctx] = repeatedMs(op));
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
  // Predictions without a load snapshot depend on the shape only (PassMemo).
  const idle = new PassMemo();
  // Scratch shape for predictions with a load (the chunk policy asks for many per request).
  const s: BatchShape = { seqs: 1, tokens: 0, tokCtx: 0, ctx: 0, tokSq: 0 };
  return {
    deviceMs: (work, tokens, ctx, logits) => dev.passMs(work, tokens, ctx, logits),
    cloudMs(work: CloudWork, tokens: number, ctx: number, logits: number, load: CloudLoad | null): number {
      if (work !== cloudWork) throw new Error(`predictor asked for cloud work ${work}, cloud hosts ${cloudWork}`);
      if (load === null) {
        const row = idle.row(0, tokens, logits, ctx);
        if (row !== null) {
          const known = row[ctx];
          return known === known ? known : (row[ctx] = cloudModel.batchMs(singleShape(tokens, ctx), logits));
        }
      }
      s.seqs = 1; s.tokens = tokens; s.tokCtx = tokens * ctx; s.ctx = ctx; s.tokSq = tokens * tokens; // = singleShape(tokens, ctx)
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

/**
 * The real training of FedSpine's live runner: brown-small (or any trained
 * model folder) in TensorFlow.js, frozen base + LoRA factors of one rank
 * (src/train/lora.ts's layout and merge: W' = W + (alpha / r) A B, A [in, r],
 * B [r, out]). One object per process keeps the frozen base as tf variables
 * across rounds; each round builds LoRA variables from the received slice,
 * runs K Adam steps on seeded batches of the device's shard, and reads the
 * factors back.
 *
 * [assumption] alpha = alphaOverRank x r (default 2, as lora.ts's r = 4,
 * alpha = 8), so every rank slice shares the scale 2 and zero-padded slices
 * aggregate consistently; a fresh Adam state every round (FedAvg-style); a
 * constant learning rate.
 *
 * Also the timing harness of `hatsim live fed-calibrate`: forward-only and
 * forward + backward + Adam step times of the same graph (fedStepTimes).
 */
import { tf, initTf } from '../train/tf.js';
import { baseShapes, crossEntropy, disposeCtx, forward, makeCtx, toVariables, type Ctx, type Params } from '../train/model.js';
import { loraShapes, mergedWeights, type LoraTarget } from '../train/lora.js';
import { Adam } from '../train/optim.js';
import { encodeDocs, evalWindows, trainBatch } from '../train/data.js';
import { InputError } from '../core/errors.js';
import { loadBrown, splitBrown, type CorpusSplits } from '../train/corpus.js';
import type { Tokenizer } from '../train/tokenizer.js';
import { evalLoss } from '../train/train.js';
import type { ModelSpec } from '../model/types.js';

export interface FedTrainOptions {
  targets: readonly LoraTarget[];
  batch: number;
  seq: number;
  lr: number;
  alphaOverRank: number;
}

export interface FedRoundResult {
  lora: Map<string, Float32Array>;
  /** Training loss per local step. */
  losses: number[];
  /** Wall time of each step (forward + backward + Adam), ms. */
  stepMs: number[];
  /** Wall time of the whole round's training (variables, steps, read-back), ms. */
  totalMs: number;
}

export class FedTrainer {
  private readonly frozen: Params;
  private readonly ctx: Ctx;

  private constructor(readonly model: ModelSpec, base: Map<string, Float32Array>, readonly opts: FedTrainOptions) {
    this.frozen = toVariables(baseShapes(model), base, false);
    this.ctx = makeCtx(model, opts.seq);
  }

  static async create(model: ModelSpec, base: Map<string, Float32Array>, opts: FedTrainOptions): Promise<FedTrainer> {
    await initTf();
    return new FedTrainer(model, base, opts);
  }

  private cfg(rank: number): { rank: number; alpha: number; targets: LoraTarget[] } {
    return { rank, alpha: this.opts.alphaOverRank * rank, targets: [...this.opts.targets] };
  }

  private vars(rank: number, lora: ReadonlyMap<string, Float32Array>): Params {
    const shapes = loraShapes(this.model, this.cfg(rank));
    return toVariables(shapes, new Map(lora));
  }

  private batchLoss(lv: Params, rank: number, x: Int32Array, y: Int32Array): tf.Scalar {
    const { batch, seq } = this.opts;
    return crossEntropy(forward(mergedWeights(this.frozen, lv, this.cfg(rank)), this.ctx, tf.tensor2d(x, [batch, seq], 'int32')), tf.tensor1d(y, 'int32'));
  }

  /** K local steps from `lora` (rank r) on `shard`; batch of step k drawn from (seed, "fed/batch/<firstStep + k>"). */
  async trainRound(lora: ReadonlyMap<string, Float32Array>, rank: number, steps: number, shard: Int32Array, seed: number, firstStep: number): Promise<FedRoundResult> {
    const t0 = performance.now();
    const lv = this.vars(rank, lora);
    const opt = new Adam(lv);
    const losses: number[] = [], stepMs: number[] = [];
    for (let k = 0; k < steps; k++) {
      const { x, y } = trainBatch(shard, seed, firstStep + k, this.opts.batch, this.opts.seq, 'fed/batch');
      const s0 = performance.now();
      losses.push(opt.step(() => tf.tidy(() => this.batchLoss(lv, rank, x, y)), this.opts.lr));
      stepMs.push(performance.now() - s0);
    }
    const out = new Map<string, Float32Array>();
    for (const [k, v] of lv) out.set(k, v.dataSync() as Float32Array);
    opt.dispose();
    for (const v of lv.values()) v.dispose();
    return { lora: out, losses, stepMs, totalMs: performance.now() - t0 };
  }

  /** Mean cross-entropy of base + LoRA (rank r) over evaluation windows. */
  evalLoss(lora: ReadonlyMap<string, Float32Array>, rank: number, windows: { x: Int32Array; y: Int32Array }[]): number {
    const lv = this.vars(rank, lora);
    try {
      return evalLoss(this.ctx, (ids) => forward(mergedWeights(this.frozen, lv, this.cfg(rank)), this.ctx, ids), windows);
    } finally {
      for (const v of lv.values()) v.dispose();
    }
  }

  /**
   * Timing of one training-step shape at rank r, interleaved (A/B) so both see the same load:
   * forward only (loss, no gradients) of the base alone, forward of base + LoRA, and the full
   * step (forward + backward + Adam) of base + LoRA; `reps` of each after one warm-up of each.
   */
  stepTimes(lora: ReadonlyMap<string, Float32Array>, rank: number, shard: Int32Array, seed: number, reps: number): { baseForwardMs: number[]; forwardMs: number[]; stepMs: number[] } {
    const lv = this.vars(rank, lora);
    const opt = new Adam(lv);
    const { batch, seq } = this.opts;
    const out = { baseForwardMs: [] as number[], forwardMs: [] as number[], stepMs: [] as number[] };
    for (let i = -1; i < reps; i++) {
      const { x, y } = trainBatch(shard, seed, i + 1, batch, seq, 'fed/calibrate');
      let t = performance.now();
      tf.tidy(() => crossEntropy(forward(this.frozen, this.ctx, tf.tensor2d(x, [batch, seq], 'int32')), tf.tensor1d(y, 'int32')).dataSync());
      const b = performance.now() - t;
      t = performance.now();
      tf.tidy(() => this.batchLoss(lv, rank, x, y).dataSync());
      const f = performance.now() - t;
      t = performance.now();
      opt.step(() => tf.tidy(() => this.batchLoss(lv, rank, x, y)), 0);
      const s = performance.now() - t;
      if (i >= 0) { out.baseForwardMs.push(b); out.forwardMs.push(f); out.stepMs.push(s); }
    }
    opt.dispose();
    for (const v of lv.values()) v.dispose();
    return out;
  }

  dispose(): void {
    for (const v of this.frozen.values()) v.dispose();
    disposeCtx(this.ctx);
  }
}

// ---- the devices' data: non-IID shards (one Brown category each) and validation windows ----


let splitsCache: CorpusSplits | null = null;
function splits(): CorpusSplits { return (splitsCache ??= splitBrown(loadBrown())); }

/** Category of each device: the given list (one per device), or the categories with validation documents, sorted, round-robin. */
export function deviceCategories(devices: number, given: readonly string[] | null): string[] {
  const s = splits();
  const withVal = [...new Set(s.validation.map((d) => d.category))].sort();
  if (given !== null) {
    if (given.length !== devices) throw new InputError(`live.categories has ${given.length} entries for ${devices} devices: give one Brown category per device`, 'live.categories');
    given.forEach((c, i) => {
      if (!withVal.includes(c)) throw new InputError(`live.categories[${i}] = "${c}" is not a Brown category with validation documents (allowed: ${withVal.join(', ')})`, `live.categories[${i}]`);
    });
    return [...given];
  }
  return Array.from({ length: devices }, (_, i) => withVal[i % withVal.length]);
}

/** A device's training shard: the train documents of its category (the first maxDocs), encoded. */
export function shardTokens(tok: Tokenizer, category: string, maxDocs: number | null): Int32Array {
  const docs = splits().shards[category] ?? [];
  return encodeDocs(tok, maxDocs === null ? docs : docs.slice(0, maxDocs));
}

/** A device's validation windows: `count` evenly spaced windows of its category's validation documents. */
export function validationWindows(tok: Tokenizer, category: string, seq: number, count: number): { x: Int32Array; y: Int32Array }[] {
  return evalWindows(encodeDocs(tok, splits().validation.filter((d) => d.category === category)), seq, count);
}

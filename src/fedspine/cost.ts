/**
 * FedSpine cost model: what a (pruning ratio p, LoRA rank r) configuration
 * costs a device in training-step time, memory and bytes on the wire.
 * Every choice below beyond REFERENCE §1 is an [assumption] and an option.
 *
 * Structured pruning (pruneStructure):
 * - ratio p in [0, 1) removes the fraction p of the attention heads and of the
 *   FFN channels of every decoder layer [assumption: uniform across layers,
 *   unless per-layer ratios are given]. Kept heads = max(1, round(H (1-p)));
 *   with grouped-query attention whole KV groups are removed (kept groups =
 *   max(1, round(KV (1-p))), kept heads = groups x H/KV). Kept FFN channels =
 *   max(1, round(F (1-p))). A removed head takes its rows of q/k/v and its
 *   columns of o with it; a removed FFN channel its row of gate/up and its
 *   column of down. Embedding, norms and the LM head are never pruned.
 *
 * Training-step time (stepTimeMs):
 *   fwdFull = forward of the unpruned model over b sequences of L tokens, from
 *     the project's latency models (calibration file when present, data-sheet
 *     roofline otherwise: compute/resolve.ts, submodel "full");
 *   step = fwdFull x (frozenStepFactor x W_frozen(p) + loraStepFactor x W_lora(p, r)) / W_full
 *   where W are forward FLOPs: W_frozen of the kept frozen structures (+
 *   embedding/head), W_lora of the LoRA factors. [assumption] time scales
 *   with the FLOPs of the kept structures. Frozen weights need only the
 *   activation gradient (forward + one backward matmul: factor ~2); LoRA
 *   factors need activation and weight gradients (factor ~3).
 *   Where real training steps were timed (fedspine/traincal.ts: a train.json
 *   for this hardware and model at this batch, seqLen and LoRA targets),
 *   fwdFull = the file's median base forward, both factors are its fit, and
 *   its roundOverheadMs is added once per round (rounds.ts).
 *
 * Memory (memoryBytes), [assumption] no activation checkpointing:
 *   weights(p) = params kept x weightBytes (the base model stays in storage,
 *     only the pruned model is resident);
 *   activations(b, L, p) = b L layers (4h + 2 Hk d + 2 KVk d + 3 Fk) x actBytes
 *     (inputs of each matmul, q/k/v, attention output, FFN gate/up/act)
 *     + b Hk L^2 x actBytes per layer (softmax probabilities)
 *     + logits b x logitPositions x V x 4 (fp32 for the loss);
 *   LoRA: params x loraBytesPerParam (default 16: fp32 weight, grad, two Adam moments);
 *   plus reservedBytes (runtime, CUDA context, OS).
 *   Feasible when the total <= the device's memoryBytes.
 *
 * Bytes (loraParams / loraWireBytes): r (d_in + d_out) per adapted matrix,
 * with the pruned side shrunk (q: d_out = Hk d; o: d_in = Hk d; gate/up:
 * d_out = Fk; down: d_in = Fk), times wireBytesPerElem (2 fp16, 4 fp32).
 */
import { InputError } from '../core/errors.js';
import { makeSplitPlan } from '../model/catalog.js';
import type { ModelSpec } from '../model/types.js';
import { resolveLatency } from '../compute/resolve.js';
import type { LatencySource } from '../compute/types.js';
import { loadTrainCalibration, medianForwardMs, trainCalPath } from './traincal.js';

export const LORA_TARGETS = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

export interface TrainingOptions {
  /** Sequences per local step. */
  batch: number;
  /** Tokens per sequence. */
  seqLen: number;
  /** Positions per sequence whose logits enter the loss: 'all' (language modelling) or 'last' (classification) [assumption: all]. */
  logits: 'all' | 'last';
  /** Matrices that carry a LoRA adapter [assumption: q, v]. */
  loraTargets: readonly LoraTarget[];
  /** (forward + backward) / forward for frozen weights [assumption: 2]. */
  frozenStepFactor: number;
  /** (forward + backward) / forward for the LoRA factors [assumption: 3]. */
  loraStepFactor: number;
  /** Device memory per LoRA parameter: weight, gradient, optimizer state [assumption: 16 = 4 fp32 copies, Adam]. */
  loraBytesPerParam: number;
  /** Bytes per LoRA element on the wire: 2 (fp16) or 4 (fp32). */
  wireBytesPerElem: 2 | 4;
  /** Memory that training cannot use (runtime, CUDA context, OS) [assumption: 1 GiB]. */
  reservedBytes: number;
}

export const DEFAULT_TRAINING: TrainingOptions = {
  batch: 8,
  seqLen: 128,
  logits: 'all',
  loraTargets: ['q', 'v'],
  frozenStepFactor: 2,
  loraStepFactor: 3,
  loraBytesPerParam: 16,
  wireBytesPerElem: 2,
  reservedBytes: 1024 ** 3,
};

/** Kept structures of one decoder layer. */
export interface LayerKeep {
  heads: number;
  kvHeads: number;
  ffn: number;
}

export interface PrunedStructure {
  ratio: number;
  layers: LayerKeep[];
}

function checkRatio(p: number, field: string): void {
  if (!(p >= 0 && p < 1) || !Number.isFinite(p)) {
    throw new InputError(`${field} = ${String(p)} is outside its range: a pruning ratio must be a number in [0, 1)`, field);
  }
}

/** The kept heads and FFN channels per layer for ratio p (or per-layer ratios). */
export function pruneStructure(model: ModelSpec, ratio: number, perLayerRatios?: readonly number[]): PrunedStructure {
  checkRatio(ratio, 'ratio');
  if (perLayerRatios !== undefined && perLayerRatios.length !== model.numLayers) {
    throw new InputError(`perLayerRatios has ${perLayerRatios.length} entries; model ${model.id} has ${model.numLayers} layers: give one ratio per layer`, 'perLayerRatios');
  }
  const group = model.numHeads / model.numKvHeads;
  const layers: LayerKeep[] = [];
  for (let l = 0; l < model.numLayers; l++) {
    const p = perLayerRatios?.[l] ?? ratio;
    checkRatio(p, `perLayerRatios[${l}]`);
    const kvHeads = Math.max(1, Math.round(model.numKvHeads * (1 - p)));
    layers.push({ heads: kvHeads * group, kvHeads, ffn: Math.max(1, Math.round(model.intermediateSize * (1 - p))) });
  }
  return { ratio, layers };
}

/** (d_in, d_out) of an adapted matrix in a layer with these kept structures. */
function matrixDims(model: ModelSpec, keep: LayerKeep, target: LoraTarget): [number, number] {
  const h = model.hiddenSize, d = h / model.numHeads;
  switch (target) {
    case 'q': return [h, keep.heads * d];
    case 'k': return [h, keep.kvHeads * d];
    case 'v': return [h, keep.kvHeads * d];
    case 'o': return [keep.heads * d, h];
    case 'gate': return [h, keep.ffn];
    case 'up': return [h, keep.ffn];
    case 'down': return [keep.ffn, h];
    default: {
      const never: never = target;
      throw new InputError(`unknown LoRA target "${String(never)}"; allowed: ${LORA_TARGETS.join(', ')}`, 'loraTargets');
    }
  }
}

/** Frozen matmul parameters of one layer with these kept structures (q, k, v, o, gate, up, down). */
function layerMatmulParams(model: ModelSpec, keep: LayerKeep): number {
  const h = model.hiddenSize, d = h / model.numHeads;
  return h * (2 * keep.heads * d + 2 * keep.kvHeads * d) + 3 * h * keep.ffn;
}

/** LoRA parameters of rank r over the adapted matrices of the (pruned) model. */
export function loraParams(model: ModelSpec, s: PrunedStructure, rank: number, targets: readonly LoraTarget[]): number {
  let n = 0;
  for (const keep of s.layers) for (const t of targets) { const [i, o] = matrixDims(model, keep, t); n += rank * (i + o); }
  return n;
}

/** Bytes of one LoRA state/update on the wire: loraParams x wireBytesPerElem. */
export function loraWireBytes(model: ModelSpec, s: PrunedStructure, rank: number, opts: Pick<TrainingOptions, 'loraTargets' | 'wireBytesPerElem'>): number {
  return loraParams(model, s, rank, opts.loraTargets) * opts.wireBytesPerElem;
}

/** Resident weight parameters of the pruned model (embedding, norms, layers kept, final norm, LM head). */
export function weightParams(model: ModelSpec, s: PrunedStructure): number {
  const h = model.hiddenSize;
  let n = 2 * model.vocabSize * h + h; // embedding + LM head + final norm
  for (const keep of s.layers) n += layerMatmulParams(model, keep) + 2 * h;
  return n;
}

function logitPositions(opts: TrainingOptions): number {
  return opts.logits === 'all' ? opts.seqLen : 1;
}

/** Forward FLOPs of one step: frozen part and LoRA part. */
export function forwardFlops(model: ModelSpec, s: PrunedStructure, rank: number, opts: TrainingOptions): { frozen: number; lora: number } {
  const tokens = opts.batch * opts.seqLen;
  const d = model.hiddenSize / model.numHeads;
  let frozen = 2 * model.vocabSize * model.hiddenSize * opts.batch * logitPositions(opts);
  for (const keep of s.layers) {
    frozen += 2 * layerMatmulParams(model, keep) * tokens;
    // QK^T and AV over a causal L x L: 4 Hk d per (token, context token) pair, half the square.
    frozen += 4 * keep.heads * d * opts.batch * (opts.seqLen * opts.seqLen) / 2;
  }
  return { frozen, lora: 2 * loraParams(model, s, rank, opts.loraTargets) * tokens };
}

export interface MemoryBreakdown {
  weightsBytes: number;
  activationsBytes: number;
  loraBytes: number;
  reservedBytes: number;
  totalBytes: number;
}

export function memoryBytes(model: ModelSpec, s: PrunedStructure, rank: number, opts: TrainingOptions): MemoryBreakdown {
  const h = model.hiddenSize, d = h / model.numHeads, a = model.activationBytesPerElem;
  const b = opts.batch, L = opts.seqLen;
  let act = 0;
  for (const keep of s.layers) {
    act += b * L * (4 * h + 2 * keep.heads * d + 2 * keep.kvHeads * d + 3 * keep.ffn) * a;
    act += b * keep.heads * L * L * a;
  }
  act += b * logitPositions(opts) * model.vocabSize * 4;
  const weightsBytes = weightParams(model, s) * model.weightBytesPerElem;
  const loraBytes = loraParams(model, s, rank, opts.loraTargets) * opts.loraBytesPerParam;
  return { weightsBytes, activationsBytes: act, loraBytes, reservedBytes: opts.reservedBytes, totalBytes: weightsBytes + act + loraBytes + opts.reservedBytes };
}

export interface ConfigCost {
  ratio: number;
  rank: number;
  stepMs: number;
  memory: MemoryBreakdown;
  feasible: boolean;
  /** LoRA state/update bytes on the wire. */
  loraWireBytes: number;
}

/** Cost model of one device kind (hardware, model, training options). */
export interface DeviceCostModel {
  readonly hardwareId: string;
  readonly memoryCapacityBytes: number;
  /** Forward of the unpruned model over one step's batch (ms). */
  readonly fullForwardMs: number;
  readonly latencySource: LatencySource;
  /** The training calibration file used (fullForwardMs, step factors, round overhead), or null (forward calibration/roofline + training options). */
  readonly trainCalibration: string | null;
  /** Fixed training time per round beyond its steps (ms): 0 unless a training calibration measured it. */
  readonly roundOverheadMs: number;
  cost(ratio: number, rank: number): ConfigCost;
}

export interface DeviceCostOptions {
  hardwareId: string;
  memoryCapacityBytes: number;
  model: ModelSpec;
  training: TrainingOptions;
  calibrationDir: string;
}

function checkRank(rank: number): void {
  if (!Number.isInteger(rank) || rank < 1) throw new InputError(`rank = ${String(rank)} is outside its range: a LoRA rank must be an integer >= 1`, 'rank');
}

export function deviceCostModel(o: DeviceCostOptions): DeviceCostModel {
  const { model, training } = o;
  const b = training.batch, L = training.seqLen;
  // A training calibration of this shape (real timed steps, traincal.ts) replaces the forward model and the [assumption] factors.
  const tc = loadTrainCalibration(o.calibrationDir, o.hardwareId, model.id);
  const tcFits = tc !== null && tc.batch === b && tc.seqLen === L && [...tc.loraTargets].sort().join(',') === [...training.loraTargets].sort().join(',');
  let fullForwardMs: number, latencySource: LatencySource;
  let frozenStepFactor = training.frozenStepFactor, loraStepFactor = training.loraStepFactor, roundOverheadMs = 0;
  if (tcFits) {
    fullForwardMs = medianForwardMs(tc.points);
    latencySource = 'measured';
    frozenStepFactor = tc.fit.frozenStepFactor;
    loraStepFactor = tc.fit.loraStepFactor;
    roundOverheadMs = tc.roundOverheadMs;
  } else {
    const plan = makeSplitPlan(model, 1, 1, 'attention-block');
    const lat = resolveLatency({ hardwareId: o.hardwareId, model, plan, calibrationDir: o.calibrationDir, required: ['embedding', 'decoderLayer', 'lmHead'] });
    const full = lat.submodel('full');
    // b sequences of L new tokens, no past context: the causal L x L attention is the tokSq/2 term.
    const shape = { seqs: b, tokens: b * L, tokCtx: 0, ctx: 0, tokSq: b * L * L };
    fullForwardMs = full.batchMs(shape, b * logitPositions(training));
    latencySource = full.source;
  }
  const fullStructure = pruneStructure(model, 0);
  const f0 = forwardFlops(model, fullStructure, 1, training).frozen;
  const cache = new Map<string, ConfigCost>();
  return {
    hardwareId: o.hardwareId,
    memoryCapacityBytes: o.memoryCapacityBytes,
    fullForwardMs,
    latencySource,
    trainCalibration: tcFits ? trainCalPath(o.calibrationDir, o.hardwareId, model.id) : null,
    roundOverheadMs,
    cost(ratio: number, rank: number): ConfigCost {
      checkRatio(ratio, 'ratio');
      checkRank(rank);
      const key = `${ratio}/${rank}`;
      const hit = cache.get(key);
      if (hit !== undefined) return hit;
      const s = pruneStructure(model, ratio);
      const w = forwardFlops(model, s, rank, training);
      const stepMs = fullForwardMs * (frozenStepFactor * w.frozen + loraStepFactor * w.lora) / f0;
      const memory = memoryBytes(model, s, rank, training);
      const c: ConfigCost = { ratio, rank, stepMs, memory, feasible: memory.totalBytes <= o.memoryCapacityBytes, loraWireBytes: loraWireBytes(model, s, rank, training) };
      if (cache.size < 4096) cache.set(key, c);
      return c;
    },
  };
}

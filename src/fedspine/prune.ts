/**
 * Structured pruning decisions from LoRA gradients (pure: the live runner
 * uses it on real tensors; the simulator only needs the counts, cost.ts).
 * Our reconstruction [assumption throughout]:
 *
 * - Importance of an output row of an adapted matrix = first-order Taylor
 *   score of its LoRA factor B: sum_k |dL/dB[row, k] x B[row, k]|; of an
 *   input column = the same over A's column. Heads: the rows of q (and k, v
 *   when adapted) and the columns of o that belong to the head; with GQA the
 *   unit is the KV group (its query heads together). FFN channel j: row j of
 *   gate/up, column j of down.
 * - Scores are smoothed over local iterations by an exponential moving
 *   average (ImportanceTracker, beta = 0.9 by default).
 * - A pruning step keeps the highest-scoring units of each layer (count from
 *   cost.ts's pruneStructure, so time, memory and bytes agree with the
 *   decision); units pruned earlier stay pruned while the ratio grows;
 *   ties keep the lower index.
 * - pruneMasks gives, per adapted matrix, the kept input columns / output
 *   rows, the masks aggregate.ts takes.
 */
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import { pruneStructure, type LoraTarget } from './cost.js';

/** Per-row Taylor score of a LoRA B factor (dOut x rank, row-major). */
export function rowScores(grad: Float32Array, b: Float32Array, dOut: number, rank: number): Float64Array {
  if (grad.length !== dOut * rank || b.length !== dOut * rank) throw new InputError(`rowScores: expected ${dOut}x${rank} tensors, got ${grad.length} and ${b.length} elements`, 'lora');
  const out = new Float64Array(dOut);
  for (let row = 0; row < dOut; row++) { let s = 0; for (let k = 0; k < rank; k++) s += Math.abs(grad[row * rank + k] * b[row * rank + k]); out[row] = s; }
  return out;
}

/** Per-column Taylor score of a LoRA A factor (rank x dIn, row-major). */
export function columnScores(grad: Float32Array, a: Float32Array, rank: number, dIn: number): Float64Array {
  if (grad.length !== rank * dIn || a.length !== rank * dIn) throw new InputError(`columnScores: expected ${rank}x${dIn} tensors, got ${grad.length} and ${a.length} elements`, 'lora');
  const out = new Float64Array(dIn);
  for (let k = 0; k < rank; k++) for (let c = 0; c < dIn; c++) out[c] += Math.abs(grad[k * dIn + c] * a[k * dIn + c]);
  return out;
}

/** Sum consecutive blocks of `size` entries: rows -> heads (size = head dim), heads -> KV groups. */
export function groupSums(scores: ArrayLike<number>, size: number): Float64Array {
  if (!(size >= 1) || scores.length % size !== 0) throw new InputError(`groupSums: ${scores.length} scores do not split into groups of ${size}`, 'lora');
  const out = new Float64Array(scores.length / size);
  for (let i = 0; i < scores.length; i++) out[Math.floor(i / size)] += scores[i];
  return out;
}

/** Exponential moving average of per-unit scores over local iterations, per layer. */
export class ImportanceTracker {
  private readonly ema: Float64Array[];
  private readonly seen: boolean[];
  constructor(layers: number, readonly units: number, readonly beta = 0.9) {
    if (!(beta >= 0 && beta < 1)) throw new InputError(`importance smoothing beta must be in [0, 1), got ${beta}`, 'beta');
    this.ema = Array.from({ length: layers }, () => new Float64Array(units));
    this.seen = new Array<boolean>(layers).fill(false);
  }
  observe(layer: number, scores: ArrayLike<number>): void {
    if (scores.length !== this.units) throw new InputError(`layer ${layer}: ${scores.length} scores, expected ${this.units}`, 'scores');
    const e = this.ema[layer];
    if (!this.seen[layer]) { for (let i = 0; i < e.length; i++) e[i] = scores[i]; this.seen[layer] = true; return; }
    for (let i = 0; i < e.length; i++) e[i] = this.beta * e[i] + (1 - this.beta) * scores[i];
  }
  scores(layer: number): Float64Array { return this.ema[layer]; }
}

/**
 * Keep `keep` units: those pruned before stay pruned, then the highest scores
 * (ties: lower index). Returns a 0/1 mask of the units.
 */
export function keepTop(scores: ArrayLike<number>, keep: number, prunedBefore?: Uint8Array): Uint8Array {
  const n = scores.length;
  if (!Number.isInteger(keep) || keep < 1 || keep > n) throw new InputError(`keepTop: keep = ${keep} must be an integer in [1, ${n}]`, 'keep');
  const order = Array.from({ length: n }, (_, i) => i)
    .filter((i) => !(prunedBefore && prunedBefore[i] === 1))
    .sort((a, b) => scores[b] - scores[a] || a - b);
  const mask = new Uint8Array(n);
  for (const i of order.slice(0, keep)) mask[i] = 1;
  return mask;
}

export interface LayerMasks {
  /** Kept KV groups (length numKvHeads) and FFN channels (length intermediateSize). */
  kvGroups: Uint8Array;
  ffn: Uint8Array;
}

/** Decide one layer's kept units for ratio p from smoothed group and channel scores. */
export function decideLayer(model: ModelSpec, ratio: number, groupScores: ArrayLike<number>, ffnScores: ArrayLike<number>, before?: LayerMasks): LayerMasks {
  const keep = pruneStructure(model, ratio).layers[0];
  const prunedG = before ? before.kvGroups.map((x) => 1 - x) : undefined;
  const prunedF = before ? before.ffn.map((x) => 1 - x) : undefined;
  // A ratio lower than before restores units (from the base model): then no unit is forced out.
  const shrinking = before !== undefined && keep.kvHeads <= before.kvGroups.reduce((s, x) => s + x, 0);
  const shrinkingF = before !== undefined && keep.ffn <= before.ffn.reduce((s, x) => s + x, 0);
  return {
    kvGroups: keepTop(groupScores, keep.kvHeads, shrinking ? prunedG : undefined),
    ffn: keepTop(ffnScores, keep.ffn, shrinkingF ? prunedF : undefined),
  };
}

/** In/out masks of an adapted matrix for a layer's kept units (undefined = all kept). */
export function pruneMasks(model: ModelSpec, m: LayerMasks, target: LoraTarget): { inMask?: Uint8Array; outMask?: Uint8Array } {
  const d = model.hiddenSize / model.numHeads, group = model.numHeads / model.numKvHeads;
  const heads = (per: number): Uint8Array => {
    // per = rows per KV group: d x group for q / o, d for k / v.
    const out = new Uint8Array(m.kvGroups.length * per);
    for (let g = 0; g < m.kvGroups.length; g++) if (m.kvGroups[g]) out.fill(1, g * per, (g + 1) * per);
    return out;
  };
  switch (target) {
    case 'q': return { outMask: heads(d * group) };
    case 'k': case 'v': return { outMask: heads(d) };
    case 'o': return { inMask: heads(d * group) };
    case 'gate': case 'up': return { outMask: m.ffn.slice() };
    case 'down': return { inMask: m.ffn.slice() };
    default: {
      const never: never = target;
      throw new InputError(`unknown LoRA target ${String(never)}`, 'loraTargets');
    }
  }
}

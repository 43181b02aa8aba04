/**
 * A pruned LLaMA-family model in the catalog's terms: which decoder layers
 * are kept and each kept layer's FFN width (what `hatsim prune` writes in
 * pruning.json). Attention is never pruned, so sizes, FLOPs and KV bytes
 * follow from the base model per layer. Everything here is linear in the FFN
 * width, so the "equivalent" ModelSpec (numLayers = kept layers,
 * intermediateSize = mean kept width, possibly fractional) gives exactly the
 * per-layer sums of params, bytes, FLOPs and KV bytes wherever a ModelSpec is
 * used; a roofline (max of compute and memory time per layer) equals the
 * per-layer sum when all kept layers are in the same regime (e.g. decode).
 */
import { InputError } from '../core/errors.js';
import { componentSize } from './catalog.js';
import type { ComponentSize, ModelSpec } from './types.js';

export interface PruningSpec {
  /** Original indices of the kept decoder layers, ascending. */
  layersKept: number[];
  /** FFN width of each kept layer (same order). */
  ffnWidths: number[];
}

/** Validate a pruning description against its base model (InputError naming the field). */
export function checkPruning(model: ModelSpec, p: PruningSpec, where = 'pruning'): PruningSpec {
  const { layersKept, ffnWidths } = p;
  if (!Array.isArray(layersKept) || layersKept.length === 0) throw new InputError(`${where}.layersKept must list at least one kept layer`, `${where}.layersKept`);
  if (!Array.isArray(ffnWidths) || ffnWidths.length !== layersKept.length) {
    throw new InputError(`${where}.ffnWidths must have one width per kept layer (${layersKept.length})`, `${where}.ffnWidths`);
  }
  layersKept.forEach((l, i) => {
    if (!Number.isInteger(l) || l < 0 || l >= model.numLayers || (i > 0 && l <= layersKept[i - 1])) {
      throw new InputError(`${where}.layersKept[${i}] = ${String(l)}: indices must be ascending integers in [0, ${model.numLayers}) for ${model.id}`, `${where}.layersKept`);
    }
  });
  ffnWidths.forEach((f, i) => {
    if (!Number.isInteger(f) || f < 1 || f > model.intermediateSize) {
      throw new InputError(`${where}.ffnWidths[${i}] = ${String(f)}: must be an integer in [1, ${model.intermediateSize}] for ${model.id}`, `${where}.ffnWidths`);
    }
  });
  return p;
}

/** The pruning description in a `hatsim prune` pruning.json object. */
export function pruningFromJson(model: ModelSpec, json: unknown, where = 'pruning.json'): PruningSpec {
  const o = json as { layersKept?: unknown; ffnWidths?: unknown } | null;
  if (!o || typeof o !== 'object') throw new InputError(`${where}: expected an object with layersKept and ffnWidths`, where);
  return checkPruning(model, { layersKept: o.layersKept as number[], ffnWidths: o.ffnWidths as number[] }, where);
}

/** One kept decoder layer of FFN width `ffn`. */
export function prunedLayerSize(model: ModelSpec, ffn: number): ComponentSize {
  return componentSize({ ...model, intermediateSize: ffn }, 'decoderLayer');
}

/** Sum over kept layers of their sizes (params, bytes, FLOPs, KV bytes per token). */
export function prunedDecoderSize(model: ModelSpec, p: PruningSpec): ComponentSize {
  const total: ComponentSize = { params: 0, weightBytes: 0, flopsPerToken: 0, attnFlopsPerTokenCtx: 0, kvBytesPerToken: 0 };
  for (const f of p.ffnWidths) {
    const s = prunedLayerSize(model, f);
    total.params += s.params;
    total.weightBytes += s.weightBytes;
    total.flopsPerToken += s.flopsPerToken;
    total.attnFlopsPerTokenCtx += s.attnFlopsPerTokenCtx;
    total.kvBytesPerToken += s.kvBytesPerToken;
  }
  return total;
}

/** Whole pruned model: embedding + kept layers + LM head. */
export function prunedTotalParams(model: ModelSpec, p: PruningSpec): number {
  return componentSize(model, 'embedding').params + prunedDecoderSize(model, p).params + componentSize(model, 'lmHead').params;
}

/** Memory a device needs for the whole model: weights + KV cache of `kvTokens` tokens. */
export function modelMemoryBytes(model: ModelSpec, p: PruningSpec | null, kvTokens: number): number {
  const dec = p ? prunedDecoderSize(model, p) : { weightBytes: model.numLayers * componentSize(model, 'decoderLayer').weightBytes, kvBytesPerToken: model.numLayers * componentSize(model, 'decoderLayer').kvBytesPerToken };
  return componentSize(model, 'embedding').weightBytes + dec.weightBytes + componentSize(model, 'lmHead').weightBytes + dec.kvBytesPerToken * kvTokens;
}

/**
 * The equivalent ModelSpec: kept layer count, mean FFN width (fractional in
 * general). Per-layer sizes are linear in the width, so its totals equal the
 * per-layer sums exactly; build ONNX graphs from the real widths, not from it.
 */
export function prunedModelSpec(model: ModelSpec, p: PruningSpec, id = `${model.id}-pruned`): ModelSpec {
  checkPruning(model, p);
  const mean = p.ffnWidths.reduce((a, b) => a + b, 0) / p.ffnWidths.length;
  const kept = p.layersKept.length;
  return { ...model, id, name: `${model.name} pruned (${kept}/${model.numLayers} layers, mean FFN ${mean.toFixed(1)})`, numLayers: kept, intermediateSize: mean };
}

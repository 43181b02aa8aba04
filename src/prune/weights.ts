/**
 * The weights of a LLaMA-shaped model, one decoder layer at a time, in the
 * ONNX MatMul layout (y = x W, W is [in, out]):
 *   q [H, H], k [H, kvH*D], v [H, kvH*D], o [H, H],
 *   gate [H, F], up [H, F] (FFN neuron j = column j), down [F, H] (neuron j = row j),
 *   inputNorm [H], postNorm [H]; embedding [V, H]; finalNorm [H]; lmHead [H, V].
 * F (the FFN width) may differ per layer (a pruned model).
 */
import { Rng } from '../core/rng.js';
import type { ModelSpec } from '../model/types.js';

export interface LayerWeights {
  inputNorm: Float32Array;
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  o: Float32Array;
  postNorm: Float32Array;
  gate: Float32Array;
  up: Float32Array;
  down: Float32Array;
  /** FFN width of this layer. */
  ffn: number;
}

export interface ArchDims {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  /** RMSNorm epsilon and RoPE base, as in calibrate/graph.ts. */
  rmsEps: number;
  ropeTheta: number;
}

/** Where the pruner reads a model from; layers are read one at a time (bounded memory). */
export interface ModelSource {
  readonly description: string;
  readonly dims: ArchDims;
  readonly numLayers: number;
  /** FFN width of each layer (without reading its weights). */
  ffnWidths(): number[];
  layer(i: number): LayerWeights;
  embedding(): Float32Array;
  finalNorm(): Float32Array;
  lmHead(): Float32Array;
}

export function archOf(model: ModelSpec): ArchDims {
  return {
    hidden: model.hiddenSize,
    heads: model.numHeads,
    kvHeads: model.numKvHeads,
    headDim: model.hiddenSize / model.numHeads,
    vocab: model.vocabSize,
    rmsEps: 1e-5,
    ropeTheta: 10000,
  };
}

/** Parameters of one decoder layer with FFN width `ffn`. */
export function layerParams(d: ArchDims, ffn: number): number {
  const kv = d.kvHeads * d.headDim;
  return d.hidden * (2 * d.hidden + 2 * kv) + 3 * d.hidden * ffn + 2 * d.hidden;
}

function gaussian(rng: Rng, count: number, std: number): Float32Array {
  const a = new Float32Array(count);
  for (let i = 0; i < count; i++) a[i] = rng.normal() * std;
  return a;
}

/**
 * A catalog model with seeded Gaussian weights [assumption: N(0, 1/fan_in)
 * projections, N(0, 1) embedding, unit norm weights], each layer drawn from
 * its own stream so any layer can be re-read without the others.
 */
export class SeededSource implements ModelSource {
  readonly dims: ArchDims;
  readonly numLayers: number;
  readonly description: string;
  constructor(readonly model: ModelSpec, readonly seed: number) {
    this.dims = archOf(model);
    this.numLayers = model.numLayers;
    this.description = `${model.id} with seeded weights (seed ${seed})`;
  }
  ffnWidths(): number[] {
    return new Array<number>(this.numLayers).fill(this.model.intermediateSize);
  }
  layer(i: number): LayerWeights {
    const d = this.dims;
    const h = d.hidden;
    const kv = d.kvHeads * d.headDim;
    const f = this.model.intermediateSize;
    const rng = new Rng(this.seed, `prune/weights/layer/${i}`);
    const sh = 1 / Math.sqrt(h);
    return {
      inputNorm: new Float32Array(h).fill(1),
      q: gaussian(rng, h * h, sh),
      k: gaussian(rng, h * kv, sh),
      v: gaussian(rng, h * kv, sh),
      o: gaussian(rng, h * h, sh),
      postNorm: new Float32Array(h).fill(1),
      gate: gaussian(rng, h * f, sh),
      up: gaussian(rng, h * f, sh),
      down: gaussian(rng, f * h, 1 / Math.sqrt(f)),
      ffn: f,
    };
  }
  embedding(): Float32Array {
    return gaussian(new Rng(this.seed, 'prune/weights/embedding'), this.dims.vocab * this.dims.hidden, 1);
  }
  finalNorm(): Float32Array {
    return new Float32Array(this.dims.hidden).fill(1);
  }
  lmHead(): Float32Array {
    return gaussian(new Rng(this.seed, 'prune/weights/lm_head'), this.dims.hidden * this.dims.vocab, 1 / Math.sqrt(this.dims.hidden));
  }
}

/** A model held in memory (tests, planted structure). */
export class MemorySource implements ModelSource {
  readonly numLayers: number;
  constructor(
    readonly dims: ArchDims,
    readonly layers: LayerWeights[],
    readonly emb: Float32Array,
    readonly norm: Float32Array,
    readonly head: Float32Array,
    readonly description = 'in-memory model',
  ) {
    this.numLayers = layers.length;
  }
  ffnWidths(): number[] {
    return this.layers.map((l) => l.ffn);
  }
  layer(i: number): LayerWeights {
    return this.layers[i];
  }
  embedding(): Float32Array {
    return this.emb;
  }
  finalNorm(): Float32Array {
    return this.norm;
  }
  lmHead(): Float32Array {
    return this.head;
  }
}

/** Copy every layer of a source into memory (small models only). */
export function toMemory(src: ModelSource): MemorySource {
  const layers: LayerWeights[] = [];
  for (let i = 0; i < src.numLayers; i++) layers.push(src.layer(i));
  return new MemorySource(src.dims, layers, src.embedding(), src.finalNorm(), src.lmHead(), src.description);
}

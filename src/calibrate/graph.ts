/**
 * ONNX graph builder for the calibration parts of a LLaMA-family model, at
 * the model's real dimensions, with seeded random weights (no downloads).
 *
 * Graph shapes follow what real ONNX exports of LLaMA-family models use
 * (onnxruntime-genai builder style):
 *   - embedding:     input_ids int64 [B,S] -> Gather -> hidden_states_out f32 [B,S,H]
 *   - decoder layer: hidden_states f32 [B,S,H], past_key_values.<i>.key/value f32
 *                    [B,kvH,P,D] (BNSH), seqlens_k int32 [B] (= P+S-1),
 *                    total_sequence_length int32 scalar (= P+S)
 *                    -> hidden_states_out [B,S,H], present.<i>.key/value [B,kvH,P+S,D]
 *   - adapter:       one attention block + RMSNorm, same inputs/outputs as one layer
 *   - lmHead:        hidden_states [B,S,H] -> RMSNorm -> MatMul -> logits [B,S,V]
 *
 * Operators ("fused" variant, the default): opset-23 RMSNormalization,
 * com.microsoft SkipSimplifiedLayerNormalization (post-attention norm + residual),
 * packed QKV MatMul, com.microsoft GroupQueryAttention with do_rotary=1 (rotary
 * embedding and causal attention over past + new tokens, GQA), SwiGLU MLP
 * (MatMul, Sigmoid, Mul). The "standard" variant uses only plain ONNX ops
 * (opset 17 style: ReduceMean/Sqrt normalisation, explicit rotary with
 * Gather/Slice/Concat, Concat of past KV, MatMul/Softmax attention with a
 * causal mask, Expand for GQA) for runtimes without the contrib ops.
 *
 * Weights are fp32 (CPU execution provider). They are stored as ONNX external
 * data in a sidecar file so that parts above the 2 GB protobuf cap (several
 * 7B layers) load, and so that memory stays at about one copy of the weights.
 */
import { closeSync, mkdirSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import type { ModelSpec } from '../model/types.js';

const { onnx } = onnxProto;

export type PartId = 'embedding' | 'decoderLayer' | 'adapter' | 'lmHead';
export const PART_IDS: readonly PartId[] = ['embedding', 'decoderLayer', 'adapter', 'lmHead'];
export type GraphVariant = 'fused' | 'standard';

/** Operators a part's graph uses (recorded in meta.notes). */
export function opsNote(part: PartId, variant: GraphVariant): string {
  if (part === 'embedding') return 'Gather';
  const norm = variant === 'fused' ? 'opset-23 RMSNormalization' : 'ReduceMean/Sqrt RMSNorm';
  if (part === 'lmHead') return `${norm} + MatMul`;
  return OPS_USED[variant];
}

export const OPS_USED: Record<GraphVariant, string> = {
  fused:
    'fused ops: com.microsoft GroupQueryAttention (do_rotary=1, packed QKV), com.microsoft SkipSimplifiedLayerNormalization, ' +
    'opset-23 RMSNormalization, SwiGLU via MatMul/Sigmoid/Mul',
  standard:
    'standard ops only: ReduceMean/Sqrt RMSNorm, Gather/Slice/Concat rotary, Concat past KV, MatMul/Softmax causal attention, ' +
    'Expand for GQA, SwiGLU via MatMul/Sigmoid/Mul',
};

/** Input/output names of the graphs (also the contract for user --onnx-dir exports). */
export const IO = {
  inputIds: 'input_ids',
  hidden: 'hidden_states',
  hiddenOut: 'hidden_states_out',
  logits: 'logits',
  seqlensK: 'seqlens_k',
  totalSeqLen: 'total_sequence_length',
  pastKey: (i: number): string => `past_key_values.${i}.key`,
  pastValue: (i: number): string => `past_key_values.${i}.value`,
  presentKey: (i: number): string => `present.${i}.key`,
  presentValue: (i: number): string => `present.${i}.value`,
} as const;

export interface BuildOptions {
  model: ModelSpec;
  part: PartId;
  /** Stacked decoder layers (decoderLayer only; 1 otherwise). */
  layers?: number;
  variant?: GraphVariant;
  /** Seed of the random weights. */
  seed?: number;
  /** Directory to write `<name>.onnx` and its external-data file into. */
  dir: string;
  /**
   * Trained weights instead of seeded ones: called with each initialiser's
   * name and dims (as in the seeded graph, e.g. `l0.attn.qkv.weight` [H, H+2*kvDim]);
   * must return exactly that many floats.
   */
  weights?: WeightProvider;
  /** File base name (default `<model>.<part>[.x<layers>].<variant>`). */
  name?: string;
}

export type WeightProvider = (name: string, dims: number[]) => Float32Array;

export interface BuiltGraph {
  path: string;
  part: PartId;
  layers: number;
  variant: GraphVariant;
  weightBytes: number;
  /** Number of attention blocks with a KV cache (0 for embedding / lmHead). */
  kvLayers: number;
}

const F32 = onnx.TensorProto.DataType.FLOAT;

/** An fp32 initializer whose `bytes` sit at `offset` of the external data file `dataFile` (ONNX external data). */
export function externalFp32Initializer(name: string, dims: number[], dataFile: string, offset: number, bytes: number): onnxProto.onnx.ITensorProto {
  return {
    name,
    dims,
    dataType: F32,
    dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
    externalData: [
      { key: 'location', value: dataFile },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(bytes) },
    ],
  };
}
const I64 = onnx.TensorProto.DataType.INT64;
const I32 = onnx.TensorProto.DataType.INT32;
const RMS_EPS = 1e-5;
const ROPE_THETA = 10000;

type Dim = number | string;

export function valueInfo(name: string, elemType: number, dims: Dim[]): onnxProto.onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

type AttrValue = number | number[] | string | { float: number };

function attr(name: string, v: AttrValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'object') return { name, type: T.FLOAT, f: v.float };
  return { name, type: T.INT, i: v };
}

/** Deterministic random pool; tensors are filled from it at a random offset (values do not affect timing). */
export class WeightSource {
  private readonly pool: Float32Array;
  private state: number;
  constructor(seed: number, poolSize = 1 << 20) {
    this.state = seed >>> 0 || 1;
    this.pool = new Float32Array(poolSize);
    for (let i = 0; i < poolSize; i++) this.pool[i] = (this.next() - 0.5) * 0.04;
  }
  next(): number {
    // xorshift32
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state / 4294967296;
  }
  /** Write `count` floats to fd in chunks. */
  writeTo(fd: number, count: number): void {
    let offset = Math.floor(this.next() * this.pool.length);
    let left = count;
    while (left > 0) {
      const take = Math.min(left, this.pool.length - offset);
      const view = this.pool.subarray(offset, offset + take);
      writeSync(fd, new Uint8Array(view.buffer, view.byteOffset, view.byteLength));
      left -= take;
      offset = 0;
    }
  }
}

export class GraphBuilder {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly inits: onnxProto.onnx.ITensorProto[] = [];
  readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  weightBytes = 0;
  private externalOffset = 0;
  private counter = 0;

  constructor(
    private readonly fd: number,
    private readonly dataFile: string,
    private readonly weights: WeightSource,
    private readonly provided?: WeightProvider,
  ) {}

  fresh(prefix: string): string {
    this.counter += 1;
    return `${prefix}_${this.counter}`;
  }

  node(opType: string, inputs: string[], outputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string[] {
    this.nodes.push({
      opType,
      domain,
      input: inputs,
      output: outputs,
      name: this.fresh(opType),
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v)),
    });
    return outputs;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain = ''): string {
    return this.node(opType, inputs, [this.fresh(opType.toLowerCase())], attrs, domain)[0];
  }

  /** Random fp32 weight stored as external data. */
  randomWeight(name: string, dims: number[], constant?: number): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const bytes = count * 4;
    if (this.provided) {
      const v = this.provided(name, dims);
      if (v.length !== count) throw new Error(`graph weights: ${name} needs ${count} floats (${dims.join('x')}), got ${v.length}`);
      writeSync(this.fd, new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    } else if (constant !== undefined) {
      const buf = new Float32Array(count).fill(constant);
      writeSync(this.fd, new Uint8Array(buf.buffer));
    } else {
      this.weights.writeTo(this.fd, count);
    }
    this.inits.push(externalFp32Initializer(name, dims, this.dataFile, this.externalOffset, bytes));
    this.externalOffset += bytes;
    this.weightBytes += bytes;
    return name;
  }

  floatConst(name: string, dims: number[], values: Float32Array): string {
    this.inits.push({ name, dims, dataType: F32, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) });
    return name;
  }

  int64Const(name: string, values: number[]): string {
    const arr = BigInt64Array.from(values.map((v) => BigInt(v)));
    this.inits.push({ name, dims: [values.length], dataType: I64, rawData: new Uint8Array(arr.buffer) });
    return name;
  }
}

/** Rotary cos/sin caches [maxPos, D/2]. */
export function rotaryCaches(maxPos: number, headDim: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxPos * half);
  const sin = new Float32Array(maxPos * half);
  for (let p = 0; p < maxPos; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p / Math.pow(ROPE_THETA, (2 * i) / headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

export interface Dims {
  h: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  inter: number;
  vocab: number;
  maxPos: number;
}

export function dimsOf(model: ModelSpec): Dims {
  return {
    h: model.hiddenSize,
    heads: model.numHeads,
    kvHeads: model.numKvHeads,
    headDim: model.hiddenSize / model.numHeads,
    inter: model.intermediateSize,
    vocab: model.vocabSize,
    // Positions up to 2 * 4096 so that a 2048-token chunk over 4096 context fits.
    maxPos: Math.max(model.maxContext, 4096) * 2,
  };
}

export function rmsNorm(g: GraphBuilder, variant: GraphVariant, x: string, weight: string): string {
  if (variant === 'fused') {
    return g.op('RMSNormalization', [x, weight], { axis: -1, epsilon: { float: RMS_EPS } });
  }
  const sq = g.op('Mul', [x, x]);
  const mean = g.op('ReduceMean', [sq], { axes: [-1], keepdims: 1 });
  const eps = g.floatConst(g.fresh('eps'), [], Float32Array.of(RMS_EPS));
  const rms = g.op('Sqrt', [g.op('Add', [mean, eps])]);
  return g.op('Mul', [g.op('Div', [x, rms]), weight]);
}

/**
 * Attention block: input RMSNorm, QKV, rotary, causal attention over past +
 * new tokens, output projection. Returns the attention output (before the
 * residual add) and declares the KV inputs/outputs of layer index `li`.
 */
function attentionBlock(g: GraphBuilder, d: Dims, variant: GraphVariant, x: string, li: number, caches: { cos: string; sin: string }): string {
  const kvDim = d.kvHeads * d.headDim;
  g.inputs.push(valueInfo(IO.pastKey(li), F32, ['batch', d.kvHeads, 'past_len', d.headDim]));
  g.inputs.push(valueInfo(IO.pastValue(li), F32, ['batch', d.kvHeads, 'past_len', d.headDim]));
  g.outputs.push(valueInfo(IO.presentKey(li), F32, ['batch', d.kvHeads, 'total_len', d.headDim]));
  g.outputs.push(valueInfo(IO.presentValue(li), F32, ['batch', d.kvHeads, 'total_len', d.headDim]));
  const normW = g.randomWeight(`l${li}.input_norm.weight`, [d.h], 1);
  const normed = rmsNorm(g, variant, x, normW);
  let attnOut: string;
  if (variant === 'fused') {
    const wqkv = g.randomWeight(`l${li}.attn.qkv.weight`, [d.h, d.h + 2 * kvDim]);
    const qkv = g.op('MatMul', [normed, wqkv]);
    attnOut = g.fresh('attn');
    g.node(
      'GroupQueryAttention',
      [qkv, '', '', IO.pastKey(li), IO.pastValue(li), IO.seqlensK, IO.totalSeqLen, caches.cos, caches.sin],
      [attnOut, IO.presentKey(li), IO.presentValue(li)],
      { num_heads: d.heads, kv_num_heads: d.kvHeads, do_rotary: 1 },
      'com.microsoft',
    );
  } else {
    attnOut = standardAttention(g, d, normed, li, caches);
  }
  const wo = g.randomWeight(`l${li}.attn.o.weight`, [d.h, d.h]);
  return g.op('MatMul', [attnOut, wo]);
}

/** Plain-op attention (opset 17): rotary, concat past, GQA by Expand, causal mask. */
function standardAttention(g: GraphBuilder, d: Dims, normed: string, li: number, caches: { cos: string; sin: string }): string {
  const kvDim = d.kvHeads * d.headDim;
  const half = d.headDim / 2;
  const wq = g.randomWeight(`l${li}.attn.q.weight`, [d.h, d.h]);
  const wk = g.randomWeight(`l${li}.attn.k.weight`, [d.h, kvDim]);
  const wv = g.randomWeight(`l${li}.attn.v.weight`, [d.h, kvDim]);
  const c = (name: string, vals: number[]): string => g.int64Const(g.fresh(name), vals);
  // shapes
  const shapeX = g.op('Shape', [normed]);
  const bIdx = g.op('Gather', [shapeX, c('i0', [0])], { axis: 0 });
  const sIdx = g.op('Gather', [shapeX, c('i1', [1])], { axis: 0 });
  const pastShape = g.op('Shape', [IO.pastKey(li)]);
  const pIdx = g.op('Gather', [pastShape, c('i2', [2])], { axis: 0 });
  // [B,S,N,D] -> [B,N,S,D]
  const split = (w: string, heads: number): string => {
    const y = g.op('MatMul', [normed, w]);
    const shp = g.op('Concat', [bIdx, sIdx, c('nh', [heads]), c('hd', [d.headDim])], { axis: 0 });
    return g.op('Transpose', [g.op('Reshape', [y, shp])], { perm: [0, 2, 1, 3] });
  };
  const q = split(wq, d.heads);
  const k = split(wk, d.kvHeads);
  const v = split(wv, d.kvHeads);
  // positions past..past+S-1 -> cos/sin [S, D/2]
  const total = g.op('Add', [pIdx, sIdx]);
  const pos = g.op('Range', [g.op('Squeeze', [pIdx, c('ax0', [0])]), g.op('Squeeze', [total, c('ax0', [0])]), g.int64Const(g.fresh('one'), [1])]);
  // Range needs scalars with the same type; Squeeze of a [1] int64 gives a scalar.
  const cosP = g.op('Gather', [caches.cos, pos], { axis: 0 });
  const sinP = g.op('Gather', [caches.sin, pos], { axis: 0 });
  const rotate = (t: string): string => {
    // non-interleaved (GPT-NeoX / HF LLaMA): x1 = t[..., :D/2], x2 = t[..., D/2:]
    const x1 = g.op('Slice', [t, c('s0', [0]), c('s1', [half]), c('s2', [-1])]);
    const x2 = g.op('Slice', [t, c('s0', [half]), c('s1', [d.headDim]), c('s2', [-1])]);
    const r1 = g.op('Sub', [g.op('Mul', [x1, cosP]), g.op('Mul', [x2, sinP])]);
    const r2 = g.op('Add', [g.op('Mul', [x2, cosP]), g.op('Mul', [x1, sinP])]);
    return g.op('Concat', [r1, r2], { axis: -1 });
  };
  const qr = rotate(q);
  const kr = rotate(k);
  g.node('Concat', [IO.pastKey(li), kr], [IO.presentKey(li)], { axis: 2 });
  g.node('Concat', [IO.pastValue(li), v], [IO.presentValue(li)], { axis: 2 });
  const group = d.heads / d.kvHeads;
  const expandKv = (t: string): string => {
    if (group === 1) return t;
    const tShape = g.op('Shape', [t]);
    const tLen = g.op('Gather', [tShape, c('i2', [2])], { axis: 0 });
    const u = g.op('Unsqueeze', [t, c('ax2', [2])]); // [B,kvH,1,T,D]
    const eShape = g.op('Concat', [bIdx, c('kvh', [d.kvHeads]), c('grp', [group]), tLen, c('hd', [d.headDim])], { axis: 0 });
    const e = g.op('Expand', [u, eShape]);
    const rShape = g.op('Concat', [bIdx, c('nh', [d.heads]), tLen, c('hd', [d.headDim])], { axis: 0 });
    return g.op('Reshape', [e, rShape]);
  };
  const kAll = expandKv(IO.presentKey(li));
  const vAll = expandKv(IO.presentValue(li));
  const scale = g.floatConst(g.fresh('scale'), [], Float32Array.of(1 / Math.sqrt(d.headDim)));
  const scores = g.op('Mul', [g.op('MatMul', [qr, g.op('Transpose', [kAll], { perm: [0, 1, 3, 2] })]), scale]);
  // causal mask: key j allowed for query i iff j <= past + i. mask[i,j] = (j - i > past) * -1e9
  const sScalar = g.op('Squeeze', [sIdx, c('ax0', [0])]);
  const tScalar = g.op('Squeeze', [total, c('ax0', [0])]);
  const zero = g.int64Const(g.fresh('zero'), [0]);
  const zeroS = g.op('Squeeze', [zero, c('ax0', [0])]);
  const oneS = g.op('Squeeze', [g.int64Const(g.fresh('one'), [1]), c('ax0', [0])]);
  const rows = g.op('Unsqueeze', [g.op('Add', [g.op('Range', [zeroS, sScalar, oneS]), pIdx]), c('ax1', [1])]); // [S,1]
  const cols = g.op('Range', [zeroS, tScalar, oneS]); // [T]
  const masked = g.op('Greater', [cols, rows]); // [S,T]
  const negInf = g.floatConst(g.fresh('neg'), [], Float32Array.of(-1e9));
  const zf = g.floatConst(g.fresh('zf'), [], Float32Array.of(0));
  const bias = g.op('Where', [masked, negInf, zf]);
  const probs = g.op('Softmax', [g.op('Add', [scores, bias])], { axis: -1 });
  const ctxOut = g.op('MatMul', [probs, vAll]); // [B,N,S,D]
  const merged = g.op('Transpose', [ctxOut], { perm: [0, 2, 1, 3] });
  const outShape = g.op('Concat', [bIdx, sIdx, c('hh', [d.h])], { axis: 0 });
  return g.op('Reshape', [merged, outShape]);
}

function mlp(g: GraphBuilder, d: Dims, x: string, li: number): string {
  const wg = g.randomWeight(`l${li}.mlp.gate.weight`, [d.h, d.inter]);
  const wu = g.randomWeight(`l${li}.mlp.up.weight`, [d.h, d.inter]);
  const wd = g.randomWeight(`l${li}.mlp.down.weight`, [d.inter, d.h]);
  const gate = g.op('MatMul', [x, wg]);
  const up = g.op('MatMul', [x, wu]);
  const act = g.op('Mul', [gate, g.op('Sigmoid', [gate])]);
  return g.op('MatMul', [g.op('Mul', [act, up]), wd]);
}

/** One decoder layer: x -> x + attn(norm(x)) -> h + mlp(norm(h)). */
export function decoderLayer(g: GraphBuilder, d: Dims, variant: GraphVariant, x: string, li: number, caches: { cos: string; sin: string }): string {
  const attn = attentionBlock(g, d, variant, x, li, caches);
  const postW = g.randomWeight(`l${li}.post_norm.weight`, [d.h], 1);
  let normed: string;
  let resid: string;
  if (variant === 'fused') {
    normed = g.fresh('post_norm');
    resid = g.fresh('resid');
    g.node('SkipSimplifiedLayerNormalization', [attn, x, postW], [normed, '', '', resid], { epsilon: { float: RMS_EPS } }, 'com.microsoft');
  } else {
    resid = g.op('Add', [attn, x]);
    normed = rmsNorm(g, variant, resid, postW);
  }
  return g.op('Add', [mlp(g, d, normed, li), resid]);
}

/** Bytes of fp32 weights a part holds (for memory checks before building). */
export function partWeightBytes(model: ModelSpec, part: PartId, layers = 1): number {
  const d = dimsOf(model);
  const kvDim = d.kvHeads * d.headDim;
  const attn = d.h * (d.h + 2 * kvDim) + d.h * d.h + d.h;
  const layer = attn + 3 * d.h * d.inter + d.h;
  const elems =
    part === 'embedding' ? d.vocab * d.h : part === 'lmHead' ? d.vocab * d.h + d.h : part === 'adapter' ? attn + d.h : layer * layers;
  return elems * 4;
}

/** Build a part and write it (model + external data) into opts.dir. */
export function buildPartGraph(opts: BuildOptions): BuiltGraph {
  const { model, part } = opts;
  const variant = opts.variant ?? 'fused';
  const layers = part === 'decoderLayer' ? (opts.layers ?? 1) : 1;
  const d = dimsOf(model);
  const name = opts.name ?? `${model.id}.${part}${layers > 1 ? `.x${layers}` : ''}.${variant}`;
  mkdirSync(opts.dir, { recursive: true });
  const dataFile = `${name}.onnx.data`;
  const fd = openSync(join(opts.dir, dataFile), 'w');
  const g = new GraphBuilder(fd, dataFile, new WeightSource(opts.seed ?? 12345), opts.weights);
  let kvLayers = 0;
  try {
    if (part === 'embedding') {
      g.inputs.push(valueInfo(IO.inputIds, I64, ['batch', 'seq']));
      const table = g.randomWeight('embed_tokens.weight', [d.vocab, d.h]);
      g.node('Gather', [table, IO.inputIds], [IO.hiddenOut], { axis: 0 });
      g.outputs.push(valueInfo(IO.hiddenOut, F32, ['batch', 'seq', d.h]));
    } else if (part === 'lmHead') {
      g.inputs.push(valueInfo(IO.hidden, F32, ['batch', 'seq', d.h]));
      const normW = g.randomWeight('final_norm.weight', [d.h], 1);
      const w = g.randomWeight('lm_head.weight', [d.h, d.vocab]);
      g.node('MatMul', [rmsNorm(g, variant, IO.hidden, normW), w], [IO.logits]);
      g.outputs.push(valueInfo(IO.logits, F32, ['batch', 'seq', d.vocab]));
    } else {
      g.inputs.push(valueInfo(IO.hidden, F32, ['batch', 'seq', d.h]));
      if (variant === 'fused') {
        g.inputs.push(valueInfo(IO.seqlensK, I32, ['batch']));
        g.inputs.push(valueInfo(IO.totalSeqLen, I32, []));
      }
      const rc = rotaryCaches(d.maxPos, d.headDim);
      const caches = { cos: g.floatConst('cos_cache', [d.maxPos, d.headDim / 2], rc.cos), sin: g.floatConst('sin_cache', [d.maxPos, d.headDim / 2], rc.sin) };
      let x: string = IO.hidden;
      if (part === 'adapter') {
        const attn = attentionBlock(g, d, variant, x, 0, caches);
        const resid = g.op('Add', [attn, x]);
        const normW = g.randomWeight('adapter.norm.weight', [d.h], 1);
        x = rmsNorm(g, variant, resid, normW);
        kvLayers = 1;
      } else {
        for (let li = 0; li < layers; li++) x = decoderLayer(g, d, variant, x, li, caches);
        kvLayers = layers;
      }
      g.node('Identity', [x], [IO.hiddenOut]);
      g.outputs.push(valueInfo(IO.hiddenOut, F32, ['batch', 'seq', d.h]));
    }
  } finally {
    closeSync(fd);
  }
  const modelProto = onnx.ModelProto.create({
    irVersion: 10,
    producerName: 'hatsim-calibrate',
    opsetImport: [
      { domain: '', version: variant === 'fused' ? 23 : 17 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: { name, node: g.nodes, initializer: g.inits, input: g.inputs, output: g.outputs },
  });
  const path = join(opts.dir, `${name}.onnx`);
  writeFileSync(path, onnx.ModelProto.encode(modelProto).finish());
  return { path, part, layers, variant, weightBytes: g.weightBytes, kvLayers };
}

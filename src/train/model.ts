/**
 * The LLaMA-family model in TensorFlow.js, at a catalog model's dims:
 * RMSNorm, rotary embeddings (non-interleaved halves, theta 10000, as the
 * ONNX graphs of calibrate/graph.ts), grouped-query attention (query head h
 * reads KV head floor(h / (heads / kvHeads))), SwiGLU MLP, untied LM head.
 * Weights are [in, out] (y = x W) and named as the ONNX graph's initialisers,
 * with `layers.<i>.` for decoder layer i and `adapter.` for HAT's adapter
 * (one attention block + residual + RMSNorm, graph.ts's adapter part).
 */
import type { ModelSpec } from '../model/types.js';
import { Rng } from '../core/rng.js';
import { tf } from './tf.js';

export const RMS_EPS = 1e-5;
export const ROPE_THETA = 10000;

export type Params = Map<string, tf.Variable>;
/** What a forward pass reads: variables, or tensors computed from them (LoRA: W + s A B). */
export type Weights = ReadonlyMap<string, tf.Tensor>;

export interface ParamShape { name: string; dims: number[]; init: 'normal' | 'ones'; std: number }

export function kvDimOf(m: ModelSpec): number {
  return m.numKvHeads * (m.hiddenSize / m.numHeads);
}

function attnShapes(m: ModelSpec, p: string, outStd: number): ParamShape[] {
  const h = m.hiddenSize, kv = kvDimOf(m);
  return [
    { name: `${p}input_norm.weight`, dims: [h], init: 'ones', std: 0 },
    { name: `${p}attn.q.weight`, dims: [h, h], init: 'normal', std: 0.02 },
    { name: `${p}attn.k.weight`, dims: [h, kv], init: 'normal', std: 0.02 },
    { name: `${p}attn.v.weight`, dims: [h, kv], init: 'normal', std: 0.02 },
    { name: `${p}attn.o.weight`, dims: [h, h], init: 'normal', std: outStd },
  ];
}

/** Every parameter of the base model (no adapter), in a fixed order. */
export function baseShapes(m: ModelSpec): ParamShape[] {
  const h = m.hiddenSize, f = m.intermediateSize;
  const outStd = 0.02 / Math.sqrt(2 * m.numLayers);
  const out: ParamShape[] = [{ name: 'embed_tokens.weight', dims: [m.vocabSize, h], init: 'normal', std: 0.02 }];
  for (let i = 0; i < m.numLayers; i++) {
    const p = `layers.${i}.`;
    out.push(...attnShapes(m, p, outStd));
    out.push({ name: `${p}post_norm.weight`, dims: [h], init: 'ones', std: 0 });
    out.push({ name: `${p}mlp.gate.weight`, dims: [h, f], init: 'normal', std: 0.02 });
    out.push({ name: `${p}mlp.up.weight`, dims: [h, f], init: 'normal', std: 0.02 });
    out.push({ name: `${p}mlp.down.weight`, dims: [f, h], init: 'normal', std: outStd });
  }
  out.push({ name: 'final_norm.weight', dims: [h], init: 'ones', std: 0 });
  out.push({ name: 'lm_head.weight', dims: [h, m.vocabSize], init: 'normal', std: 0.02 });
  return out;
}

/** HAT's adapter (attention block + norm). */
export function adapterShapes(m: ModelSpec): ParamShape[] {
  return [...attnShapes(m, 'adapter.', 0.02 / Math.sqrt(2 * m.numLayers)), { name: 'adapter.norm.weight', dims: [m.hiddenSize], init: 'ones', std: 0 }];
}

/** Seeded initial values (own generator: same seed => same bytes on every machine). */
export function initValues(shapes: readonly ParamShape[], seed: number, stream: string): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const s of shapes) {
    const n = s.dims.reduce((a, b) => a * b, 1);
    const v = new Float32Array(n);
    if (s.init === 'ones') v.fill(1);
    else {
      const r = new Rng(seed, `${stream}/${s.name}`);
      for (let i = 0; i < n; i++) v[i] = r.normal() * s.std;
    }
    out.set(s.name, v);
  }
  return out;
}

let varCounter = 0;

export function toVariables(shapes: readonly ParamShape[], values: Map<string, Float32Array>, trainable = true): Params {
  const p: Params = new Map();
  for (const s of shapes) {
    const v = values.get(s.name);
    if (!v) throw new Error(`missing parameter ${s.name}`);
    p.set(s.name, tf.variable(tf.tensor(v, s.dims, 'float32'), trainable, `${s.name}#${++varCounter}`));
  }
  return p;
}

export async function readValues(p: Params): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [k, v] of p) out.set(k, (await v.data()) as Float32Array);
  return out;
}

/** Rotary cos/sin [S, D/2] for positions 0..S-1 (the same formula as graph.ts). */
export function rotary(seq: number, headDim: number): { cos: tf.Tensor2D; sin: tf.Tensor2D } {
  const half = headDim / 2;
  const cos = new Float32Array(seq * half), sin = new Float32Array(seq * half);
  for (let p = 0; p < seq; p++) {
    for (let i = 0; i < half; i++) {
      const a = p / Math.pow(ROPE_THETA, (2 * i) / headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos: tf.tensor2d(cos, [seq, half]), sin: tf.tensor2d(sin, [seq, half]) };
}

export interface Ctx { m: ModelSpec; seq: number; cos: tf.Tensor2D; sin: tf.Tensor2D; mask: tf.Tensor2D }

export function makeCtx(m: ModelSpec, seq: number): Ctx {
  const { cos, sin } = rotary(seq, m.hiddenSize / m.numHeads);
  const mv = new Float32Array(seq * seq);
  for (let i = 0; i < seq; i++) for (let j = i + 1; j < seq; j++) mv[i * seq + j] = -1e9;
  return { m, seq, cos, sin, mask: tf.tensor2d(mv, [seq, seq]) };
}

export function disposeCtx(c: Ctx): void {
  c.cos.dispose(); c.sin.dispose(); c.mask.dispose();
}

function get(p: Weights, name: string): tf.Tensor {
  const v = p.get(name);
  if (!v) throw new Error(`parameter ${name} is missing`);
  return v;
}

export function rmsNorm(x: tf.Tensor, w: tf.Tensor): tf.Tensor {
  const ms = tf.mean(tf.square(x), -1, true);
  return tf.mul(tf.mul(x, tf.rsqrt(tf.add(ms, RMS_EPS))), w);
}

function rope(x: tf.Tensor4D, c: Ctx, s: number): tf.Tensor {
  const d = x.shape[3], half = d / 2;
  const cos = c.cos.slice([0, 0], [s, half]), sin = c.sin.slice([0, 0], [s, half]);
  const x1 = x.slice([0, 0, 0, 0], [-1, -1, -1, half]);
  const x2 = x.slice([0, 0, 0, half], [-1, -1, -1, half]);
  return tf.concat([tf.sub(tf.mul(x1, cos), tf.mul(x2, sin)), tf.add(tf.mul(x2, cos), tf.mul(x1, sin))], -1);
}

/** x [B,S,H] -> attention output (before the residual add), prefix "layers.i." or "adapter.". */
export function attention(p: Weights, c: Ctx, x: tf.Tensor3D, prefix: string): tf.Tensor3D {
  const { m } = c;
  const [b, s, h] = x.shape;
  const nh = m.numHeads, kvh = m.numKvHeads, d = h / nh, g = nh / kvh;
  const n = rmsNorm(x, get(p, `${prefix}input_norm.weight`));
  const n2 = n.reshape([b * s, h]);
  const heads = (w: tf.Tensor, k: number): tf.Tensor4D => tf.matMul(n2, w).reshape([b, s, k, d]).transpose([0, 2, 1, 3]);
  const q = rope(heads(get(p, `${prefix}attn.q.weight`), nh), c, s);
  let kk = rope(heads(get(p, `${prefix}attn.k.weight`), kvh), c, s);
  let vv: tf.Tensor = heads(get(p, `${prefix}attn.v.weight`), kvh);
  if (g > 1) {
    const expand = (t: tf.Tensor): tf.Tensor => tf.tile(t.reshape([b, kvh, 1, s * d]), [1, 1, g, 1]).reshape([b, nh, s, d]);
    kk = expand(kk);
    vv = expand(vv);
  }
  const q3 = q.reshape([b * nh, s, d]), k3 = kk.reshape([b * nh, s, d]), v3 = vv.reshape([b * nh, s, d]);
  const scores = tf.add(tf.mul(tf.matMul(q3, k3, false, true), 1 / Math.sqrt(d)), c.mask.slice([0, 0], [s, s]));
  const probs = tf.softmax(scores, -1);
  const o = tf.matMul(probs, v3).reshape([b, nh, s, d]).transpose([0, 2, 1, 3]).reshape([b * s, h]);
  return tf.matMul(o, get(p, `${prefix}attn.o.weight`)).reshape([b, s, h]);
}

export function decoderLayer(p: Weights, c: Ctx, x: tf.Tensor3D, i: number): tf.Tensor3D {
  const pre = `layers.${i}.`;
  const [b, s, h] = x.shape;
  const resid = tf.add(x, attention(p, c, x, pre));
  const n = rmsNorm(resid, get(p, `${pre}post_norm.weight`)).reshape([b * s, h]);
  const gate = tf.matMul(n, get(p, `${pre}mlp.gate.weight`));
  const up = tf.matMul(n, get(p, `${pre}mlp.up.weight`));
  const act = tf.mul(tf.mul(gate, tf.sigmoid(gate)), up);
  return tf.add(resid, tf.matMul(act, get(p, `${pre}mlp.down.weight`)).reshape([b, s, h])) as tf.Tensor3D;
}

/** The adapter: norm(x + attn(norm(x))). */
export function adapter(p: Weights, c: Ctx, x: tf.Tensor3D): tf.Tensor3D {
  return rmsNorm(tf.add(x, attention(p, c, x, 'adapter.')), get(p, 'adapter.norm.weight')) as tf.Tensor3D;
}

const c0 = (p: Weights): tf.Tensor => get(p, 'embed_tokens.weight');

export function embed(p: Weights, ids: tf.Tensor2D): tf.Tensor3D {
  const [b, s] = ids.shape;
  // one-hot x table: the wasm backend has no kernel for Gather's gradient (UnsortedSegmentSum); same values
  const oh = tf.oneHot(ids.reshape([b * s]), c0(p).shape[0]).toFloat();
  return tf.matMul(oh, c0(p)).reshape([b, s, -1]);
}

/** Final norm + LM head: [B,S,H] -> logits [B*S, V]. */
export function head(p: Weights, x: tf.Tensor3D): tf.Tensor2D {
  const [b, s, h] = x.shape;
  return tf.matMul(rmsNorm(x, get(p, 'final_norm.weight')).reshape([b * s, h]), get(p, 'lm_head.weight'));
}

/** Layers [from, to) of the decoder. */
export function layersRange(p: Weights, c: Ctx, x: tf.Tensor3D, from: number, to: number): tf.Tensor3D {
  let y = x;
  for (let i = from; i < to; i++) y = decoderLayer(p, c, y, i);
  return y;
}

/** Full model logits [B*S, V]. */
export function forward(p: Weights, c: Ctx, ids: tf.Tensor2D): tf.Tensor2D {
  return head(p, layersRange(p, c, embed(p, ids), 0, c.m.numLayers));
}

/** HAT's SLM: embedding + input layers + adapter + output layers + head. */
export function forwardSlm(p: Weights, c: Ctx, ids: tf.Tensor2D, inputLayers: number, outputLayers: number): tf.Tensor2D {
  const L = c.m.numLayers;
  const a = adapter(p, c, layersRange(p, c, embed(p, ids), 0, inputLayers));
  return head(p, layersRange(p, c, a, L - outputLayers, L));
}

/** Mean next-token cross-entropy (nats) of logits [N,V] against targets [N]. */
export function crossEntropy(logits: tf.Tensor2D, targets: tf.Tensor1D): tf.Scalar {
  const logp = tf.logSoftmax(logits, -1);
  const oh = tf.oneHot(targets, logits.shape[1]);
  return tf.neg(tf.mean(tf.sum(tf.mul(logp, oh), -1))) as tf.Scalar;
}

/**
 * Reference forward pass of LLaMA-shaped decoder layers in plain TypeScript,
 * the same computation as calibrate/graph.ts's graphs: RMSNorm (eps 1e-5),
 * non-interleaved RoPE (base 10000), causal GQA attention (query head i uses
 * KV head floor(i / (heads / kvHeads))), SwiGLU FFN, residual adds.
 * Activations are [tokens, hidden] row-major; tokens are `seqs` sequences of
 * `seqLen` positions each (0..seqLen-1), attention never crosses sequences.
 */
import { matmul } from './linalg.js';
import type { ArchDims, LayerWeights } from './weights.js';

export interface Batch {
  seqs: number;
  seqLen: number;
}

export function rmsNorm(x: Float32Array, tokens: number, h: number, w: Float32Array, eps: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let t = 0; t < tokens; t++) {
    const o = t * h;
    let s = 0;
    for (let i = 0; i < h; i++) s += x[o + i] * x[o + i];
    const r = 1 / Math.sqrt(s / h + eps);
    for (let i = 0; i < h; i++) out[o + i] = x[o + i] * r * w[i];
  }
  return out;
}

/** In-place RoPE on [tokens, nHeads * D] with positions 0..seqLen-1 per sequence. */
function rope(x: Float32Array, b: Batch, nHeads: number, d: number, theta: number): void {
  const half = d / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, (2 * i) / d);
  const width = nHeads * d;
  for (let s = 0; s < b.seqs; s++) {
    for (let p = 0; p < b.seqLen; p++) {
      const o = (s * b.seqLen + p) * width;
      for (let i = 0; i < half; i++) {
        const c = Math.cos(p * inv[i]);
        const sn = Math.sin(p * inv[i]);
        for (let hh = 0; hh < nHeads; hh++) {
          const base = o + hh * d;
          const x1 = x[base + i];
          const x2 = x[base + half + i];
          x[base + i] = x1 * c - x2 * sn;
          x[base + half + i] = x2 * c + x1 * sn;
        }
      }
    }
  }
}

/** x + attention(norm(x)). */
export function attentionHalf(x: Float32Array, b: Batch, w: LayerWeights, d: ArchDims): Float32Array {
  const tokens = b.seqs * b.seqLen;
  const h = d.hidden;
  const kvw = d.kvHeads * d.headDim;
  const n = rmsNorm(x, tokens, h, w.inputNorm, d.rmsEps);
  const q = matmul(n, tokens, h, w.q, h);
  const k = matmul(n, tokens, h, w.k, kvw);
  const v = matmul(n, tokens, h, w.v, kvw);
  rope(q, b, d.heads, d.headDim, d.ropeTheta);
  rope(k, b, d.kvHeads, d.headDim, d.ropeTheta);
  const ctx = new Float32Array(tokens * h);
  const group = d.heads / d.kvHeads;
  const scale = 1 / Math.sqrt(d.headDim);
  const scores = new Float64Array(b.seqLen);
  const D = d.headDim;
  for (let s = 0; s < b.seqs; s++) {
    const t0 = s * b.seqLen;
    for (let hh = 0; hh < d.heads; hh++) {
      const g = Math.floor(hh / group);
      for (let i = 0; i < b.seqLen; i++) {
        const qo = (t0 + i) * h + hh * D;
        let max = -Infinity;
        for (let j = 0; j <= i; j++) {
          const ko = (t0 + j) * kvw + g * D;
          let dot = 0;
          for (let e = 0; e < D; e++) dot += q[qo + e] * k[ko + e];
          scores[j] = dot * scale;
          if (scores[j] > max) max = scores[j];
        }
        let sum = 0;
        for (let j = 0; j <= i; j++) {
          scores[j] = Math.exp(scores[j] - max);
          sum += scores[j];
        }
        const co = (t0 + i) * h + hh * D;
        for (let j = 0; j <= i; j++) {
          const p = scores[j] / sum;
          const vo = (t0 + j) * kvw + g * D;
          for (let e = 0; e < D; e++) ctx[co + e] += p * v[vo + e];
        }
      }
    }
  }
  const out = matmul(ctx, tokens, h, w.o, h);
  for (let i = 0; i < out.length; i++) out[i] += x[i];
  return out;
}

/** SwiGLU activations silu(u gate) * (u up), [tokens, ffn]. */
export function ffnActivations(u: Float32Array, tokens: number, w: LayerWeights, d: ArchDims): Float32Array {
  const g = matmul(u, tokens, d.hidden, w.gate, w.ffn);
  const up = matmul(u, tokens, d.hidden, w.up, w.ffn);
  for (let i = 0; i < g.length; i++) {
    const a = g[i];
    g[i] = (a / (1 + Math.exp(-a))) * up[i];
  }
  return g;
}

/** The FFN input of a layer: post-attention RMSNorm of the mid stream. */
export function ffnInput(mid: Float32Array, tokens: number, w: LayerWeights, d: ArchDims): Float32Array {
  return rmsNorm(mid, tokens, d.hidden, w.postNorm, d.rmsEps);
}

/** One whole decoder layer. */
export function layerForward(x: Float32Array, b: Batch, w: LayerWeights, d: ArchDims): Float32Array {
  const tokens = b.seqs * b.seqLen;
  const mid = attentionHalf(x, b, w, d);
  const act = ffnActivations(ffnInput(mid, tokens, w, d), tokens, w, d);
  const y = matmul(act, tokens, w.ffn, w.down, d.hidden);
  for (let i = 0; i < y.length; i++) y[i] += mid[i];
  return y;
}

/** Token ids [seqs * seqLen] -> hidden states. */
export function embed(tokens: Int32Array, table: Float32Array, h: number): Float32Array {
  const out = new Float32Array(tokens.length * h);
  for (let t = 0; t < tokens.length; t++) out.set(table.subarray(tokens[t] * h, tokens[t] * h + h), t * h);
  return out;
}

/** Final norm + LM head: logits [tokens, vocab]. */
export function logits(x: Float32Array, tokens: number, d: ArchDims, finalNorm: Float32Array, head: Float32Array): Float32Array {
  return matmul(rmsNorm(x, tokens, d.hidden, finalNorm, d.rmsEps), tokens, d.hidden, head, d.vocab);
}

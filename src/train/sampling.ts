/** Token sampling helpers without TensorFlow.js (used by eval.ts and the ONNX speculative decoder, speculative.ts). */
import type { Rng } from '../core/rng.js';

/** Draw from logits with temperature (0 = greedy) and top-k. */
export function sampleToken(logits: Float32Array, temperature: number, topK: number, r: Rng): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  if (temperature <= 0) return best;
  const idx = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a] || a - b).slice(0, Math.max(1, topK));
  const w = idx.map((i) => Math.exp((logits[i] - logits[best]) / temperature));
  const sum = w.reduce((a, b) => a + b, 0);
  let u = r.uniform() * sum;
  for (let j = 0; j < idx.length; j++) { u -= w[j]; if (u <= 0) return idx[j]; }
  return idx[idx.length - 1];
}

export function softmax(logits: Float32Array): Float64Array {
  let mx = -Infinity;
  for (const x of logits) if (x > mx) mx = x;
  const out = new Float64Array(logits.length);
  let s = 0;
  for (let i = 0; i < logits.length; i++) { out[i] = Math.exp(logits[i] - mx); s += out[i]; }
  for (let i = 0; i < out.length; i++) out[i] /= s;
  return out;
}

/**
 * COMP as reconstructed in REFERENCE §1 [assumption throughout], and the
 * baselines, as pure functions on one layer's weights and calibration
 * activations:
 *   - layer score: mean over calibration tokens of 1 - cos(x_in, x_out);
 *   - neuron selection (comp): greedy Optimal-Brain-Surgeon removal on the
 *     mask-tuning system H = G + lambda I, G = (W_down W_down^T) o (A^T A)
 *     (A = SwiGLU activations [T, F], W_down rows = neurons): removing neuron
 *     j costs m_j^2 / [H^-1]_jj given the others re-fitted (the leave-one-out
 *     increase of the least-squares error; an ill-conditioned direction, e.g.
 *     a duplicated neuron, costs ~0);
 *   - mask tuning: per kept neuron a scale m from the regularised least
 *     squares min ||sum_S m_j a_j d_j - y||^2 + lambda ||m - 1||^2 (y the
 *     original FFN output), folded into W_down; the variance guard rejects
 *     scales outside a range or with too large a variance (then lambda x10,
 *     at most `guardRetries` times, then no tuning).
 */
import { Rng } from '../core/rng.js';
import { cholesky, choleskyInverse, choleskySolve, gramCols, gramRows } from './linalg.js';
import type { LayerWeights } from './weights.js';

export { METHODS, type Method } from './options.js';

/** Mean over tokens of 1 - cos(x_in_t, x_out_t). */
export function layerScore(xin: Float32Array, xout: Float32Array, tokens: number, h: number): number {
  let sum = 0;
  for (let t = 0; t < tokens; t++) {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < h; i++) {
      const a = xin[t * h + i], b = xout[t * h + i];
      ab += a * b; aa += a * a; bb += b * b;
    }
    sum += 1 - ab / Math.sqrt(aa * bb || 1);
  }
  return sum / tokens;
}

/** The mask-tuning Gram G = (D D^T) o (A^T A), float64 [F, F]. */
export function maskGram(act: Float32Array, tokens: number, down: Float32Array, ffn: number, h: number): Float64Array {
  const dd = gramRows(down, ffn, h);
  const aa = gramCols(act, tokens, ffn);
  for (let i = 0; i < dd.length; i++) dd[i] *= aa[i];
  return dd;
}

export function ridgeOf(g: Float64Array, n: number, ridge: number): number {
  let tr = 0;
  for (let i = 0; i < n; i++) tr += g[i * n + i];
  return ridge * (tr / n || 1);
}

export interface ObsResult {
  /** Removed neuron indices in removal order. */
  removed: number[];
  /** Leave-one-out cost of each removal at the time it was removed. */
  costs: number[];
}

/** Greedy OBS: remove `count` neurons one at a time, re-fitting the rest after each. */
export function obsSelect(g: Float64Array, n: number, count: number, lambda: number): ObsResult {
  const hm = Float64Array.from(g);
  for (let i = 0; i < n; i++) hm[i * n + i] += lambda;
  if (!cholesky(hm, n)) throw new Error('mask-tuning system is not positive definite (increase ridge)');
  const inv = choleskyInverse(hm, n);
  const m = new Float64Array(n).fill(1);
  const alive = new Uint8Array(n).fill(1);
  const removed: number[] = [];
  const costs: number[] = [];
  for (let step = 0; step < count; step++) {
    let best = -1;
    let bestCost = Infinity;
    for (let j = 0; j < n; j++) {
      if (!alive[j]) continue;
      const c = (m[j] * m[j]) / inv[j * n + j];
      if (c < bestCost) { bestCost = c; best = j; }
    }
    const q = best;
    const qq = inv[q * n + q];
    const f = m[q] / qq;
    for (let j = 0; j < n; j++) if (alive[j]) m[j] -= f * inv[j * n + q];
    m[q] = 0;
    // downdate the inverse: remove row/column q
    const col = new Float64Array(n);
    for (let j = 0; j < n; j++) col[j] = inv[j * n + q];
    for (let i = 0; i < n; i++) {
      if (!alive[i] || col[i] === 0) continue;
      const ci = col[i] / qq;
      const io = i * n;
      for (let j = 0; j < n; j++) inv[io + j] -= ci * col[j];
    }
    alive[q] = 0;
    for (let j = 0; j < n; j++) { inv[q * n + j] = 0; inv[j * n + q] = 0; }
    removed.push(q);
    costs.push(bestCost);
  }
  return { removed, costs };
}

export interface MaskTuneResult {
  scales: Float64Array;
  lambda: number;
  /** 'ok' | 'retried' (lambda raised) | 'rejected' (all attempts left the bounds: scales = 1). */
  guard: 'ok' | 'retried' | 'rejected';
}

export interface GuardOptions {
  scaleMin: number;
  scaleMax: number;
  maxScaleVariance: number;
  retries: number;
}

/** Solve (G_SS + lambda I) m = G_S,all 1 + lambda 1 for the kept set S, with the variance guard. */
export function maskTune(g: Float64Array, n: number, kept: number[], lambda0: number, guard: GuardOptions): MaskTuneResult {
  const k = kept.length;
  const b0 = new Float64Array(k);
  for (let a = 0; a < k; a++) {
    const ro = kept[a] * n;
    let s = 0;
    for (let j = 0; j < n; j++) s += g[ro + j];
    b0[a] = s;
  }
  let lambda = lambda0;
  for (let attempt = 0; attempt <= guard.retries; attempt++) {
    const sys = new Float64Array(k * k);
    for (let a = 0; a < k; a++) for (let c = 0; c < k; c++) sys[a * k + c] = g[kept[a] * n + kept[c]];
    for (let a = 0; a < k; a++) sys[a * k + a] += lambda;
    const b = b0.map((v) => v + lambda);
    if (cholesky(sys, k)) {
      const m = choleskySolve(sys, k, b);
      let mean = 0;
      for (const v of m) mean += v / k;
      let variance = 0;
      let inRange = true;
      for (const v of m) {
        variance += ((v - mean) * (v - mean)) / k;
        if (!(v >= guard.scaleMin && v <= guard.scaleMax)) inRange = false;
      }
      if (inRange && variance <= guard.maxScaleVariance) return { scales: m, lambda, guard: attempt === 0 ? 'ok' : 'retried' };
    }
    lambda *= 10;
  }
  return { scales: new Float64Array(k).fill(1), lambda, guard: 'rejected' };
}

/** Magnitude score of each neuron: L2 norm of its gate column, up column and down row together. */
export function magnitudeScores(w: LayerWeights, h: number): Float64Array {
  const f = w.ffn;
  const s = new Float64Array(f);
  for (let r = 0; r < h; r++) {
    for (let j = 0; j < f; j++) {
      const a = w.gate[r * f + j], b = w.up[r * f + j];
      s[j] += a * a + b * b;
    }
  }
  for (let j = 0; j < f; j++) for (let c = 0; c < h; c++) s[j] += w.down[j * h + c] ** 2;
  return s.map(Math.sqrt);
}

/** Indices of the `count` lowest scores (ties by index). */
export function lowest(scores: ArrayLike<number>, count: number): number[] {
  const idx = Array.from({ length: scores.length }, (_, i) => i);
  idx.sort((a, b) => scores[a] - scores[b] || a - b);
  return idx.slice(0, count);
}

/** `count` distinct random indices in [0, n) (partial Fisher-Yates). */
export function randomPick(n: number, count: number, rng: Rng): number[] {
  const idx = Array.from({ length: n }, (_, i) => i);
  for (let i = 0; i < count; i++) {
    const j = i + rng.int(n - i);
    [idx[i], idx[j]] = [idx[j], idx[i]];
  }
  return idx.slice(0, count);
}

/** The layer with only the kept neurons (ascending index), down rows scaled. */
export function sliceLayer(w: LayerWeights, h: number, kept: number[], scales?: ArrayLike<number>): LayerWeights {
  const f = w.ffn;
  const k = kept.length;
  const gate = new Float32Array(h * k);
  const up = new Float32Array(h * k);
  const down = new Float32Array(k * h);
  for (let r = 0; r < h; r++) {
    for (let a = 0; a < k; a++) {
      gate[r * k + a] = w.gate[r * f + kept[a]];
      up[r * k + a] = w.up[r * f + kept[a]];
    }
  }
  for (let a = 0; a < k; a++) {
    const s = scales ? scales[a] : 1;
    for (let c = 0; c < h; c++) down[a * h + c] = w.down[kept[a] * h + c] * s;
  }
  return { ...w, gate, up, down, ffn: k };
}

/**
 * Split `total` removals over layers: uniform (proportional to width), or by
 * score (a layer's removal fraction proportional to mean score / its score),
 * capped at `cap` of each layer's width, the excess re-spread (water-filling).
 */
export function allocateNeurons(widths: number[], scores: number[], total: number, mode: 'uniform' | 'score', cap: number): number[] {
  const n = widths.length;
  const capacity = widths.map((w) => Math.floor(w * cap));
  const maxTotal = capacity.reduce((a, b) => a + b, 0);
  if (total > maxTotal) return [];
  const meanScore = scores.reduce((a, b) => a + b, 0) / n;
  const weight = widths.map((w, i) => (mode === 'uniform' ? w : (w * meanScore) / Math.max(scores[i], 1e-12)));
  const out = new Array<number>(n).fill(0);
  let left = total;
  let open = Array.from({ length: n }, (_, i) => i);
  while (left > 0 && open.length > 0) {
    const wsum = open.reduce((a, i) => a + weight[i], 0);
    const want = open.map((i) => (left * weight[i]) / wsum);
    const next: number[] = [];
    let given = 0;
    open.forEach((i, a) => {
      const add = Math.min(Math.floor(want[a]), capacity[i] - out[i]);
      out[i] += add;
      given += add;
      if (out[i] < capacity[i]) next.push(i);
    });
    left -= given;
    if (given === 0) {
      // rounding remainder: one each to the open layers with the largest weight
      for (const i of [...next].sort((a, b) => weight[b] - weight[a] || a - b)) {
        if (left === 0) break;
        out[i] += 1;
        left -= 1;
      }
      open = open.filter((i) => out[i] < capacity[i]);
    } else {
      open = next;
    }
  }
  return out;
}

/**
 * Fitting of the calibration latency model
 *
 *   t_ms = c0 + c1*tokens + c2*tokCtx + c3*ctx + c4*(seqs - 1) + c5*tokSq
 *
 * (tokSq = sum of n_i^2: causal attention among a prefill's new tokens grows
 * as n^2/2) by weighted least squares with weights 1/t^2 (relative error,
 * close to a fit in log space), every coefficient >= 0 (exact non-negative
 * least squares by enumerating the active sets of the <= 6 columns), optionally piecewise:
 * one piece for tokens <= knee (overhead-bound) and one above, the knee
 * chosen by 5-fold cross-validation error (up to two knees, three pieces).
 */

/** One measured (or imported) point. Batches are uniform: each of `seqs` sequences has tokens/seqs new tokens and ctx/seqs past tokens. */
export interface Sample {
  component: string;
  /** Sum of new tokens over the batch. */
  tokens: number;
  /** Sum of past-context tokens over the batch. */
  ctx: number;
  seqs: number;
  layers: number;
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  reps: number;
  split: 'train' | 'test';
}

export interface FitPiece {
  maxTokens: number | null;
  c0Ms: number;
  c1MsPerToken: number;
  c2MsPerTokenCtx: number;
  c3MsPerCtx: number;
  c4MsPerSeq: number;
  c5MsPerTokenSq: number;
}

export interface FitQuality {
  samples: number;
  r2: number;
  heldOutSamples: number;
  heldOutMedianAbsPctErr: number;
  heldOutP90AbsPctErr: number;
}

export interface Shape {
  tokens: number;
  ctx: number;
  seqs: number;
  /** sum n_i*c_i; defaults to the uniform-batch value tokens*ctx/seqs. */
  tokCtx?: number;
  /** sum n_i^2; defaults to the uniform-batch value tokens^2/seqs. */
  tokSq?: number;
}

export function tokCtxOf(s: Shape): number {
  return s.tokCtx ?? (s.tokens * s.ctx) / Math.max(1, s.seqs);
}

export function tokSqOf(s: Shape): number {
  return s.tokSq ?? (s.tokens * s.tokens) / Math.max(1, s.seqs);
}

function features(s: Shape, quadratic = true): number[] {
  return [1, s.tokens, tokCtxOf(s), s.ctx, Math.max(0, s.seqs - 1), quadratic ? tokSqOf(s) : 0];
}

function coeffsOf(p: FitPiece): number[] {
  // c4/c5 may be absent in pieces read from files (optional there, = 0)
  return [p.c0Ms, p.c1MsPerToken, p.c2MsPerTokenCtx, p.c3MsPerCtx, p.c4MsPerSeq ?? 0, p.c5MsPerTokenSq ?? 0];
}

function pieceOf(maxTokens: number | null, c: number[]): FitPiece {
  return { maxTokens, c0Ms: c[0], c1MsPerToken: c[1], c2MsPerTokenCtx: c[2], c3MsPerCtx: c[3], c4MsPerSeq: c[4], c5MsPerTokenSq: c[5] };
}

/** Latency (ms) predicted by a piecewise model, with the format's piece-selection rule. */
export function predictMs(pieces: readonly FitPiece[], s: Shape): number {
  const piece = pieces.find((p) => p.maxTokens === null || p.maxTokens >= s.tokens) ?? pieces[pieces.length - 1];
  const f = features(s);
  const c = coeffsOf(piece);
  let t = 0;
  for (let j = 0; j < f.length; j++) t += f[j] * c[j];
  return t;
}

/** Solve the square system M x = v (Gaussian elimination, partial pivoting); null when singular. */
function solve(M: number[][], v: number[]): number[] | null {
  const n = v.length;
  const A = M.map((row, i) => [...row, v[i]]);
  for (let col = 0; col < n; col++) {
    let piv = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(A[r][col]) > Math.abs(A[piv][col])) piv = r;
    if (Math.abs(A[piv][col]) < 1e-12) return null;
    [A[col], A[piv]] = [A[piv], A[col]];
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = A[r][col] / A[col][col];
      for (let k = col; k <= n; k++) A[r][k] -= f * A[col][k];
    }
  }
  return A.map((row, i) => row[n] / row[i]);
}

/**
 * Non-negative weighted least squares: minimise sum w_i (y_i - x_i.c)^2, c >= 0.
 * Exact: tries every subset of the usable columns (<= 2^6), keeps the best
 * feasible unconstrained solution on a subset.
 */
export function nnlsWeighted(X: number[][], y: number[], w: number[]): number[] {
  const m = X[0]?.length ?? 6;
  const best = { sse: Infinity, c: new Array<number>(m).fill(0) };
  if (X.length === 0) return best.c;
  // column scale for conditioning
  const scale = new Array<number>(m).fill(0);
  for (let i = 0; i < X.length; i++) for (let j = 0; j < m; j++) scale[j] = Math.max(scale[j], Math.abs(X[i][j]));
  const usable = [...Array(m).keys()].filter((j) => scale[j] > 0);
  const sseOf = (c: number[]): number => {
    let s = 0;
    for (let i = 0; i < X.length; i++) {
      let p = 0;
      for (let j = 0; j < m; j++) p += X[i][j] * c[j];
      s += w[i] * (y[i] - p) ** 2;
    }
    return s;
  };
  best.sse = sseOf(best.c);
  for (let mask = 1; mask < 1 << usable.length; mask++) {
    const cols = usable.filter((_, k) => mask & (1 << k));
    if (cols.length > X.length) continue;
    const M = cols.map(() => new Array<number>(cols.length).fill(0));
    const v = new Array<number>(cols.length).fill(0);
    for (let i = 0; i < X.length; i++) {
      for (let a = 0; a < cols.length; a++) {
        const xa = X[i][cols[a]] / scale[cols[a]];
        v[a] += w[i] * xa * y[i];
        for (let b = 0; b < cols.length; b++) M[a][b] += w[i] * xa * (X[i][cols[b]] / scale[cols[b]]);
      }
    }
    const sol = solve(M, v);
    if (!sol || sol.some((x) => !(x >= 0) || !Number.isFinite(x))) continue;
    const c = new Array<number>(m).fill(0);
    cols.forEach((j, k) => (c[j] = sol[k] / scale[j]));
    const sse = sseOf(c);
    if (sse < best.sse) {
      best.sse = sse;
      best.c = c;
    }
  }
  return best.c;
}

/** Huber threshold on relative residuals, in units of their median absolute value. */
const HUBER_K = 2.5;
const IRLS_ITERATIONS = 3;

/**
 * Weighted NNLS with weights 1/t^2, then a few iteratively reweighted rounds
 * with Huber weights on the relative residuals: a point inflated by a burst
 * of contention from other processes on the machine loses influence.
 */
function fitOnePiece(samples: readonly Sample[], quadratic: boolean): number[] {
  const X = samples.map((s) => features(s, quadratic));
  const y = samples.map((s) => s.medianMs);
  const base = y.map((t) => 1 / Math.max(t, 1e-6) ** 2);
  let c = nnlsWeighted(X, y, base);
  for (let it = 0; it < IRLS_ITERATIONS && samples.length > 6; it++) {
    const rel = samples.map((_s, i) => Math.abs(predictOne(X[i], c) - y[i]) / y[i]);
    const scale = quantile(rel, 0.5);
    if (!(scale > 0)) break;
    const w = base.map((b, i) => b * Math.min(1, (HUBER_K * scale) / Math.max(rel[i], 1e-12)));
    c = nnlsWeighted(X, y, w);
  }
  return c;
}

function predictOne(f: readonly number[], c: readonly number[]): number {
  let t = 0;
  for (let j = 0; j < f.length; j++) t += f[j] * c[j];
  return t;
}

/** Knees: null (one piece), a number (two pieces) or [k1, k2] (three pieces). */
export type Knee = number | null | readonly [number, number];

function kneeList(knee: Knee): number[] {
  return knee === null ? [] : typeof knee === 'number' ? [knee] : [...knee];
}

function fitWithKnee(samples: readonly Sample[], knee: Knee, quadratic: boolean): FitPiece[] {
  const bounds = kneeList(knee);
  const pieces: FitPiece[] = [];
  let lower = 0;
  for (const b of [...bounds, null]) {
    const part = samples.filter((s) => s.tokens > lower && (b === null || s.tokens <= b));
    pieces.push(pieceOf(b, fitOnePiece(part, quadratic)));
    if (b !== null) lower = b;
  }
  return pieces;
}

function kneeText(knee: Knee): string {
  return knee === null ? 'none' : kneeList(knee).join('/');
}
export { kneeText };

export function absPctErr(predMs: number, measuredMs: number): number {
  return (Math.abs(predMs - measuredMs) / measuredMs) * 100;
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return NaN;
  const v = [...values].sort((a, b) => a - b);
  const pos = (v.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return v[lo] + (v[hi] - v[lo]) * (pos - lo);
}

export const KNEE_CANDIDATES: readonly (number | null)[] = [null, 1, 2, 4, 8, 16, 32, 64, 128];
const MIN_POINTS_PER_PIECE = 4;

/**
 * What a point's latency is taken to be: the median of its repeats, or their
 * 10th percentile. On a shared machine, interference from other tenants makes
 * run times heavy-tailed and bimodal; as Python's timeit documentation argues,
 * the low end is what the hardware does and is far more repeatable (measured
 * here: the TinyLlama embedding's held-out error 6-8 % on p10 over four runs,
 * 9-17 % on the median).
 */
export type FitStatistic = 'median' | 'p10';

export function statValue(s: Pick<Sample, 'medianMs' | 'p10Ms'>, statistic: FitStatistic): number {
  return statistic === 'p10' ? s.p10Ms : s.medianMs;
}

export interface FitResult {
  statistic: FitStatistic;
  pieces: FitPiece[];
  knee: Knee;
  /** Cross-validated mean abs % error per knee candidate tried. */
  cvErrPct: { knee: Knee; meanAbsPctErr: number }[];
  quality: FitQuality;
}

/** K-fold (5, deterministic folds) cross-validated mean absolute percentage error of a knee choice. */
const CV_FOLDS = 5;
function looError(samples: readonly Sample[], knee: Knee, quadratic: boolean): number {
  let sum = 0;
  const folds = Math.min(CV_FOLDS, samples.length);
  for (let f = 0; f < folds; f++) {
    const rest = samples.filter((_, k) => k % folds !== f);
    const held = samples.filter((_, k) => k % folds === f);
    const pieces = fitWithKnee(rest, knee, quadratic);
    for (const s of held) sum += absPctErr(predictMs(pieces, s), s.medianMs);
  }
  return sum / samples.length;
}

/** Quality figures of a fitted model on train and held-out samples. */
export function fitQuality(pieces: readonly FitPiece[], train: readonly Sample[], test: readonly Sample[]): FitQuality {
  const mean = train.reduce((a, s) => a + s.medianMs, 0) / Math.max(1, train.length);
  let ssRes = 0;
  let ssTot = 0;
  for (const s of train) {
    ssRes += (s.medianMs - predictMs(pieces, s)) ** 2;
    ssTot += (s.medianMs - mean) ** 2;
  }
  const errs = test.map((s) => absPctErr(predictMs(pieces, s), s.medianMs));
  const r2 = ssTot > 0 ? 1 - ssRes / ssTot : 1;
  return {
    samples: train.length,
    r2: Math.max(-1, Math.min(1, r2)),
    heldOutSamples: test.length,
    heldOutMedianAbsPctErr: test.length ? quantile(errs, 0.5) : NaN,
    heldOutP90AbsPctErr: test.length ? quantile(errs, 0.9) : NaN,
  };
}

/**
 * Fit a (possibly piecewise) non-negative model on the train samples,
 * choosing the knee(s) by 5-fold CV; report quality on the test samples.
 * `quadratic: false` leaves out the tokSq term (parts without attention:
 * the embedding and the LM head have no cost that grows as n^2).
 */
export function fitLatencyModel(
  train: readonly Sample[],
  test: readonly Sample[],
  knees: readonly Knee[] = KNEE_CANDIDATES,
  twoKnees = true,
  opts: { quadratic?: boolean; statistic?: FitStatistic } = {},
): FitResult {
  const quadratic = opts.quadratic ?? true;
  const statistic = opts.statistic ?? 'median';
  if (statistic !== 'median') {
    // Internally every sample's medianMs holds the fitted statistic.
    train = train.map((s) => ({ ...s, medianMs: statValue(s, statistic) }));
    test = test.map((s) => ({ ...s, medianMs: statValue(s, statistic) }));
  }
  if (train.length === 0) throw new Error('fitLatencyModel: no training samples');
  const cvErrPct: FitResult['cvErrPct'] = [];
  let bestKnee: Knee = null;
  let bestErr = Infinity;
  const singles = knees.filter((k): k is number => typeof k === 'number');
  const candidates: Knee[] = [...knees];
  if (twoKnees) for (const a of singles) for (const b of singles) if (a < b) candidates.push([a, b]);
  for (const knee of candidates) {
    const bounds = kneeList(knee);
    let ok = true;
    let lower = 0;
    for (const b of [...bounds, Infinity]) {
      const count = train.filter((s) => s.tokens > lower && s.tokens <= b).length;
      if (count < MIN_POINTS_PER_PIECE) ok = false;
      lower = b;
    }
    if (!ok) continue;
    const err = train.length >= 3 ? looError(train, knee, quadratic) : 0;
    cvErrPct.push({ knee, meanAbsPctErr: err });
    // every extra piece must earn its keep: >= 5 % (relative) better than the best so far with fewer pieces
    if (err < bestErr * (knee === null ? 1 : 0.95)) {
      bestErr = err;
      bestKnee = knee;
    }
  }
  const pieces = fitWithKnee(train, bestKnee, quadratic);
  return { statistic, pieces, knee: bestKnee, cvErrPct, quality: fitQuality(pieces, train, test) };
}

/** Multiply every coefficient (used by tests: a wrong model must fail validation). */
export function scalePieces(pieces: readonly FitPiece[], factor: number): FitPiece[] {
  return pieces.map((p) => pieceOf(p.maxTokens, coeffsOf(p).map((c) => c * factor)));
}

/**
 * FedSpine learning-progress model [assumption throughout: ours, documented,
 * every parameter in a JSON file and fittable from logged rounds]. Pure: no
 * simulator imports.
 *
 * Round t, participants S that delivered an update, each with data share
 * n_i / sum_all n (over ALL devices), ratio p_i, rank r_i; K local steps; data
 * heterogeneity h in [0, 1] (0 = i.i.d.):
 *   s(K)   = 1 - exp(-K / kappaSteps)            local steps saturate
 *   rho(r) = r / (r + rankHalf)                  rank helps, with diminishing returns
 *   g_i    = eta s(K) rho(r_i) (1 - pruneDamage p_i)   progress of device i's update
 *   G      = sum_{i in S} share_i g_i             partial participation slows progress
 *   pbar   = sum_{i in S} share_i p_i / sum_{i in S} share_i
 *   F      = lossMin + floorPrune pbar^2 + floorHetero h s(K)   the loss this configuration tends to
 *   L_{t+1} = F + (L_t - F) exp(-G)
 * A device's own loss improvement (for the bandit's reward):
 *   dL_i = (L_t - F_i) (1 - exp(-g_i)), F_i = F with pbar = p_i, plus
 *   N(0, noiseStd) observation noise drawn by the caller's seeded stream.
 * lossInit is L_0.
 *
 * fitLearning: Levenberg-Marquardt least squares of the one-round prediction
 * L_{t+1}(L_t, config) against logged rows, over eta, kappaSteps, rankHalf,
 * pruneDamage, lossMin, floorPrune, floorHetero (lossInit and noiseStd are not
 * fitted: the first logged loss and the residual spread give them).
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { InputError } from '../core/errors.js';

export interface LearningParams {
  lossInit: number;
  lossMin: number;
  eta: number;
  kappaSteps: number;
  rankHalf: number;
  pruneDamage: number;
  floorPrune: number;
  floorHetero: number;
  noiseStd: number;
}

/** [assumption] defaults; the same numbers ship in scenarios/fedspine-learning.json. */
export const DEFAULT_LEARNING: LearningParams = {
  lossInit: 2.5,
  lossMin: 0.35,
  eta: 0.08,
  kappaSteps: 10,
  rankHalf: 4,
  pruneDamage: 0.6,
  floorPrune: 0.4,
  floorHetero: 0.1,
  noiseStd: 0.01,
};

const nonNeg = (what: string) => z.number({ error: `must be a number >= 0 (${what})` }).min(0, { error: `must be a number >= 0 (${what})` });
const pos = (what: string) => z.number({ error: `must be a number > 0 (${what})` }).gt(0, { error: `must be a number > 0 (${what})` });

export const LearningSchema = z.strictObject({
  lossInit: pos('loss at round 0'),
  lossMin: nonNeg('the best reachable loss'),
  eta: pos('progress per round'),
  kappaSteps: pos('local-step saturation scale'),
  rankHalf: nonNeg('rank giving half the rank effect'),
  pruneDamage: z.number({ error: 'must be a number in [0, 1] (progress lost per unit of ratio)' }).min(0, { error: 'must be a number in [0, 1]' }).max(1, { error: 'must be a number in [0, 1]' }),
  floorPrune: nonNeg('floor rise at ratio 1'),
  floorHetero: nonNeg('floor rise from heterogeneity'),
  noiseStd: nonNeg('std of a device loss observation'),
}, { error: (iss) => (iss.code === 'unrecognized_keys' ? `unknown key(s) ${iss.keys.join(', ')}; allowed: ${Object.keys(DEFAULT_LEARNING).join(', ')}` : 'must be an object of learning parameters') });

/** Validate learning parameters (an object from JSON or a scenario), errors name the field. */
export function parseLearning(obj: unknown, source: string): LearningParams {
  const r = LearningSchema.safeParse(obj);
  if (!r.success) {
    const i = r.error.issues[0];
    const field = i.path.map(String).join('.') || '(root)';
    throw new InputError(`${source}: ${field}: ${i.message}`, field);
  }
  return r.data;
}

export function loadLearning(file: string): LearningParams {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { throw new InputError(`learning parameter file not found or unreadable: ${file}`, 'learning.file'); }
  let obj: unknown;
  try { obj = JSON.parse(text); } catch (e) { throw new InputError(`${file}: not valid JSON (${(e as Error).message})`, 'learning.file'); }
  return parseLearning(obj, file);
}

export interface Participant {
  /** n_i / sum over all devices of n. */
  share: number;
  ratio: number;
  rank: number;
}

export interface RoundConditions {
  localSteps: number;
  heterogeneity: number;
}

export function stepsFactor(p: LearningParams, localSteps: number): number {
  return 1 - Math.exp(-localSteps / p.kappaSteps);
}

/** Progress g_i of one device's update. */
export function deviceProgress(p: LearningParams, c: RoundConditions, ratio: number, rank: number): number {
  return p.eta * stepsFactor(p, c.localSteps) * (rank / (rank + p.rankHalf)) * (1 - p.pruneDamage * ratio);
}

/** The loss floor F for a mean ratio. */
export function lossFloor(p: LearningParams, c: RoundConditions, meanRatio: number): number {
  return p.lossMin + p.floorPrune * meanRatio * meanRatio + p.floorHetero * c.heterogeneity * stepsFactor(p, c.localSteps);
}

/** L_{t+1} from L_t and the round's participants (no participants: unchanged). */
export function nextLoss(p: LearningParams, c: RoundConditions, lossBefore: number, parts: readonly Participant[]): number {
  let g = 0, shareSum = 0, ratioSum = 0;
  for (const q of parts) {
    g += q.share * deviceProgress(p, c, q.ratio, q.rank);
    shareSum += q.share;
    ratioSum += q.share * q.ratio;
  }
  if (shareSum <= 0) return lossBefore;
  const f = lossFloor(p, c, ratioSum / shareSum);
  return f + (lossBefore - f) * Math.exp(-g);
}

/** A device's own (noise-free) loss improvement this round. */
export function deviceImprovement(p: LearningParams, c: RoundConditions, lossBefore: number, ratio: number, rank: number): number {
  const f = lossFloor(p, c, ratio);
  return (lossBefore - f) * (1 - Math.exp(-deviceProgress(p, c, ratio, rank)));
}

// --- fitting ---------------------------------------------------------------

export interface LearningRow {
  lossBefore: number;
  lossAfter: number;
  localSteps: number;
  heterogeneity: number;
  participants: Participant[];
}

export const FITTED: readonly (keyof LearningParams)[] = ['eta', 'kappaSteps', 'rankHalf', 'pruneDamage', 'lossMin', 'floorPrune', 'floorHetero'];
const LOWER: Record<string, number> = { eta: 1e-6, kappaSteps: 1e-3, rankHalf: 0, pruneDamage: 0, lossMin: 0, floorPrune: 0, floorHetero: 0 };
const UPPER: Record<string, number> = { eta: 100, kappaSteps: 1e6, rankHalf: 1e4, pruneDamage: 1, lossMin: 1e6, floorPrune: 1e6, floorHetero: 1e6 };

export interface FitResult {
  params: LearningParams;
  rmse: number;
  iterations: number;
}

function residuals(p: LearningParams, rows: readonly LearningRow[], out: Float64Array): number {
  let ss = 0;
  rows.forEach((r, i) => {
    const e = nextLoss(p, r, r.lossBefore, r.participants) - r.lossAfter;
    out[i] = e; ss += e * e;
  });
  return ss;
}

/** Solve the small dense system M x = v in place (Gaussian elimination, partial pivoting). */
function solve(m: number[][], v: number[]): number[] {
  const n = v.length;
  for (let c = 0; c < n; c++) {
    let piv = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r][c]) > Math.abs(m[piv][c])) piv = r;
    [m[c], m[piv]] = [m[piv], m[c]]; [v[c], v[piv]] = [v[piv], v[c]];
    const d = m[c][c] || 1e-300;
    for (let r = c + 1; r < n; r++) {
      const k = m[r][c] / d;
      if (k === 0) continue;
      for (let j = c; j < n; j++) m[r][j] -= k * m[c][j];
      v[r] -= k * v[c];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = v[r];
    for (let j = r + 1; j < n; j++) s -= m[r][j] * x[j];
    x[r] = s / (m[r][r] || 1e-300);
  }
  return x;
}

/** Least-squares fit of the learning parameters from logged rounds (Levenberg-Marquardt, numeric Jacobian). */
export function fitLearning(rows: readonly LearningRow[], start: LearningParams = DEFAULT_LEARNING, maxIter = 300): FitResult {
  if (rows.length < FITTED.length) throw new InputError(`fitLearning: ${rows.length} rows, need at least ${FITTED.length} (one per fitted parameter)`, 'rows');
  let p: LearningParams = { ...start, lossInit: rows[0].lossBefore };
  const n = rows.length, k = FITTED.length;
  const r0 = new Float64Array(n), r1 = new Float64Array(n), r2 = new Float64Array(n);
  let ss = residuals(p, rows, r0);
  let lambda = 1e-3, it = 0;
  for (; it < maxIter; it++) {
    // Jacobian by central differences.
    const jac: Float64Array[] = [];
    for (const name of FITTED) {
      const x = p[name], h = 1e-6 * Math.max(1, Math.abs(x));
      residuals({ ...p, [name]: x + h }, rows, r1);
      residuals({ ...p, [name]: x - h }, rows, r2);
      const col = new Float64Array(n);
      for (let i = 0; i < n; i++) col[i] = (r1[i] - r2[i]) / (2 * h);
      jac.push(col);
    }
    const jtj = Array.from({ length: k }, (_, a) => Array.from({ length: k }, (_, b) => { let s = 0; for (let i = 0; i < n; i++) s += jac[a][i] * jac[b][i]; return s; }));
    const jtr = Array.from({ length: k }, (_, a) => { let s = 0; for (let i = 0; i < n; i++) s += jac[a][i] * r0[i]; return -s; });
    let improved = false;
    for (let tries = 0; tries < 12; tries++) {
      const m = jtj.map((row, a) => row.map((v, b) => (a === b ? v * (1 + lambda) + 1e-12 : v)));
      const d = solve(m, jtr.slice());
      const cand = { ...p };
      FITTED.forEach((name, a) => { cand[name] = Math.min(UPPER[name], Math.max(LOWER[name], p[name] + d[a])); });
      const ssNew = residuals(cand, rows, r1);
      if (ssNew < ss) {
        const rel = (ss - ssNew) / Math.max(ss, 1e-300);
        p = cand; ss = ssNew; r0.set(r1); lambda = Math.max(lambda / 3, 1e-12); improved = true;
        if (rel < 1e-14 || ss < 1e-28) return { params: p, rmse: Math.sqrt(ss / n), iterations: it + 1 };
        break;
      }
      lambda *= 4;
    }
    if (!improved) break;
  }
  return { params: p, rmse: Math.sqrt(ss / n), iterations: it };
}

/**
 * Exit profiles: per stage of a partitioned model, for a grid of confidence
 * thresholds, the probability that a task reaching that stage exits there and
 * the accuracy of the tasks that exit; plus the accuracy of the tasks that
 * reach the last stage. Format `hatsim-exit-profile/1` (docs/DTOEE.md).
 *
 * Between grid points both curves are interpolated linearly in the threshold.
 * [assumption] The exit probability at stage s depends only on the threshold
 * of stage s (not on the thresholds that let the task reach s): the profile
 * is measured per stage over the whole labelled set.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../core/errors.js';

export const PROFILE_FORMAT = 'hatsim-exit-profile/1';
export type ConfidenceKind = 'max-softmax' | 'margin';
export type ProfileSource = 'measured' | 'assumption';

export interface ExitStageProfile {
  /** 1-based stage number; stages 1..S-1 have an exit head. */
  stage: number;
  /** Decoder layers [from, to) run before this exit. */
  layers: [number, number];
  /** P(confidence >= tau) per threshold of the grid: non-increasing, 1 at tau = 0. */
  exitProb: number[];
  /** Accuracy of the tasks that exit at tau, per threshold of the grid. */
  exitAccuracy: number[];
  samples: number;
}

export interface ExitProfile {
  format: typeof PROFILE_FORMAT;
  model: string;
  confidence: ConfidenceKind;
  source: ProfileSource;
  notes: string;
  /** Ascending grid in [0, 1], from 0 to 1, shared by all stages. */
  thresholds: number[];
  stages: ExitStageProfile[];
  /** Accuracy of the tasks that reach the last stage. */
  finalAccuracy: number;
  finalLayers: [number, number];
}

const CONFIDENCE: readonly ConfidenceKind[] = ['max-softmax', 'margin'];
const SOURCES: readonly ProfileSource[] = ['measured', 'assumption'];
/** Tolerance for monotonicity and the exitProb(0) = 1 rule (measured values are exact fractions). */
const EPS = 1e-9;

function fail(field: string, what: string): never {
  throw new InputError(`exit profile: ${field} ${what}`, field);
}

function isObj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function numArray(v: unknown, field: string, n?: number): number[] {
  if (!Array.isArray(v)) fail(field, 'must be an array of numbers');
  v.forEach((x, i) => {
    if (typeof x !== 'number' || !Number.isFinite(x)) fail(`${field}[${i}]`, `is ${JSON.stringify(x)}: must be a finite number`);
  });
  if (n !== undefined && v.length !== n) fail(field, `has ${v.length} entries: must have one per threshold (${n})`);
  return v as number[];
}

function unitInterval(v: number[], field: string): void {
  v.forEach((x, i) => { if (x < 0 || x > 1) fail(`${field}[${i}]`, `is ${x}: must be in [0, 1]`); });
}

function layerRange(v: unknown, field: string): [number, number] {
  const a = numArray(v, field, undefined);
  if (a.length !== 2 || !Number.isInteger(a[0]) || !Number.isInteger(a[1]) || a[0] < 0 || a[1] <= a[0]) {
    fail(field, `is ${JSON.stringify(v)}: must be [from, to) with integers 0 <= from < to`);
  }
  return [a[0], a[1]];
}

/**
 * Validate a parsed JSON value as an exit profile. Every problem is an
 * InputError naming the field and what is allowed. `expectStages`, when
 * given, is the number of stages S of the split (the profile then needs
 * exactly the S-1 exit stages).
 */
export function validateProfile(raw: unknown, expectStages?: number): ExitProfile {
  if (!isObj(raw)) fail('(root)', 'must be a JSON object');
  if (raw.format !== PROFILE_FORMAT) fail('format', `is ${JSON.stringify(raw.format)}: must be "${PROFILE_FORMAT}"`);
  if (typeof raw.model !== 'string' || raw.model === '') fail('model', 'must be a non-empty string (a catalog model id)');
  if (!CONFIDENCE.includes(raw.confidence as ConfidenceKind)) fail('confidence', `is ${JSON.stringify(raw.confidence)}: must be one of ${CONFIDENCE.join(', ')}`);
  if (!SOURCES.includes(raw.source as ProfileSource)) fail('source', `is ${JSON.stringify(raw.source)}: must be one of ${SOURCES.join(', ')}`);
  if (raw.notes !== undefined && typeof raw.notes !== 'string') fail('notes', 'must be a string');
  const thresholds = numArray(raw.thresholds, 'thresholds');
  if (thresholds.length < 2) fail('thresholds', 'must have at least 2 grid points (0 and 1)');
  unitInterval(thresholds, 'thresholds');
  for (let i = 1; i < thresholds.length; i++) {
    if (!(thresholds[i] > thresholds[i - 1])) fail(`thresholds[${i}]`, `is ${thresholds[i]}: the grid must be strictly ascending`);
  }
  if (thresholds[0] !== 0 || thresholds[thresholds.length - 1] !== 1) fail('thresholds', 'must start at 0 and end at 1 (the grid covers [0, 1])');
  const T = thresholds.length;
  if (!Array.isArray(raw.stages)) fail('stages', 'must be an array (one entry per stage with an exit head)');
  if (raw.stages.length === 0) fail('stages', 'is empty: a split needs at least one exit stage (stages 1..S-1)');
  let prevTo: number | undefined;
  const stages: ExitStageProfile[] = raw.stages.map((s, i) => {
    const f = `stages[${i}]`;
    if (!isObj(s)) fail(f, 'must be an object');
    if (s.stage !== i + 1) fail(`${f}.stage`, `is ${JSON.stringify(s.stage)}: stages must be listed 1, 2, ... in order, none missing (expected ${i + 1})`);
    const layers = layerRange(s.layers, `${f}.layers`);
    if (prevTo !== undefined && layers[0] !== prevTo) fail(`${f}.layers`, `starts at ${layers[0]}: must start where the previous stage ends (${prevTo})`);
    prevTo = layers[1];
    const exitProb = numArray(s.exitProb, `${f}.exitProb`, T);
    unitInterval(exitProb, `${f}.exitProb`);
    if (Math.abs(exitProb[0] - 1) > EPS) fail(`${f}.exitProb[0]`, `is ${exitProb[0]}: must be 1 (at threshold 0 every task exits)`);
    for (let k = 1; k < T; k++) {
      if (exitProb[k] > exitProb[k - 1] + EPS) {
        fail(`${f}.exitProb[${k}]`, `is ${exitProb[k]} > ${exitProb[k - 1]} at the previous threshold: must be non-increasing in the threshold`);
      }
    }
    const exitAccuracy = numArray(s.exitAccuracy, `${f}.exitAccuracy`, T);
    unitInterval(exitAccuracy, `${f}.exitAccuracy`);
    if (typeof s.samples !== 'number' || !Number.isInteger(s.samples) || s.samples < 1) fail(`${f}.samples`, 'must be a positive integer');
    return { stage: i + 1, layers, exitProb: [...exitProb], exitAccuracy: [...exitAccuracy], samples: s.samples };
  });
  if (expectStages !== undefined && stages.length !== expectStages - 1) {
    fail('stages', `has ${stages.length} exit stages: the split has ${expectStages} stages, so it needs ${expectStages - 1} (every stage but the last)`);
  }
  if (typeof raw.finalAccuracy !== 'number' || !(raw.finalAccuracy >= 0 && raw.finalAccuracy <= 1)) fail('finalAccuracy', 'must be a number in [0, 1]');
  const finalLayers = layerRange(raw.finalLayers, 'finalLayers');
  if (prevTo !== undefined && finalLayers[0] !== prevTo) fail('finalLayers', `starts at ${finalLayers[0]}: must start where the last exit stage ends (${prevTo})`);
  return {
    format: PROFILE_FORMAT, model: raw.model, confidence: raw.confidence as ConfidenceKind, source: raw.source as ProfileSource,
    notes: (raw.notes as string | undefined) ?? '', thresholds: [...thresholds], stages, finalAccuracy: raw.finalAccuracy, finalLayers,
  };
}

/** Read and validate a profile file (InputError for a missing file, bad JSON or a bad field). */
export function readProfile(path: string, expectStages?: number): ExitProfile {
  let text: string;
  try { text = readFileSync(path, 'utf8'); } catch (e) {
    throw new InputError(`exit profile ${path}: cannot read (${(e as Error).message})`, 'profile');
  }
  let raw: unknown;
  try { raw = JSON.parse(text); } catch (e) {
    throw new InputError(`exit profile ${path}: not valid JSON (${(e as Error).message})`, 'profile');
  }
  try { return validateProfile(raw, expectStages); } catch (e) {
    if (e instanceof InputError) throw new InputError(`${path}: ${e.message}`, e.field);
    throw e;
  }
}

/** Serialise a profile (stable key order, one stage per line block). */
export function profileToJson(p: ExitProfile): string {
  return JSON.stringify(p, null, 2) + '\n';
}

function stageOf(p: ExitProfile, stage: number): ExitStageProfile {
  const s = p.stages[stage - 1];
  if (s === undefined) throw new RangeError(`exit profile has no exit stage ${stage} (it has 1..${p.stages.length})`);
  return s;
}

/** Grid segment k with thresholds[k] <= tau <= thresholds[k+1], and the position t in it. */
function segment(grid: number[], tau: number): { k: number; t: number } {
  const x = Math.min(1, Math.max(0, tau));
  let lo = 0, hi = grid.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (grid[mid] <= x) lo = mid; else hi = mid;
  }
  return { k: lo, t: (x - grid[lo]) / (grid[lo + 1] - grid[lo]) };
}

function interp(grid: number[], ys: number[], tau: number): number {
  const { k, t } = segment(grid, tau);
  return ys[k] + t * (ys[k + 1] - ys[k]);
}

/** Slope d/dtau of the linear interpolation (right derivative at grid points; left at tau = 1). */
function slope(grid: number[], ys: number[], tau: number): number {
  const { k } = segment(grid, tau);
  return (ys[k + 1] - ys[k]) / (grid[k + 1] - grid[k]);
}

/**
 * P(task exits at `stage` | it reached it) at threshold tau (clamped to [0, 1]).
 * A threshold of 1 turns the exit off (0, whatever a saturating softmax
 * measured at confidence 1), so thresholds 1 always mean "no early exit".
 */
export function exitProb(p: ExitProfile, stage: number, tau: number): number {
  if (tau >= 1) return 0;
  return interp(p.thresholds, stageOf(p, stage).exitProb, tau);
}

/** Accuracy of tasks that exit at `stage` with threshold tau. */
export function exitAccuracy(p: ExitProfile, stage: number, tau: number): number {
  return interp(p.thresholds, stageOf(p, stage).exitAccuracy, tau);
}

/** d exitProb / d tau (piecewise constant). */
export function exitProbSlope(p: ExitProfile, stage: number, tau: number): number {
  return slope(p.thresholds, stageOf(p, stage).exitProb, tau);
}

/**
 * Expected correct exits per task reaching the stage, q(tau) = exitProb * exitAccuracy,
 * and its derivative in tau (on the grid segment holding tau, the product of two
 * linear functions).
 */
export function exitCorrect(p: ExitProfile, stage: number, tau: number): { q: number; dq: number } {
  const s = stageOf(p, stage);
  const pr = tau >= 1 ? 0 : interp(p.thresholds, s.exitProb, tau), ac = interp(p.thresholds, s.exitAccuracy, tau);
  const dp = slope(p.thresholds, s.exitProb, tau), da = slope(p.thresholds, s.exitAccuracy, tau);
  return { q: pr * ac, dq: dp * ac + pr * da };
}

/**
 * The simulator's seeded exit decision: u is one uniform [0, 1) draw from the
 * run's stream; the task exits iff u < exitProb(stage, tau). A threshold of 0
 * always exits (exitProb = 1), a threshold of 1 never does.
 */
export function decideExit(p: ExitProfile, stage: number, tau: number, u: number): boolean {
  return u < exitProb(p, stage, tau);
}

/** Seeded correctness of a task that exited at `stage` (or reached the last stage: stage = 'final'). */
export function decideCorrect(p: ExitProfile, stage: number | 'final', tau: number, u: number): boolean {
  return u < (stage === 'final' ? p.finalAccuracy : exitAccuracy(p, stage, tau));
}

export interface DefaultProfileOptions {
  /** Number of stages S (S-1 exit heads). */
  stages: number;
  /** Total decoder layers, split evenly (the first stages get the remainder). */
  layers: number;
  model?: string;
  /** Threshold grid step; default 0.05. */
  gridStep?: number;
  /** Confidence shape per stage alpha_s = alpha1 + alphaStep (s-1); default 2 and 1.5. */
  alpha1?: number;
  alphaStep?: number;
  /** Calibration factor kappa: accuracy = kappa x mean confidence of the exited tasks; default 0.95. */
  kappa?: number;
}

/**
 * The default profile [assumption], shaped like published early-exit curves
 * (BranchyNet, DeeBERT, CALM): deeper exits are more confident and more
 * accurate; raising the threshold lets fewer tasks exit, and those that do are
 * more accurate. Model: at stage s the confidence of a task is Beta(alpha_s, 1)
 * distributed, so P(conf >= tau) = 1 - tau^alpha_s, and the confidence is
 * calibrated up to a factor kappa (CALM's calibrated-confidence premise), so
 * the accuracy of the tasks that exit is kappa E[conf | conf >= tau] =
 * kappa alpha/(alpha+1) (1 - tau^(alpha+1)) / (1 - tau^alpha) (its limit
 * kappa at tau = 1). The last stage's accuracy is kappa alpha_S/(alpha_S+1).
 */
export function defaultProfile(o: DefaultProfileOptions): ExitProfile {
  const S = o.stages, L = o.layers;
  if (!Number.isInteger(S) || S < 2) throw new InputError(`default exit profile: stages is ${S}: must be an integer >= 2`, 'stages');
  if (!Number.isInteger(L) || L < S) throw new InputError(`default exit profile: layers is ${L}: must be an integer >= stages (${S})`, 'layers');
  const step = o.gridStep ?? 0.05;
  const n = Math.round(1 / step);
  if (!(n >= 1) || Math.abs(n * step - 1) > 1e-9) throw new InputError(`default exit profile: gridStep ${step} must divide 1`, 'gridStep');
  const a1 = o.alpha1 ?? 2, da = o.alphaStep ?? 1.5, kappa = o.kappa ?? 0.95;
  const thresholds = Array.from({ length: n + 1 }, (_, i) => (i === n ? 1 : Math.round((i / n) * 1e12) / 1e12));
  const per = Math.floor(L / S), extra = L % S;
  const bounds: number[] = [0];
  for (let s = 0; s < S; s++) bounds.push(bounds[s] + per + (s < extra ? 1 : 0));
  const accAt = (alpha: number, tau: number): number => {
    if (tau >= 1) return kappa;
    const tail = 1 - Math.pow(tau, alpha);
    return kappa * (alpha / (alpha + 1)) * (1 - Math.pow(tau, alpha + 1)) / tail;
  };
  const stages: ExitStageProfile[] = [];
  for (let s = 1; s < S; s++) {
    const alpha = a1 + da * (s - 1);
    stages.push({
      stage: s, layers: [bounds[s - 1], bounds[s]],
      exitProb: thresholds.map((t) => 1 - Math.pow(t, alpha)),
      exitAccuracy: thresholds.map((t) => accAt(alpha, t)),
      samples: 1,
    });
  }
  const alphaS = a1 + da * (S - 1);
  return {
    format: PROFILE_FORMAT, model: o.model ?? 'generic', confidence: 'max-softmax', source: 'assumption',
    notes: `[assumption] default profile: confidence at stage s ~ Beta(alpha_s, 1), alpha_s = ${a1} + ${da}(s-1); `
      + `accuracy = ${kappa} x E[conf | conf >= tau] (calibrated confidence, CALM-style); shaped like BranchyNet/DeeBERT/CALM curves, not measured`,
    thresholds, stages, finalAccuracy: kappa * alphaS / (alphaS + 1), finalLayers: [bounds[S - 1], bounds[S]],
  };
}

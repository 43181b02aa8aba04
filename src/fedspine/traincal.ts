/**
 * Training-step calibration (`hatsim-train-cal/1`): real LoRA training steps
 * timed on one machine (`hatsim live fed-calibrate`, live/fed-calibrate.ts),
 * stored beside the forward calibration as
 * <calibrationDir>/<hardware>/<model>/train.json, read by cost.ts.
 *
 * Measured, per LoRA rank r, at one (batch, seqLen, LoRA targets) shape and
 * with `concurrency` processes timing at once (the live run's device count,
 * so the cores are shared as in the run):
 *   baseForwardMs: forward + loss of the frozen base alone (no gradients);
 *   abStepMs: forward + backward + Adam of base + LoRA rank r, one step
 *     interleaved with the forwards (A/B: the backward factor, abFit);
 *   stepMs: per step of real rounds of K local steps (the live devices'
 *     code: LoRA variables, optimizer state and read-back included);
 *   roundOverheadMs: fixed time per round beyond K x stepMs (0 when stepMs
 *     already holds it, as fed-calibrate writes).
 * Fit (fitStepFactors): stepMs_j / fwd = a + b x_j (fwd = the median base
 * forward over the points, what cost.ts multiplies) with
 * x_j = W_lora(r_j) / W_frozen (forward FLOPs, cost.ts forwardFlops), i.e.
 * cost.ts's step = fwd (frozenStepFactor W_frozen + loraStepFactor W_lora) / W_full
 * at ratio 0: a = frozenStepFactor, b = loraStepFactor, least squares,
 * b >= 0 (b < 0 -> b = 0, a = mean). With LoRA FLOPs a few % of the frozen
 * ones (brown-small, ranks <= 16) b is weakly identified: per-op overheads
 * of the LoRA matmuls and the merge land in it; the file says so (bStdErr).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';

export const TRAIN_CAL_FORMAT = 'hatsim-train-cal/1';
export const TRAIN_CAL_FILE = 'train.json';

export interface TrainCalPoint {
  rank: number;
  /** W_lora(r) / W_frozen at ratio 0 (the regressor). */
  loraFlopShare: number;
  baseForwardMs: number;
  forwardMs: number;
  /** Forward + backward + Adam, one step interleaved with the two forwards (the backward factor proper). */
  abStepMs: number;
  /** Per step inside real rounds of K local steps (fresh LoRA variables and optimizer): what the cost model fits. */
  stepMs: number;
  samples: number;
}

export interface TrainCalibration {
  format: typeof TRAIN_CAL_FORMAT;
  hardwareId: string;
  model: string;
  batch: number;
  seqLen: number;
  loraTargets: string[];
  concurrency: number;
  points: TrainCalPoint[];
  roundOverheadMs: number;
  fit: StepFit;
  /** The same fit on the interleaved single steps (abStepMs). */
  abFit: StepFit;
  measured: { at: string; loadAvgBefore: number[]; loadAvgAfter: number[]; command: string; backend: string };
}

export interface StepFit { frozenStepFactor: number; loraStepFactor: number; rmse: number; bStdErr: number }

export function trainCalPath(calibrationDir: string, hardwareId: string, modelId: string): string {
  return join(calibrationDir, hardwareId, modelId, TRAIN_CAL_FILE);
}

/** The median of the points' base forward times: the forward the cost model multiplies (it does not depend on the rank). */
export function medianForwardMs(points: readonly { baseForwardMs: number }[]): number {
  const f = points.map((p) => p.baseForwardMs).sort((x, y) => x - y);
  return f.length % 2 === 1 ? f[(f.length - 1) / 2] : (f[f.length / 2 - 1] + f[f.length / 2]) / 2;
}

/** Least squares y = a + b x (y = stepMs / the median base forward, x = LoRA FLOP share), b >= 0; residual RMS and b's standard error. */
export function fitStepFactors(points: readonly { loraFlopShare: number; baseForwardMs: number; stepMs: number }[]): StepFit {
  if (points.length === 0) throw new InputError('fitStepFactors: no points', 'points');
  const fwd = medianForwardMs(points);
  const xs = points.map((p) => p.loraFlopShare), ys = points.map((p) => p.stepMs / fwd);
  const n = xs.length, mx = xs.reduce((s, x) => s + x, 0) / n, my = ys.reduce((s, y) => s + y, 0) / n;
  let sxx = 0, sxy = 0;
  for (let i = 0; i < n; i++) { sxx += (xs[i] - mx) ** 2; sxy += (xs[i] - mx) * (ys[i] - my); }
  let b = sxx > 0 ? sxy / sxx : 0;
  if (b < 0) b = 0;
  const a = my - b * mx;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (ys[i] - a - b * xs[i]) ** 2;
  const rmse = Math.sqrt(ss / n);
  const bStdErr = n > 2 && sxx > 0 ? Math.sqrt(ss / (n - 2) / sxx) : NaN;
  return { frozenStepFactor: a, loraStepFactor: b, rmse, bStdErr };
}

/** Read and check a training calibration file; null when there is none. */
export function loadTrainCalibration(calibrationDir: string, hardwareId: string, modelId: string): TrainCalibration | null {
  const file = trainCalPath(calibrationDir, hardwareId, modelId);
  if (!existsSync(file)) return null;
  let j: Partial<TrainCalibration>;
  try { j = JSON.parse(readFileSync(file, 'utf8')) as Partial<TrainCalibration>; } catch (e) { throw new InputError(`${file}: not valid JSON (${(e as Error).message})`, 'calibration'); }
  const bad = (field: string, want: string): never => { throw new InputError(`${file}: field "${field}" ${want}; re-measure with hatsim live fed-calibrate`, field); };
  if (j.format !== TRAIN_CAL_FORMAT) bad('format', `must be "${TRAIN_CAL_FORMAT}"`);
  if (j.hardwareId !== hardwareId) bad('hardwareId', `must be "${hardwareId}" (the directory)`);
  if (j.model !== modelId) bad('model', `must be "${modelId}" (the directory)`);
  for (const k of ['batch', 'seqLen', 'concurrency'] as const) if (!Number.isInteger(j[k]) || (j[k] as number) < 1) bad(k, 'must be an integer >= 1');
  if (!Array.isArray(j.loraTargets)) bad('loraTargets', 'must be a list of matrices');
  if (!Array.isArray(j.points) || j.points.length === 0) bad('points', 'must be a non-empty list');
  j.points!.forEach((p, i) => {
    for (const k of ['baseForwardMs', 'stepMs'] as const) if (!(typeof p[k] === 'number' && p[k] > 0)) bad(`points[${i}].${k}`, 'must be a time > 0 (ms)');
  });
  if (!(typeof j.roundOverheadMs === 'number' && j.roundOverheadMs >= 0)) bad('roundOverheadMs', 'must be a time >= 0 (ms)');
  const f = j.fit;
  if (!f || !(f.frozenStepFactor > 0) || !(f.loraStepFactor >= 0)) bad('fit', 'must hold frozenStepFactor > 0 and loraStepFactor >= 0');
  return j as TrainCalibration;
}

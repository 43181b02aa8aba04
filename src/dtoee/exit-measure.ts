/**
 * Measure an exit profile from a real model: ONNX exit heads run over the
 * stage outputs of a labelled set. The set is a directory (format
 * `hatsim-exit-features/1`, docs/DTOEE.md):
 *
 *   manifest.json  { "format": "hatsim-exit-features/1", "model": "<catalog id>",
 *                    "samples": N, "hiddenSize": H, "labels": "labels.i32",
 *                    "notes": "...",
 *                    "stages": [ { "layers": [0, 8], "hidden": "stage-1.f32", "head": "exit-1.onnx" },
 *                                ..., { "layers": [24, 32], "hidden": "final.f32", "head": "final.onnx" } ] }
 *   labels.i32     N int32 little-endian: the correct class (next token) of each sample
 *   stage-s.f32    N x H float32 little-endian: the hidden state at the end of stage s
 *   *.onnx         the stage's exit head (the last entry: the model's own head):
 *                  first input float32 [B, H] or [B, 1, H], first output logits [B, C] or [B, 1, C]
 *
 * Per sample and stage: confidence = max softmax probability, or the margin
 * top1 - top2 of the probabilities; correct = argmax == label. For every
 * threshold tau of the grid: exitProb = share of samples with confidence >=
 * tau, exitAccuracy = accuracy of those (carried forward from the last
 * threshold with any sample where none reaches tau). finalAccuracy = accuracy
 * of the last head. [assumption] Every sample is scored at every stage, so a
 * stage's curve does not depend on the thresholds before it.
 */
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import { InputError } from '../core/errors.js';
import { PROFILE_FORMAT, validateProfile, type ConfidenceKind, type ExitProfile } from './profile.js';

export const FEATURES_FORMAT = 'hatsim-exit-features/1';

export interface ExitFeatureStage {
  layers: [number, number];
  /** N x H hidden states, row-major. */
  hidden: Float32Array;
  headPath: string;
}

export interface ExitFeatures {
  model: string;
  samples: number;
  hiddenSize: number;
  labels: Int32Array;
  notes: string;
  stages: ExitFeatureStage[];
}

function bad(field: string, what: string): never {
  throw new InputError(`exit features: ${field} ${what}`, field);
}

function readBinary(dir: string, name: unknown, field: string, bytes: number): Buffer {
  if (typeof name !== 'string' || name === '') bad(field, 'must be a file name relative to the manifest');
  const path = join(dir, name);
  let size: number;
  try { size = statSync(path).size; } catch { bad(field, `"${name}" does not exist in ${dir}`); }
  if (size !== bytes) bad(field, `"${name}" has ${size} bytes: must have ${bytes} (little-endian 4-byte values, as many as the manifest says)`);
  return readFileSync(path);
}

/** Read and validate a features directory (InputError naming the field). */
export function readExitFeatures(dirIn: string): ExitFeatures {
  const dir = resolve(dirIn);
  let raw: unknown;
  try { raw = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')); } catch (e) {
    throw new InputError(`exit features: cannot read ${join(dir, 'manifest.json')} (${(e as Error).message})`, 'features');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) bad('(root)', 'must be a JSON object');
  const m = raw as Record<string, unknown>;
  if (m.format !== FEATURES_FORMAT) bad('format', `is ${JSON.stringify(m.format)}: must be "${FEATURES_FORMAT}"`);
  if (typeof m.model !== 'string' || m.model === '') bad('model', 'must be a non-empty string');
  const N = m.samples, H = m.hiddenSize;
  if (typeof N !== 'number' || !Number.isInteger(N) || N < 1) bad('samples', 'must be a positive integer');
  if (typeof H !== 'number' || !Number.isInteger(H) || H < 1) bad('hiddenSize', 'must be a positive integer');
  const lb = readBinary(dir, m.labels, 'labels', 4 * N);
  const labels = new Int32Array(N);
  for (let i = 0; i < N; i++) labels[i] = lb.readInt32LE(4 * i);
  if (!Array.isArray(m.stages) || m.stages.length < 2) bad('stages', 'must list at least 2 stages (the exit stages and the final one)');
  let prevTo: number | undefined;
  const stages = m.stages.map((s: unknown, i: number): ExitFeatureStage => {
    const f = `stages[${i}]`;
    if (typeof s !== 'object' || s === null) bad(f, 'must be an object');
    const st = s as Record<string, unknown>;
    const L = st.layers;
    if (!Array.isArray(L) || L.length !== 2 || !Number.isInteger(L[0]) || !Number.isInteger(L[1]) || (L[0] as number) < 0 || (L[1] as number) <= (L[0] as number)) {
      bad(`${f}.layers`, `is ${JSON.stringify(L)}: must be [from, to) with integers 0 <= from < to`);
    }
    if (prevTo !== undefined && L[0] !== prevTo) bad(`${f}.layers`, `starts at ${L[0]}: must start where the previous stage ends (${prevTo})`);
    prevTo = L[1] as number;
    const hb = readBinary(dir, st.hidden, `${f}.hidden`, 4 * N * H);
    const hidden = new Float32Array(N * H);
    for (let k = 0; k < N * H; k++) hidden[k] = hb.readFloatLE(4 * k);
    if (typeof st.head !== 'string' || st.head === '') bad(`${f}.head`, 'must be an ONNX file name relative to the manifest');
    const headPath = join(dir, st.head);
    try { statSync(headPath); } catch { bad(`${f}.head`, `"${st.head}" does not exist in ${dir}`); }
    return { layers: [L[0] as number, L[1] as number], hidden, headPath };
  });
  return { model: m.model, samples: N, hiddenSize: H, labels, notes: typeof m.notes === 'string' ? m.notes : '', stages };
}

export interface MeasureExitOptions {
  confidence?: ConfidenceKind;
  /** Threshold grid step (must divide 1); default 0.05. */
  gridStep?: number;
  /** Samples per head run; default 64. */
  batch?: number;
  /** ONNX Runtime intra-op threads; default 1. */
  threads?: number;
  /** Text for the profile's notes (the command line that produced it). */
  command?: string;
}

/** Confidence and correctness of one row of logits. */
export function scoreLogits(logits: Float32Array | number[], offset: number, C: number, label: number, kind: ConfidenceKind): { conf: number; correct: boolean } {
  let max = -Infinity, arg = 0;
  for (let c = 0; c < C; c++) { const v = logits[offset + c]; if (v > max) { max = v; arg = c; } }
  let sum = 0, second = -Infinity;
  for (let c = 0; c < C; c++) {
    const v = logits[offset + c];
    sum += Math.exp(v - max);
    if (c !== arg && v > second) second = v;
  }
  const p1 = 1 / sum, p2 = C > 1 ? Math.exp(second - max) / sum : 0;
  return { conf: kind === 'margin' ? p1 - p2 : p1, correct: arg === label };
}

async function runHead(stage: ExitFeatureStage, f: ExitFeatures, kind: ConfidenceKind, batch: number, threads: number, field: string): Promise<{ conf: Float64Array; correct: Uint8Array }> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(stage.headPath, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1 });
  } catch (e) {
    throw new InputError(`exit features: ${field} ${stage.headPath} is not a loadable ONNX model (${(e as Error).message})`, field);
  }
  try {
    const meta = session.inputMetadata[0];
    const rank = meta && meta.isTensor ? meta.shape.length : 2;
    if (rank !== 2 && rank !== 3) bad(field, `input has rank ${rank}: must be [B, H] or [B, 1, H]`);
    const N = f.samples, H = f.hiddenSize;
    const conf = new Float64Array(N), correct = new Uint8Array(N);
    for (let i0 = 0; i0 < N; i0 += batch) {
      const B = Math.min(batch, N - i0);
      const x = stage.hidden.slice(i0 * H, (i0 + B) * H);
      const t = new ort.Tensor('float32', x, rank === 2 ? [B, H] : [B, 1, H]);
      let out: ort.Tensor;
      try {
        const res = await session.run({ [session.inputNames[0]]: t });
        out = res[session.outputNames[0]];
      } catch (e) {
        throw new InputError(`exit features: ${field} failed on [${B}, ${H}] hidden states (${(e as Error).message})`, field);
      }
      const data = out.data as Float32Array;
      const C = data.length / B;
      if (!Number.isInteger(C) || C < 2) bad(field, `output has ${data.length} values for ${B} samples: must be logits [B, C] with C >= 2`);
      for (let b = 0; b < B; b++) {
        const label = f.labels[i0 + b];
        if (label < 0 || label >= C) bad('labels', `[${i0 + b}] is ${label}: ${field} has ${C} classes (labels 0..${C - 1})`);
        const s = scoreLogits(data, b * C, C, label, kind);
        conf[i0 + b] = s.conf;
        correct[i0 + b] = s.correct ? 1 : 0;
      }
    }
    return { conf, correct };
  } finally {
    await session.release();
  }
}

/** Exit probability and accuracy over a threshold grid from per-sample confidences. */
export function profileCurves(conf: ArrayLike<number>, correct: ArrayLike<number>, thresholds: number[]): { exitProb: number[]; exitAccuracy: number[] } {
  const N = conf.length;
  const exitProb: number[] = [], exitAccuracy: number[] = [];
  let lastAcc = NaN;
  for (const tau of thresholds) {
    let n = 0, ok = 0;
    for (let i = 0; i < N; i++) if (tau === 0 || conf[i] >= tau) { n++; ok += correct[i]; }
    exitProb.push(n / N);
    if (n > 0) lastAcc = ok / n;
    exitAccuracy.push(lastAcc);
  }
  return { exitProb, exitAccuracy };
}

/** Run the heads and build the profile (validated before it is returned). */
export async function measureExitProfile(f: ExitFeatures, o: MeasureExitOptions = {}): Promise<ExitProfile> {
  const kind = o.confidence ?? 'max-softmax';
  if (kind !== 'max-softmax' && kind !== 'margin') throw new InputError(`exit-profile: confidence "${kind}" must be max-softmax or margin`, 'confidence');
  const step = o.gridStep ?? 0.05;
  const n = Math.round(1 / step);
  if (!(step > 0 && step <= 1) || Math.abs(n * step - 1) > 1e-9) throw new InputError(`exit-profile: grid step ${step} must divide 1 (e.g. 0.05, 0.01)`, 'grid-step');
  const batch = o.batch ?? 64, threads = o.threads ?? 1;
  if (!Number.isInteger(batch) || batch < 1) throw new InputError(`exit-profile: batch ${batch} must be a positive integer`, 'batch');
  const thresholds = Array.from({ length: n + 1 }, (_, i) => (i === n ? 1 : Math.round((i / n) * 1e12) / 1e12));
  const S = f.stages.length;
  const stages: ExitProfile['stages'] = [];
  let finalAccuracy = 0;
  for (let s = 0; s < S; s++) {
    const { conf, correct } = await runHead(f.stages[s], f, kind, batch, threads, `stages[${s}].head`);
    if (s < S - 1) {
      stages.push({ stage: s + 1, layers: f.stages[s].layers, ...profileCurves(conf, correct, thresholds), samples: f.samples });
    } else {
      let ok = 0;
      for (let i = 0; i < f.samples; i++) ok += correct[i];
      finalAccuracy = ok / f.samples;
    }
  }
  const profile = {
    format: PROFILE_FORMAT, model: f.model, confidence: kind, source: 'measured',
    notes: `measured by hatsim exit-profile over ${f.samples} labelled samples; confidence ${kind}`
      + `${f.notes ? `; features: ${f.notes}` : ''}${o.command ? `; command: ${o.command}` : ''}`,
    thresholds, stages, finalAccuracy, finalLayers: f.stages[S - 1].layers,
  };
  return validateProfile(profile, S);
}

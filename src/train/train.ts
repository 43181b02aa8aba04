/**
 * Training of the base model: seeded init, seeded batches, Adam, a log line
 * per step (JSONL) and checkpoints (params + Adam state) so that an
 * interrupted run resumes to the same numbers.
 */
import { existsSync, mkdirSync, readFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import { tf, initTf } from './tf.js';
import { baseShapes, crossEntropy, disposeCtx, forward, initValues, makeCtx, toVariables, type Ctx, type Params, type ParamShape } from './model.js';
import { Adam, lrAt } from './optim.js';
import { evalWindows, trainBatch } from './data.js';
import { loadWeights, saveWeights } from './weights.js';

export interface TrainConfig {
  seed: number;
  steps: number;
  batch: number;
  seq: number;
  lrMax: number;
  warmup: number;
  minLrFrac: number;
  /** Validation windows evaluated every evalEvery steps (and at the end). */
  evalEvery: number;
  evalWindows: number;
  ckptEvery: number;
}

/** [assumption] Defaults chosen to train in well under an hour here (see README). */
export { TRAIN_DEFAULTS } from './defaults.js';

export interface LogLine { step: number; loss: number; lr: number; ms: number; valLoss?: number }

/** Mean cross-entropy (nats/token) over windows, `chunk` windows per forward. */
export function evalLoss(c: Ctx, logits: (ids: tf.Tensor2D) => tf.Tensor2D, windows: { x: Int32Array; y: Int32Array }[], chunk = 8): number {
  let sum = 0, n = 0;
  for (let i = 0; i < windows.length; i += chunk) {
    const w = windows.slice(i, i + chunk);
    const v = tf.tidy(() => {
      const x = tf.tensor2d(concat(w.map((a) => a.x)), [w.length, c.seq], 'int32');
      const y = tf.tensor1d(concat(w.map((a) => a.y)), 'int32');
      return crossEntropy(logits(x), y).dataSync()[0];
    });
    sum += v * w.length;
    n += w.length;
  }
  return sum / n;
}

function concat(a: Int32Array[]): Int32Array {
  const out = new Int32Array(a.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of a) { out.set(x, o); o += x.length; }
  return out;
}

interface CkptState { step: number; adamT: number; log: LogLine[]; config: TrainConfig; trainMs: number }

function saveCkpt(dir: string, m: ModelSpec, shapes: readonly ParamShape[], p: Params, opt: Adam, st: CkptState): void {
  const vals = new Map<string, Float32Array>();
  for (const [k, v] of p) vals.set(k, v.dataSync() as Float32Array);
  const adamShapes: ParamShape[] = [];
  const adamVals = new Map<string, Float32Array>();
  for (const s of shapes) {
    adamShapes.push({ ...s, name: `m/${s.name}` }, { ...s, name: `v/${s.name}` });
    adamVals.set(`m/${s.name}`, opt.m.get(s.name)!.dataSync() as Float32Array);
    adamVals.set(`v/${s.name}`, opt.v.get(s.name)!.dataSync() as Float32Array);
  }
  saveWeights(join(dir, 'ckpt-params'), m, vals, shapes);
  saveWeights(join(dir, 'ckpt-adam'), m, adamVals, adamShapes);
  writeFileAtomic(join(dir, 'ckpt-state.json'), JSON.stringify(st) + '\n');
}

export interface TrainResult { params: Params; log: LogLine[]; valLoss: number; trainMs: number; steps: number }

/**
 * Train the base model on `stream`. With `dir`, writes train-log.jsonl and
 * checkpoints there and resumes from the last checkpoint of the same config.
 * `stopAfterSteps` ends this invocation early (a checkpoint is written there);
 * `finalize` measures the validation loss of wherever the run stopped.
 */
export async function trainBase(m: ModelSpec, stream: Int32Array, valStream: Int32Array, cfg: TrainConfig, dir?: string, onLog?: (l: LogLine) => void, stopAfterSteps = Infinity, finalize = false): Promise<TrainResult> {
  await initTf();
  const shapes = baseShapes(m);
  let values = initValues(shapes, cfg.seed, 'init');
  let start = 0, trainMs = 0;
  let log: LogLine[] = [];
  let adamState: Map<string, Float32Array> | null = null;
  let adamT = 0;
  if (dir) {
    mkdirSync(dir, { recursive: true });
    const stPath = join(dir, 'ckpt-state.json');
    if (existsSync(stPath)) {
      const st = JSON.parse(readFileSync(stPath, 'utf8')) as CkptState;
      if (JSON.stringify(st.config) !== JSON.stringify(cfg)) throw new InputError(`${stPath}: field "config" differs from this run's configuration; use another --out or the same options`, 'config');
      values = loadWeights(join(dir, 'ckpt-params'), m, shapes);
      adamState = loadWeights(join(dir, 'ckpt-adam'), m, shapes.flatMap((s) => [{ ...s, name: `m/${s.name}` }, { ...s, name: `v/${s.name}` }]));
      start = st.step; log = st.log; trainMs = st.trainMs; adamT = st.adamT;
      // the log lines after this checkpoint are redone: keep the file equal to the checkpoint's log
      writeFileAtomic(join(dir, 'train-log.jsonl'), log.map((l) => JSON.stringify(l) + '\n').join(''));
    }
  }
  const p = toVariables(shapes, values);
  const opt = new Adam(p);
  if (adamState) {
    for (const s of shapes) {
      opt.m.get(s.name)!.assign(tf.tensor(adamState.get(`m/${s.name}`)!, s.dims));
      opt.v.get(s.name)!.assign(tf.tensor(adamState.get(`v/${s.name}`)!, s.dims));
    }
    opt.t = adamT;
  }
  const c = makeCtx(m, cfg.seq);
  const valWin = evalWindows(valStream, cfg.seq, cfg.evalWindows);
  const logFile = dir ? join(dir, 'train-log.jsonl') : null;
  let valLoss = NaN;
  const end = Math.min(cfg.steps, start + stopAfterSteps);
  for (let step = start; step < end; step++) {
    const t0 = performance.now();
    const { x, y } = trainBatch(stream, cfg.seed, step, cfg.batch, cfg.seq);
    const lr = lrAt(step, cfg.steps, cfg.lrMax, cfg.warmup, cfg.minLrFrac);
    const loss = opt.step(() => tf.tidy(() => crossEntropy(forward(p, c, tf.tensor2d(x, [cfg.batch, cfg.seq], 'int32')), tf.tensor1d(y, 'int32'))), lr);
    const ms = performance.now() - t0;
    trainMs += ms;
    const line: LogLine = { step: step + 1, loss, lr, ms: Math.round(ms) };
    if ((step + 1) % cfg.evalEvery === 0 || step + 1 === cfg.steps) {
      valLoss = evalLoss(c, (ids) => forward(p, c, ids), valWin);
      line.valLoss = valLoss;
    }
    log.push(line);
    if (logFile) appendFileSync(logFile, JSON.stringify(line) + '\n');
    onLog?.(line);
    if (dir && ((step + 1) % cfg.ckptEvery === 0 || step + 1 === end)) saveCkpt(dir, m, shapes, p, opt, { step: step + 1, adamT: opt.t, log, config: cfg, trainMs });
  }
  if (Number.isNaN(valLoss) && (end === cfg.steps || finalize)) valLoss = evalLoss(c, (ids) => forward(p, c, ids), valWin);
  opt.dispose();
  disposeCtx(c);
  return { params: p, log, valLoss, trainMs, steps: end };
}


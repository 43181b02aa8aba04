/**
 * Trained DTO-EE exit heads of the model trained here, one per stage boundary
 * b (the hidden state x after layers [0, b)):
 *   logits = (n + n A) W,   n = RMSNorm_w(x)
 * with its own norm weight w (initialised from the final norm), a square
 * "lens" A (H x H, initialised to 0) and the model's LM head W frozen: step 0
 * is the shared head of exits.ts, and training learns the linear map from the
 * boundary's normalised state to what the LM head expects (a tuned-lens-style
 * translator, Belrose et al. 2023, here trained by next-token cross-entropy on
 * the train split, base model frozen) [assumption: 16.5 K parameters per head
 * for brown-small; a full H x V head (132 K, from the LM head) trained the
 * same way raised the validation loss (5.262 -> 5.276 at boundary 2) with a
 * similar exit profile (docs/TRAINED-MODEL.md)]. Exported as
 * the project's lmHead graph with W' = (I + A) W folded in. The full head is
 * kept as an option (`head: 'full'`, `hatsim train --part exits --head full`):
 * logits = RMSNorm_w(x) W_b with W_b (H x V) initialised from W and trained.
 *
 * Training is cheap because the base is frozen: the boundary hidden states
 * of `trainWindows` evenly spaced train windows are computed once, then each
 * step draws `batch` positions (seeded stream exits/batch/<b>/<step>).
 *
 * Profile: `exitFeatures` writes a hatsim-exit-features/1 directory (validation
 * windows' boundary states, next-token labels, ONNX heads) that `hatsim
 * exit-profile` (dtoee/exit-measure.ts) measures; with heads 'shared' the
 * exit heads are the model's own head (the comparison).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { Rng } from '../core/rng.js';
import { InputError } from '../core/errors.js';
import { buildPartGraph } from '../calibrate/graph.js';
import type { ModelSpec } from '../model/types.js';
import { tf, initTf } from './tf.js';
import { baseShapes, crossEntropy, disposeCtx, embed, layersRange, makeCtx, readValues, rmsNorm, toVariables, type ParamShape, type Weights } from './model.js';
import { Adam, lrAt } from './optim.js';
import { evalWindows } from './data.js';

/** 'lens': own norm + H x H lens before the frozen LM head (default); 'full': own norm + an H x V head. */
export type ExitHeadKind = 'lens' | 'full';

export interface ExitHeadConfig { seed: number; steps: number; batch: number; seq: number; lrMax: number; warmup: number; minLrFrac: number; trainWindows: number; valWindows: number; head: ExitHeadKind }

/** Name of a head's trained matrix: `exit.<b>.lens.weight` [H,H] or `exit.<b>.head.weight` [H,V]. */
export function headMatrixName(b: number, kind: ExitHeadKind): string {
  return `exit.${b}.${kind === 'lens' ? 'lens' : 'head'}.weight`;
}

export function exitHeadShapes(m: ModelSpec, boundaries: readonly number[], kind: ExitHeadKind = 'lens'): ParamShape[] {
  return boundaries.flatMap((b) => [
    { name: `exit.${b}.norm.weight`, dims: [m.hiddenSize], init: 'ones' as const, std: 0 },
    { name: headMatrixName(b, kind), dims: [m.hiddenSize, kind === 'lens' ? m.hiddenSize : m.vocabSize], init: 'normal' as const, std: 0 },
  ]);
}

/** The head's [H, V] matrix (I + A) W of lens A and LM head W. */
export function foldedHead(m: ModelSpec, lens: Float32Array, lmHead: Float32Array): Float32Array {
  const H = m.hiddenSize, V = m.vocabSize;
  const out = lmHead.slice();
  for (let i = 0; i < H; i++) {
    const o = out.subarray(i * V, (i + 1) * V);
    for (let k = 0; k < H; k++) {
      const a = lens[i * H + k];
      if (a === 0) continue;
      const wk = lmHead.subarray(k * V, (k + 1) * V);
      for (let v = 0; v < V; v++) o[v] += a * wk[v];
    }
  }
  return out;
}

export function checkBoundaries(m: ModelSpec, boundaries: readonly number[]): number[] {
  const out = [...new Set(boundaries)].sort((a, b) => a - b);
  for (const b of out) if (!Number.isInteger(b) || b < 1 || b >= m.numLayers) throw new InputError(`exit boundary ${b}: must be an integer in [1, ${m.numLayers - 1}] for model ${m.id}`, 'exit-after');
  if (out.length === 0) throw new InputError('--exit-after: give at least one boundary', 'exit-after');
  return out;
}

/** Hidden states [N, H] after layers [0, b) for each boundary and after the last layer, and the next-token labels [N]. */
export function boundaryStates(m: ModelSpec, p: Weights, stream: Int32Array, seq: number, windows: number, boundaries: readonly number[]): { states: Map<number, Float32Array>; labels: Int32Array; n: number } {
  const win = evalWindows(stream, seq, windows);
  const c = makeCtx(m, seq);
  const stops = [...boundaries, m.numLayers];
  const parts = new Map<number, Float32Array[]>(stops.map((b) => [b, []]));
  for (let i = 0; i < win.length; i += 8) {
    const w = win.slice(i, i + 8);
    const ids = tf.tensor2d(w.flatMap((a) => [...a.x]), [w.length, seq], 'int32');
    let h = tf.tidy(() => embed(p, ids));
    let at = 0;
    for (const b of stops) {
      const next = tf.tidy(() => layersRange(p, c, h, at, b));
      h.dispose(); h = next; at = b;
      parts.get(b)!.push(h.dataSync() as Float32Array);
    }
    h.dispose(); ids.dispose();
  }
  disposeCtx(c);
  const n = win.length * seq, H = m.hiddenSize;
  const states = new Map<number, Float32Array>();
  for (const [b, list] of parts) {
    const out = new Float32Array(n * H);
    let o = 0;
    for (const x of list) { out.set(x, o); o += x.length; }
    states.set(b, out);
  }
  return { states, labels: Int32Array.from(win.flatMap((a) => [...a.y])), n };
}

export interface HeadRecord { boundary: number; initialValidationLoss: number; validationLoss: number; initialValidationAccuracy: number; validationAccuracy: number; trainMs: number }

export interface ExitHeadsResult { values: Map<string, Float32Array>; heads: HeadRecord[]; log: { boundary: number; step: number; loss: number }[]; trainMs: number; samples: { train: number; validation: number } }

/** Logits [B, V] of the head on states [B, H] (`mat`: the lens, or for 'full' the head itself). */
function headLogits(x: tf.Tensor2D, norm: tf.Tensor, mat: tf.Tensor, w: tf.Tensor, kind: ExitHeadKind): tf.Tensor2D {
  const n = rmsNorm(x, norm) as tf.Tensor2D;
  if (kind === 'full') return tf.matMul(n, mat as tf.Tensor2D) as tf.Tensor2D;
  return tf.matMul(tf.add(n, tf.matMul(n, mat as tf.Tensor2D)) as tf.Tensor2D, w as tf.Tensor2D) as tf.Tensor2D;
}

/** Loss (nats) and top-1 accuracy of a head on states [n, H]. */
function evalHead(norm: tf.Tensor, mat: tf.Tensor, w: tf.Tensor, kind: ExitHeadKind, x: Float32Array, y: Int32Array, H: number): { loss: number; acc: number } {
  let loss = 0, ok = 0;
  const n = y.length, B = 1024;
  for (let i = 0; i < n; i += B) {
    const k = Math.min(B, n - i);
    const [l, c] = tf.tidy(() => {
      const lg = headLogits(tf.tensor2d(x.subarray(i * H, (i + k) * H), [k, H]), norm, mat, w, kind);
      const yt = tf.tensor1d(y.subarray(i, i + k), 'int32');
      return [crossEntropy(lg, yt), tf.sum(tf.cast(tf.equal(tf.argMax(lg, -1), yt), 'float32'))];
    });
    loss += l.dataSync()[0] * k; ok += c.dataSync()[0];
    l.dispose(); c.dispose();
  }
  return { loss: loss / n, acc: ok / n };
}

export async function trainExitHeads(m: ModelSpec, base: Map<string, Float32Array>, train: Int32Array, validation: Int32Array, boundaries: readonly number[], cfg: ExitHeadConfig, onLog?: (l: { boundary: number; step: number; loss: number; ms: number }) => void): Promise<ExitHeadsResult> {
  await initTf();
  const bs = checkBoundaries(m, boundaries);
  const p = toVariables(baseShapes(m), base, false);
  const tr = boundaryStates(m, p, train, cfg.seq, cfg.trainWindows, bs);
  const va = boundaryStates(m, p, validation, cfg.seq, cfg.valWindows, bs);
  const H = m.hiddenSize;
  const w = p.get('lm_head.weight')!;
  const values = new Map<string, Float32Array>();
  const heads: HeadRecord[] = [];
  const log: ExitHeadsResult['log'] = [];
  let trainMs = 0;
  for (const b of bs) {
    const kind = cfg.head, matName = headMatrixName(b, kind);
    const init = new Map([[`exit.${b}.norm.weight`, base.get('final_norm.weight')!.slice()], [matName, kind === 'lens' ? new Float32Array(H * H) : base.get('lm_head.weight')!.slice()]]);
    const vars = toVariables(exitHeadShapes(m, [b], kind), init);
    const norm = vars.get(`exit.${b}.norm.weight`)!, mat = vars.get(matName)!;
    const before = evalHead(norm, mat, w, kind, va.states.get(b)!, va.labels, H);
    const opt = new Adam(vars);
    const xs = tr.states.get(b)!;
    const t0 = performance.now();
    for (let step = 0; step < cfg.steps; step++) {
      const t1 = performance.now();
      const r = new Rng(cfg.seed, `exits/batch/${b}/${step}`);
      const xb = new Float32Array(cfg.batch * H), yb = new Int32Array(cfg.batch);
      for (let i = 0; i < cfg.batch; i++) {
        const j = r.int(tr.n);
        xb.set(xs.subarray(j * H, (j + 1) * H), i * H);
        yb[i] = tr.labels[j];
      }
      const x = tf.tensor2d(xb, [cfg.batch, H]), y = tf.tensor1d(yb, 'int32');
      const loss = opt.step(() => tf.tidy(() => crossEntropy(headLogits(x, norm, mat, w, kind), y)), lrAt(step, cfg.steps, cfg.lrMax, cfg.warmup, cfg.minLrFrac));
      x.dispose(); y.dispose();
      log.push({ boundary: b, step: step + 1, loss });
      onLog?.({ boundary: b, step: step + 1, loss, ms: Math.round(performance.now() - t1) });
    }
    const ms = performance.now() - t0;
    trainMs += ms;
    const after = evalHead(norm, mat, w, kind, va.states.get(b)!, va.labels, H);
    heads.push({ boundary: b, initialValidationLoss: before.loss, validationLoss: after.loss, initialValidationAccuracy: before.acc, validationAccuracy: after.acc, trainMs: Math.round(ms) });
    for (const [k, v] of await readValues(vars)) values.set(k, v);
    opt.dispose();
    for (const t of vars.values()) t.dispose();
  }
  for (const t of p.values()) t.dispose();
  return { values, heads, log, trainMs, samples: { train: tr.n, validation: va.n } };
}

/** ONNX exit head (the lmHead graph: RMSNorm + MatMul, input hidden_states [B, S, H]) from a norm weight and a [H, V] matrix. */
export function writeHeadOnnx(m: ModelSpec, dir: string, name: string, norm: Float32Array, w: Float32Array): string {
  return buildPartGraph({
    model: m, part: 'lmHead', dir, name,
    weights: (n) => {
      if (n === 'final_norm.weight') return norm;
      if (n === 'lm_head.weight') return w;
      throw new Error(`exit head export: unexpected initialiser ${n}`);
    },
  }).path;
}

/**
 * A hatsim-exit-features/1 directory for `hatsim exit-profile`: validation windows' states at each
 * boundary and after the last layer, next-token labels, and the heads (trained exit heads, or the
 * model's own final norm + LM head at every boundary: 'shared').
 */
export function writeExitFeatures(m: ModelSpec, base: Map<string, Float32Array>, heads: { values: Map<string, Float32Array>; kind: ExitHeadKind } | 'shared', validation: Int32Array, o: { boundaries: number[]; seq: number; windows: number; out: string; notes: string }): { dir: string; samples: number } {
  const bs = checkBoundaries(m, o.boundaries);
  if (heads !== 'shared') {
    for (const b of bs) {
      if (!heads.values.has(headMatrixName(b, heads.kind))) {
        const have = [...heads.values.keys()].filter((k) => !k.endsWith('.norm.weight')).map((k) => k.split('.')[1]).join(', ');
        throw new InputError(`no trained exit head at boundary ${b} (trained: ${have}); train it: hatsim train --part exits --exit-after ${bs.join(',')}`, 'exit-after');
      }
    }
  }
  const p = toVariables(baseShapes(m), base, false);
  const st = boundaryStates(m, p, validation, o.seq, o.windows, bs);
  for (const t of p.values()) t.dispose();
  mkdirSync(o.out, { recursive: true });
  const bin = (a: Float32Array | Int32Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  writeFileSync(join(o.out, 'labels.i32'), bin(st.labels));
  const stages: { layers: [number, number]; hidden: string; head: string }[] = [];
  const fn = base.get('final_norm.weight')!, fw = base.get('lm_head.weight')!;
  bs.forEach((b, s) => {
    writeFileSync(join(o.out, `stage-${s + 1}.f32`), bin(st.states.get(b)!));
    const mat = heads === 'shared' ? null : heads.values.get(headMatrixName(b, heads.kind))!;
    const [nw, hw] = heads === 'shared' ? [fn, fw] : [heads.values.get(`exit.${b}.norm.weight`)!, heads.kind === 'lens' ? foldedHead(m, mat!, fw) : mat!];
    writeHeadOnnx(m, o.out, `exit-${s + 1}`, nw, hw);
    stages.push({ layers: [s === 0 ? 0 : bs[s - 1], b], hidden: `stage-${s + 1}.f32`, head: `exit-${s + 1}.onnx` });
  });
  writeFileSync(join(o.out, 'final.f32'), bin(st.states.get(m.numLayers)!));
  writeHeadOnnx(m, o.out, 'final', fn, fw);
  stages.push({ layers: [bs[bs.length - 1], m.numLayers], hidden: 'final.f32', head: 'final.onnx' });
  writeFileAtomic(join(o.out, 'manifest.json'), JSON.stringify({ format: 'hatsim-exit-features/1', model: m.id, samples: st.n, hiddenSize: m.hiddenSize, labels: 'labels.i32', notes: o.notes, stages }, null, 2) + '\n');
  return { dir: o.out, samples: st.n };
}

/**
 * Exit profile of the trained model (format "hatsim-exit-profile/1", types
 * and validator owned by src/dtoee/profile.ts on the DTO-EE branch). The exit
 * head at a stage boundary is the model's own final RMSNorm + LM head applied
 * to the hidden state there (LayerSkip-style shared head) [assumption: no
 * separately trained exit heads]. Each task is one next-token prediction on
 * validation windows; confidence = max softmax probability (or top1 - top2
 * margin), correct = argmax equals the actual next token.
 */
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import { tf } from './tf.js';
import { disposeCtx, embed, head, layersRange, makeCtx, type Weights } from './model.js';
import { evalWindows } from './data.js';

export interface ExitStage { stage: number; layers: [number, number]; exitProb: number[]; exitAccuracy: number[]; samples: number }
export interface ExitProfile {
  format: 'hatsim-exit-profile/1';
  model: string;
  confidence: 'max-softmax' | 'margin';
  source: 'measured';
  notes: string;
  thresholds: number[];
  stages: ExitStage[];
  finalAccuracy: number;
  finalLayers: [number, number];
}

/** conf and correctness of every position for logits [N,V] and targets. */
function confCorrect(logits: tf.Tensor2D, y: Int32Array, kind: 'max-softmax' | 'margin'): { conf: Float32Array; ok: Uint8Array } {
  const probs = tf.tidy(() => tf.softmax(logits, -1));
  const { values, indices } = tf.topk(probs, 2);
  const v = values.dataSync() as Float32Array, ix = indices.dataSync() as Int32Array;
  probs.dispose(); values.dispose(); indices.dispose();
  const n = y.length;
  const conf = new Float32Array(n), ok = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    conf[i] = kind === 'margin' ? v[2 * i] - v[2 * i + 1] : v[2 * i];
    ok[i] = ix[2 * i] === y[i] ? 1 : 0;
  }
  return { conf, ok };
}

/** Exit profile with exits after each boundary in `boundaries` (e.g. [2] for stages [0,2), [2,4)). */
export function exitProfile(m: ModelSpec, p: Weights, val: Int32Array, o: { boundaries: number[]; seq: number; windows: number; confidence: 'max-softmax' | 'margin'; step: number; notes: string }): ExitProfile {
  const win = evalWindows(val, o.seq, o.windows);
  const c = makeCtx(m, o.seq);
  const bounds = [...o.boundaries].sort((a, b) => a - b);
  for (const b of bounds) if (!Number.isInteger(b) || b < 1 || b >= m.numLayers) throw new InputError(`exit boundary ${b}: must be an integer in [1, ${m.numLayers - 1}] for model ${m.id}`, 'exit-after');
  const confs: Float32Array[][] = bounds.map(() => []), oks: Uint8Array[][] = bounds.map(() => []);
  const finalOk: Uint8Array[] = [];
  for (let i = 0; i < win.length; i += 8) {
    const w = win.slice(i, i + 8);
    const y = Int32Array.from(w.flatMap((a) => [...a.y]));
    const ids = tf.tensor2d(w.flatMap((a) => [...a.x]), [w.length, o.seq], 'int32');
    let h = tf.tidy(() => embed(p, ids));
    let at = 0;
    bounds.forEach((b, s) => {
      const next = tf.tidy(() => layersRange(p, c, h, at, b));
      h.dispose(); h = next; at = b;
      const lg = tf.tidy(() => head(p, h));
      const r = confCorrect(lg, y, o.confidence);
      lg.dispose();
      confs[s].push(r.conf); oks[s].push(r.ok);
    });
    const fin = tf.tidy(() => head(p, layersRange(p, c, h, at, m.numLayers)));
    finalOk.push(confCorrect(fin, y, o.confidence).ok);
    fin.dispose(); h.dispose(); ids.dispose();
  }
  disposeCtx(c);
  const thresholds = Array.from({ length: Math.round(1 / o.step) + 1 }, (_, k) => Math.round(k * o.step * 1e6) / 1e6);
  const stages: ExitStage[] = bounds.map((b, s) => {
    const conf = concatF(confs[s]), ok = concatU(oks[s]);
    const exitProb: number[] = [], exitAccuracy: number[] = [];
    let lastAcc = NaN;
    for (const tau of thresholds) {
      let n = 0, k = 0;
      for (let i = 0; i < conf.length; i++) if (conf[i] >= tau) { n++; k += ok[i]; }
      exitProb.push(tau === 0 ? 1 : n / conf.length);
      if (n > 0) lastAcc = k / n;
      exitAccuracy.push(lastAcc);
    }
    return { stage: s + 1, layers: [s === 0 ? 0 : bounds[s - 1], b] as [number, number], exitProb, exitAccuracy, samples: conf.length };
  });
  const fo = concatU(finalOk);
  return {
    format: 'hatsim-exit-profile/1', model: m.id, confidence: o.confidence, source: 'measured', notes: o.notes, thresholds, stages,
    finalAccuracy: fo.reduce((a, b) => a + b, 0) / fo.length, finalLayers: [bounds[bounds.length - 1], m.numLayers],
  };
}

function concatF(a: Float32Array[]): Float32Array {
  const out = new Float32Array(a.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of a) { out.set(x, o); o += x.length; }
  return out;
}
function concatU(a: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(a.reduce((s, x) => s + x.length, 0));
  let o = 0;
  for (const x of a) { out.set(x, o); o += x.length; }
  return out;
}

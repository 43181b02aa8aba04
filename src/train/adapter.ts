/**
 * HAT's small model for real: input layers + adapter + output layers of the
 * trained model draft for the full model. The adapter (one attention block +
 * norm) is trained by distillation: KL(full || SLM) of the next-token
 * distributions on train windows, base weights frozen. Its attention starts
 * from the first middle layer's [assumption: a warm start; a random start
 * learns the same, slower].
 *
 * Acceptance (acceptanceTable): contexts from the test split; the SLM drafts
 * K tokens; the full model verifies them. Greedy: draft i is accepted iff
 * drafts 1..i-1 were and it equals the full model's argmax. Sampled
 * (speculative sampling, temperature T): draft x ~ q, accepted with
 * probability min(1, p(x)/q(x)), seeded draws. Per position i the rate is
 * accepted_i / reached_i (reached = all earlier drafts accepted); for sampled
 * drafts the exact expectation 1 - TV(p, q) over reached positions is given too.
 */
import { Rng } from '../core/rng.js';
import type { ModelSpec } from '../model/types.js';
import { tf, initTf } from './tf.js';
import { adapterShapes, baseShapes, disposeCtx, forward, forwardSlm, makeCtx, readValues, toVariables, type Ctx, type Params, type Weights } from './model.js';
import { Adam, lrAt } from './optim.js';
import { evalWindows, trainBatch } from './data.js';
import { sampleToken, softmax } from './eval.js';

export interface AdapterConfig { seed: number; steps: number; batch: number; seq: number; lrMax: number; warmup: number; minLrFrac: number; inputLayers: number; outputLayers: number; evalWindows: number }

/** [assumption] 1 input + 1 output layer of brown-small's 4 (2 in the cloud's middle). */
export { ADAPTER_DEFAULTS } from './defaults.js';

export function adapterInit(m: ModelSpec, base: Map<string, Float32Array>, inputLayers: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const s of adapterShapes(m)) {
    const src = s.name === 'adapter.norm.weight' ? null : base.get(s.name.replace(/^adapter\./, `layers.${inputLayers}.`));
    out.set(s.name, src ? src.slice() : new Float32Array(s.dims.reduce((a, b) => a * b, 1)).fill(1));
  }
  return out;
}

/** Mean KL(teacher || student) in nats of logits [N,V]. */
function kl(teacher: tf.Tensor2D, student: tf.Tensor2D): tf.Scalar {
  const lt = tf.logSoftmax(teacher, -1), ls = tf.logSoftmax(student, -1);
  return tf.mean(tf.sum(tf.mul(tf.exp(lt), tf.sub(lt, ls)), -1)) as tf.Scalar;
}

export interface AdapterResult { values: Map<string, Float32Array>; log: { step: number; kl: number; ms: number }[]; initialValidationKl: number; validationKl: number; trainMs: number }

export async function trainAdapter(m: ModelSpec, base: Map<string, Float32Array>, stream: Int32Array, valStream: Int32Array, cfg: AdapterConfig, onLog?: (l: { step: number; kl: number; ms: number }) => void): Promise<AdapterResult> {
  await initTf();
  const frozen = toVariables(baseShapes(m), base, false);
  const ad = toVariables(adapterShapes(m), adapterInit(m, base, cfg.inputLayers));
  const all: Params = new Map([...frozen, ...ad]);
  const c = makeCtx(m, cfg.seq);
  const opt = new Adam(ad);
  const log: AdapterResult['log'] = [];
  let trainMs = 0;
  const win = evalWindows(valStream, cfg.seq, cfg.evalWindows);
  const valKl = (): number => {
    let sum = 0;
    for (let i = 0; i < win.length; i += 8) {
      const w = win.slice(i, i + 8);
      sum += w.length * tf.tidy(() => {
        const ids = tf.tensor2d(w.flatMap((a) => [...a.x]), [w.length, cfg.seq], 'int32');
        return kl(forward(all, c, ids), forwardSlm(all, c, ids, cfg.inputLayers, cfg.outputLayers)).dataSync()[0];
      });
    }
    return sum / win.length;
  };
  const initialValidationKl = valKl();
  for (let step = 0; step < cfg.steps; step++) {
    const t0 = performance.now();
    const { x } = trainBatch(stream, cfg.seed, step, cfg.batch, cfg.seq, 'adapter/batch');
    const ids = tf.tensor2d(x, [cfg.batch, cfg.seq], 'int32');
    const teacher = tf.tidy(() => forward(all, c, ids));
    const v = opt.step(() => tf.tidy(() => kl(teacher, forwardSlm(all, c, ids, cfg.inputLayers, cfg.outputLayers))), lrAt(step, cfg.steps, cfg.lrMax, cfg.warmup, cfg.minLrFrac));
    teacher.dispose(); ids.dispose();
    const ms = performance.now() - t0;
    trainMs += ms;
    const line = { step: step + 1, kl: v, ms: Math.round(ms) };
    log.push(line);
    onLog?.(line);
  }
  const validationKl = valKl();
  const values = await readValues(ad);
  opt.dispose(); disposeCtx(c);
  for (const t of all.values()) t.dispose();
  return { values, log, initialValidationKl, validationKl, trainMs };
}

export interface AcceptanceOptions { draftLen: number; contexts: number; contextLen: number; batch: number; seed: number; temperature: number; inputLayers: number; outputLayers: number }

export interface PositionStats { position: number; reached: number; accepted: number; rate: number; expectedRate?: number }

export interface AcceptanceRun { mode: 'greedy' | 'sampled'; temperature: number; positions: PositionStats[]; meanAcceptedPerRound: number }

/** Acceptance per draft position of the SLM against the full model (see the header). */
export function acceptanceTable(m: ModelSpec, p: Weights, test: Int32Array, o: AcceptanceOptions, mode: 'greedy' | 'sampled'): AcceptanceRun {
  return acceptanceOf(m, (c, ids) => forwardSlm(p, c, ids, o.inputLayers, o.outputLayers), (c, ids) => forward(p, c, ids), test, o, mode);
}

type LogitsFn = (c: Ctx, ids: tf.Tensor2D) => tf.Tensor2D;

/** Acceptance of any drafter against any verifier (both logits [B*S, V]). */
export function acceptanceOf(m: ModelSpec, draft: LogitsFn, verify: LogitsFn, test: Int32Array, o: AcceptanceOptions, mode: 'greedy' | 'sampled'): AcceptanceRun {
  const K = o.draftLen, S0 = o.contextLen;
  const c = makeCtx(m, S0 + K);
  const starts = evalWindows(test.subarray(0, test.length - K), S0, o.contexts).map((w) => Array.from(w.x));
  const reached = new Array<number>(K).fill(0), accepted = new Array<number>(K).fill(0), expected = new Array<number>(K).fill(0);
  const rng = new Rng(o.seed, `acceptance/${mode}`);
  const temp = mode === 'greedy' ? 0 : o.temperature;
  let acceptedTotal = 0;
  const logitsRows = (fn: (ids: tf.Tensor2D) => tf.Tensor2D, rows: number[][], last: number): Float32Array[][] => {
    const b = rows.length, s = rows[0].length, V = m.vocabSize;
    const flat = tf.tidy(() => fn(tf.tensor2d(rows.flat(), [b, s], 'int32')).reshape([b, s, V]).slice([0, s - last, 0], [b, last, V]).dataSync() as Float32Array);
    return Array.from({ length: b }, (_, i) => Array.from({ length: last }, (_, j) => flat.slice((i * last + j) * V, (i * last + j + 1) * V)));
  };
  const scaled = (l: Float32Array): Float64Array => softmax(temp > 0 ? l.map((x) => x / temp) : l);
  for (let bi = 0; bi < starts.length; bi += o.batch) {
    const rows = starts.slice(bi, bi + o.batch).map((r) => r.slice());
    const q: Float64Array[][] = rows.map(() => []);
    for (let k = 0; k < K; k++) {
      const last = logitsRows((ids) => draft(c, ids), rows, 1);
      rows.forEach((r, i) => {
        const l = last[i][0];
        if (temp > 0) q[i].push(scaled(l));
        r.push(sampleToken(l, temp, m.vocabSize, rng));
      });
    }
    const full = logitsRows((ids) => verify(c, ids), rows.map((r) => r.slice(0, S0 + K - 1)), K);
    rows.forEach((r, i) => {
      for (let k = 0; k < K; k++) {
        const x = r[S0 + k];
        const pl = full[i][k];
        reached[k]++;
        let ok: boolean;
        if (temp <= 0) {
          let best = 0;
          for (let v = 1; v < pl.length; v++) if (pl[v] > pl[best]) best = v;
          ok = best === x;
        } else {
          const pp = scaled(pl), qq = q[i][k];
          let overlap = 0;
          for (let v = 0; v < pp.length; v++) overlap += Math.min(pp[v], qq[v]);
          expected[k] += overlap;
          ok = rng.uniform() < Math.min(1, pp[x] / qq[x]);
        }
        if (!ok) break;
        accepted[k]++;
        acceptedTotal++;
      }
    });
  }
  disposeCtx(c);
  const positions = reached.map((n, k) => ({
    position: k + 1, reached: n, accepted: accepted[k], rate: n > 0 ? accepted[k] / n : 0,
    ...(temp > 0 ? { expectedRate: n > 0 ? expected[k] / n : 0 } : {}),
  }));
  return { mode, temperature: temp, positions, meanAcceptedPerRound: acceptedTotal / starts.length };
}

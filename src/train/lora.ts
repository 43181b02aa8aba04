/**
 * LoRA fine-tuning (Hu et al. 2021) of a frozen base on one token stream (a
 * device's shard): for each chosen projection W [in, out] of every decoder
 * layer, W' = W + (alpha / r) A B with A [in, r] (seeded normal, std 1/sqrt(in))
 * and B [r, out] (zeros), so W' = W at step 0; only A and B are trained. The
 * building block of FedSpine's live runner: call `loraFineTune` per device
 * and round (pass `init` to continue from aggregated A/B).
 */
import { Rng } from '../core/rng.js';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import { tf, initTf } from './tf.js';
import { baseShapes, crossEntropy, disposeCtx, forward, kvDimOf, makeCtx, readValues, toVariables, type ParamShape, type Weights } from './model.js';
import { Adam, lrAt } from './optim.js';
import { evalWindows, trainBatch } from './data.js';
import { evalLoss } from './train.js';

export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';
export const LORA_TARGETS: readonly LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

export interface LoraConfig { rank: number; alpha: number; targets: LoraTarget[]; steps: number; batch: number; seq: number; lr: number; seed: number; evalWindows: number }
/** [assumption] rank 4 on q and v (the LoRA paper's choice), alpha = 2 r. */
export const LORA_DEFAULTS: LoraConfig = { rank: 4, alpha: 8, targets: ['q', 'v'], steps: 20, batch: 8, seq: 64, lr: 2e-3, seed: 1, evalWindows: 16 };

function weightName(i: number, t: LoraTarget): string {
  return `layers.${i}.${t === 'gate' || t === 'up' || t === 'down' ? 'mlp' : 'attn'}.${t}.weight`;
}

/** Shapes of the LoRA factors: `<weight>.lora_a` [in, r] and `<weight>.lora_b` [r, out]. */
export function loraShapes(m: ModelSpec, cfg: Pick<LoraConfig, 'rank' | 'targets'>): ParamShape[] {
  if (!Number.isInteger(cfg.rank) || cfg.rank < 1) throw new InputError(`LoRA rank ${cfg.rank}: give an integer >= 1`, 'rank');
  for (const t of cfg.targets) if (!LORA_TARGETS.includes(t)) throw new InputError(`LoRA target "${t}": allowed ${LORA_TARGETS.join(', ')}`, 'targets');
  const h = m.hiddenSize, f = m.intermediateSize, kv = kvDimOf(m);
  const io: Record<LoraTarget, [number, number]> = { q: [h, h], k: [h, kv], v: [h, kv], o: [h, h], gate: [h, f], up: [h, f], down: [f, h] };
  const out: ParamShape[] = [];
  for (let i = 0; i < m.numLayers; i++) {
    for (const t of cfg.targets) {
      const [a, b] = io[t];
      out.push({ name: `${weightName(i, t)}.lora_a`, dims: [a, cfg.rank], init: 'normal', std: 1 / Math.sqrt(a) });
      out.push({ name: `${weightName(i, t)}.lora_b`, dims: [cfg.rank, b], init: 'normal', std: 0 });
    }
  }
  return out;
}

function initLora(shapes: readonly ParamShape[], seed: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const s of shapes) {
    const v = new Float32Array(s.dims.reduce((a, b) => a * b, 1));
    if (s.std > 0) { const r = new Rng(seed, `lora/${s.name}`); for (let i = 0; i < v.length; i++) v[i] = r.normal() * s.std; }
    out.set(s.name, v);
  }
  return out;
}

/** The base weights with each target W replaced by W + (alpha/r) A B (call inside tf.tidy). */
export function mergedWeights(base: Weights, lora: Weights, cfg: Pick<LoraConfig, 'rank' | 'alpha'>): Weights {
  const out = new Map(base);
  const scale = cfg.alpha / cfg.rank;
  for (const [k, a] of lora) {
    if (!k.endsWith('.lora_a')) continue;
    const w = k.slice(0, -'.lora_a'.length);
    out.set(w, tf.add(base.get(w)!, tf.mul(tf.matMul(a, lora.get(`${w}.lora_b`)!), scale)));
  }
  return out;
}

export interface LoraResult { lora: Map<string, Float32Array>; log: { step: number; loss: number }[]; lossBefore: number; lossAfter: number; trainMs: number }

/**
 * Fine-tune LoRA factors on `shard` (train windows) and report the mean loss on
 * `evalStream` windows before and after. Base weights are never changed.
 */
export async function loraFineTune(m: ModelSpec, base: Map<string, Float32Array>, shard: Int32Array, evalStream: Int32Array, cfg: LoraConfig, init?: Map<string, Float32Array>): Promise<LoraResult> {
  await initTf();
  const shapes = loraShapes(m, cfg);
  const frozen = toVariables(baseShapes(m), base, false);
  const lv = toVariables(shapes, init ?? initLora(shapes, cfg.seed));
  const c = makeCtx(m, cfg.seq);
  const win = evalWindows(evalStream, cfg.seq, cfg.evalWindows);
  const lossNow = (): number => evalLoss(c, (ids) => forward(mergedWeights(frozen, lv, cfg), c, ids), win);
  const lossBefore = lossNow();
  const opt = new Adam(lv);
  const log: LoraResult['log'] = [];
  const t0 = performance.now();
  for (let step = 0; step < cfg.steps; step++) {
    const { x, y } = trainBatch(shard, cfg.seed, step, cfg.batch, cfg.seq, 'lora/batch');
    const loss = opt.step(() => tf.tidy(() => crossEntropy(forward(mergedWeights(frozen, lv, cfg), c, tf.tensor2d(x, [cfg.batch, cfg.seq], 'int32')), tf.tensor1d(y, 'int32'))), lrAt(step, cfg.steps, cfg.lr, 0, 1));
    log.push({ step: step + 1, loss });
  }
  const trainMs = performance.now() - t0;
  const lossAfter = lossNow();
  const lora = await readValues(lv);
  opt.dispose(); disposeCtx(c);
  for (const t of [...frozen.values(), ...lv.values()]) t.dispose();
  return { lora, log, lossBefore, lossAfter, trainMs };
}

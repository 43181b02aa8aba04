/**
 * Adam with global-norm gradient clipping and a warm-up + cosine learning
 * rate [assumption: the usual small-LM recipe], written on tf ops so that
 * its state (m, v, t) is ours to checkpoint and restore exactly.
 */
import { tf } from './tf.js';
import type { Params } from './model.js';

export interface AdamConfig { beta1: number; beta2: number; eps: number; clipNorm: number }
export const ADAM_DEFAULTS: AdamConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, clipNorm: 1 };

export class Adam {
  t = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();

  constructor(readonly params: Params, readonly cfg: AdamConfig = ADAM_DEFAULTS) {
    for (const [k, p] of params) {
      this.m.set(k, tf.variable(tf.zerosLike(p), false));
      this.v.set(k, tf.variable(tf.zerosLike(p), false));
    }
  }

  /** One step on loss(); returns the loss value. */
  step(loss: () => tf.Scalar, lr: number): number {
    const names = [...this.params.keys()];
    const vars = names.map((n) => this.params.get(n)!);
    const { value, grads } = tf.variableGrads(loss, vars);
    const lossValue = value.dataSync()[0];
    tf.tidy(() => {
      const gs = names.map((_, i) => grads[vars[i].name]);
      const sq = tf.addN(gs.map((g) => tf.sum(tf.square(g))));
      const norm = Math.sqrt(sq.dataSync()[0]);
      const scale = norm > this.cfg.clipNorm ? this.cfg.clipNorm / norm : 1;
      this.t += 1;
      const { beta1: b1, beta2: b2, eps } = this.cfg;
      const c1 = 1 - Math.pow(b1, this.t), c2 = 1 - Math.pow(b2, this.t);
      names.forEach((n, i) => {
        const g = tf.mul(gs[i], scale);
        const m = this.m.get(n)!, v = this.v.get(n)!;
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const upd = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
        vars[i].assign(tf.sub(vars[i], tf.mul(upd, lr)));
      });
    });
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
    return lossValue;
  }

  dispose(): void {
    for (const x of [...this.m.values(), ...this.v.values()]) x.dispose();
  }
}

/** Linear warm-up to lrMax over `warmup` steps, then cosine to lrMax * minFrac at `total`. */
export function lrAt(step: number, total: number, lrMax: number, warmup: number, minFrac: number): number {
  if (step < warmup) return (lrMax * (step + 1)) / warmup;
  const p = Math.min(1, (step - warmup) / Math.max(1, total - warmup));
  return lrMax * (minFrac + (1 - minFrac) * 0.5 * (1 + Math.cos(Math.PI * p)));
}

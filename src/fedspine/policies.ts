/**
 * Per-device configuration policies: FedSpine (S-UCB per device) and the
 * baselines. Pure (no simulator or network imports): the live runner can
 * drive the same objects. Every rule here is an [assumption]:
 *
 * - fedspine: one SmoothUcb per device over the space; the reward of each
 *   round is fed back (bandit.ts).
 * - hetlora: HetLoRA, ranks by device capacity, no pruning. capacity_i =
 *   1 / (step time at ratio 0 and rankMax) relative to the fastest device;
 *   rank_i = round(rankMin + (rankMax - rankMin) capacity_i), lowered until
 *   feasible.
 * - uniform: the same rank (uniformRank) everywhere, no pruning.
 * - fixed: the same ratio (fixedRatio) and rank (uniformRank) everywhere, no bandit.
 * - oracle: knows every device's round time for every configuration and the
 *   learning model; picks, once, the per-device configurations that minimise
 *   the predicted time to the target loss (steady state, no contention,
 *   always available): for each candidate round time T, each device takes
 *   its most-progress configuration that fits T; the T with the least
 *   predicted time to target wins (ties: more progress).
 * A device with no feasible configuration for a policy gets null (it sits
 * the round out; rounds.csv marks it infeasible).
 */
import type { Rng } from '../core/rng.js';
import { InputError } from '../core/errors.js';
import { SmoothUcb, snap, type ConfigSpace, type Feasible, type SucbOptions } from './bandit.js';

export const METHOD_IDS = ['fedspine', 'hetlora', 'uniform', 'fixed', 'oracle'] as const;
export type MethodId = (typeof METHOD_IDS)[number];

export interface Choice {
  ratio: number;
  rank: number;
  /** Bandit cell (fedspine only). */
  cell?: number;
}

export interface ConfigPolicy {
  readonly method: MethodId;
  choose(device: number, feasible: Feasible): Choice | null;
  /** The reward of a device's last choice (ignored by the fixed policies). */
  observe(device: number, choice: Choice, reward: number): void;
}

export interface BaselineOptions {
  uniformRank: number;
  fixedRatio: number;
}

/** What the policies may know about a device (the oracle knows everything). */
export interface PolicyContext {
  devices: number;
  space: ConfigSpace;
  sucb: SucbOptions;
  baselines: BaselineOptions;
  /** Seeded stream for device d's bandit. */
  rngOf(device: number): Rng;
  /** Step time (ms) at (ratio, rank) on device d: HetLoRA's capacity and the oracle use it. */
  stepMs(device: number, ratio: number, rank: number): number;
  /** Oracle only: predicted round time of device d (s) at (ratio, rank), idle links. */
  roundTimeS(device: number, ratio: number, rank: number): number;
  /** Oracle only: predicted rounds to reach the target with these per-device configurations (Infinity if never). */
  roundsToTarget(configs: readonly (Choice | null)[]): number;
  /** Oracle only: predicted progress of one device's update at (ratio, rank). */
  progress(device: number, ratio: number, rank: number): number;
}

function ranksDown(space: ConfigSpace, from: number): number[] {
  const out: number[] = [];
  for (let r = Math.min(space.rankMax, from); r >= space.rankMin; r--) out.push(r);
  return out;
}

class FixedPolicy implements ConfigPolicy {
  constructor(readonly method: MethodId, private readonly pick: (device: number, feasible: Feasible) => Choice | null) {}
  choose(device: number, feasible: Feasible): Choice | null { return this.pick(device, feasible); }
  observe(): void { /* fixed choices learn nothing */ }
}

class FedSpinePolicy implements ConfigPolicy {
  readonly method = 'fedspine' as const;
  private readonly bandits: SmoothUcb[];
  constructor(ctx: PolicyContext) {
    this.bandits = Array.from({ length: ctx.devices }, (_, d) => new SmoothUcb(ctx.space, ctx.sucb, ctx.rngOf(d)));
  }
  choose(device: number, feasible: Feasible): Choice | null {
    const c = this.bandits[device].select(feasible);
    return c === null ? null : { ratio: c.ratio, rank: c.rank, cell: c.cell };
  }
  observe(device: number, choice: Choice, reward: number): void {
    if (choice.cell !== undefined) this.bandits[device].update(choice.cell, reward);
  }
}

function oraclePlan(ctx: PolicyContext, feasibleOf: (d: number) => Feasible): (Choice | null)[] {
  const { space } = ctx;
  const ratios: number[] = [];
  for (let i = 0; ; i++) { const p = snap(space, space.ratioMin + i * space.ratioStep, space.rankMin).ratio; if (ratios.includes(p)) break; ratios.push(p); }
  // Per device: its feasible configurations with time and progress, sorted by time.
  const options = Array.from({ length: ctx.devices }, (_, d) => {
    const f = feasibleOf(d);
    const list: { ratio: number; rank: number; t: number; g: number }[] = [];
    for (const p of ratios) for (let r = space.rankMin; r <= space.rankMax; r++) {
      if (f(p, r)) list.push({ ratio: p, rank: r, t: ctx.roundTimeS(d, p, r), g: ctx.progress(d, p, r) });
    }
    return list;
  });
  const minT = Math.max(...options.map((o) => (o.length > 0 ? Math.min(...o.map((x) => x.t)) : 0)));
  const cand = [...new Set(options.flat().map((x) => x.t).filter((t) => t >= minT))].sort((a, b) => a - b);
  // At most ~200 candidate round times (quantiles) keep the search cheap.
  const step = Math.max(1, Math.floor(cand.length / 200));
  let best: (Choice | null)[] = options.map(() => null), bestTime = Infinity, bestG = -Infinity;
  for (let k = 0; k < cand.length; k += step) {
    const T = cand[k];
    const plan = options.map((o) => {
      let pick: Choice | null = null, g = -Infinity;
      for (const x of o) if (x.t <= T && x.g > g) { g = x.g; pick = { ratio: x.ratio, rank: x.rank }; }
      return pick;
    });
    const rounds = ctx.roundsToTarget(plan);
    const total = rounds * T;
    const g = plan.reduce((s, c, d) => s + (c ? ctx.progress(d, c.ratio, c.rank) : 0), 0) / T;
    if (total < bestTime || (total === bestTime && g > bestG)) { best = plan; bestTime = total; bestG = g; }
  }
  return best;
}

export interface PolicyFactoryOptions {
  /** Per-device memory feasibility, for the oracle's one-off plan. */
  feasibleOf(device: number): Feasible;
}

export function makePolicy(method: MethodId, ctx: PolicyContext, o: PolicyFactoryOptions): ConfigPolicy {
  const { space, baselines } = ctx;
  switch (method) {
    case 'fedspine':
      return new FedSpinePolicy(ctx);
    case 'uniform':
      return new FixedPolicy('uniform', (_d, f) => (f(0, baselines.uniformRank) ? { ratio: 0, rank: baselines.uniformRank } : null));
    case 'fixed':
      return new FixedPolicy('fixed', (_d, f) => (f(baselines.fixedRatio, baselines.uniformRank) ? { ratio: baselines.fixedRatio, rank: baselines.uniformRank } : null));
    case 'hetlora': {
      const speed = Array.from({ length: ctx.devices }, (_, d) => 1 / ctx.stepMs(d, 0, space.rankMax));
      const top = Math.max(...speed);
      return new FixedPolicy('hetlora', (d, f) => {
        const want = Math.round(space.rankMin + (space.rankMax - space.rankMin) * (speed[d] / top));
        for (const r of ranksDown(space, want)) if (f(0, r)) return { ratio: 0, rank: r };
        return null;
      });
    }
    case 'oracle': {
      const plan = oraclePlan(ctx, o.feasibleOf);
      return new FixedPolicy('oracle', (d) => plan[d]);
    }
    default: {
      const never: never = method;
      throw new InputError(`unknown method "${String(never)}"; allowed: ${METHOD_IDS.join(', ')}`, 'methods');
    }
  }
}

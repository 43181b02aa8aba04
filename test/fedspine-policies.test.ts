/** FedSpine baselines: HetLoRA ranks by capacity, uniform / fixed choices, the oracle against brute-force common plans. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { DEFAULT_SUCB, type ConfigSpace } from '../src/fedspine/bandit.js';
import { makePolicy, type Choice, type PolicyContext } from '../src/fedspine/policies.js';

const space: ConfigSpace = { ratioMin: 0, ratioMax: 0.6, ratioStep: 0.1, rankMin: 2, rankMax: 8 };
const speed = [1, 3, 6]; // device 2 is 6x device 0
const stepMs = (d: number, p: number, r: number) => (100 * (1 - 0.8 * p) * (1 + r / 16)) / speed[d];
const timeS = (d: number, p: number, r: number) => 0.5 + (20 * stepMs(d, p, r)) / 1000;
const prog = (_d: number, p: number, r: number) => (0.1 / 3) * (r / (r + 4)) * (1 - 0.6 * p);
const floor = (pbar: number) => 0.3 + 0.4 * pbar * pbar;
function roundsToTarget(plan: readonly (Choice | null)[]): number {
  if (plan.some((c) => c === null)) return Infinity;
  const g = plan.reduce((s, c, d) => s + prog(d, c!.ratio, c!.rank), 0);
  const f = floor(plan.reduce((s, c) => s + c!.ratio, 0) / plan.length);
  return Math.max(1, Math.ceil(Math.log((2.5 - f) / (0.6 - f)) / g));
}
const ctx: PolicyContext = {
  devices: 3, space, sucb: DEFAULT_SUCB, baselines: { uniformRank: 4, fixedRatio: 0.3 },
  rngOf: (d) => new Rng(1, `b/${d}`), stepMs, roundTimeS: timeS, progress: prog, roundsToTarget,
};
const all = () => true;
const opts = { feasibleOf: () => all };

describe('baselines', () => {
  it('hetlora: no pruning, ranks grow with device speed, lowered until feasible', () => {
    const p = makePolicy('hetlora', ctx, opts);
    const ranks = [0, 1, 2].map((d) => p.choose(d, all)!);
    for (const c of ranks) expect(c.ratio).toBe(0);
    expect(ranks[2].rank).toBe(8);
    expect(ranks[0].rank).toBeLessThan(ranks[1].rank);
    expect(ranks[1].rank).toBeLessThan(ranks[2].rank);
    expect(p.choose(2, (_p, r) => r <= 5)!.rank).toBe(5);
    expect(p.choose(2, () => false)).toBeNull();
  });
  it('uniform and fixed: the same configuration everywhere, or none when it does not fit', () => {
    expect(makePolicy('uniform', ctx, opts).choose(0, all)).toEqual({ ratio: 0, rank: 4 });
    expect(makePolicy('fixed', ctx, opts).choose(1, all)).toEqual({ ratio: 0.3, rank: 4 });
    expect(makePolicy('fixed', ctx, opts).choose(1, (p) => p > 0.5)).toBeNull();
  });
  it('oracle: its predicted time to target is no worse than any common configuration (brute force)', () => {
    const plan = [0, 1, 2].map((d) => makePolicy('oracle', ctx, opts).choose(d, all));
    const predicted = (pl: readonly (Choice | null)[]) => roundsToTarget(pl) * Math.max(...pl.map((c, d) => timeS(d, c!.ratio, c!.rank)));
    const oracle = predicted(plan);
    expect(Number.isFinite(oracle)).toBe(true);
    for (let i = 0; i <= 6; i++) for (let r = 2; r <= 8; r++) {
      const common = [0, 1, 2].map(() => ({ ratio: Number((i / 10).toFixed(10)), rank: r }));
      expect(oracle).toBeLessThanOrEqual(predicted(common) + 1e-9);
    }
    // It prunes the slowest device at least as much as the fastest.
    expect(plan[0]!.ratio).toBeGreaterThanOrEqual(plan[2]!.ratio);
  });
  it('fedspine: choices come from the per-device bandit and respect feasibility', () => {
    const p = makePolicy('fedspine', ctx, opts);
    for (let t = 0; t < 50; t++) {
      const c = p.choose(0, (q, r) => r <= 3)!;
      expect(c.rank).toBeLessThanOrEqual(3);
      p.observe(0, c, 0.5);
    }
  });
});

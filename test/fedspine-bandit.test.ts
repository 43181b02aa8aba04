/** S-UCB on synthetic problems with known rewards: finds the best arm, sublinear regret, never infeasible; seeded. */
import { describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { DEFAULT_REWARD_WEIGHTS, DEFAULT_SUCB, SmoothUcb, fedspineReward, snap, updateImportance, type ConfigSpace } from '../src/fedspine/bandit.js';

const space: ConfigSpace = { ratioMin: 0, ratioMax: 0.6, rankMin: 1, rankMax: 32, ratioStep: 0.05 };
// Known mean reward of every arm (grid point): best at ratio 0.3, rank 12.
const mean = (p: number, r: number) => 0.9 - 1.5 * Math.abs(p - 0.3) - 0.8 * Math.abs(r - 12) / 31;
const best = mean(0.3, 12);

function play(T: number, seed: number, feasible = (_p: number, _r: number) => true) {
  const b = new SmoothUcb(space, DEFAULT_SUCB, new Rng(seed, 'bandit'));
  const noise = new Rng(seed, 'noise');
  const regret: number[] = [];
  const picks: { ratio: number; rank: number }[] = [];
  let cum = 0;
  for (let t = 0; t < T; t++) {
    const c = b.select(feasible);
    if (c === null) throw new Error('no feasible choice');
    picks.push({ ratio: c.ratio, rank: c.rank });
    cum += best - mean(c.ratio, c.rank);
    regret.push(cum);
    b.update(c.cell, mean(c.ratio, c.rank) + 0.1 * noise.normal());
  }
  return { b, regret, picks };
}

describe('S-UCB bandit', () => {
  it('finds the best arm on a synthetic problem with known rewards', () => {
    const { picks } = play(3000, 1);
    const counts = new Map<string, number>();
    for (const q of picks.slice(2000)) counts.set(`${q.ratio}/${q.rank}`, (counts.get(`${q.ratio}/${q.rank}`) ?? 0) + 1);
    const [top] = [...counts.entries()].sort((a, b) => b[1] - a[1])[0][0].split('/').map(Number);
    const topRank = Number([...counts.entries()].sort((a, b) => b[1] - a[1])[0][0].split('/')[1]);
    expect(Math.abs(top - 0.3)).toBeLessThanOrEqual(0.05 + 1e-9);
    expect(Math.abs(topRank - 12)).toBeLessThanOrEqual(3);
    // The last third's mean reward is within 4 % of the best arm's.
    const last = picks.slice(2000).reduce((s, q) => s + mean(q.ratio, q.rank), 0) / 1000;
    expect(last).toBeGreaterThan(0.96 * best);
  });
  it('regret grows sublinearly: over 8 seeds the median R(16T)/R(T) is under 16^0.75 = 8 and per-round regret falls', () => {
    const ratios: number[] = [];
    for (let seed = 1; seed <= 8; seed++) {
      const { regret } = play(16000, seed);
      ratios.push(regret[15999] / regret[999]);
      // Per-round regret over the last 1000 rounds is below that of the first 1000.
      expect((regret[15999] - regret[14999]) / 1000).toBeLessThan(regret[999] / 1000);
    }
    ratios.sort((a, b) => a - b);
    expect((ratios[3] + ratios[4]) / 2).toBeLessThan(8);
  });
  it('refines its partition as it learns', () => {
    const { b } = play(500, 4);
    expect(b.leafCount).toBeGreaterThan(8);
  });
  it('never picks an infeasible configuration (memory-like constraint: rank <= 4 + 40 ratio)', () => {
    const feasible = (p: number, r: number) => r <= 4 + 40 * p;
    const { picks } = play(1500, 5, feasible);
    for (const q of picks) expect(feasible(q.ratio, q.rank)).toBe(true);
    // It still concentrates near the best feasible region (ratio 0.3 allows rank 16 >= 12).
    const last = picks.slice(1000);
    expect(last.filter((q) => Math.abs(q.ratio - 0.3) <= 0.1).length).toBeGreaterThan(250);
  });
  it('returns null when nothing is feasible', () => {
    const b = new SmoothUcb(space, DEFAULT_SUCB, new Rng(1, 'x'));
    expect(b.select(() => false)).toBeNull();
  });
  it('same seed, same choices; another seed, other choices', () => {
    const a = play(300, 9).picks, b = play(300, 9).picks, c = play(300, 10).picks;
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });
  it('rejects a space outside its range', () => {
    expect(() => new SmoothUcb({ ...space, ratioMax: 1 }, DEFAULT_SUCB, new Rng(1))).toThrow(/ratioMax/);
    expect(() => new SmoothUcb({ ...space, rankMin: 0 }, DEFAULT_SUCB, new Rng(1))).toThrow(/rankMin/);
  });
});

describe('reward and importance', () => {
  it('mixes the four terms with their weights; fastest/slowest map to 1/0 in time', () => {
    const w = DEFAULT_REWARD_WEIGHTS;
    const x = { lossImprovement: 0.05, maxLossImprovement: 0.1, pruningProgress: 0.5, importance: 0.8, timeS: 30, minTimeS: 10, maxTimeS: 50 };
    expect(fedspineReward(x, w)).toBeCloseTo(w.loss * 0.5 + w.pruning * 0.5 + w.importance * 0.8 + w.time * 0.5, 12);
    expect(fedspineReward({ ...x, timeS: 50 }, { loss: 0, pruning: 0, importance: 0, time: 1 })).toBe(0);
    expect(fedspineReward({ ...x, timeS: 10 }, { loss: 0, pruning: 0, importance: 0, time: 1 })).toBe(1);
  });
  it('importance falls with the ratio and rises with the rank; snap rounds to the grid', () => {
    expect(updateImportance(0.5, 8, 32)).toBeCloseTo(0.75 * 0.5, 12);
    expect(updateImportance(0, 32, 32)).toBe(1);
    expect(snap(space, 0.33, 7.6)).toEqual({ ratio: 0.35, rank: 8 });
    expect(snap(space, 0.9, 99)).toEqual({ ratio: 0.6, rank: 32 });
  });
});

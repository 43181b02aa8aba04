import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { createDtoPolicy, DTO_POLICY_NAMES, StatePolicy } from '../src/dtoee/baselines.js';
import { compileProblem, evaluate } from '../src/dtoee/problem.js';
import { randomProblem } from '../src/dtoee/random.js';

const spec = randomProblem({ seed: 21, nodesPerStage: [3, 3, 2], load: 0.8, accuracy: { mode: 'weight', beta: 0.2 } });
const P = compileProblem(spec);
const rFinal = P.penalty.initialWeight * P.penalty.growth ** (P.penalty.rounds - 1);
const opts = { centralised: { starts: [0.5, 1] } };

describe('DTO-EE policy registry', () => {
  it('holds every policy of the brief, and an unknown name is an InputError listing them', () => {
    expect(DTO_POLICY_NAMES.sort()).toEqual(['centralised', 'dtoee', 'jsq', 'nearest', 'no-exit', 'random', 'routing-opt', 'threshold-opt'].sort());
    expect(() => createDtoPolicy('best', spec)).toThrow(InputError);
    expect(() => createDtoPolicy('best', spec)).toThrow(/use one of .*jsq/);
    expect(() => createDtoPolicy('random', spec, { fixedThreshold: 2 })).toThrow(InputError);
  });
});

describe('DTO-EE per-task decisions', () => {
  const a = P.ids.find((id) => P.next[P.index.get(id)!].length >= 2)!;
  const nbrs = P.next[P.index.get(a)!].map((m) => P.ids[m]);

  it('random: the split is uniform over the next-stage neighbours (binomial tolerance), fixed threshold', () => {
    const p = createDtoPolicy('random', spec, { fixedThreshold: 0.7 });
    const rng = new Rng(1, 'test/split');
    const N = 30000, count: Record<string, number> = {};
    for (let i = 0; i < N; i++) { const m = p.nextNode(a, rng.uniform()); count[m] = (count[m] ?? 0) + 1; }
    const pr = 1 / nbrs.length, sd = Math.sqrt(pr * (1 - pr) / N);
    for (const m of nbrs) expect(Math.abs(count[m] / N - pr)).toBeLessThan(4 * sd);
    expect(Object.keys(count).sort()).toEqual([...nbrs].sort());
    expect(p.threshold(a)).toBe(0.7);
    expect(p.threshold(P.ids[P.ids.length - 1])).toBe(1);
  });

  it('optimised fractions are followed by nextNode', () => {
    const p = createDtoPolicy('centralised', spec, opts);
    const f = p.fractions(a)!;
    const rng = new Rng(2, 'test/split');
    const N = 30000, count: Record<string, number> = {};
    for (let i = 0; i < N; i++) { const m = p.nextNode(a, rng.uniform()); count[m] = (count[m] ?? 0) + 1; }
    for (const m of nbrs) {
      const pr = f[m], sd = Math.sqrt(pr * (1 - pr) / N);
      expect(Math.abs((count[m] ?? 0) / N - pr)).toBeLessThanOrEqual(4 * sd + 1e-12);
    }
  });

  it('nearest picks the least hop delay; jsq the shortest queue (ties by u) and needs queue lengths', () => {
    const n = P.index.get(a)!;
    const near = createDtoPolicy('nearest', spec);
    const best = P.ids[P.next[n][P.hopS[n].indexOf(Math.min(...P.hopS[n]))]];
    for (const u of [0, 0.3, 0.99]) expect(near.nextNode(a, u)).toBe(best);
    const jsq = createDtoPolicy('jsq', spec);
    const q = Object.fromEntries(nbrs.map((m, i) => [m, 5 - i]));
    expect(jsq.nextNode(a, 0.5, q)).toBe(nbrs[nbrs.length - 1]);
    const tie = Object.fromEntries(nbrs.map((m) => [m, 2]));
    expect(jsq.nextNode(a, 0, tie)).toBe(nbrs[0]);
    expect(jsq.nextNode(a, 0.999, tie)).toBe(nbrs[nbrs.length - 1]);
    expect(() => jsq.nextNode(a, 0.5)).toThrow(/queue lengths/);
    expect(jsq.fractions(a)).toBeUndefined();
  });

  it('no-exit: every threshold is 1, so every task reaches the last stage', () => {
    const p = createDtoPolicy('no-exit', spec, opts) as StatePolicy;
    P.ids.forEach((id) => expect(p.threshold(id)).toBe(1));
    const ev = evaluate(P, p.state(), rFinal);
    P.ids.forEach((_, n) => expect(ev.exitShare[n] > 0).toBe(P.stage[n] === P.S && ev.lambda[n] > 0));
  });
});

describe('DTO-EE policies against the model', () => {
  it('the centralised optimum is no worse than any baseline; each optimised baseline beats its fixed counterpart; dtoee is within 1 %', () => {
    const J: Record<string, number> = {};
    for (const name of DTO_POLICY_NAMES) {
      if (name === 'jsq') continue; // no routing fractions: simulated only
      const p = createDtoPolicy(name, spec, opts) as StatePolicy;
      J[name] = evaluate(P, p.state(), rFinal).objective;
    }
    for (const [name, v] of Object.entries(J)) expect(J.centralised, name).toBeLessThanOrEqual(v * (1 + (name === 'dtoee' ? 1e-4 : 1e-9)));
    expect(J['routing-opt']).toBeLessThanOrEqual(J.random + 1e-12);
    expect(J['threshold-opt']).toBeLessThanOrEqual(J.random + 1e-12);
    expect((J.dtoee - J.centralised) / J.centralised).toBeLessThan(0.01);
    process.stdout.write(`dtoee policies (model objective, seed 21, 3x3x2): ${Object.entries(J).map(([k, v]) => `${k} ${v.toFixed(5)}`).join(', ')}\n`);
  });

  it('update(observation) re-optimises: a slower node gets a smaller share', () => {
    for (const name of ['centralised', 'dtoee', 'routing-opt']) {
      const p = createDtoPolicy(name, spec, opts);
      const a = P.ids.find((id) => P.next[P.index.get(id)!].length >= 2)!;
      const before = p.fractions(a)!;
      const target = Object.keys(before).reduce((x, y) => (before[x] >= before[y] ? x : y));
      const u = p.update({ serviceTimeS: { [target]: 3 / P.mu[P.index.get(target)!] } });
      expect(u.iterations).toBeGreaterThan(0);
      expect(p.fractions(a)![target]).toBeLessThan(before[target] - 0.05);
      if (name === 'dtoee') expect(u.messages).toBeGreaterThan(0);
    }
    const fixed = createDtoPolicy('random', spec);
    expect(fixed.update({ inputRatePerS: {} })).toEqual({ iterations: 0, messages: 0, bytes: 0 });
  });
});

describe('DTO-EE assumptions for describe/run.json', () => {
  it('names the queue model, the penalty schedule, the profile source and the fixed threshold in force', async () => {
    const { dtoeeAssumptions } = await import('../src/dtoee/index.js');
    const lines = dtoeeAssumptions(P, { fixedThreshold: 0.6 });
    expect(lines.join('\n')).toMatch(/M\/M\/1/);
    expect(lines.join('\n')).toMatch(/not measured/);
    expect(lines.join('\n')).toMatch(/utilisation 0\.95: weight 1 x 10\^k over 4/);
    expect(lines.join('\n')).toMatch(/fixed-threshold baselines 0\.6/);
    const md = compileProblem({ ...spec, sojourn: 'md1', accuracy: { mode: 'floor', floor: 0.9, weight: 5 } });
    expect(dtoeeAssumptions(md).join('\n')).toMatch(/M\/D\/1[\s\S]*accuracy floor/);
  });
});

describe('DTO-EE per-task API reproduces the model (task-level Monte Carlo, no simulator)', () => {
  it('every task exits once; arrival, exit and accuracy shares match the coupling formula within 4 sigma', async () => {
    const { decideCorrect, decideExit } = await import('../src/dtoee/profile.js');
    for (const name of ['dtoee', 'random']) {
      const p = createDtoPolicy(name, spec) as StatePolicy;
      const ev = evaluate(P, p.state(), rFinal);
      const rng = new Rng(9, `test/tasks/${name}`);
      const N = 20000;
      const visits = new Array<number>(P.ids.length).fill(0), exits = new Array<number>(P.ids.length).fill(0);
      let correct = 0, exitedOnce = 0;
      const access = P.ids.map((_, n) => n).filter((n) => P.lambda0[n] > 0);
      for (let i = 0; i < N; i++) {
        let u = rng.uniform() * P.totalInput, n = access[access.length - 1];
        for (const a of access) { if (u < P.lambda0[a]) { n = a; break; } u -= P.lambda0[a]; }
        let done = 0;
        for (;;) {
          visits[n]++;
          const s = P.stage[n], tau = p.threshold(P.ids[n]);
          if (s === P.S || decideExit(P.profile, s, tau, rng.uniform())) {
            exits[n]++; done++;
            if (decideCorrect(P.profile, s === P.S ? 'final' : s, tau, rng.uniform())) correct++;
            break;
          }
          n = P.index.get(p.nextNode(P.ids[n], rng.uniform()))!;
        }
        if (done === 1) exitedOnce++;
      }
      expect(exitedOnce).toBe(N);
      expect(exits.reduce((a, b) => a + b, 0)).toBe(N);
      const tol = (q: number): number => 4 * Math.sqrt(Math.max(q * (1 - q), 1e-12) / N) + 1e-12;
      P.ids.forEach((_, n) => {
        const q = ev.lambda[n] / P.totalInput;
        expect(Math.abs(visits[n] / N - q)).toBeLessThan(tol(q));
        expect(Math.abs(exits[n] / N - ev.exitShare[n])).toBeLessThan(tol(ev.exitShare[n]));
      });
      expect(Math.abs(correct / N - ev.meanAccuracy)).toBeLessThan(tol(ev.meanAccuracy));
    }
  });
});

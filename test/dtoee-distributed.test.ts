import { describe, expect, it } from 'vitest';
import { agentConfigs, agentStep, DtoeeDistributed, initialAgentState, MESSAGE_HEADER_BYTES, penaltyWeightAt, runDistributed } from '../src/dtoee/distributed.js';
import { solveCentralised } from '../src/dtoee/centralised.js';
import { compileProblem, evaluate, gradient, uniformState } from '../src/dtoee/problem.js';
import { randomProblem } from '../src/dtoee/random.js';

describe('DTO-EE distributed agents', () => {
  const spec = randomProblem({ seed: 11, nodesPerStage: [3, 3, 2], load: 0.8 });
  const P = compileProblem(spec);

  it('a step reads only messages addressed to it and sends only to its neighbours, each message with a byte size', () => {
    const cfgs = agentConfigs(P);
    let inbox = cfgs.flatMap((c) => agentStep(c, initialAgentState(c), [], { penaltyWeight: 1, beta: 0.2 }).out);
    for (let round = 0; round < 3; round++) {
      const out = cfgs.flatMap((c) => {
        const before = initialAgentState(c);
        const foreign = inbox.filter((m) => m.to !== c.id);
        // Messages to other nodes change nothing.
        expect(agentStep(c, before, foreign, { penaltyWeight: 1, beta: 0.2 })).toEqual(agentStep(c, before, [], { penaltyWeight: 1, beta: 0.2 }));
        const res = agentStep(c, before, inbox, { penaltyWeight: 1, beta: 0.2 });
        const nbrs = new Set([...c.next.map((n) => n.id), ...c.prev]);
        for (const m of res.out) {
          expect(m.from).toBe(c.id);
          expect(nbrs.has(m.to)).toBe(true);
          expect(m.bytes).toBe(MESSAGE_HEADER_BYTES + (m.kind === 'flow' ? 8 : 16));
        }
        return res.out;
      });
      inbox = out;
    }
    // One flow message per link, one cost message per link the other way.
    const links = P.next.reduce((a, ms) => a + ms.length, 0);
    expect(inbox.filter((m) => m.kind === 'flow').length).toBe(links);
    expect(inbox.filter((m) => m.kind === 'cost').length).toBe(links);
  });

  it('converges to a point where used routes have the least marginal cost and thresholds are stationary', () => {
    const res = runDistributed(spec);
    const r = P.penalty.initialWeight * P.penalty.growth ** (P.penalty.rounds - 1);
    expect(res.evaluation.objective).toBeLessThan(evaluate(P, uniformState(P, 0.5), r).objective);
    const g = gradient(P, res.state, r);
    let checked = 0;
    P.next.forEach((ms, n) => {
      if (ms.length < 2 || g.lambda[n] < 1e-6) return;
      const cost = ms.map((m, j) => P.hopS[n][j] + g.delta[m]);
      const min = Math.min(...cost);
      ms.forEach((_, j) => { if (res.state.x[n][j] > 1e-3) { expect(cost[j] - min).toBeLessThan(1e-3 * Math.abs(min) + 1e-6); checked++; } });
    });
    expect(checked).toBeGreaterThan(2);
    P.ids.forEach((_, n) => {
      const t = res.state.tau[n];
      if (P.stage[n] === P.S || t <= 1e-6 || t >= 1 - 1e-6) return;
      // Interior threshold: no descent direction bigger than the kink tolerance of the piecewise linear profile.
      const h = 1e-4;
      const J = (tau: number): number => { const s = { x: res.state.x, tau: [...res.state.tau] }; s.tau[n] = tau; return evaluate(P, s, r).objective; };
      expect(J(t + h)).toBeGreaterThan(J(t) - 1e-7);
      expect(J(t - h)).toBeGreaterThan(J(t) - 1e-7);
    });
  });

  it('is deterministic: the same problem gives the same state, messages and bytes', () => {
    const a = runDistributed(spec), b = runDistributed(spec);
    expect(a.state).toEqual(b.state);
    expect([a.messages, a.bytes, a.iterations]).toEqual([b.messages, b.bytes, b.iterations]);
  });

  it('observe(rates, serviceTimes): a warm start re-optimises a changed environment in fewer iterations than a cold start', () => {
    const d = new DtoeeDistributed(spec);
    d.run();
    const stage1 = spec.nodes.filter((n) => n.stage === 1);
    const rush = Object.fromEntries(stage1.map((n) => [n.id, (n.inputRatePerS ?? 0) * 1.15]));
    const slow = { [spec.nodes.find((n) => n.stage === 2)!.id]: 1 / 20 };
    const warm = d.observe({ inputRatePerS: rush, serviceTimeS: slow });
    const changed = { ...spec, nodes: spec.nodes.map((n) => ({ ...n, ...(rush[n.id] !== undefined ? { inputRatePerS: rush[n.id] } : {}), ...(slow[n.id] !== undefined ? { serviceRatePerS: 20 } : {}) })) };
    const cold = runDistributed(changed);
    expect(warm.evaluation.objective).toBeLessThan(cold.evaluation.objective * 1.01);
    expect(warm.evaluation.objective).toBeGreaterThan(cold.evaluation.objective * 0.99);
    expect(warm.iterations).toBeLessThan(cold.iterations);
    expect(() => d.observe({ serviceTimeS: { nowhere: 1 } })).toThrow(/serviceTimeS\.nowhere/);
    expect(() => d.observe({ serviceTimeS: { [spec.nodes[0].id]: -1 } })).toThrow(/serviceTimeS/);
    // A rejected observation changes nothing: the next one re-optimises the same problem as before it.
    expect(d.observe({}).evaluation.objective).toBeCloseTo(warm.evaluation.objective, 4);
    process.stdout.write(`dtoee observe: warm ${warm.iterations} iterations vs cold ${cold.iterations}\n`);
  });
});

describe('DTO-EE distributed: a local fixed schedule', () => {
  it('nodes driving agentStep themselves with a fixed iteration schedule per penalty round reach the centralised objective within 1 %', () => {
    const spec = randomProblem({ seed: 12, nodesPerStage: [4, 3, 3], load: 0.85 });
    const P = compileProblem(spec);
    const cfgs = agentConfigs(P);
    let states = cfgs.map((c) => initialAgentState(c));
    let inbox: ReturnType<typeof agentStep>['out'] = [];
    const per = 60, total = per * P.penalty.rounds;
    expect(penaltyWeightAt(P.penalty, 0, per)).toBe(1);
    expect(penaltyWeightAt(P.penalty, per, per)).toBe(10);
    expect(penaltyWeightAt(P.penalty, 10 * total, per)).toBe(1000);
    for (let k = 0; k < total; k++) {
      const out: typeof inbox = [];
      states = states.map((s, n) => {
        const r = agentStep(cfgs[n], s, inbox.filter((m) => m.to === cfgs[n].id), { penaltyWeight: penaltyWeightAt(P.penalty, k, per), beta: 0.2 });
        out.push(...r.out);
        return r.state;
      });
      inbox = out;
    }
    const st = { x: states.map((s) => s.x), tau: states.map((s) => s.tau) };
    const J = evaluate(P, st, 1000).objective, Jc = solveCentralised(spec).evaluation.objective;
    expect((J - Jc) / Jc).toBeLessThan(0.01);
    const viaDriver = runDistributed(spec, { roundIterations: per });
    expect(viaDriver.iterations).toBe(total);
    expect(viaDriver.state).toEqual(st);
  });
});

describe('DTO-EE distributed: messages that arrive late', () => {
  it('with each message delayed by 0-3 iterations (seeded), the agents still reach the centralised objective within 1 %', async () => {
    const { Rng } = await import('../src/core/rng.js');
    const spec = randomProblem({ seed: 13, nodesPerStage: [3, 3, 2], load: 0.8 });
    const P = compileProblem(spec);
    const cfgs = agentConfigs(P);
    let states = cfgs.map((c) => initialAgentState(c));
    const rng = new Rng(13, 'test/delays');
    const pending: { at: number; m: ReturnType<typeof agentStep>['out'][number] }[] = [];
    const per = 120, total = per * P.penalty.rounds;
    for (let k = 0; k < total; k++) {
      const due = pending.filter((p) => p.at <= k).map((p) => p.m);
      for (let i = pending.length - 1; i >= 0; i--) if (pending[i].at <= k) pending.splice(i, 1);
      states = states.map((s, n) => {
        const r = agentStep(cfgs[n], s, due.filter((m) => m.to === cfgs[n].id), { penaltyWeight: penaltyWeightAt(P.penalty, k, per), beta: 0.2 });
        for (const m of r.out) pending.push({ at: k + 1 + rng.int(4), m });
        return r.state;
      });
    }
    const J = evaluate(P, { x: states.map((s) => s.x), tau: states.map((s) => s.tau) }, 1000).objective;
    const Jc = solveCentralised(spec).evaluation.objective;
    process.stdout.write(`dtoee late messages: gap ${(((J - Jc) / Jc) * 100).toFixed(4)} % after ${total} iterations\n`);
    expect((J - Jc) / Jc).toBeLessThan(0.01);
  });
});

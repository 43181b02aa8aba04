/**
 * DTO-EE in the simulator (protocol/systems/dtoee.ts): every task exits once; exit shares
 * follow the profile; per-node arrival rates follow the coupling formula; thresholds 0 and 1
 * are "all exit at stage 1" and "no early exit"; the distributed policy's objective matches
 * the centralised one on the city scenario; bad input names the field.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { compileProblem, createDtoPolicy, defaultProfile, evaluate, exitProb, flows, profileToJson, stateFromNamed } from '../src/dtoee/index.js';
import { dtoeeProblem } from '../src/protocol/systems/dtoee.js';
import type { ProtocolEnv } from '../src/protocol/context.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem, topologyView, type Testbed } from '../src/sim/run.js';
import { SCENARIOS } from './helpers.js';

const CITY = join(SCENARIOS, 'dtoee-city.yaml');
const run = (over: string[]) => {
  const tb = buildTestbed(loadScenario(CITY, over));
  return { tb, r: simulateSystem(tb, 'dtoee') };
};

function problemOf(tb: Testbed) {
  const d = tb.devices[0];
  const env = { hiddenBytesPerToken: tb.model.hiddenSize * 2, tokenBytes: 4, policies: tb.scenario.policies, topology: topologyView(tb, d, -1) } as unknown as ProtocolEnv;
  return dtoeeProblem(env, env.topology, tb.devices.map((x) => x.node.index));
}

describe('dtoee in the simulator', () => {
  it('every task exits exactly once, at a stage it reached, after visiting one node per stage', () => {
    const { r } = run(['workload.requestsPerDevice=20', 'policies.dtoee.policy=random']);
    expect(r.tasks.length).toBe(120 * 20);
    expect(r.requests.length).toBe(r.tasks.length);
    const keys = new Set(r.tasks.map((t) => `${t.device}/${t.request}`));
    expect(keys.size).toBe(r.tasks.length);
    for (const t of r.tasks) {
      expect(t.exit_stage).toBeGreaterThanOrEqual(1);
      expect(t.exit_stage).toBeLessThanOrEqual(4);
      const nodes = t.nodes.split('>');
      expect(nodes.length).toBe(t.exit_stage);
      nodes.forEach((n, i) => expect(n.startsWith(`s${i + 1}-`)).toBe(true));
      expect([0, 1]).toContain(t.correct);
    }
  });

  it('thresholds 1 (no-exit) send every task to the last stage; threshold 0 ends every task at stage 1', () => {
    const none = run(['workload.requestsPerDevice=5', 'policies.dtoee.policy=no-exit']).r;
    expect(none.tasks.every((t) => t.exit_stage === 4)).toBe(true);
    const all = run(['workload.requestsPerDevice=5', 'policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=0']).r;
    expect(all.tasks.every((t) => t.exit_stage === 1)).toBe(true);
  });

  it('exit shares and per-node arrival rates match the profile and the coupling formula (within 4 sigma)', () => {
    const { tb, r } = run(['workload.requestsPerDevice=100', 'policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=0.6']);
    const n = r.tasks.length;
    const { profile, spec } = problemOf(tb);
    const p1 = exitProb(profile, 1, 0.6), p2 = exitProb(profile, 2, 0.6);
    const share = (s: number) => r.tasks.filter((t) => t.exit_stage === s).length / n;
    const sd = (p: number) => 4 * Math.sqrt(p * (1 - p) / n);
    expect(Math.abs(share(1) - p1)).toBeLessThan(sd(p1));
    expect(Math.abs(share(2) - (1 - p1) * p2)).toBeLessThan(sd((1 - p1) * p2));
    // Arrivals per node: tasks visiting it / tasks in all, against lambda_n / total input.
    const P = compileProblem(spec);
    const policy = createDtoPolicy('random', spec, { fixedThreshold: 0.6 });
    const named = { routing: Object.fromEntries(P.ids.filter((id) => P.next[P.index.get(id)!].length > 0).map((id) => [id, policy.fractions(id)!])), tau: Object.fromEntries(P.ids.map((id) => [id, policy.threshold(id)])) };
    const { lambda } = flows(P, stateFromNamed(P, named as never));
    const visits = new Map<string, number>();
    for (const h of r.hops) visits.set(h.node, (visits.get(h.node) ?? 0) + 1);
    for (const id of P.ids) {
      const expected = lambda[P.index.get(id)!] / P.totalInput;
      const got = (visits.get(id) ?? 0) / n;
      expect(Math.abs(got - expected), id).toBeLessThan(sd(Math.min(0.5, Math.max(expected, 1 / n))) + 1e-9);
    }
  });

  it('the distributed policy reaches the centralised optimum\'s objective on the city scenario (within 1 %), and both beat the fixed baselines on it', () => {
    const tb = buildTestbed(loadScenario(CITY, ['workload.requestsPerDevice=1']));
    const { spec } = problemOf(tb);
    const P = compileProblem(spec);
    const objective = (name: string): number => {
      const pol = createDtoPolicy(name, spec);
      const ids = P.ids;
      const named = { routing: Object.fromEntries(ids.filter((id) => P.next[P.index.get(id)!].length > 0).map((id) => [id, pol.fractions(id)!])), tau: Object.fromEntries(ids.map((id) => [id, pol.threshold(id)])) };
      const st = stateFromNamed(P, named as never);
      const fl = flows(P, st);
      expect(fl.lambda.every((l, i) => l < P.mu[i])).toBe(true);
      return createObjective(P, st);
    };
    const dto = objective('dtoee'), cen = objective('centralised');
    expect(Math.abs(dto - cen) / cen).toBeLessThan(0.01);
    for (const b of ['random', 'routing-opt', 'no-exit']) expect(objective(b)).toBeGreaterThan(cen * 0.999);
  });

  it('bad input: a profile that is not monotone, a threshold outside [0, 1], an unknown policy: errors naming the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-dtoee-'));
    const prof = JSON.parse(profileToJson(defaultProfile({ stages: 4, layers: 32 }))) as { stages: { exitProb: number[] }[] };
    prof.stages[0].exitProb[3] = 0.999; // rises again: not monotone in the threshold
    const file = join(dir, 'bad-profile.json');
    writeFileSync(file, JSON.stringify(prof));
    expect(() => run(['workload.requestsPerDevice=1', `policies.dtoee.profilePath=${JSON.stringify(file)}`])).toThrow(InputError);
    try { run(['workload.requestsPerDevice=1', `policies.dtoee.profilePath=${JSON.stringify(file)}`]); } catch (e) { expect((e as Error).message).toMatch(/exitProb/); }
    expect(() => loadScenario(CITY, ['policies.dtoee.fixedThreshold=1.5'])).toThrow(/policies\.dtoee\.fixedThreshold: must be a number in \[0, 1\]/);
    expect(() => loadScenario(CITY, ['policies.dtoee.policy=best'])).toThrow(/policies\.dtoee\.policy: must be one of: dtoee, centralised/);
  });
});

/** The problem's own objective at its final penalty weight. */
function createObjective(P: ReturnType<typeof compileProblem>, st: ReturnType<typeof stateFromNamed>): number {
  const r = P.penalty.initialWeight * Math.pow(P.penalty.growth, P.penalty.rounds - 1);
  return evaluate(P, st, r).objective;
}

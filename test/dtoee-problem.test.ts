import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { defaultProfile, exitProb, type ExitProfile } from '../src/dtoee/profile.js';
import {
  compileProblem, evaluate, flows, gradient, hopDelayS, projectSimplex, sojournS, stateFromNamed, stateToNamed, uniformState,
  type DtoProblemSpec, type DtoState,
} from '../src/dtoee/problem.js';
import { randomProblem } from '../src/dtoee/random.js';

const prof3: ExitProfile = {
  format: 'hatsim-exit-profile/1', model: 'hand', confidence: 'max-softmax', source: 'assumption', notes: '',
  thresholds: [0, 0.5, 1],
  stages: [
    { stage: 1, layers: [0, 1], exitProb: [1, 0.4, 0], exitAccuracy: [0.5, 0.7, 0.9], samples: 1 },
    { stage: 2, layers: [1, 2], exitProb: [1, 0.5, 0], exitAccuracy: [0.6, 0.8, 0.9], samples: 1 },
  ],
  finalAccuracy: 0.95, finalLayers: [2, 3],
};

/** Two access nodes A, B -> stage-2 C, D -> stage-3 E. */
const hand = (): DtoProblemSpec => ({
  stages: 3, profile: prof3, sojourn: 'mm1', accuracy: { mode: 'weight', beta: 0.1 },
  nodes: [
    { id: 'A', stage: 1, serviceRatePerS: 20, inputRatePerS: 6, next: [{ to: 'C', hopDelayS: 0.01 }, { to: 'D', hopDelayS: 0.02 }] },
    { id: 'B', stage: 1, serviceRatePerS: 20, inputRatePerS: 4, next: [{ to: 'D', featureBytes: 1000, bandwidthBps: 1e6, latencyS: 0.002 }] },
    { id: 'C', stage: 2, serviceTimeS: 0.05, next: [{ to: 'E', hopDelayS: 0.005 }] },
    { id: 'D', stage: 2, serviceRatePerS: 25, next: [{ to: 'E', hopDelayS: 0.005 }] },
    { id: 'E', stage: 3, serviceRatePerS: 30 },
  ],
});

describe('DTO-EE problem: flows, delay, accuracy', () => {
  const P = compileProblem(hand());
  const st = stateFromNamed(P, { routing: { A: { C: 0.25, D: 0.75 }, B: { D: 1 }, C: { E: 1 }, D: { E: 1 } }, tau: { A: 0.5, B: 0.25, C: 0.5, D: 0.75 } });

  it('the analytic flow equals the coupling formula worked by hand', () => {
    // p1(0.5) = 0.4, p1(0.25) = 0.7, p2(0.5) = 0.5, p2(0.75) = 0.25.
    const A = 6, B = 4;
    const C = A * 0.6 * 0.25, D = A * 0.6 * 0.75 + B * 0.3;
    const E = C * 0.5 + D * 0.75;
    const { lambda } = flows(P, st);
    const got = Object.fromEntries(P.ids.map((id, n) => [id, lambda[n]]));
    expect(got.A).toBeCloseTo(A, 12); expect(got.B).toBeCloseTo(B, 12);
    expect(got.C).toBeCloseTo(C, 12); expect(got.D).toBeCloseTo(D, 12); expect(got.E).toBeCloseTo(E, 12);
    // Mean delay by hand: sum of Lambda T plus hop flows, over 10 tasks.
    const T = (l: number, mu: number) => 1 / (mu - l);
    const hopB = hopDelayS(1000, 1e6, 0.002);
    expect(hopB).toBeCloseTo(0.01, 12);
    const delay = A * T(A, 20) + B * T(B, 20) + C * T(C, 20) + D * T(D, 25) + E * T(E, 30)
      + A * 0.6 * (0.25 * 0.01 + 0.75 * 0.02) + B * 0.3 * hopB + (C * 0.5 + D * 0.75) * 0.005;
    const acc = A * 0.4 * 0.7 + B * 0.7 * 0.6 + C * 0.5 * 0.8 + D * 0.25 * 0.85 + E * 0.95;
    const ev = evaluate(P, st, 1);
    expect(ev.meanDelayS).toBeCloseTo(delay / 10, 12);
    expect(ev.meanAccuracy).toBeCloseTo(acc / 10, 12);
    expect(ev.objective).toBeCloseTo(delay / 10 + 0.1 * (1 - acc / 10), 12);
    expect(ev.exitShare.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(ev.stable).toBe(true);
  });

  it('thresholds 0: every task exits at stage 1; thresholds 1: no early exit', () => {
    const zero = evaluate(P, uniformState(P, 0), 1);
    P.ids.forEach((_, n) => expect(zero.exitShare[n] > 0).toBe(P.stage[n] === 1));
    expect(zero.meanAccuracy).toBeCloseTo((6 * 0.5 + 4 * 0.5) / 10, 12);
    expect(zero.meanDelayS).toBeCloseTo((6 / 14 + 4 / 16) / 10, 12);
    const one = evaluate(P, uniformState(P, 1), 1);
    P.ids.forEach((id, n) => expect(one.exitShare[n] > 0).toBe(id === 'E'));
    expect(one.lambda[P.index.get('E')!]).toBeCloseTo(10, 12);
    expect(one.meanAccuracy).toBeCloseTo(0.95, 12);
  });

  it('M/M/1 and M/D/1 sojourn closed forms', () => {
    expect(sojournS('mm1', 5, 10)).toBeCloseTo(0.2, 14);
    expect(sojournS('md1', 5, 10)).toBeCloseTo(0.1 + 0.5 / (2 * 10 * 0.5), 14); // 1/mu + rho/(2 mu (1 - rho)) = 0.15
    expect(sojournS('md1', 0, 10)).toBeCloseTo(0.1, 14);
    expect(sojournS('mm1', 10, 10)).toBe(Infinity);
    // M/D/1 waits half as long as M/M/1 at the same load.
    for (const rho of [0.1, 0.5, 0.9]) {
      expect(sojournS('md1', rho * 4, 4) - 0.25).toBeCloseTo((sojournS('mm1', rho * 4, 4) - 0.25) / 2, 12);
    }
    const md = compileProblem({ ...hand(), sojourn: 'md1' });
    const ev = evaluate(md, uniformState(md, 1), 0);
    expect(ev.meanDelayS).toBeGreaterThan(0);
    expect(ev.meanDelayS).toBeLessThan(evaluate(P, uniformState(P, 1), 0).meanDelayS);
  });

  it('routing fractions that do not sum to 1, bad thresholds, unknown neighbours are InputErrors naming the field', () => {
    const f = (routing: Record<string, Record<string, number>>, tau: Record<string, number>): string | undefined => {
      try { stateFromNamed(P, { routing, tau }); } catch (e) { if (e instanceof InputError) return e.field; throw e; }
      return 'no error';
    };
    const r = { A: { C: 0.5, D: 0.5 }, B: { D: 1 }, C: { E: 1 }, D: { E: 1 } }, t = { A: 0.5, B: 0.5, C: 0.5, D: 0.5 };
    expect(f({ ...r, A: { C: 0.5, D: 0.6 } }, t)).toBe('routing.A');
    expect(f(r, { ...t, C: 1.5 })).toBe('tau.C');
    expect(f({ ...r, B: { C: 1 } }, t)).toBe('routing.B.C');
    expect(stateToNamed(P, stateFromNamed(P, { routing: r, tau: t }))).toEqual({ routing: r, tau: t });
  });

  it('bad problems: a stage with no node, a link that skips a stage, input past stage 1', () => {
    const field = (s: DtoProblemSpec): string | undefined => {
      try { compileProblem(s); } catch (e) { if (e instanceof InputError) return e.field; throw e; }
      return 'no error';
    };
    const a = hand(); a.nodes = a.nodes.filter((n) => n.stage !== 2);
    a.nodes[0].next = [{ to: 'E', hopDelayS: 0 }]; a.nodes[1].next = [{ to: 'E', hopDelayS: 0 }];
    expect(field(a)).toBe('nodes');
    const b = hand(); b.nodes[0].next = [{ to: 'E', hopDelayS: 0 }];
    expect(field(b)).toBe('nodes[0].next[0].to');
    const c = hand(); c.nodes[2].inputRatePerS = 1;
    expect(field(c)).toBe('nodes[2].inputRatePerS');
    const d = hand(); d.nodes[3].serviceRatePerS = -1;
    expect(field(d)).toBe('nodes[3].serviceRatePerS');
    expect(field({ ...hand(), stages: 4 })).toBe('stages');
  });

  it('projectSimplex returns the nearest point of the simplex', () => {
    expect(projectSimplex([0.2, 0.3, 0.5])).toEqual([0.2, 0.3, 0.5]);
    const p = projectSimplex([2, 0, -1]);
    expect(p).toEqual([1, 0, 0]);
    const q = projectSimplex([0.6, 0.6]);
    expect(q[0]).toBeCloseTo(0.5, 12); expect(q[1]).toBeCloseTo(0.5, 12);
  });
});

function finiteDiffCheck(spec: DtoProblemSpec, st: DtoState, r: number): void {
  const P = compileProblem(spec);
  const g = gradient(P, st, r);
  const h = 1e-6;
  const J = (s: DtoState): number => evaluate(P, s, r).objective;
  let checked = 0;
  P.next.forEach((ms, n) => ms.forEach((_, j) => {
    const up = { x: st.x.map((row) => [...row]), tau: [...st.tau] }, dn = { x: st.x.map((row) => [...row]), tau: [...st.tau] };
    up.x[n][j] += h; dn.x[n][j] -= h;
    const fd = (J(up) - J(dn)) / (2 * h);
    expect(g.dx[n][j]).toBeCloseTo(fd, 5);
    checked++;
  }));
  P.ids.forEach((_, n) => {
    if (P.stage[n] === P.S) return;
    const up = { x: st.x, tau: [...st.tau] }, dn = { x: st.x, tau: [...st.tau] };
    up.tau[n] += h; dn.tau[n] -= h;
    const fd = (J(up) - J(dn)) / (2 * h);
    expect(g.dtau[n]).toBeCloseTo(fd, 5);
    checked++;
  });
  expect(checked).toBeGreaterThan(5);
}

describe('DTO-EE problem: analytic gradients match finite differences', () => {
  it('hand example, weight mode, every variable', () => {
    const P = compileProblem(hand());
    const st = stateFromNamed(P, { routing: { A: { C: 0.3, D: 0.7 }, B: { D: 1 }, C: { E: 1 }, D: { E: 1 } }, tau: { A: 0.31, B: 0.62, C: 0.27, D: 0.83 } });
    finiteDiffCheck(hand(), st, 1);
  });

  it('random topologies, M/D/1, the floor mode, and flows above the utilisation cap (penalty active)', () => {
    for (const seed of [1, 2, 3]) {
      const spec = randomProblem({ seed, nodesPerStage: [3, 3, 2, 2], load: seed === 3 ? 1.6 : 0.7, sojourn: seed === 2 ? 'md1' : 'mm1',
        accuracy: seed === 1 ? { mode: 'floor', floor: 0.99, weight: 3 } : { mode: 'weight', beta: 0.3 } });
      const P = compileProblem(spec);
      const st = uniformState(P, 0);
      // Thresholds off the profile grid (the interpolation is linear, kinks at grid points).
      st.tau = st.tau.map((_, n) => (P.stage[n] === P.S ? 1 : 0.12 + 0.07 * n + 0.013));
      st.x = st.x.map((row, n) => { const w = row.map((_, j) => 1 + ((n + j) % 3)); const s = w.reduce((a, b) => a + b, 0); return w.map((v) => v / s); });
      if (seed === 3) expect(evaluate(P, st, 10).penalty).toBeGreaterThan(0);
      finiteDiffCheck(spec, st, 10);
    }
  });

  it('the default profile gives exit probabilities 1 at tau 0 and 0 at tau 1 at every stage', () => {
    const d = defaultProfile({ stages: 3, layers: 12 });
    for (const s of [1, 2]) { expect(exitProb(d, s, 0)).toBe(1); expect(exitProb(d, s, 1)).toBe(0); }
  });
});

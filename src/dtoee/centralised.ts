/**
 * A centralised solver of DTO-EE's problem: the oracle baseline and the check
 * of the distributed algorithm. It does not reuse the distributed update:
 *
 *  - routing with the thresholds fixed is a convex flow problem in the link
 *    flows f_nm (the costs are convex in the node flows, which are linear in
 *    f): Frank-Wolfe, whose linear step is an all-or-nothing shortest-path
 *    routing by dynamic programming over the stages, with a golden-section
 *    line search on the full objective;
 *  - thresholds with the routing fractions fixed: per node a 1-D search (the
 *    profile grid and midpoints, then golden section around the best point);
 *  - then projected gradient on the full vector (Barzilai-Borwein steps,
 *    Armijo backtracking on the true objective), which Frank-Wolfe's slow
 *    tail needs;
 *  - the blocks alternate until the objective stops falling, from several
 *    starting thresholds (multi-start), and the best result is kept.
 *
 * It solves directly at the final penalty weight of the problem's schedule.
 */
import { InputError } from '../core/errors.js';
import {
  compileProblem, effectiveBeta, evaluate, flows, gradient, nodeCost, projectSimplex, type DtoProblemSpec, type DtoState, type Evaluation, type Problem,
} from './problem.js';
import { exitCorrect } from './profile.js';

export interface CentralisedOptions {
  /** Starting thresholds (all nodes alike); default 0, 0.5, 1. */
  starts?: number[];
  /** Alternations at most per start; default 20. */
  maxAlternations?: number;
  /** Frank-Wolfe iterations per routing solve; default 30. */
  frankWolfeIterations?: number;
  /** Projected-gradient iterations per alternation; default 500. */
  projectedGradientIterations?: number;
  /** Stop when the objective improves by less than this (relative); default 1e-8. */
  tolerance?: number;
  /** Optimise only the routing (thresholds fixed at their start) or only the thresholds (routing fixed). */
  fix?: 'none' | 'thresholds' | 'routing';
  /** Starting routing (default uniform); used as the fixed routing with fix = 'routing'. */
  routing?: number[][];
  /** Penalty weight; default the schedule's final weight. */
  penaltyWeight?: number;
}

export interface CentralisedResult {
  state: DtoState;
  evaluation: Evaluation;
  /** Objective per start (in `starts` order). */
  startObjectives: number[];
  alternations: number;
}

function golden(f: (t: number) => number, lo: number, hi: number, iters: number): { t: number; v: number } {
  const g = (Math.sqrt(5) - 1) / 2;
  let a = lo, b = hi, c = b - g * (b - a), d = a + g * (b - a), fc = f(c), fd = f(d);
  for (let i = 0; i < iters; i++) {
    if (fc < fd) { b = d; d = c; fd = fc; c = b - g * (b - a); fc = f(c); } else { a = c; c = d; fc = fd; d = a + g * (b - a); fd = f(d); }
  }
  const cand = [{ t: lo, v: f(lo) }, { t: hi, v: f(hi) }, { t: c, v: fc }, { t: d, v: fd }];
  return cand.reduce((x, y) => (y.v < x.v ? y : x));
}

/** Link flows f_nm of a state. */
function linkFlows(P: Problem, st: DtoState): number[][] {
  const { lambda, cont } = flows(P, st);
  return P.next.map((ms, n) => ms.map((_, j) => lambda[n] * cont[n] * st.x[n][j]));
}

/** Routing fractions from link flows (a node with no outflow keeps its previous fractions). */
function fractionsOf(f: number[][], prev: number[][]): number[][] {
  return f.map((row, n) => {
    const s = row.reduce((a, b) => a + b, 0);
    return s > 1e-300 ? row.map((v) => v / s) : [...prev[n]];
  });
}

/** Frank-Wolfe on the link flows with the thresholds fixed. */
function solveRouting(P: Problem, st: DtoState, r: number, iters: number, tol: number): DtoState {
  let cur: DtoState = { x: st.x.map((row) => [...row]), tau: st.tau };
  let f = linkFlows(P, cur);
  let J = evaluate(P, cur, r).objective;
  for (let it = 0; it < iters; it++) {
    const ev = evaluate(P, cur, r);
    const beta = effectiveBeta(P, ev.meanAccuracy);
    // Marginal cost of a unit of flow into m under linear costs: own cost derivative minus beta q_m.
    const unit = P.ids.map((_, m) => nodeCost(P, m, ev.lambda[m], r)[1] - beta * (P.stage[m] === P.S ? P.profile.finalAccuracy : exitCorrect(P.profile, P.stage[m], cur.tau[m]).q));
    // Cost to go of a unit that has been served at n and may continue: W_n = c_n min_m (h + unit_m + W_m).
    const W = new Array<number>(P.ids.length).fill(0), best = new Array<number>(P.ids.length).fill(0);
    const { cont } = flows(P, cur);
    for (let i = P.order.length - 1; i >= 0; i--) {
      const n = P.order[i];
      if (P.next[n].length === 0) continue;
      let bj = 0, bv = Infinity;
      P.next[n].forEach((m, j) => { const v = P.hopS[n][j] + unit[m] + W[m]; if (v < bv) { bv = v; bj = j; } });
      best[n] = bj; W[n] = cont[n] * bv;
    }
    const vertex: DtoState = { x: P.next.map((ms, n) => ms.map((_, j) => (j === best[n] ? 1 : 0))), tau: cur.tau };
    const fv = linkFlows(P, vertex);
    const mix = (g: number): DtoState => ({ x: fractionsOf(f.map((row, n) => row.map((v, j) => v + g * (fv[n][j] - v))), cur.x), tau: cur.tau });
    const { t, v } = golden((g) => evaluate(P, mix(g), r).objective, 0, 1, 40);
    if (!(v < J - tol * Math.max(1, Math.abs(J)))) break;
    cur = mix(t); f = linkFlows(P, cur); J = v;
  }
  return cur;
}

/** Coordinate search on the thresholds with the routing fixed. */
function solveThresholds(P: Problem, st: DtoState, r: number): DtoState {
  const cur: DtoState = { x: st.x, tau: [...st.tau] };
  const grid = P.profile.thresholds;
  const pts: number[] = [];
  grid.forEach((t, i) => { pts.push(t); if (i + 1 < grid.length) pts.push((t + grid[i + 1]) / 2); });
  for (const n of P.order) {
    if (P.stage[n] === P.S) continue;
    const at = (t: number): number => { const s = cur.tau[n]; cur.tau[n] = t; const v = evaluate(P, cur, r).objective; cur.tau[n] = s; return v; };
    let bi = 0, bv = Infinity;
    pts.forEach((t, i) => { const v = at(t); if (v < bv) { bv = v; bi = i; } });
    const lo = pts[Math.max(0, bi - 1)], hi = pts[Math.min(pts.length - 1, bi + 1)];
    const g = golden(at, lo, hi, 40);
    const keep = at(cur.tau[n]);
    const cand = g.v < bv ? g : { t: pts[bi], v: bv };
    if (cand.v < keep) cur.tau[n] = cand.t;
  }
  return cur;
}

/**
 * Projected gradient on the full vector (routing rows projected onto their
 * simplex, thresholds onto [0, 1]) with Barzilai-Borwein steps and Armijo
 * backtracking on the true objective. `fix` freezes one block.
 */
function projectedGradient(P: Problem, st0: DtoState, r: number, fix: CentralisedOptions['fix'], iters: number): DtoState {
  const moveX = fix !== 'routing', moveT = fix !== 'thresholds';
  let st = st0, g = gradient(P, st, r), J = g.objective, alpha = 1;
  const step = (a: number): DtoState => ({
    x: moveX ? st.x.map((row, n) => (row.length > 1 ? projectSimplex(row.map((v, j) => v - a * g.dx[n][j])) : [...row])) : st.x,
    tau: moveT ? st.tau.map((t, n) => (P.stage[n] === P.S ? 1 : Math.min(1, Math.max(0, t - a * g.dtau[n])))) : st.tau,
  });
  for (let it = 0; it < iters; it++) {
    let a = alpha, cand = step(a), Jc = evaluate(P, cand, r).objective, dec = 0;
    const dot = (c: DtoState): number => {
      let d = 0;
      c.x.forEach((row, n) => row.forEach((v, j) => { d += g.dx[n][j] * (v - st.x[n][j]); }));
      c.tau.forEach((t, n) => { d += g.dtau[n] * (t - st.tau[n]); });
      return d;
    };
    for (let b = 0; b < 50 && !(Jc <= J + 1e-4 * (dec = dot(cand))); b++) { a /= 2; cand = step(a); Jc = evaluate(P, cand, r).objective; }
    if (!(Jc < J) || dec === 0) break;
    const gn = gradient(P, cand, r);
    let ss = 0, sy = 0;
    cand.x.forEach((row, n) => row.forEach((v, j) => { const d = v - st.x[n][j]; ss += d * d; sy += d * (gn.dx[n][j] - g.dx[n][j]); }));
    cand.tau.forEach((t, n) => { const d = t - st.tau[n]; ss += d * d; sy += d * (gn.dtau[n] - g.dtau[n]); });
    alpha = sy > 0 ? Math.min(1e6, Math.max(1e-8, ss / sy)) : Math.min(1e6, a * 4);
    const gain = J - Jc;
    st = cand; g = gn; J = Jc;
    if (gain < 1e-14 * Math.max(1, Math.abs(J))) break;
  }
  return st;
}

export function solveCentralised(spec: DtoProblemSpec | Problem, o: CentralisedOptions = {}): CentralisedResult {
  const P = 'ids' in spec ? spec : compileProblem(spec);
  const pen = P.penalty;
  const r = o.penaltyWeight ?? pen.initialWeight * Math.pow(pen.growth, pen.rounds - 1);
  const starts = o.starts ?? [0, 0.5, 1];
  if (starts.length === 0 || starts.some((t) => !(t >= 0 && t <= 1))) throw new InputError('centralised solver: starts must be thresholds in [0, 1]', 'starts');
  const fix = o.fix ?? 'none';
  const maxAlt = o.maxAlternations ?? 20, fwIters = o.frankWolfeIterations ?? 30, tol = o.tolerance ?? 1e-8;
  const pgIters = o.projectedGradientIterations ?? 500;
  let best: { st: DtoState; J: number } | undefined;
  const startObjectives: number[] = [];
  let alternations = 0;
  for (const t0 of starts) {
    let st: DtoState = {
      x: o.routing ? o.routing.map((row) => [...row]) : P.next.map((ms) => ms.map(() => 1 / ms.length)),
      tau: P.ids.map((_, n) => (P.stage[n] === P.S ? 1 : t0)),
    };
    let J = evaluate(P, st, r).objective;
    for (let a = 0; a < maxAlt; a++) {
      alternations++;
      if (fix !== 'routing') st = solveRouting(P, st, r, fwIters, tol);
      if (fix !== 'thresholds') st = solveThresholds(P, st, r);
      st = projectedGradient(P, st, r, fix, pgIters);
      const Jn = evaluate(P, st, r).objective;
      const done = !(Jn < J - tol * Math.max(1, Math.abs(J)));
      J = Math.min(J, Jn);
      if (done) break;
    }
    startObjectives.push(J);
    if (!best || J < best.J) best = { st, J };
  }
  const st = best!.st;
  return { state: st, evaluation: evaluate(P, st, r), startObjectives, alternations };
}

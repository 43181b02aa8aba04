/**
 * DTO-EE's distributed algorithm (REFERENCE §1, our reading [assumption]):
 * one agent per edge node; a step takes only the messages of its neighbours.
 *
 *  - Offloaders tell each receiver the flow they send it ('flow' message), so a
 *    receiver knows its arrival rate Lambda_n = lambda0_n + sum of inflows.
 *  - Receivers tell their upstream neighbours their marginal cost per unit of
 *    inflow, own queue plus downstream ('cost' message):
 *      delta_n = c_n'(Lambda_n) - beta q_n(tau_n) + (1 - p_n) sum_m x_nm (h_nm + delta_m)
 *    with the curvature of that cost (for the step scaling).
 *  - Offloaders take a scaled projected-gradient step on their routing
 *    fractions (Euclidean projection onto the simplex, Newton-like scale
 *    1 / (Lambda_n (1-p_n) H), Bertsekas-Gafni-Gallager style) and a gradient
 *    step on their threshold, clamped and damped when its sign flips (the
 *    profile is piecewise linear in tau).
 *  - The exterior penalty weight r grows by `growth` every outer round; the
 *    rounds follow a global iteration schedule every agent knows.
 *
 * Agents are pure: `step(inbox, r) -> outbox`, state as plain data. The
 * synchronous driver `runDistributed` delivers every message one iteration
 * later (the simulator and the live runner send them as real messages).
 */
import {
  applyObservation, compileProblem, effectiveBeta, evaluate, marginalCost, projectSimplex, queueCost, thresholdSlope,
  type DtoObservation, type DtoProblemSpec, type DtoState, type Evaluation, type PenaltyOptions, type Problem, type SojournModel,
} from './problem.js';
import { exitCorrect, exitProb, exitProbSlope, type ExitProfile } from './profile.js';

/** Header bytes of one algorithm message (two node ids, kind, iteration) [assumption]; 8 bytes per number. */
export const MESSAGE_HEADER_BYTES = 24;
const FLOAT_BYTES = 8;

export type DtoMessage =
  | { kind: 'flow'; from: string; to: string; ratePerS: number; bytes: number }
  | { kind: 'cost'; from: string; to: string; marginalCostS: number; curvature: number; bytes: number };

export interface AgentConfig {
  id: string;
  stage: number;
  S: number;
  serviceRatePerS: number;
  inputRatePerS: number;
  next: { id: string; hopDelayS: number }[];
  prev: string[];
  profile: ExitProfile;
  sojourn: SojournModel;
  utilisationCap: number;
}

export interface AgentState {
  x: number[];
  tau: number;
  /** Latest flow received from each upstream neighbour (tasks/s). */
  inflow: Record<string, number>;
  /** Latest marginal cost and curvature received from each next-stage neighbour (NaN until heard). */
  downCost: number[];
  downCurv: number[];
  /** Threshold step scale in (0, 1], halved when the threshold gradient changes sign. */
  tauScale: number;
  lastTauGrad: number;
  /** Size of the last update (max |dx|, |dtau|). */
  lastMove: number;
}

export interface StepOptions {
  /** Exterior penalty weight this iteration. */
  penaltyWeight: number;
  /** Accuracy weight beta this iteration. */
  beta: number;
  /** Routing step scale alpha in (0, 1]; default 0.5. */
  routingStep?: number;
  /** Largest threshold change per iteration; default 0.1. */
  maxTauStep?: number;
}

export function initialAgentState(cfg: AgentConfig, x?: number[], tau?: number): AgentState {
  const k = cfg.next.length;
  return {
    x: x ? [...x] : cfg.next.map(() => 1 / k), tau: cfg.stage === cfg.S ? 1 : (tau ?? 0.5), inflow: Object.fromEntries(cfg.prev.map((p) => [p, 0])),
    downCost: cfg.next.map(() => NaN), downCurv: cfg.next.map(() => NaN), tauScale: 1, lastTauGrad: 0, lastMove: Infinity,
  };
}

/**
 * One agent step: read the neighbours' messages, update routing fractions and
 * threshold from them, and return the new state and the messages to send.
 */
export function agentStep(cfg: AgentConfig, prev: AgentState, inbox: readonly DtoMessage[], o: StepOptions): { state: AgentState; out: DtoMessage[] } {
  const st: AgentState = { ...prev, x: [...prev.x], inflow: { ...prev.inflow }, downCost: [...prev.downCost], downCurv: [...prev.downCurv] };
  for (const m of inbox) {
    if (m.to !== cfg.id) continue;
    if (m.kind === 'flow') st.inflow[m.from] = m.ratePerS;
    else {
      const j = cfg.next.findIndex((n) => n.id === m.from);
      if (j >= 0) { st.downCost[j] = m.marginalCostS; st.downCurv[j] = m.curvature; }
    }
  }
  let lambda = cfg.inputRatePerS;
  for (const p of cfg.prev) lambda += st.inflow[p] ?? 0;
  const last = cfg.stage === cfg.S;
  const heard = st.downCost.every((c) => c === c);
  let move = 0;
  if (!last && heard) {
    const cont = 1 - exitProb(cfg.profile, cfg.stage, st.tau);
    const g = cfg.next.map((n, j) => n.hopDelayS + st.downCost[j]);
    // Routing: scaled projected gradient.
    const H = Math.max(...st.downCurv, 1e-12);
    const scale = (o.routingStep ?? 0.5) / Math.max(lambda * cont * H, 1e-9);
    const nx = projectSimplex(st.x.map((v, j) => v - scale * g[j]));
    nx.forEach((v, j) => { move = Math.max(move, Math.abs(v - st.x[j])); });
    st.x = nx;
    // Threshold: gradient step with a Newton-like scale, clamped, damped on sign flips.
    const G = st.x.reduce((a, v, j) => a + v * g[j], 0);
    const Hs = st.x.reduce((a, v, j) => a + v * v * st.downCurv[j], 0);
    const { dq } = exitCorrect(cfg.profile, cfg.stage, st.tau);
    const dp = exitProbSlope(cfg.profile, cfg.stage, st.tau);
    const s = thresholdSlope(o.beta, dq, dp, G);
    if (s * st.lastTauGrad < 0) st.tauScale = Math.max(st.tauScale / 2, 1e-6);
    else st.tauScale = Math.min(1, st.tauScale * 1.25);
    st.lastTauGrad = s;
    const maxStep = (o.maxTauStep ?? 0.1) * st.tauScale;
    const newton = -s / Math.max(lambda * dp * dp * Hs, 1e-12);
    const t = Math.min(1, Math.max(0, st.tau + Math.max(-maxStep, Math.min(maxStep, newton))));
    move = Math.max(move, Math.abs(t - st.tau));
    st.tau = t;
  }
  st.lastMove = heard || last ? move : Infinity;
  // Messages: flows to receivers, marginal cost to offloaders.
  const [, c1, c2] = queueCost(cfg.sojourn, cfg.utilisationCap, cfg.serviceRatePerS, lambda, o.penaltyWeight);
  const out: DtoMessage[] = [];
  let delta: number, curv = c2;
  if (last) delta = c1 - o.beta * cfg.profile.finalAccuracy;
  else {
    const cont = 1 - exitProb(cfg.profile, cfg.stage, st.tau);
    const q = exitCorrect(cfg.profile, cfg.stage, st.tau).q;
    const known = st.downCost.map((c) => (c === c ? c : 0));
    delta = marginalCost(c1, o.beta, q, cont, st.x, cfg.next.map((n) => n.hopDelayS), known).delta;
    curv += cont * cont * st.x.reduce((a, v, j) => a + v * v * (st.downCurv[j] === st.downCurv[j] ? st.downCurv[j] : 0), 0);
    cfg.next.forEach((n, j) => out.push({ kind: 'flow', from: cfg.id, to: n.id, ratePerS: lambda * cont * st.x[j], bytes: MESSAGE_HEADER_BYTES + FLOAT_BYTES }));
  }
  // Every upstream neighbour may move flow here in the same iteration (Jacobi): scale the curvature by their number.
  curv *= Math.max(1, cfg.prev.length);
  for (const p of cfg.prev) out.push({ kind: 'cost', from: cfg.id, to: p, marginalCostS: delta, curvature: curv, bytes: MESSAGE_HEADER_BYTES + 2 * FLOAT_BYTES });
  return { state: st, out };
}

/** Penalty weight at a node's local iteration k under a fixed schedule of `roundIterations` per outer round. */
export function penaltyWeightAt(pen: PenaltyOptions, k: number, roundIterations: number): number {
  const round = Math.min(pen.rounds - 1, Math.floor(k / roundIterations));
  return pen.initialWeight * Math.pow(pen.growth, round);
}

/** One agent configuration per node of the problem. */
export function agentConfigs(P: Problem): AgentConfig[] {
  return P.ids.map((id, n) => ({
    id, stage: P.stage[n], S: P.S, serviceRatePerS: P.mu[n], inputRatePerS: P.lambda0[n],
    next: P.next[n].map((m, j) => ({ id: P.ids[m], hopDelayS: P.hopS[n][j] })), prev: P.prev[n].map(([u]) => P.ids[u]),
    profile: P.profile, sojourn: P.sojourn, utilisationCap: P.penalty.utilisationCap,
  }));
}

export interface DistributedOptions {
  /** Iterations per outer (penalty) round at most; default 400. */
  maxInnerIterations?: number;
  /**
   * Fixed iterations per outer round: a schedule every node follows on its own
   * (`penaltyWeightAt`), with no global "everyone settled" test. Without it a
   * round ends when no agent moved more than `tolerance` for `settle`
   * iterations [assumption]: a global check the simulator can make for free.
   */
  roundIterations?: number;
  /** An outer round ends when no agent moved more than this for `settle` iterations; default 1e-5. */
  tolerance?: number;
  settle?: number;
  routingStep?: number;
  maxTauStep?: number;
  /** Initial threshold when not warm-started; default 0.5. */
  initialTau?: number;
  /** Floor mode: weight of the newest broadcast mean accuracy in the multiplier, per iteration; default 0.02. */
  floorSmoothing?: number;
  /** Record the objective (at the final penalty weight) after every iteration. */
  trace?: boolean;
}

export interface DistributedResult {
  state: DtoState;
  evaluation: Evaluation;
  /** Iterations run in total, and per outer round. */
  iterations: number;
  roundIterations: number[];
  messages: number;
  bytes: number;
  /** Objective after each iteration (when trace is set). */
  trace: number[];
}

/**
 * The distributed algorithm as a set of agents with a synchronous message
 * driver. Holds the agents' state between calls so that `observe` re-runs it
 * from measured rates with a warm start.
 */
export class DtoeeDistributed {
  private P: Problem;
  private cfgs: AgentConfig[];
  private states: AgentState[];
  private inbox: DtoMessage[] = [];
  private beta: number;

  constructor(private spec: DtoProblemSpec, private opts: DistributedOptions = {}, warm?: DtoState) {
    this.P = compileProblem(spec);
    this.cfgs = agentConfigs(this.P);
    this.states = this.cfgs.map((c, n) => initialAgentState(c, warm?.x[n], warm?.tau[n] ?? opts.initialTau));
    this.beta = effectiveBeta(this.P, evaluate(this.P, this.currentState(), 0).meanAccuracy);
  }

  get problem(): Problem { return this.P; }

  currentState(): DtoState {
    return { x: this.states.map((s) => [...s.x]), tau: this.states.map((s) => s.tau) };
  }

  /** Run the outer penalty rounds, each until the agents settle. */
  run(): DistributedResult {
    const P = this.P, pen = P.penalty, o = this.opts;
    const maxInner = o.maxInnerIterations ?? 400, tol = o.tolerance ?? 1e-5, settle = o.settle ?? 5;
    const rFinal = pen.initialWeight * Math.pow(pen.growth, pen.rounds - 1);
    let iterations = 0, messages = 0, bytes = 0;
    const roundIterations: number[] = [], trace: number[] = [];
    for (let k = 0; k < pen.rounds; k++) {
      const r = pen.initialWeight * Math.pow(pen.growth, k);
      let quiet = 0, it = 0;
      const fixed = o.roundIterations;
      while (fixed !== undefined ? it < fixed : it < maxInner && quiet < settle) {
        const inbox = this.inbox;
        const out: DtoMessage[] = [];
        let moved = 0;
        this.states = this.states.map((s, n) => {
          const res = agentStep(this.cfgs[n], s, inbox, { penaltyWeight: r, beta: this.beta, routingStep: o.routingStep, maxTauStep: o.maxTauStep });
          out.push(...res.out);
          moved = Math.max(moved, res.state.lastMove);
          return res.state;
        });
        this.inbox = out;
        messages += out.length;
        for (const m of out) bytes += m.bytes;
        it++;
        quiet = moved <= tol ? quiet + 1 : 0;
        if (P.accuracy.mode === 'floor') {
          // [assumption] The accuracy floor's multiplier needs the mean accuracy: one number the devices
          // measure (they receive every result) and broadcast each iteration; smoothed (factor
          // floorSmoothing) so that the multiplier and the thresholds do not chase each other.
          const target = effectiveBeta(P, evaluate(P, this.currentState(), r).meanAccuracy);
          this.beta += (o.floorSmoothing ?? 0.02) * (target - this.beta);
        }
        if (o.trace) trace.push(evaluate(P, this.currentState(), rFinal).objective);
      }
      roundIterations.push(it);
      iterations += it;
    }
    const state = this.currentState();
    return { state, evaluation: evaluate(P, state, rFinal), iterations, roundIterations, messages, bytes, trace };
  }

  /**
   * Re-run from measured rates (warm start): `inputRatePerS` per access node
   * (tasks/s from its devices) and `serviceTimeS` per node (mean seconds per
   * task). Nodes not named keep their value.
   */
  observe(obs: DtoObservation): DistributedResult {
    const spec = applyObservation(this.spec, obs);
    const P = compileProblem(spec); // throws before anything changes
    this.spec = spec;
    this.P = P;
    this.cfgs = agentConfigs(P);
    this.inbox = [];
    this.states = this.states.map((s) => ({ ...s, tauScale: 1, lastTauGrad: 0, lastMove: Infinity }));
    return this.run();
  }
}

/** Convenience: build, run, return. */
export function runDistributed(spec: DtoProblemSpec, opts: DistributedOptions = {}, warm?: DtoState): DistributedResult {
  return new DtoeeDistributed(spec, opts, warm).run();
}

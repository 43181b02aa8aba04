/**
 * DTO-EE's optimisation problem (REFERENCE §1, our model [assumption]) as
 * plain data: S stages of a partitioned model, edge nodes (one stage each)
 * with a service rate, next-stage neighbours with a per-hop delay, device
 * input rates at stage-1 access nodes, routing fractions x_nm (a simplex per
 * node) and exit thresholds tau_n.
 *
 *   flow      Lambda_m = lambda0_m + sum_n Lambda_n (1 - p_s(n)(tau_n)) x_nm
 *   delay     mean over tasks of sum of sojourn times (M/M/1 or M/D/1) and hop delays
 *   accuracy  mean over tasks of the accuracy of the exit they take
 *   objective J = mean delay + beta * (1 - mean accuracy)  (mode 'weight': the same
 *               optimum as mean delay - beta * mean accuracy, shifted by the constant
 *               beta so that J > 0 and relative gaps mean something)
 *             J = mean delay + w max(0, floor - A)^2     (mode 'floor')
 *             + (1/Lambda0) r sum_n max(0, Lambda_n - cap mu_n)^2   (exterior penalty)
 *
 * The sojourn time is exact below cap * mu_n and continued by its second-order
 * Taylor expansion above it [assumption], so the objective stays finite and
 * convex in the flows while the penalty (weight r growing over outer rounds)
 * pushes the flows back under the cap.
 *
 * Gradients are analytic, by marginal costs (Gallager style): delta_n is the
 * cost of one more unit of inflow at n, own queue plus downstream.
 */
import { InputError } from '../core/errors.js';
import { exitCorrect, exitProb, exitProbSlope, validateProfile, type ExitProfile } from './profile.js';

export type SojournModel = 'mm1' | 'md1';
export type AccuracyGoal =
  | { mode: 'weight'; /** seconds of mean delay worth one unit (100 %) of mean accuracy */ beta: number }
  | { mode: 'floor'; /** mean accuracy to reach */ floor: number; /** penalty weight, seconds per accuracy^2 */ weight: number };

export interface PenaltyOptions {
  /** Exterior penalty weight r in the first outer round. Default 1. */
  initialWeight: number;
  /** r multiplies by this each outer round. Default 10. */
  growth: number;
  /** Outer rounds. Default 4. */
  rounds: number;
  /** Utilisation above which the penalty acts and the sojourn formula is extended: default 0.95 [assumption]. */
  utilisationCap: number;
}

export interface DtoLinkSpec {
  to: string;
  /** Per-hop delay in seconds; or give featureBytes, bandwidthBps, latencyS. */
  hopDelayS?: number;
  featureBytes?: number;
  bandwidthBps?: number;
  latencyS?: number;
}

export interface DtoNodeSpec {
  id: string;
  /** 1-based stage this node hosts. */
  stage: number;
  /** Service rate in tasks/s, or serviceTimeS (mean seconds per task). */
  serviceRatePerS?: number;
  serviceTimeS?: number;
  /** Device input rate in tasks/s (stage-1 access nodes only). */
  inputRatePerS?: number;
  /** Next-stage neighbours (none for last-stage nodes). */
  next?: DtoLinkSpec[];
}

export interface DtoProblemSpec {
  stages: number;
  nodes: DtoNodeSpec[];
  profile: ExitProfile;
  sojourn?: SojournModel;
  accuracy?: AccuracyGoal;
  penalty?: Partial<PenaltyOptions>;
}

export const DEFAULT_PENALTY: PenaltyOptions = { initialWeight: 1, growth: 10, rounds: 4, utilisationCap: 0.95 };
export const DEFAULT_ACCURACY: AccuracyGoal = { mode: 'weight', beta: 0 };

/** The compiled problem: nodes by index, ordered by stage. */
export interface Problem {
  S: number;
  ids: string[];
  index: Map<string, number>;
  /** 1-based stage per node. */
  stage: number[];
  /** Service rate per node, tasks/s. */
  mu: number[];
  /** Device input rate per node, tasks/s. */
  lambda0: number[];
  totalInput: number;
  /** Next-stage neighbour indices and hop delays (seconds) per node. */
  next: number[][];
  hopS: number[][];
  /** Upstream neighbours per node: [node, position of this node in its next list]. */
  prev: [number, number][][];
  /** Node indices in stage order (topological). */
  order: number[];
  profile: ExitProfile;
  sojourn: SojournModel;
  accuracy: AccuracyGoal;
  penalty: PenaltyOptions;
}

/** Decision variables: routing fractions per node over its next list, threshold per node (ignored at the last stage). */
export interface DtoState {
  x: number[][];
  tau: number[];
}

/** Per-hop delay: feature bytes over the bandwidth plus the latency. */
export function hopDelayS(featureBytes: number, bandwidthBps: number, latencyS: number): number {
  return (featureBytes * 8) / bandwidthBps + latencyS;
}

function bad(field: string, what: string): never {
  throw new InputError(`dtoee problem: ${field} ${what}`, field);
}

function positive(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) bad(field, `is ${JSON.stringify(v)}: must be a positive number`);
  return v;
}

function nonNegative(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) bad(field, `is ${JSON.stringify(v)}: must be a number >= 0`);
  return v;
}

export function compileProblem(spec: DtoProblemSpec): Problem {
  const S = spec.stages;
  if (!Number.isInteger(S) || S < 2) bad('stages', `is ${S}: must be an integer >= 2`);
  const profile = validateProfile(spec.profile, S);
  const sojourn = spec.sojourn ?? 'mm1';
  if (sojourn !== 'mm1' && sojourn !== 'md1') bad('sojourn', `is ${JSON.stringify(sojourn)}: must be mm1 or md1`);
  const accuracy = spec.accuracy ?? DEFAULT_ACCURACY;
  if (accuracy.mode === 'weight') nonNegative(accuracy.beta, 'accuracy.beta');
  else if (accuracy.mode === 'floor') {
    if (!(accuracy.floor >= 0 && accuracy.floor <= 1)) bad('accuracy.floor', `is ${accuracy.floor}: must be in [0, 1]`);
    positive(accuracy.weight, 'accuracy.weight');
  } else bad('accuracy.mode', 'must be weight or floor');
  const penalty: PenaltyOptions = { ...DEFAULT_PENALTY, ...spec.penalty };
  positive(penalty.initialWeight, 'penalty.initialWeight');
  if (!(penalty.growth >= 1)) bad('penalty.growth', `is ${penalty.growth}: must be >= 1`);
  if (!Number.isInteger(penalty.rounds) || penalty.rounds < 1) bad('penalty.rounds', `is ${penalty.rounds}: must be an integer >= 1`);
  if (!(penalty.utilisationCap > 0 && penalty.utilisationCap < 1)) bad('penalty.utilisationCap', `is ${penalty.utilisationCap}: must be in (0, 1)`);

  const sorted = spec.nodes.map((n, i) => ({ n, i })).sort((a, b) => a.n.stage - b.n.stage || a.i - b.i);
  const index = new Map<string, number>();
  sorted.forEach(({ n, i }, k) => {
    if (typeof n.id !== 'string' || n.id === '') bad(`nodes[${i}].id`, 'must be a non-empty string');
    if (index.has(n.id)) bad(`nodes[${i}].id`, `"${n.id}" is used twice: node ids must be unique`);
    if (!Number.isInteger(n.stage) || n.stage < 1 || n.stage > S) bad(`nodes[${i}].stage`, `is ${n.stage}: must be an integer in 1..${S}`);
    index.set(n.id, k);
  });
  for (let s = 1; s <= S; s++) {
    if (!sorted.some(({ n }) => n.stage === s)) bad('nodes', `has no node for stage ${s}: every stage needs at least one node`);
  }
  const ids = sorted.map(({ n }) => n.id);
  const stage = sorted.map(({ n }) => n.stage);
  const mu = sorted.map(({ n, i }) => {
    if (n.serviceRatePerS !== undefined) return positive(n.serviceRatePerS, `nodes[${i}].serviceRatePerS`);
    if (n.serviceTimeS !== undefined) return 1 / positive(n.serviceTimeS, `nodes[${i}].serviceTimeS`);
    return bad(`nodes[${i}]`, `("${n.id}") needs serviceRatePerS or serviceTimeS`);
  });
  const lambda0 = sorted.map(({ n, i }) => {
    const r = n.inputRatePerS === undefined ? 0 : nonNegative(n.inputRatePerS, `nodes[${i}].inputRatePerS`);
    if (r > 0 && n.stage !== 1) bad(`nodes[${i}].inputRatePerS`, `is ${r} at a stage-${n.stage} node: devices send tasks to stage-1 access nodes only`);
    return r;
  });
  const totalInput = lambda0.reduce((a, b) => a + b, 0);
  if (!(totalInput > 0)) bad('nodes', 'have no device input: give inputRatePerS > 0 at some stage-1 node');
  const next: number[][] = [], hopS: number[][] = [];
  sorted.forEach(({ n, i }) => {
    const links = n.next ?? [];
    if (n.stage === S && links.length > 0) bad(`nodes[${i}].next`, `("${n.id}") is a last-stage node: it has no next stage`);
    if (n.stage < S && links.length === 0) bad(`nodes[${i}].next`, `("${n.id}") is empty: a stage-${n.stage} node needs at least one stage-${n.stage + 1} neighbour`);
    const seen = new Set<string>();
    next.push(links.map((l, j) => {
      const m = index.get(l.to);
      if (m === undefined) bad(`nodes[${i}].next[${j}].to`, `"${l.to}" is not a node id`);
      if (stage[m] !== n.stage + 1) bad(`nodes[${i}].next[${j}].to`, `"${l.to}" is at stage ${stage[m]}: must be at stage ${n.stage + 1}`);
      if (seen.has(l.to)) bad(`nodes[${i}].next[${j}].to`, `"${l.to}" is listed twice`);
      seen.add(l.to);
      return m;
    }));
    hopS.push(links.map((l, j) => {
      const f = `nodes[${i}].next[${j}]`;
      if (l.hopDelayS !== undefined) return nonNegative(l.hopDelayS, `${f}.hopDelayS`);
      if (l.featureBytes === undefined || l.bandwidthBps === undefined) bad(f, 'needs hopDelayS, or featureBytes and bandwidthBps (and latencyS)');
      return hopDelayS(nonNegative(l.featureBytes, `${f}.featureBytes`), positive(l.bandwidthBps, `${f}.bandwidthBps`), nonNegative(l.latencyS ?? 0, `${f}.latencyS`));
    }));
  });
  const prev: [number, number][][] = ids.map(() => []);
  next.forEach((ms, n) => ms.forEach((m, j) => prev[m].push([n, j])));
  const order = ids.map((_, k) => k);
  return { S, ids, index, stage, mu, lambda0, totalInput, next, hopS, prev, order, profile, sojourn, accuracy, penalty };
}

/** Measured rates and service times, by node id (nodes not named keep their value). */
export interface DtoObservation {
  /** Device input rate per access node, tasks/s. */
  inputRatePerS?: Record<string, number>;
  /** Mean service time per task per node, seconds. */
  serviceTimeS?: Record<string, number>;
}

/** The problem with measured values put in (the topology stays). */
export function applyObservation(spec: DtoProblemSpec, obs: DtoObservation): DtoProblemSpec {
  const known = new Set(spec.nodes.map((n) => n.id));
  for (const [key, rec] of [['inputRatePerS', obs.inputRatePerS], ['serviceTimeS', obs.serviceTimeS]] as const) {
    for (const id of Object.keys(rec ?? {})) if (!known.has(id)) bad(`${key}.${id}`, `names no node of the problem`);
  }
  const nodes = spec.nodes.map((n) => {
    const c = { ...n };
    const r = obs.inputRatePerS?.[n.id];
    if (r !== undefined) c.inputRatePerS = r;
    const t = obs.serviceTimeS?.[n.id];
    if (t !== undefined) { c.serviceTimeS = t; delete c.serviceRatePerS; }
    return c;
  });
  return { ...spec, nodes };
}

/** Euclidean projection of v onto the probability simplex (Duchi et al. 2008). */
export function projectSimplex(v: number[]): number[] {
  const u = [...v].sort((a, b) => b - a);
  let css = 0, theta = 0;
  for (let i = 0; i < u.length; i++) {
    css += u[i];
    const t = (css - 1) / (i + 1);
    if (u[i] - t > 0) theta = t;
  }
  return v.map((x) => Math.max(0, x - theta));
}

/** Uniform routing over next-stage neighbours and the same threshold everywhere. */
export function uniformState(P: Problem, tau: number): DtoState {
  return { x: P.next.map((ms) => ms.map(() => 1 / ms.length)), tau: P.ids.map((_, n) => (P.stage[n] === P.S ? 1 : tau)) };
}

export function cloneState(st: DtoState): DtoState {
  return { x: st.x.map((r) => [...r]), tau: [...st.tau] };
}

/** Named form: routing[node][neighbour] and tau[node]. */
export interface NamedState {
  routing: Record<string, Record<string, number>>;
  tau: Record<string, number>;
}

export function stateToNamed(P: Problem, st: DtoState): NamedState {
  const routing: Record<string, Record<string, number>> = {}, tau: Record<string, number> = {};
  P.ids.forEach((id, n) => {
    if (P.stage[n] === P.S) return;
    routing[id] = Object.fromEntries(P.next[n].map((m, j) => [P.ids[m], st.x[n][j]]));
    tau[id] = st.tau[n];
  });
  return { routing, tau };
}

/** Validate named routing fractions and thresholds against the problem (InputError naming the field). */
export function stateFromNamed(P: Problem, s: NamedState): DtoState {
  const st = uniformState(P, 0);
  P.ids.forEach((id, n) => {
    if (P.stage[n] === P.S) return;
    const t = s.tau[id];
    if (typeof t !== 'number' || !(t >= 0 && t <= 1)) bad(`tau.${id}`, `is ${JSON.stringify(t)}: must be a threshold in [0, 1]`);
    st.tau[n] = t;
    const r = s.routing[id];
    if (r === undefined) bad(`routing.${id}`, 'is missing: every node but the last stage needs routing fractions');
    for (const k of Object.keys(r)) if (!P.next[n].some((m) => P.ids[m] === k)) bad(`routing.${id}.${k}`, `"${k}" is not a next-stage neighbour of ${id}`);
    let sum = 0;
    st.x[n] = P.next[n].map((m) => {
      const v = r[P.ids[m]] ?? 0;
      if (!(v >= 0 && v <= 1)) bad(`routing.${id}.${P.ids[m]}`, `is ${v}: must be in [0, 1]`);
      sum += v;
      return v;
    });
    if (Math.abs(sum - 1) > 1e-6) bad(`routing.${id}`, `sums to ${sum}: routing fractions must sum to 1`);
  });
  return st;
}

/** Exact mean sojourn time (waiting + service) of one queue; Infinity when lambda >= mu. */
export function sojournS(model: SojournModel, lambda: number, mu: number): number {
  if (lambda >= mu) return Infinity;
  const k = model === 'mm1' ? 1 : 0.5; // Pollaczek-Khinchine (1 + cv^2)/2
  return 1 / mu + (k * lambda) / (mu * (mu - lambda));
}

/** D(L) = L T(L) and its first two derivatives, exact below L < mu. */
function queueCostExact(k: number, L: number, mu: number): [number, number, number] {
  const g = mu - L;
  return [L / mu + (k * L * L) / (mu * g), 1 / mu + (k * L * (2 * mu - L)) / (mu * g * g), (2 * k * mu) / (g * g * g)];
}

/**
 * One queue's cost c(L) = D(L) + r max(0, L - cap mu)^2 and its first two
 * derivatives, with D = L T(L) continued by its second-order Taylor expansion
 * above cap * mu (so it stays finite and convex).
 */
export function queueCost(sojourn: SojournModel, utilisationCap: number, mu: number, L: number, r: number): [number, number, number] {
  const k = sojourn === 'mm1' ? 1 : 0.5, Lc = utilisationCap * mu;
  if (L <= Lc) return queueCostExact(k, L, mu);
  const [d0, d1, d2] = queueCostExact(k, Lc, mu), e = L - Lc;
  return [d0 + d1 * e + 0.5 * d2 * e * e + r * e * e, d1 + d2 * e + 2 * r * e, d2 + 2 * r];
}

/** queueCost of node n of the problem. */
export function nodeCost(P: Problem, n: number, L: number, r: number): [number, number, number] {
  return queueCost(P.sojourn, P.penalty.utilisationCap, P.mu[n], L, r);
}

/** Continuation probability 1 - p(tau) per node (0 at the last stage). */
function continuation(P: Problem, st: DtoState): number[] {
  return P.ids.map((_, n) => (P.stage[n] === P.S ? 0 : 1 - exitProb(P.profile, P.stage[n], st.tau[n])));
}

/** Arrival rate per node by the coupling formula, in stage order. */
export function flows(P: Problem, st: DtoState): { lambda: number[]; cont: number[] } {
  const cont = continuation(P, st);
  const lambda = [...P.lambda0];
  for (const n of P.order) {
    const out = lambda[n] * cont[n];
    P.next[n].forEach((m, j) => { lambda[m] += out * st.x[n][j]; });
  }
  return { lambda, cont };
}

export interface Evaluation {
  objective: number;
  meanDelayS: number;
  meanAccuracy: number;
  /** Penalty term (per task) included in the objective. */
  penalty: number;
  lambda: number[];
  /** Share of tasks exiting at each node (sums to 1). */
  exitShare: number[];
  /** Lambda_n / mu_n. */
  utilisation: number[];
  /** Every node below its service rate. */
  stable: boolean;
}

function correctPerTask(P: Problem, st: DtoState, n: number): { q: number; dq: number } {
  return P.stage[n] === P.S ? { q: P.profile.finalAccuracy, dq: 0 } : exitCorrect(P.profile, P.stage[n], st.tau[n]);
}

/** Evaluate the objective at penalty weight r. */
export function evaluate(P: Problem, st: DtoState, r: number): Evaluation {
  const { lambda, cont } = flows(P, st);
  let delay = 0, correct = 0, pen = 0;
  const Lc = P.penalty.utilisationCap;
  P.order.forEach((n) => {
    const [c] = nodeCost(P, n, lambda[n], 0);
    delay += c;
    const e = Math.max(0, lambda[n] - Lc * P.mu[n]);
    pen += r * e * e;
    const out = lambda[n] * cont[n];
    P.next[n].forEach((_, j) => { delay += out * st.x[n][j] * P.hopS[n][j]; });
    correct += lambda[n] * correctPerTask(P, st, n).q;
  });
  const L0 = P.totalInput, meanDelayS = delay / L0, meanAccuracy = correct / L0, penalty = pen / L0;
  const acc = P.accuracy;
  const accTerm = acc.mode === 'weight' ? acc.beta * (1 - meanAccuracy) : acc.weight * Math.max(0, acc.floor - meanAccuracy) ** 2;
  const exitShare = lambda.map((l, n) => (l * (1 - cont[n])) / L0);
  const utilisation = lambda.map((l, n) => l / P.mu[n]);
  return { objective: meanDelayS + accTerm + penalty, meanDelayS, meanAccuracy, penalty, lambda, exitShare, utilisation, stable: utilisation.every((u) => u < 1) };
}

/** Effective accuracy weight: beta, or 2 w max(0, floor - A) for the floor mode. */
export function effectiveBeta(P: Problem, meanAccuracy: number): number {
  const a = P.accuracy;
  return a.mode === 'weight' ? a.beta : 2 * a.weight * Math.max(0, a.floor - meanAccuracy);
}

export interface Gradient extends Evaluation {
  /** dJ/dx_nm. */
  dx: number[][];
  /** dJ/dtau_n (0 at the last stage). */
  dtau: number[];
  /** Marginal cost per unit inflow at each node (seconds, times Lambda0 relative to J). */
  delta: number[];
  /** Second derivative of the node's own cost at its flow. */
  curvature: number[];
}

/**
 * Marginal cost of one more unit of inflow at node n, given the marginal
 * costs of its receivers:
 *   delta_n = c_n'(Lambda_n) - beta q_n + (1 - p_n) sum_m x_nm (h_nm + delta_m)
 * Also returns G_n = sum_m x_nm (h_nm + delta_m), the cost of sending a unit on.
 */
export function marginalCost(
  costDeriv: number, beta: number, q: number, cont: number, x: number[], hopS: number[], deltaNext: number[],
): { delta: number; G: number } {
  let G = 0;
  for (let j = 0; j < x.length; j++) G += x[j] * (hopS[j] + deltaNext[j]);
  return { delta: costDeriv - beta * q + cont * G, G };
}

/** Threshold derivative of the cost per unit of inflow: -beta dq/dtau - dp/dtau * G. */
export function thresholdSlope(beta: number, dq: number, dp: number, G: number): number {
  return -beta * dq - dp * G;
}

/** Objective and its analytic gradient at penalty weight r. */
export function gradient(P: Problem, st: DtoState, r: number): Gradient {
  const ev = evaluate(P, st, r);
  const { lambda } = ev;
  const cont = continuation(P, st);
  const beta = effectiveBeta(P, ev.meanAccuracy);
  const L0 = P.totalInput;
  const delta = new Array<number>(P.ids.length).fill(0), curvature = new Array<number>(P.ids.length).fill(0);
  const dx = P.next.map((ms) => ms.map(() => 0)), dtau = new Array<number>(P.ids.length).fill(0);
  for (let i = P.order.length - 1; i >= 0; i--) {
    const n = P.order[i];
    const [, c1, c2] = nodeCost(P, n, lambda[n], r);
    curvature[n] = c2;
    const { q, dq } = correctPerTask(P, st, n);
    const dNext = P.next[n].map((m) => delta[m]);
    const { delta: d, G } = marginalCost(c1, beta, q, cont[n], st.x[n], P.hopS[n], dNext);
    delta[n] = d;
    P.next[n].forEach((m, j) => { dx[n][j] = (lambda[n] * cont[n] * (P.hopS[n][j] + delta[m])) / L0; });
    if (P.stage[n] < P.S) {
      const dp = exitProbSlope(P.profile, P.stage[n], st.tau[n]);
      dtau[n] = (lambda[n] * thresholdSlope(beta, dq, dp, G)) / L0;
    }
  }
  return { ...ev, dx, dtau, delta, curvature };
}

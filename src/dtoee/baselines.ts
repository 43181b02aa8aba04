/**
 * DTO-EE and its baselines behind one interface the protocol calls per task:
 * `nextNode(node, u, queueLens?)` picks the next-stage node of a task that did
 * not exit at `node` (u: one uniform draw from the run's stream),
 * `threshold(node)` is the node's exit threshold, `update(observation)`
 * re-optimises from measured rates and service times.
 *
 * Policies (REFERENCE §1 baselines [assumption]):
 *   random          uniform random split, fixed threshold
 *   nearest         the next-stage neighbour with the least hop delay, fixed threshold
 *   jsq             join the shortest queue (queue lengths at decision time), fixed threshold
 *   routing-opt     routing optimised (centralised) with the fixed threshold
 *   threshold-opt   thresholds optimised (centralised) with a uniform split
 *   no-exit         no early exit (threshold 1), routing optimised for it
 *   centralised     the centralised optimum of routing and thresholds (oracle)
 *   dtoee           the distributed algorithm (warm-started on update)
 */
import { InputError } from '../core/errors.js';
import { solveCentralised, type CentralisedOptions } from './centralised.js';
import { DtoeeDistributed, type DistributedOptions } from './distributed.js';
import { applyObservation, compileProblem, type DtoObservation, type DtoProblemSpec, type DtoState, type Problem } from './problem.js';

export interface PolicyUpdate {
  /** Optimiser iterations this update ran (0 for fixed policies). */
  iterations: number;
  /** Neighbour messages and bytes the update exchanged (distributed only). */
  messages: number;
  bytes: number;
}

export interface DtoPolicy {
  readonly name: string;
  /** Next-stage node for a task leaving `node` without exiting. */
  nextNode(node: string, u: number, queueLens?: Readonly<Record<string, number>>): string;
  /** Exit threshold of `node` (1 at the last stage). */
  threshold(node: string): number;
  /** Re-optimise from measured rates (no-op for fixed policies). */
  update(obs: DtoObservation): PolicyUpdate;
  /** Routing fractions over next-stage neighbours, where the policy has them (not jsq, not nearest ties). */
  fractions(node: string): Readonly<Record<string, number>> | undefined;
}

export interface PolicyOptions {
  /** Threshold of the fixed-threshold baselines; default 0.8 [assumption]. */
  fixedThreshold?: number;
  centralised?: CentralisedOptions;
  distributed?: DistributedOptions;
}

export const DEFAULT_FIXED_THRESHOLD = 0.8;
const NONE: PolicyUpdate = { iterations: 0, messages: 0, bytes: 0 };

/** A policy defined by routing fractions and thresholds (a state of the problem). */
class StatePolicy implements DtoPolicy {
  protected P: Problem;
  protected st: DtoState;
  constructor(readonly name: string, protected spec: DtoProblemSpec, private solve: (spec: DtoProblemSpec, P: Problem, warm?: DtoState) => { state: DtoState; update: PolicyUpdate }) {
    this.P = compileProblem(spec);
    this.st = solve(spec, this.P).state;
  }
  private idx(node: string): number {
    const n = this.P.index.get(node);
    if (n === undefined) throw new Error(`dtoee policy ${this.name}: unknown node "${node}"`);
    return n;
  }
  nextNode(node: string, u: number): string {
    const n = this.idx(node), ms = this.P.next[n];
    if (ms.length === 0) throw new Error(`dtoee policy ${this.name}: "${node}" is a last-stage node`);
    let acc = 0;
    for (let j = 0; j < ms.length; j++) { acc += this.st.x[n][j]; if (u < acc) return this.P.ids[ms[j]]; }
    // u at the top of [0, 1) with rounding: the last neighbour with a positive fraction.
    for (let j = ms.length - 1; j >= 0; j--) if (this.st.x[n][j] > 0) return this.P.ids[ms[j]];
    return this.P.ids[ms[ms.length - 1]];
  }
  threshold(node: string): number { return this.st.tau[this.idx(node)]; }
  fractions(node: string): Record<string, number> | undefined {
    const n = this.idx(node);
    return Object.fromEntries(this.P.next[n].map((m, j) => [this.P.ids[m], this.st.x[n][j]]));
  }
  update(obs: DtoObservation): PolicyUpdate {
    const spec = applyObservation(this.spec, obs);
    const P = compileProblem(spec); // throws before anything changes
    const r = this.solve(spec, P, this.st);
    this.spec = spec;
    this.P = P;
    this.st = r.state;
    return r.update;
  }
  /** The policy's routing fractions and thresholds (for evaluation against the model). */
  state(): DtoState { return { x: this.st.x.map((r) => [...r]), tau: [...this.st.tau] }; }
}

class JsqPolicy implements DtoPolicy {
  readonly name = 'jsq';
  private P: Problem;
  constructor(spec: DtoProblemSpec, private tau: number) { this.P = compileProblem(spec); }
  nextNode(node: string, u: number, queueLens?: Readonly<Record<string, number>>): string {
    const n = this.P.index.get(node);
    if (n === undefined) throw new Error(`dtoee policy jsq: unknown node "${node}"`);
    if (!queueLens) throw new Error('dtoee policy jsq: nextNode needs the queue lengths of the next-stage neighbours');
    const ms = this.P.next[n];
    if (ms.length === 0) throw new Error(`dtoee policy jsq: "${node}" is a last-stage node`);
    let min = Infinity;
    for (const m of ms) min = Math.min(min, queueLens[this.P.ids[m]] ?? 0);
    const ties = ms.filter((m) => (queueLens[this.P.ids[m]] ?? 0) === min);
    return this.P.ids[ties[Math.min(ties.length - 1, Math.floor(u * ties.length))]];
  }
  threshold(node: string): number {
    const n = this.P.index.get(node);
    if (n === undefined) throw new Error(`dtoee policy jsq: unknown node "${node}"`);
    return this.P.stage[n] === this.P.S ? 1 : this.tau;
  }
  update(obs: DtoObservation): PolicyUpdate { void obs; return NONE; }
  fractions(): undefined { return undefined; }
}

function fixedTau(P: Problem, tau: number): number[] {
  return P.ids.map((_, n) => (P.stage[n] === P.S ? 1 : tau));
}

function uniformX(P: Problem): number[][] {
  return P.next.map((ms) => ms.map(() => 1 / ms.length));
}

type Factory = (spec: DtoProblemSpec, o: PolicyOptions) => DtoPolicy;

function fixedState(name: string, x: (P: Problem) => number[][], tau: (P: Problem) => number[]): Factory {
  return (spec) => new StatePolicy(name, spec, (_s, P) => ({ state: { x: x(P), tau: tau(P) }, update: NONE }));
}

function centralisedState(name: string, fix: CentralisedOptions['fix'], tau: (o: PolicyOptions) => number | undefined): Factory {
  return (spec, o) => new StatePolicy(name, spec, (_s, P) => {
    const t = tau(o);
    const r = solveCentralised(P, { ...o.centralised, fix, ...(t !== undefined ? { starts: [t] } : {}), ...(fix === 'routing' ? { routing: uniformX(P) } : {}) });
    return { state: r.state, update: { iterations: r.alternations, messages: 0, bytes: 0 } };
  });
}

export const DTO_POLICIES: Readonly<Record<string, Factory>> = {
  random: (spec, o) => fixedState('random', uniformX, (P) => fixedTau(P, o.fixedThreshold ?? DEFAULT_FIXED_THRESHOLD))(spec, o),
  nearest: (spec, o) => fixedState('nearest', (P) => P.next.map((ms, n) => {
    const best = P.hopS[n].indexOf(Math.min(...P.hopS[n]));
    return ms.map((_, j) => (j === best ? 1 : 0));
  }), (P) => fixedTau(P, o.fixedThreshold ?? DEFAULT_FIXED_THRESHOLD))(spec, o),
  jsq: (spec, o) => new JsqPolicy(spec, o.fixedThreshold ?? DEFAULT_FIXED_THRESHOLD),
  'routing-opt': centralisedState('routing-opt', 'thresholds', (o) => o.fixedThreshold ?? DEFAULT_FIXED_THRESHOLD),
  'threshold-opt': centralisedState('threshold-opt', 'routing', () => undefined),
  'no-exit': centralisedState('no-exit', 'thresholds', () => 1),
  centralised: centralisedState('centralised', 'none', () => undefined),
  dtoee: (spec, o) => {
    let d: DtoeeDistributed | undefined;
    return new StatePolicy('dtoee', spec, (s) => {
      if (!d) { d = new DtoeeDistributed(s, o.distributed); const r = d.run(); return { state: r.state, update: { iterations: r.iterations, messages: r.messages, bytes: r.bytes } }; }
      const r = d.observe(fullObservation(s));
      return { state: r.state, update: { iterations: r.iterations, messages: r.messages, bytes: r.bytes } };
    });
  },
};

/** The whole measured state of a spec as an observation (the distributed object keeps its own copy). */
function fullObservation(s: DtoProblemSpec): DtoObservation {
  const inputRatePerS: Record<string, number> = {}, serviceTimeS: Record<string, number> = {};
  for (const n of s.nodes) {
    if (n.inputRatePerS !== undefined) inputRatePerS[n.id] = n.inputRatePerS;
    serviceTimeS[n.id] = n.serviceTimeS ?? 1 / (n.serviceRatePerS as number);
  }
  return { inputRatePerS, serviceTimeS };
}

export const DTO_POLICY_NAMES = Object.keys(DTO_POLICIES);

/** Build a policy by name (InputError naming the allowed names). */
export function createDtoPolicy(name: string, spec: DtoProblemSpec, o: PolicyOptions = {}): DtoPolicy {
  const f = DTO_POLICIES[name];
  if (!f) throw new InputError(`dtoee policy "${name}" is unknown: use one of ${DTO_POLICY_NAMES.join(', ')}`, 'policy');
  const t = o.fixedThreshold;
  if (t !== undefined && !(t >= 0 && t <= 1)) throw new InputError(`dtoee policy: fixedThreshold is ${t}: must be in [0, 1]`, 'fixedThreshold');
  return f(spec, o);
}

export { StatePolicy };

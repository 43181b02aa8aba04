/**
 * DTO-EE online (docs/DTOEE.md "Online re-optimisation"): the distributed algorithm as
 * per-node agents that a driver steps one message exchange at a time, and the routing
 * fractions and thresholds tasks see.
 *
 * Pure (no simulator imports): the simulator (sim/dtoee-control.ts) delivers the agents'
 * messages over its network and calls `step` when a node has heard every neighbour; a
 * node process of the live runner would do the same over sockets.
 *
 * A round:
 *  1. `beginRound(observation)`: every node's measured device input rate (access nodes)
 *     and service time go into its own agent configuration (a node uses only its own
 *     numbers and its neighbours' messages); agents keep their routing fractions,
 *     thresholds and the last values heard from neighbours (warm start), as
 *     `DtoeeDistributed.observe` does.
 *  2. Local iteration k = 0, 1, ..., K-1 (K = roundIterations x penalty rounds): a node
 *     runs `step(n, k, inbox)` with the messages its neighbours sent at iteration k-1
 *     (none at k = 0) and the penalty weight of the fixed schedule `penaltyWeightAt`; it
 *     sends the returned messages (not after its last iteration: nobody reads them).
 *  3. After its last iteration the node applies its new fractions and threshold
 *     (`apply(n)`): from then on the tasks it handles use them. Until then it holds the
 *     previous round's.
 * With every message delivered, a round computes exactly what the synchronous driver
 * `DtoeeDistributed.observe` computes with `roundIterations` (test/dtoee-online.test.ts).
 */
import { agentConfigs, agentStep, initialAgentState, penaltyWeightAt, type AgentConfig, type AgentState, type DtoMessage } from './distributed.js';
import type { DtoPolicy, PolicyUpdate } from './baselines.js';
import { applyObservation, compileProblem, effectiveBeta, evaluate, type DtoObservation, type DtoProblemSpec, type DtoState, type Evaluation, type Problem } from './problem.js';

export interface OnlineOptions {
  /** Iterations per penalty round; a round runs this x the problem's penalty rounds. */
  roundIterations: number;
  routingStep?: number;
  maxTauStep?: number;
}

export class OnlineDtoee implements DtoPolicy {
  readonly name = 'dtoee';
  private P: Problem;
  private cfgs: AgentConfig[];
  private agents: AgentState[];
  /** What the tasks see: per node, the fractions and threshold it last applied. */
  private readonly held: DtoState;
  private beta: number;
  private spec: DtoProblemSpec;

  constructor(spec: DtoProblemSpec, private readonly opts: OnlineOptions, initial: DtoState) {
    this.spec = spec;
    this.P = compileProblem(spec);
    this.cfgs = agentConfigs(this.P);
    this.agents = this.cfgs.map((c, n) => initialAgentState(c, initial.x[n], initial.tau[n]));
    this.held = { x: initial.x.map((r) => [...r]), tau: [...initial.tau] };
    this.beta = effectiveBeta(this.P, evaluate(this.P, this.held, 0).meanAccuracy);
  }

  get problem(): Problem { return this.P; }
  /** Agent configurations (neighbours by id) of the current round. */
  get configs(): readonly AgentConfig[] { return this.cfgs; }
  /** Iterations every node runs per round. */
  get iterations(): number { return this.opts.roundIterations * this.P.penalty.rounds; }

  /** Messages node n receives per iteration: a flow from every upstream neighbour, a cost from every next-stage one. */
  expected(n: number): number { return this.cfgs[n].prev.length + this.cfgs[n].next.length; }

  /** Start a round from measured values (throws an InputError before changing anything when they are bad). */
  beginRound(obs: DtoObservation): void {
    const spec = applyObservation(this.spec, obs);
    const P = compileProblem(spec);
    this.spec = spec;
    this.P = P;
    this.cfgs = agentConfigs(P);
    this.agents = this.agents.map((s) => ({ ...s, tauScale: 1, lastTauGrad: 0, lastMove: Infinity }));
    this.beta = effectiveBeta(P, evaluate(P, this.held, 0).meanAccuracy);
  }

  /** Node n's local iteration k with the messages addressed to it; returns the messages to send. */
  step(n: number, k: number, inbox: readonly DtoMessage[]): DtoMessage[] {
    const r = penaltyWeightAt(this.P.penalty, k, this.opts.roundIterations);
    const res = agentStep(this.cfgs[n], this.agents[n], inbox, { penaltyWeight: r, beta: this.beta, routingStep: this.opts.routingStep, maxTauStep: this.opts.maxTauStep });
    this.agents[n] = res.state;
    return res.out;
  }

  /** Node n adopts its agent's fractions and threshold for the tasks it handles from now on. */
  apply(n: number): void {
    this.held.x[n] = [...this.agents[n].x];
    this.held.tau[n] = this.agents[n].tau;
  }

  /** Size of node n's last move (max |dx|, |dtau|). */
  lastMove(n: number): number { return this.agents[n].lastMove; }
  /** Node n's arrival rate as its agent knows it: device input + the inflows its upstream neighbours announced. */
  modelArrivalRatePerS(n: number): number {
    const c = this.cfgs[n], a = this.agents[n];
    return c.prev.reduce((acc, p) => acc + (a.inflow[p] ?? 0), c.inputRatePerS);
  }

  /** The state tasks see, and the agents' state. */
  heldState(): DtoState { return { x: this.held.x.map((r) => [...r]), tau: [...this.held.tau] }; }
  agentState(): DtoState { return { x: this.agents.map((s) => [...s.x]), tau: this.agents.map((s) => s.tau) }; }
  /** The current round's model evaluated at a state (final penalty weight). */
  evaluate(st: DtoState): Evaluation {
    const pen = this.P.penalty;
    return evaluate(this.P, st, pen.initialWeight * Math.pow(pen.growth, pen.rounds - 1));
  }

  // ---- DtoPolicy: what tasks read -------------------------------------------------------
  private idx(node: string): number {
    const n = this.P.index.get(node);
    if (n === undefined) throw new Error(`dtoee online policy: unknown node "${node}"`);
    return n;
  }
  nextNode(node: string, u: number): string {
    const n = this.idx(node), ms = this.P.next[n], x = this.held.x[n];
    if (ms.length === 0) throw new Error(`dtoee online policy: "${node}" is a last-stage node`);
    let acc = 0;
    for (let j = 0; j < ms.length; j++) { acc += x[j]; if (u < acc) return this.P.ids[ms[j]]; }
    for (let j = ms.length - 1; j >= 0; j--) if (x[j] > 0) return this.P.ids[ms[j]];
    return this.P.ids[ms[ms.length - 1]];
  }
  threshold(node: string): number { return this.held.tau[this.idx(node)]; }
  fractions(node: string): Record<string, number> {
    const n = this.idx(node);
    return Object.fromEntries(this.P.next[n].map((m, j) => [this.P.ids[m], this.held.x[n][j]]));
  }

  /**
   * A whole round with synchronous, instantaneous delivery (every node applies at the end):
   * for callers without a network (tests, a quick re-optimisation).
   */
  update(obs: DtoObservation): PolicyUpdate {
    this.beginRound(obs);
    const N = this.cfgs.length, K = this.iterations;
    let inbox: DtoMessage[] = [], messages = 0, bytes = 0;
    for (let k = 0; k < K; k++) {
      const out: DtoMessage[] = [];
      for (let n = 0; n < N; n++) out.push(...this.step(n, k, inbox));
      if (k < K - 1) { inbox = out; messages += out.length; for (const m of out) bytes += m.bytes; }
    }
    for (let n = 0; n < N; n++) this.apply(n);
    return { iterations: K, messages, bytes };
  }
}

/**
 * DTO-EE's control loop in the simulator (docs/DTOEE.md "Online re-optimisation"): every
 * `periodS` each edge node measures what reached it over the last window, and (online)
 * the distributed algorithm runs one round from the current state, its neighbour messages
 * crossing the simulated network.
 *
 * Measurement at t = k periodS, per node, over [t - periodS, t) [assumption: a tumbling window]:
 *  - arrival rate = exec ops submitted to the node / window (tasks that reached it; at a
 *    stage-1 node that is its device input, which it reports to the optimiser);
 *  - service time = mean compute time of the jobs that finished in the window; a node that
 *    finished fewer than `minJobs` keeps its previous estimate (at first the analytical
 *    model's idle time) [assumption: it has nothing to measure, and does not probe];
 *  - utilisation = busy time / (servers x window).
 * Hop delays stay the analytical model's idle values [assumption].
 *
 * A round (OnlineDtoee, dtoee/online.ts): at t every node runs iteration 0 and sends its
 * messages; a node runs iteration k when every neighbour's iteration-(k-1) message has
 * arrived; after its last iteration it applies its fractions and threshold. Each message is
 * one message on the route between the two nodes (`send` on the node pair's path, sharing
 * links and FIFO order with the task traffic): the algorithm's bytes (24-byte header + 8 per
 * number) plus the transport header (`network.headerBytes`). A round that is still running
 * at the next tick makes that tick skip its round (status `busy`); a window with no device
 * input skips it too (`no-input`: nothing to optimise for). Ticks stop once every request
 * has finished. Deterministic: the engine's event order, no random draws.
 */
import { Prio, type Engine, type Handler } from '../core/engine.js';
import { compileProblem, LOAD_REPORT_BYTES, solveCentralised, type DtoMessage, type LoadBoard, type DtoObservation, type DtoPolicy, type DtoProblemSpec, type Problem } from '../dtoee/index.js';
import { OnlineDtoee } from '../dtoee/online.js';
import { NodeRound, NodeWindow, type NodeCounters, type RoundProgress, type WindowMeasure } from '../dtoee/round.js';
import type { DtoeeNodeRecord, DtoeeRoundRecord, DtoeeTokenRecord } from '../results/types.js';
import { dtoeeRunPolicy, resetDtoeeRun, type DtoeeTokenFact } from '../protocol/systems/dtoee.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import type { TopoNode } from '../topology/types.js';
import type { SimWorld } from './world.js';

export interface ControlOptions {
  periodS: number;
  minJobs: number;
  /** The policy's name for the rows. */
  policyName: string;
  /** Solve each round's measured model centrally too (the convergence oracle). */
  oracle: boolean;
}

/** One algorithm message in flight (a network delivery handler). */
class InFlight implements Handler {
  constructor(private readonly c: DtoeeControl, readonly to: number, readonly round: number, readonly iteration: number, readonly msg: DtoMessage) {}
  fire(): void { this.c.deliver(this); }
}

/** A node's dtoee_nodes.csv row from its window's measurement and what it holds (the simulator's and the live runner's). */
export function dtoeeNodeRow(
  system: string, policy: DtoPolicy, policyName: string, id: string, stage: number, timeS: number, round: number,
  m: WindowMeasure, modelArrivalPerS: number, appliedS: number,
): DtoeeNodeRecord {
  const fr = policy.fractions(id);
  return {
    system, policy: policyName, time_s: timeS, round, node: id, stage,
    threshold: policy.threshold(id),
    routing: fr === undefined ? '' : Object.entries(fr).map(([to, f]) => `${to}=${formatFraction(f)}`).join('|'),
    arrival_per_s: m.ratePerS, service_ms: m.serviceMs, service_estimate_ms: m.estimateS * 1000,
    utilization: m.utilization, model_arrival_per_s: modelArrivalPerS, applied_s: appliedS,
  };
}

export class DtoeeControl implements Handler {
  readonly nodeRows: DtoeeNodeRecord[] = [];
  readonly roundRows: DtoeeRoundRecord[] = [];
  private readonly P: Problem;
  /** Topology node index per problem node. */
  private readonly topoIndex: number[];
  private readonly windows: NodeWindow[];
  private readonly appliedS: number[];
  private round = 0;
  // The round in progress.
  private running = false;
  private nodes: NodeRound[] = [];
  private doneNodes = 0;
  private current: DtoeeRoundRecord | null = null;

  constructor(
    private readonly engine: Engine,
    private readonly world: SimWorld,
    private readonly system: string,
    private readonly policy: DtoPolicy,
    spec: DtoProblemSpec,
    private readonly opts: ControlOptions,
    /** Whether requests remain (ticks stop when not). */
    private readonly active: () => boolean,
  ) {
    this.P = policy instanceof OnlineDtoee ? policy.problem : compileProblem(spec);
    const byName = new Map(world.nodes.map((n) => [n.node.name, n.node.index]));
    this.topoIndex = this.P.ids.map((id) => {
      const i = byName.get(id);
      if (i === undefined) throw new Error(`dtoee control: problem node ${id} is not in the topology (bug)`);
      return i;
    });
    this.windows = this.topoIndex.map((i, n) => new NodeWindow(1 / this.P.mu[n], this.world.nodes[i].servers, opts.minJobs, this.counters(i)));
    this.appliedS = this.P.ids.map(() => NaN);
  }

  private counters(i: number): NodeCounters {
    const sn = this.world.nodes[i];
    return { arrivals: sn.stats.arrivals, jobs: sn.stats.jobs, computeMs: sn.stats.computeMs, busyMs: sn.busyMs() };
  }

  begin(): void { this.engine.schedule(this.opts.periodS, this, 0, Prio.observe); }

  /** A tick: measure every node, record its rows, start a round (online). */
  fire(engine: Engine): void {
    const now = engine.nowS;
    this.round++;
    const online = this.policy instanceof OnlineDtoee ? this.policy : null;
    const obs: Required<DtoObservation> = { inputRatePerS: {}, serviceTimeS: {} };
    let input = 0;
    this.P.ids.forEach((id, n) => {
      const m = this.windows[n].measure(now, this.counters(this.topoIndex[n]));
      if (this.P.stage[n] === 1) { obs.inputRatePerS[id] = m.ratePerS; input += m.ratePerS; }
      obs.serviceTimeS[id] = m.estimateS;
      this.nodeRows.push(dtoeeNodeRow(this.system, this.policy, this.opts.policyName, id, this.P.stage[n], now, this.round, m, online ? online.modelArrivalRatePerS(n) : NaN, this.appliedS[n]));
    });
    if (online) this.startRound(online, obs, input, now);
    if (this.active()) engine.schedule(now + this.opts.periodS, this, 0, Prio.observe);
  }

  private startRound(online: OnlineDtoee, obs: DtoObservation, input: number, now: number): void {
    const row: DtoeeRoundRecord = {
      system: this.system, round: this.round, start_s: now, end_s: NaN, status: 'done', iterations: 0, messages: 0, bytes: 0,
      input_per_s: input, objective_before: NaN, objective_after: NaN, model_delay_ms: NaN, last_move: NaN, centralised_objective: NaN,
    };
    this.roundRows.push(row);
    if (this.running) { row.status = 'busy'; return; }
    if (!(input > 0)) { row.status = 'no-input'; return; }
    online.beginRound(obs);
    row.objective_before = online.evaluate(online.heldState()).objective;
    row.iterations = online.iterations;
    this.current = row;
    this.running = true;
    this.doneNodes = 0;
    const N = this.P.ids.length;
    // Agent configurations change with the observation: fresh per-node round state (nothing is buffered between rounds here).
    this.nodes = this.P.ids.map((_, n) => new NodeRound(online, n));
    for (let n = 0; n < N; n++) this.progress(online, n, this.nodes[n].start(this.round));
  }

  /** Send node n's messages on the node pair's network path; after its last iteration, record it. */
  private progress(online: OnlineDtoee, n: number, p: RoundProgress): void {
    const from = this.topoIndex[n], row = this.current!;
    for (const { iteration, msg } of p.out) {
      const to = this.P.index.get(msg.to)!;
      const path = this.world.path(from, this.topoIndex[to]);
      const bytes = msg.bytes + this.world.headerBytes;
      row.messages++; row.bytes += bytes;
      this.world.network.send(path.path, path.dir, bytes, new InFlight(this, to, this.round, iteration, msg), 0);
    }
    if (p.finished) this.finishNode(online, n);
  }

  /** A message arrived at its node. */
  deliver(f: InFlight): void {
    const online = this.policy as OnlineDtoee;
    const p = this.nodes[f.to].deliver(f.round, f.iteration, f.msg);
    if (typeof p === 'string') throw new Error(`dtoee control: message refused in the simulator (bug): ${p}`);
    this.progress(online, f.to, p);
  }

  private finishNode(online: OnlineDtoee, n: number): void {
    this.appliedS[n] = this.engine.nowS;
    if (++this.doneNodes < this.P.ids.length) return;
    const row = this.current!;
    row.end_s = this.engine.nowS;
    const ev = online.evaluate(online.heldState());
    row.objective_after = ev.objective;
    row.model_delay_ms = ev.meanDelayS * 1000;
    row.last_move = Math.max(...this.P.ids.map((_, m) => online.lastMove(m)));
    // The oracle (option) on the same measured model (evaluated at the final penalty weight, as objective_after).
    if (this.opts.oracle) row.centralised_objective = solveCentralised(online.problem).evaluation.objective;
    this.running = false;
    this.current = null;
  }
}

/** One load report in flight. */
class Report implements Handler {
  constructor(private readonly board: LoadBoard, readonly at: string, readonly from: string, readonly load: number, readonly sentS: number) {}
  fire(): void { this.board.set(this.at, this.from, this.load, this.sentS); }
}

/**
 * jsq with reported loads (dtoee/round.ts `LoadBoard`): every `periodS` from t = 0 each node
 * past stage 1 sends its load (jobs waiting + in service) to each upstream neighbour, one message
 * of LOAD_REPORT_BYTES + the transport header on the node pair's path (sharing links and FIFO
 * order with the tasks); the receiver's board holds it from its arrival. Ticks stop once every
 * request has finished. Deterministic (no draws).
 */
export class LoadReports implements Handler {
  private readonly links: { from: number; to: number; fromId: string; toId: string }[] = [];
  /** Reports sent so far (tests: the closed form ticks x links). */
  sent = 0;
  constructor(private readonly engine: Engine, private readonly world: SimWorld, spec: DtoProblemSpec, private readonly board: LoadBoard, private readonly periodS: number, private readonly active: () => boolean) {
    const byName = new Map(world.nodes.map((n) => [n.node.name, n.node.index]));
    for (const u of spec.nodes) for (const nx of u.next ?? []) this.links.push({ from: byName.get(nx.to)!, to: byName.get(u.id)!, fromId: nx.to, toId: u.id });
  }
  begin(): void { this.engine.schedule(0, this, 0, Prio.observe); }
  fire(engine: Engine): void {
    for (const l of this.links) {
      const p = this.world.path(l.from, l.to);
      this.sent++;
      this.world.network.send(p.path, p.dir, LOAD_REPORT_BYTES + this.world.headerBytes, new Report(this.board, l.toId, l.fromId, this.world.nodes[l.from].load, engine.nowS), 0);
    }
    if (this.active()) engine.schedule(engine.nowS + this.periodS, this, 0, Prio.observe);
  }
}

/** Fractions in the routing column: 4 decimals (the CSV's other numbers use up to 6). */
function formatFraction(f: number): string {
  const s = f.toFixed(4).replace(/0+$/, '').replace(/\.$/, '');
  return s === '-0' ? '0' : s;
}

/** Before a run's devices are created: an online run gets a fresh policy (it mutates it), a per-token run a fresh token log. */
export function prepareDtoeeRun(s: Scenario, system: SystemId, nodes: readonly TopoNode[]): void {
  const pol = s.policies.dtoee;
  if (system === 'dtoee' && (pol.online || pol.task === 'per-token' || pol.jsqLoad === 'reported')) resetDtoeeRun(nodes);
}

/** The run's dtoee outputs: the control loop's rows (online or monitor), and per-token tasks' token rows. */
export function dtoeeOutputs(s: Scenario, system: SystemId, nodes: readonly TopoNode[], control: DtoeeControl | null): { dtoeeNodes?: DtoeeNodeRecord[]; dtoeeRounds?: DtoeeRoundRecord[]; dtoeeTokens?: DtoeeTokenRecord[] } {
  const out = control ? { dtoeeNodes: control.nodeRows, dtoeeRounds: control.roundRows } : {};
  if (system !== 'dtoee' || s.policies.dtoee.task !== 'per-token') return out;
  return { ...out, dtoeeTokens: dtoeeTokenRows(system, dtoeeRunPolicy(nodes)?.tokens.facts() ?? []) };
}

/** dtoee_tokens.csv rows from token facts in time order (the simulator's, or a live device's). */
export function dtoeeTokenRows(system: string, facts: readonly DtoeeTokenFact[]): DtoeeTokenRecord[] {
  const last = new Map<string, number>();
  return facts.map((f): DtoeeTokenRecord => {
    const key = `${f.device}/${f.request}`, prev = last.get(key);
    last.set(key, f.timeS);
    return { system, device: f.device, request: f.request, token: f.token, exit_stage: f.exitStage, correct: f.correct, time_s: f.timeS, gap_ms: prev === undefined ? NaN : (f.timeS - prev) * 1000 };
  });
}

/** After the devices are created: the run's control loop (online or monitor), started, or null; jsq's load reports (jsqLoad: reported), started. */
export function startDtoeeControl(s: Scenario, system: SystemId, engine: Engine, world: SimWorld, active: () => boolean): DtoeeControl | null {
  const pol = s.policies.dtoee;
  if (system !== 'dtoee') return null;
  const built = dtoeeRunPolicy(s.topology.nodes);
  if (!built) return null; // no device created a protocol (no devices)
  if (pol.policy === 'jsq' && pol.jsqLoad === 'reported') new LoadReports(engine, world, built.spec, built.board, pol.loadPeriodS, active).begin();
  if (!(pol.online || pol.monitor)) return null;
  const c = new DtoeeControl(engine, world, system, built.policy, built.spec, { periodS: pol.periodS, minJobs: pol.minJobs, policyName: pol.policy, oracle: pol.oracle }, active);
  c.begin();
  return c;
}

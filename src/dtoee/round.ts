/**
 * One node's side of DTO-EE's online rounds (docs/DTOEE.md "Online re-optimisation"), the
 * code both drivers run: the simulator's control loop (sim/dtoee-control.ts, every node of
 * the run in one process, messages over the simulated network) and a live node process
 * (live/dtoee-live.ts, its own node only, messages over its sockets).
 *
 *  - `NodeWindow`: what the node measures over a tumbling window of `periodS` from its own
 *    counters (arrival rate, service time with the `minJobs` rule, utilisation).
 *  - `NodeRound`: the per-neighbour iteration barrier. `start(round)` runs iteration 0; a
 *    message of (round, iteration k) is buffered and the node runs iteration k + 1 once every
 *    neighbour's iteration-k message is there; after its last iteration it applies its new
 *    fractions and threshold (`OnlineDtoee.apply`) and sends nothing more. Messages of a
 *    later round (a neighbour whose timer fired first: live only) wait in the buffer; a
 *    message of a finished round, from a non-neighbour, of the wrong kind for that neighbour,
 *    or a second one from the same neighbour for one iteration is refused with a reason.
 * Pure: no simulator or socket imports; the driver calls `OnlineDtoee.beginRound` with the
 * node's measured values before `start`.
 */
import type { DtoPolicy, PolicyUpdate } from './baselines.js';
import type { DtoMessage } from './distributed.js';
import type { DtoObservation } from './problem.js';
import type { OnlineDtoee } from './online.js';

/** Counters a node keeps over the run (cumulative). */
export interface NodeCounters {
  /** Exec jobs submitted to the node (tasks that reached it). */
  arrivals: number;
  /** Exec jobs finished, and their compute time (ms). */
  jobs: number;
  computeMs: number;
  /** Time the node's servers were busy (ms, summed over servers). */
  busyMs: number;
}

export interface WindowMeasure {
  windowS: number;
  /** Tasks that reached the node in the window, per second. */
  ratePerS: number;
  /** Mean compute time of the jobs finished in the window (ms; NaN when none). */
  serviceMs: number;
  /** The service time reported to the optimiser (s): the window's, or the previous estimate with fewer than minJobs jobs. */
  estimateS: number;
  /** Busy share of the window. */
  utilization: number;
}

/** A node's tumbling measurement window [assumption: tumbling, docs/DTOEE.md]. */
export class NodeWindow {
  private last: NodeCounters;
  private lastS: number;
  private estimate: number;
  constructor(initialEstimateS: number, private readonly servers: number, private readonly minJobs: number, start: NodeCounters, startS = 0) {
    this.estimate = initialEstimateS;
    this.last = { ...start };
    this.lastS = startS;
  }

  /** Close the window at `nowS` with the counters now; opens the next one. */
  measure(nowS: number, c: NodeCounters): WindowMeasure {
    const windowS = nowS - this.lastS, p = this.last;
    const jobs = c.jobs - p.jobs, computeMs = c.computeMs - p.computeMs;
    const serviceMs = jobs > 0 ? computeMs / jobs : NaN;
    if (jobs >= this.minJobs) this.estimate = serviceMs / 1000;
    const m: WindowMeasure = {
      windowS, ratePerS: (c.arrivals - p.arrivals) / windowS, serviceMs, estimateS: this.estimate,
      utilization: (c.busyMs - p.busyMs) / (this.servers * windowS * 1000),
    };
    this.last = { ...c };
    this.lastS = nowS;
    return m;
  }
}

/** A message to send after one of the node's iterations. */
export interface Outgoing { iteration: number; msg: DtoMessage }
export interface RoundProgress {
  out: Outgoing[];
  /** The node ran its last iteration and applied its new values just now. */
  finished: boolean;
}

export class NodeRound {
  /** Round in progress (0: none yet); `next` is the iteration the node runs next. */
  private round = 0;
  private next = 0;
  private active = false;
  /** Messages by `${round}/${iteration}`. */
  private readonly buffers = new Map<string, DtoMessage[]>();
  private readonly prev: Set<string>;
  private readonly down: Set<string>;

  constructor(private readonly online: OnlineDtoee, readonly n: number) {
    const c = online.configs[n];
    this.prev = new Set(c.prev);
    this.down = new Set(c.next.map((x) => x.id));
  }

  get running(): boolean { return this.active; }
  get currentRound(): number { return this.round; }

  /** Start round `round` (after `online.beginRound`): iteration 0, then whatever buffered messages allow. */
  start(round: number): RoundProgress {
    if (this.active) throw new Error(`dtoee round: node ${this.online.configs[this.n].id} starts round ${round} inside round ${this.round} (driver bug)`);
    for (const k of [...this.buffers.keys()]) if (Number(k.split('/')[0]) < round) this.buffers.delete(k);
    this.round = round;
    this.next = 0;
    this.active = true;
    const res: RoundProgress = { out: [], finished: false };
    this.run([], res);
    this.advance(res);
    return res;
  }

  /**
   * A neighbour's message of (round, iteration). Returns the node's progress, or a reason
   * when the message is refused (nothing changes then).
   */
  deliver(round: number, iteration: number, msg: DtoMessage): RoundProgress | string {
    const id = this.online.configs[this.n].id;
    if (msg.to !== id) return `addressed to ${msg.to}, this node is ${id}`;
    if (msg.kind === 'flow' && !this.prev.has(msg.from)) return `a flow message from ${msg.from}, which is not an upstream neighbour of ${id}`;
    if (msg.kind === 'cost' && !this.down.has(msg.from)) return `a cost message from ${msg.from}, which is not a next-stage neighbour of ${id}`;
    const K = this.online.iterations;
    if (!Number.isInteger(iteration) || iteration < 0 || iteration >= K - 1) return `iteration ${iteration} outside 0..${K - 2} (messages of the last iteration are never sent)`;
    if (round < this.round || (round === this.round && (!this.active || iteration < this.next - 1))) return `round ${round} iteration ${iteration} is over at this node (round ${this.round}${this.active ? `, iteration ${this.next}` : ', finished'})`;
    const key = `${round}/${iteration}`;
    const list = this.buffers.get(key);
    if (list?.some((m) => m.from === msg.from)) return `a second message from ${msg.from} for round ${round} iteration ${iteration}`;
    if (list) list.push(msg); else this.buffers.set(key, [msg]);
    const res: RoundProgress = { out: [], finished: false };
    this.advance(res);
    return res;
  }

  private run(inbox: readonly DtoMessage[], res: RoundProgress): void {
    const k = this.next;
    const out = this.online.step(this.n, k, inbox);
    this.next = k + 1;
    if (this.next === this.online.iterations) {
      this.online.apply(this.n);
      this.active = false;
      res.finished = true;
      return;
    }
    for (const msg of out) res.out.push({ iteration: k, msg });
  }

  private advance(res: RoundProgress): void {
    const need = this.online.expected(this.n);
    while (this.active && this.next > 0) {
      const key = `${this.round}/${this.next - 1}`, buf = this.buffers.get(key) ?? [];
      if (buf.length < need) return;
      this.buffers.delete(key);
      this.run(buf, res);
    }
  }
}

/** Closed form of one round on a staged pipeline: `pairs` next-stage links, K iterations, transport header bytes per message. */
export function roundTraffic(pairs: number, iterations: number, headerBytes: number, algorithmHeaderBytes: number): { messages: number; bytes: number } {
  // Per iteration but the last: a flow (header + 1 number) down and a cost (header + 2 numbers) up each link.
  return { messages: (iterations - 1) * 2 * pairs, bytes: (iterations - 1) * pairs * (2 * algorithmHeaderBytes + 3 * 8 + 2 * headerBytes) };
}

/**
 * The policy's answers as part of a task's replay log (the live topology runner, where a
 * task's generator is rebuilt and replayed at every node it reaches): the node holding the
 * task answers `threshold`/`nextNode` from its own policy and appends the answer to the
 * task's tape; a node replaying the task reads the recorded answers back in order. Online,
 * node processes hold different policy states (each applies its own round results), so a
 * replay must not ask its own policy about another node's past decisions.
 */
export class PolicyTape implements DtoPolicy {
  /** The tape of the task being resumed now (set by the driver around each resume). */
  current: { values: number[]; cursor: number } | null = null;
  constructor(readonly inner: DtoPolicy, private readonly ids: readonly string[]) {}
  get name(): string { return this.inner.name; }

  private recorded(): number | undefined {
    const t = this.current;
    if (t === null || t.cursor >= t.values.length) return undefined;
    return t.values[t.cursor++];
  }
  private record(v: number): number {
    const t = this.current;
    if (t !== null) { t.values.push(v); t.cursor = t.values.length; }
    return v;
  }

  threshold(node: string): number {
    return this.recorded() ?? this.record(this.inner.threshold(node));
  }
  update(obs: DtoObservation): PolicyUpdate { return this.inner.update(obs); }
  fractions(node: string): Readonly<Record<string, number>> | undefined { return this.inner.fractions(node); }
  nextNode(node: string, u: number, queueLens?: Readonly<Record<string, number>>): string {
    const r = this.recorded();
    if (r !== undefined) {
      const id = this.ids[r];
      if (id === undefined) throw new Error(`policy tape: node index ${r} is not a node of the topology`);
      return id;
    }
    const id = this.inner.nextNode(node, u, queueLens);
    this.record(this.ids.indexOf(id));
    return id;
  }
}

/** Bytes of one load report (jsq with reported loads): the algorithm header + one number [assumption, as the algorithm's messages]. */
export const LOAD_REPORT_BYTES = 24 + 8;

/**
 * Join-the-shortest-queue with reported loads (policies.dtoee.jsqLoad: reported): each node
 * tells its upstream neighbours its load (jobs waiting + in service) every `loadPeriodS`; an
 * upstream node decides on the last report it received from each candidate (0 before the
 * first) [assumption]. A report is as old as the time since it was sent: up to the period plus
 * the path's delay (more when it queues behind task frames). The simulator and a live node
 * process keep the same board: the simulator one for all nodes, a node process its own row.
 */
export class LoadBoard {
  private readonly last = new Map<string, { load: number; sentS: number }>();
  /** A report from `from` reached `at`; an older one than the one held is ignored (reordering). */
  set(at: string, from: string, load: number, sentS: number): void {
    const key = `${at}\u0000${from}`, held = this.last.get(key);
    if (held && held.sentS > sentS) return;
    this.last.set(key, { load, sentS });
  }
  /** The load `at` last heard from `from` (0 before any report). */
  load(at: string, from: string): number { return this.last.get(`${at}\u0000${from}`)?.load ?? 0; }
}

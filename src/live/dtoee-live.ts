/**
 * DTO-EE's online rounds in a live node process (docs/DTOEE.md "Online re-optimisation",
 * "Live"): the same per-node code as the simulator's control loop (dtoee/round.ts:
 * `NodeWindow`, `NodeRound`, over the node's own `OnlineDtoee` agent), driven by the run
 * clock and the node's sockets instead of the event engine and the simulated network.
 *
 *  - Every `periodS` of run time (t = k periodS after the shared start t0) the node closes
 *    its measurement window over its own counters (tasks that reached it, jobs finished and
 *    their compute time, busy time) and writes its dtoee_nodes.csv row.
 *  - It then starts round k with only its own measured values (`beginRound` with its own
 *    device input rate and service time: its agent reads nothing else) and sends iteration
 *    0's messages; every algorithm message is a wire frame `dtoee` (docs/wire-protocol.md)
 *    on the shaped connection to the neighbour, shaped as the algorithm's bytes plus
 *    `network.headerBytes`, behind the task frames already queued (FIFO, as simulated).
 *  - A received message is checked (format, round and iteration numbers, the sender is the
 *    authenticated peer and a neighbour of the right kind, finite numbers) and handed to
 *    `NodeRound.deliver`; a bad one is dropped with its reason logged (the connection stays).
 *  - After its last iteration the node applies its new fractions and threshold: the tasks it
 *    handles from then on read them.
 * Differences from the simulator [assumption], because a node cannot see the whole run:
 *  - "no-input": a window with no device input skips its round at every node; a node knows
 *    the devices' arrival schedule from the scenario (the seeded workload every process
 *    builds), so every node takes the same decision without a message.
 *  - "busy": a node still in round k at tick k+1 starts round k+1 right after finishing k
 *    (deferred) instead of skipping it: skipping at one node only would leave its neighbours
 *    waiting for it.
 *  - Ticks stop after the first window that ends past the last arrival (the simulator ticks
 *    until every request has finished).
 * The round's objective columns are not computed live (they need every node's state).
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { LOAD_REPORT_BYTES, MESSAGE_HEADER_BYTES, NodeRound, NodeWindow, type DtoMessage, type DtoPolicy, type DtoProblemSpec, type LoadBoard, type Problem, type DtoObservation, type NodeCounters, type OnlineDtoee, type RoundProgress } from '../dtoee/index.js';
import type { DtoeeNodeRecord, DtoeeRoundRecord } from '../results/types.js';
import { dtoeeNodeRow } from '../sim/dtoee-control.js';
import { sleepUntil } from './clock.js';

/** Format tag of a dtoee frame's JSON payload. */
export const DTOEE_MESSAGE_FORMAT = 'hatsim-dtoee/1';

export interface DtoeeWireMessage { round: number; iteration: number; msg: DtoMessage }

/** The frame payload of one algorithm message (docs/wire-protocol.md, frame type `dtoee`). */
export function encodeDtoeeMessage(round: number, iteration: number, m: DtoMessage): Record<string, unknown> {
  const base = { format: DTOEE_MESSAGE_FORMAT, round, iteration, kind: m.kind, from: m.from, to: m.to };
  return m.kind === 'flow' ? { ...base, ratePerS: m.ratePerS } : { ...base, marginalCostS: m.marginalCostS, curvature: m.curvature };
}

/** Check a received payload (sender = the authenticated peer, receiver = this node); a reason when it is bad. */
export function decodeDtoeeMessage(j: Record<string, unknown>, peer: string, self: string): DtoeeWireMessage | string {
  if (j.format !== DTOEE_MESSAGE_FORMAT) return `format ${JSON.stringify(j.format)}, expected ${DTOEE_MESSAGE_FORMAT}`;
  const { round, iteration, kind, from, to } = j;
  if (typeof round !== 'number' || !Number.isInteger(round) || round < 1) return `round ${JSON.stringify(round)} is not a positive integer`;
  if (typeof iteration !== 'number' || !Number.isInteger(iteration) || iteration < 0) return `iteration ${JSON.stringify(iteration)} is not a non-negative integer`;
  if (from !== peer) return `from ${JSON.stringify(from)} on the connection of ${peer}`;
  if (to !== self) return `to ${JSON.stringify(to)} at node ${self}`;
  const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
  if (kind === 'flow') {
    if (!finite(j.ratePerS) || j.ratePerS < 0) return `flow ratePerS ${JSON.stringify(j.ratePerS)} is not a finite rate >= 0`;
    return { round, iteration, msg: { kind, from: peer, to: self, ratePerS: j.ratePerS, bytes: MESSAGE_HEADER_BYTES + 8 } };
  }
  if (kind === 'cost') {
    if (!finite(j.marginalCostS)) return `cost marginalCostS ${JSON.stringify(j.marginalCostS)} is not a finite number`;
    if (!finite(j.curvature) || j.curvature < 0) return `cost curvature ${JSON.stringify(j.curvature)} is not a finite number >= 0`;
    return { round, iteration, msg: { kind, from: peer, to: self, marginalCostS: j.marginalCostS, curvature: j.curvature, bytes: MESSAGE_HEADER_BYTES + 16 } };
  }
  return `kind ${JSON.stringify(kind)}, expected flow or cost`;
}

export interface LiveDtoeeHost {
  system: string;
  policyName: string;
  periodS: number;
  minJobs: number;
  /** Transport header bytes added to every message (network.headerBytes). */
  headerBytes: number;
  servers: number;
  /** The devices' arrival times (s, the scenario's workload): the no-input rule. */
  arrivalsS: readonly number[];
  counters(): NodeCounters;
  /** Run clock (s since t0) and performance.now() ms of a run time. */
  nowS(): number;
  perfMsAt(runS: number): number;
  /** Ship a payload to a neighbour, shaped as `modelledBytes`. */
  send(to: string, modelledBytes: number, payload: Record<string, unknown>): void;
  /** A dropped message's reason (logged and kept in node-<name>.json). */
  reject(reason: string): void;
  /** JSONL file for this node's rows (dtoee-<name>.jsonl). */
  rowsPath: string;
}

interface RoundRun { row: DtoeeRoundRecord; obs: DtoObservation }

export class LiveDtoeeControl {
  private readonly n: number;
  private readonly id: string;
  private readonly stage: number;
  private readonly window: NodeWindow;
  private readonly round: NodeRound | null;
  private appliedS = NaN;
  private stopped = false;
  private current: RoundRun | null = null;
  private readonly pending: RoundRun[] = [];
  private readonly lastArrivalS: number;
  private readonly sorted: number[];

  /** With `online` null (policies.dtoee.monitor, offline): the node only measures and writes its rows. */
  constructor(private readonly policy: DtoPolicy, private readonly online: OnlineDtoee | null, problem: Problem, self: string, private readonly h: LiveDtoeeHost) {
    const n = problem.index.get(self);
    if (n === undefined) throw new Error(`live dtoee: node ${self} is not a node of the DTO-EE problem`);
    this.n = n;
    this.id = self;
    this.stage = problem.stage[n];
    this.window = new NodeWindow(1 / problem.mu[n], h.servers, h.minJobs, h.counters());
    this.round = online ? new NodeRound(online, n) : null;
    this.sorted = [...h.arrivalsS].sort((a, b) => a - b);
    this.lastArrivalS = this.sorted.length > 0 ? this.sorted[this.sorted.length - 1] : 0;
    mkdirSync(dirname(h.rowsPath), { recursive: true });
    writeFileSync(h.rowsPath, '');
  }

  /** Tick every periodS of run time until stopped or past the last arrival. */
  async run(): Promise<void> {
    for (let k = 1; !this.stopped; k++) {
      const tS = k * this.h.periodS;
      await sleepUntil(this.h.perfMsAt(tS));
      if (this.stopped) return;
      this.tick(k, tS);
      if (tS - this.h.periodS > this.lastArrivalS) return;
    }
  }

  stop(): void { this.stopped = true; }

  private hasInput(fromS: number, toS: number): boolean {
    // First arrival >= fromS (binary search), then < toS.
    const a = this.sorted;
    let lo = 0, hi = a.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (a[mid] < fromS) lo = mid + 1; else hi = mid; }
    return lo < a.length && a[lo] < toS;
  }

  private tick(k: number, tS: number): void {
    const now = this.h.nowS();
    const m = this.window.measure(now, this.h.counters());
    this.write('node', dtoeeNodeRow(this.h.system, this.policy, this.h.policyName, this.id, this.stage, now, k, m, this.online ? this.online.modelArrivalRatePerS(this.n) : NaN, this.appliedS));
    if (!this.online) return;
    const input = this.stage === 1 ? m.ratePerS : 0;
    const row: DtoeeRoundRecord = {
      system: this.h.system, round: k, start_s: NaN, end_s: NaN, status: 'done', iterations: 0, messages: 0, bytes: 0,
      input_per_s: input, objective_before: NaN, objective_after: NaN, model_delay_ms: NaN, last_move: NaN, centralised_objective: NaN,
    };
    if (!this.hasInput(tS - this.h.periodS, tS)) { row.status = 'no-input'; this.write('round', row); return; }
    const obs: DtoObservation = { serviceTimeS: { [this.id]: m.estimateS }, ...(this.stage === 1 ? { inputRatePerS: { [this.id]: m.ratePerS } } : {}) };
    this.pending.push({ row, obs });
    this.next();
  }

  /** Start the oldest pending round when none runs. */
  private next(): void {
    if (this.current !== null || this.pending.length === 0 || !this.online || !this.round) return;
    const r = this.pending.shift()!;
    this.current = r;
    this.online.beginRound(r.obs);
    r.row.start_s = this.h.nowS();
    r.row.iterations = this.online.iterations;
    this.progress(this.round.start(r.row.round));
  }

  /** A dtoee frame's payload from the authenticated peer `peer`. */
  receive(peer: string, j: Record<string, unknown>): void {
    const w = decodeDtoeeMessage(j, peer, this.id);
    if (typeof w === 'string') { this.h.reject(`dtoee message dropped: ${w}`); return; }
    if (!this.round) { this.h.reject(`dtoee message dropped: node ${this.id} runs no online rounds (monitor only)`); return; }
    const p = this.round.deliver(w.round, w.iteration, w.msg);
    if (typeof p === 'string') { this.h.reject(`dtoee message dropped: ${p}`); return; }
    this.progress(p);
  }

  private progress(p: RoundProgress): void {
    if (this.current === null) return; // a message for a round this node has not started yet: buffered, nothing to send
    const row = this.current.row;
    for (const { iteration, msg } of p.out) {
      const bytes = msg.bytes + this.h.headerBytes;
      row.messages++; row.bytes += bytes;
      this.h.send(msg.to, bytes, encodeDtoeeMessage(row.round, iteration, msg));
    }
    if (!p.finished) return;
    this.appliedS = this.h.nowS();
    row.end_s = this.appliedS;
    row.last_move = this.online!.lastMove(this.n);
    this.write('round', row);
    this.current = null;
    this.next();
  }

  private write(kind: 'node' | 'round', row: DtoeeNodeRecord | DtoeeRoundRecord): void {
    appendFileSync(this.h.rowsPath, JSON.stringify({ kind, row }) + '\n');
  }
}

/**
 * Merge the node processes' rows into the simulator's schema: node rows as they are (sorted
 * by round, then the problem's node order); one round row per round: start = first node's
 * start, end = last node's apply, messages and bytes summed, input summed over the access
 * nodes, status 'done' when every node finished it.
 */
export function mergeDtoeeRows(perNode: { node: string; nodes: DtoeeNodeRecord[]; rounds: DtoeeRoundRecord[] }[], order: readonly string[]): { nodes: DtoeeNodeRecord[]; rounds: DtoeeRoundRecord[] } {
  const rank = new Map(order.map((id, i) => [id, i]));
  const nodes = perNode.flatMap((p) => p.nodes).sort((a, b) => a.round - b.round || (rank.get(a.node) ?? 0) - (rank.get(b.node) ?? 0));
  const byRound = new Map<number, DtoeeRoundRecord[]>();
  for (const p of perNode) for (const r of p.rounds) byRound.set(r.round, [...(byRound.get(r.round) ?? []), r]);
  const count = perNode.length;
  const rounds = [...byRound.entries()].sort((a, b) => a[0] - b[0]).map(([round, rs]): DtoeeRoundRecord => {
    const done = rs.filter((r) => r.status === 'done');
    const status = done.length === count ? 'done' : rs.find((r) => r.status !== 'done')?.status ?? `incomplete (${done.length}/${count} nodes)`;
    return {
      system: rs[0].system, round, start_s: Math.min(...rs.map((r) => r.start_s)), end_s: done.length === count ? Math.max(...rs.map((r) => r.end_s)) : NaN,
      status, iterations: rs[0].iterations, messages: rs.reduce((a, r) => a + r.messages, 0), bytes: rs.reduce((a, r) => a + r.bytes, 0),
      input_per_s: rs.reduce((a, r) => a + r.input_per_s, 0), objective_before: NaN, objective_after: NaN, model_delay_ms: NaN,
      last_move: done.length === count ? Math.max(...rs.map((r) => r.last_move)) : NaN, centralised_objective: NaN,
    };
  });
  return { nodes, rounds };
}

/**
 * jsq live (policies.dtoee.jsqLoad: reported): this node's side of the load reports
 * (dtoee/round.ts `LoadBoard`; the simulator's `LoadReports`): every `loadPeriodS` of run time
 * from t0 it sends its load (jobs waiting + in service) to each upstream neighbour as a `dtoee`
 * frame of kind `load`, shaped as LOAD_REPORT_BYTES + the transport header behind the task
 * frames on that connection; a report received from a next-stage neighbour goes on the board
 * the node's tasks read. Bad reports are dropped with a reason.
 */
export class LiveLoadReports {
  private stopped = false;
  private readonly upstream: string[];
  private readonly downstream: Set<string>;
  constructor(
    private readonly self: string, spec: DtoProblemSpec, private readonly board: LoadBoard, private readonly periodS: number,
    private readonly h: Pick<LiveDtoeeHost, 'headerBytes' | 'send' | 'reject' | 'nowS' | 'perfMsAt'> & { load(): number; untilS: number },
  ) {
    this.upstream = spec.nodes.filter((u) => (u.next ?? []).some((n) => n.to === self)).map((u) => u.id);
    this.downstream = new Set((spec.nodes.find((n) => n.id === self)?.next ?? []).map((n) => n.to));
  }
  /** Report from t0 on, every period, until stopped or past `untilS` (the last arrival plus a margin). */
  async run(): Promise<void> {
    if (this.upstream.length === 0) return;
    for (let k = 0; !this.stopped; k++) {
      const tS = k * this.periodS;
      if (tS > this.h.untilS) return;
      await sleepUntil(this.h.perfMsAt(tS));
      if (this.stopped) return;
      const load = this.h.load(), now = this.h.nowS();
      for (const to of this.upstream) this.h.send(to, LOAD_REPORT_BYTES + this.h.headerBytes, { format: DTOEE_MESSAGE_FORMAT, kind: 'load', from: this.self, to, load, sentS: now });
    }
  }
  stop(): void { this.stopped = true; }
  /** A `load` payload from the authenticated peer. */
  receive(peer: string, j: Record<string, unknown>): void {
    const bad = j.format !== DTOEE_MESSAGE_FORMAT ? `format ${JSON.stringify(j.format)}, expected ${DTOEE_MESSAGE_FORMAT}`
      : j.from !== peer ? `from ${JSON.stringify(j.from)} on the connection of ${peer}`
      : j.to !== this.self ? `to ${JSON.stringify(j.to)} at node ${this.self}`
      : !this.downstream.has(peer) ? `a load report from ${peer}, which is not a next-stage neighbour of ${this.self}`
      : typeof j.load !== 'number' || !Number.isInteger(j.load) || j.load < 0 ? `load ${JSON.stringify(j.load)} is not a count >= 0`
      : typeof j.sentS !== 'number' || !Number.isFinite(j.sentS) ? `sentS ${JSON.stringify(j.sentS)} is not a finite time`
      : null;
    if (bad !== null) { this.h.reject(`dtoee load report dropped: ${bad}`); return; }
    this.board.set(this.self, peer, j.load as number, j.sentS as number);
  }
}

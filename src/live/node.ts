/**
 * The live runner on the topology: one process per node (`hatsim live node`), real
 * WebSocket connections along the node pairs a system uses, user-space shaping per
 * link direction with the simulator's link model, real ONNX compute on the nodes that
 * run model parts, and the SAME protocol generators and policies as the simulator.
 *
 * How a task moves (docs/LIVE.md, "Topology runner"): the protocol generator of a
 * request runs where the task is. A task frame carries the request's identity and the
 * log of every value its generator was resumed with so far; the receiving node creates
 * the same generator (same scenario, same device, same request), replays the log (ops
 * already done are not executed again), and executes the ops that name it: `exec` on
 * its own processor, `draw` from the request's own stream (policy/decide.ts), `nodeLoad`
 * of itself, `mark`/`note`; at `send(self -> Y)` it ships the task to Y over the shaped
 * connection and stops. The device that issued the request finishes it (`emit`) and
 * writes its record in the simulator's format. No central coordinator, no control
 * round trips: the only messages are the protocol's own.
 *
 * Supported: systems that declare node pairs (SystemDef.pairs, e.g. `staged`). The HAT
 * family runs on the device-cloud runner (live/server.ts, live/device.ts). Not shaped
 * live (logged): shared bottlenecks (each path direction is shaped alone at its cap) and
 * bandwidth traces (fixed rates). DTO-EE online: the node runs its side of the rounds
 * (live/dtoee-live.ts); DTO-EE's jsq reads the loads its neighbours last reported
 * (jsqLoad: reported). A `nodeLoad` op of another node is refused (it would need a
 * query the simulator does not model). Batching nodes run exec passes one at a time per
 * GPU (no cross-request batching live).
 *
 * Hardening (every node): a peer must complete the hello (its node name and, when a
 * token is set, the token's SHA-256) within `helloTimeoutMs`, else it is dropped;
 * connections are capped; a peer holds no state before its hello; frames are size- and
 * shape-checked; a connection that closes frees its sender queue and state.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { RngStreams } from '../core/rng.js';
import { resolveLatency } from '../compute/resolve.js';
import { singleShape } from '../compute/types.js';
import { decideDraw } from '../policy/decide.js';
import { compileProblem, OnlineDtoee, PolicyTape } from '../dtoee/index.js';
import { dtoeeRunPolicy, wrapDtoeeRunPolicy } from '../protocol/systems/dtoee.js';
import { speedSchedules, type Piecewise } from '../sim/environment.js';
import { LiveDtoeeControl, LiveLoadReports } from './dtoee-live.js';
import { InputError } from '../core/errors.js';
import type { DeviceProtocol, ProtocolEnv } from '../protocol/context.js';
import type { Op, Proto, Resume } from '../protocol/ops.js';
import { SYSTEMS } from '../protocol/registry.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import { RequestState } from '../sim/request.js';
import { buildTestbed, systemTopology, topologyView, type Testbed } from '../sim/run.js';
import { compileNetwork, type CompiledNetwork } from '../topology/paths.js';
import type { TopoNode } from '../topology/types.js';
import { sleepMs, sleepUntil } from './clock.js';
import { HybridCompute, smallModel } from './compute-client.js';
import { LinkModel, ShapedSender, type Clock } from './shaper.js';
import { checkLiveModels } from './models.js';
import {
  DEFAULT_MAX_FRAME_BYTES, Dtype, FrameType, HEADER_BYTES, WireError, decodeFrame, encodeFrame, frameTypeName, jsonPayload,
  makeFrame, parseJsonPayload, tokenHash, type Frame,
} from './wire.js';

export interface NodeOptions {
  scenario: Scenario;
  /** This node's name in the topology. */
  name: string;
  system: SystemId;
  host?: string;
  /** Port to listen on (0 = any free port). */
  port?: number;
  /** Where the other nodes listen: node name -> HOST:PORT. */
  peers: Record<string, string>;
  token?: string;
  /** Device nodes write device-<name>.jsonl here; every node writes node-<name>.json. */
  outDir: string;
  /** The run's shared start, in ms since the epoch (performance.timeOrigin + performance.now()). */
  t0EpochMs: number;
  /** Pad each compute pass to the latency this hardware id predicts. */
  emulate?: string;
  maxConnections?: number;
  helloTimeoutMs?: number;
  maxFrameBytes?: number;
  log?: (line: string) => void;
}

/** The state a task frame carries (JSON). */
interface TaskState {
  dev: number;
  req: number;
  /** Resume values of every op consumed so far (null = undefined). */
  log: (number | null)[];
  draws: number;
  acct: Acct;
  /** Bytes of this message's payload (hidden + raw): what the frame's data section must hold. */
  dataBytes: number;
  /** The policy's answers so far (dtoee: thresholds and chosen nodes, `PolicyTape`), replayed like `log`. */
  pol?: number[];
}

interface Acct {
  hiddenUp: number; rawUp: number; headerUp: number; hiddenDown: number; rawDown: number; headerDown: number;
  deviceComputeMs: number; cloudComputeMs: number; cloudQueueMs: number;
  exitStage: number; correct: number;
  /** [node, submitMs, startMs, endMs] per exec, ms on the run clock. */
  hops: [number, number, number, number][];
}

function emptyAcct(): Acct {
  return {
    hiddenUp: 0, rawUp: 0, headerUp: 0, hiddenDown: 0, rawDown: 0, headerDown: 0,
    deviceComputeMs: 0, cloudComputeMs: 0, cloudQueueMs: 0, exitStage: 0, correct: -1, hops: [],
  };
}

interface Peer {
  ws: WebSocket;
  id: number;
  /** Node name after a valid hello; null before. */
  node: string | null;
  timer: NodeJS.Timeout | null;
  closed: boolean;
}

interface Out {
  ws: WebSocket;
  sender: ShapedSender;
  ready: Promise<void>;
  /** Measured one-way transit (ms) the sender writes ahead by. */
  transitMs?: number;
}

export const epochNowMs = (): number => performance.timeOrigin + performance.now();

/** FIFO job runner with k parallel slots (the node's processor). */
class Slots {
  private readonly queue: { job: () => Promise<void>; done: () => void; fail: (e: Error) => void }[] = [];
  private running = 0;
  constructor(private readonly k: number) {}
  get load(): number { return this.queue.length + this.running; }
  get servers(): number { return this.k; }
  submit(job: () => Promise<void>): Promise<void> {
    return new Promise((done, fail) => { this.queue.push({ job, done, fail }); this.pump(); });
  }
  private pump(): void {
    while (this.running < this.k && this.queue.length > 0) {
      const it = this.queue.shift()!;
      this.running++;
      void it.job().then(it.done, (e: unknown) => it.fail(e instanceof Error ? e : new Error(String(e)))).finally(() => { this.running--; this.pump(); });
    }
  }
}

export class NodeRuntime {
  readonly tb: Testbed;
  private readonly self: TopoNode;
  private readonly compiled: CompiledNetwork;
  private readonly streams: RngStreams;
  private readonly protocols = new Map<number, DeviceProtocol>();
  private readonly log: (l: string) => void;
  private readonly maxFrame: number;
  private wss: WebSocketServer | null = null;
  private readonly peers = new Set<Peer>();
  private nextPeerId = 0;
  private readonly outs = new Map<number, Out>();
  private readonly slots: Slots;
  private compute: HybridCompute | null = null;
  private readonly clock: Clock;
  /** Rejected connections and frames (node-<name>.json). */
  readonly rejections: string[] = [];
  readonly stats = { tasksIn: 0, tasksOut: 0, execs: 0, busyMs: 0, arrivals: 0, dtoeeMessagesIn: 0, dtoeeMessagesOut: 0 };
  /** dtoee: the policy wrapper that records/replays a task's policy answers, and the online rounds (online only). */
  private tape: PolicyTape | null = null;
  private control: LiveDtoeeControl | null = null;
  private loadReports: LiveLoadReports | null = null;
  /** Slowdown factor of this node over run time (environment.nodeSpeed), or null. */
  private readonly speed: Piecewise | null;
  /** Device nodes: requests in flight by request index. */
  private readonly inflight = new Map<number, RequestState>();
  private finished = 0;
  private resolveDone: (() => void) | null = null;
  readonly done: Promise<void>;
  private recordsPath = '';

  constructor(private readonly opts: NodeOptions) {
    this.opts = { ...opts, peers: { ...opts.peers } };
    checkLiveModels(opts.scenario);
    this.tb = buildTestbed(opts.scenario);
    const def = SYSTEMS[opts.system];
    if (def.pairs === undefined) {
      throw new Error(`live node: system ${opts.system} runs on the device-cloud runner (hatsim live cloud / live device), not on the topology runner`);
    }
    const node = this.tb.topology.nodes.find((n) => n.name === opts.name);
    if (!node) throw new Error(`live node: '${opts.name}' is not a node of the scenario (nodes: ${this.tb.topology.nodes.map((n) => n.name).join(', ')})`);
    this.self = node;
    const st = systemTopology(this.tb);
    def.check?.(st);
    // The simulator's compilation of the same pairs: same paths, caps, latencies, stream names.
    this.compiled = compileNetwork(this.tb.topology, this.tb.routes, def.pairs(st).map(([from, to]) => ({ from, to })));
    this.streams = new RngStreams(opts.scenario.seed);
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    this.maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    const p = node.processor;
    this.slots = new Slots(p.kind === 'single' ? 1 : p.kind === 'workers' ? p.workers : p.gpus);
    if (p.kind === 'batching') this.log(`node ${node.name}: batching node run live as ${p.gpus} FIFO slot(s) (no cross-request batching in the topology runner)`);
    this.clock = { nowMs: () => epochNowMs() - this.opts.t0EpochMs };
    this.done = new Promise((r) => { this.resolveDone = r; });
    for (const l of this.tb.topology.links) if (l.trace) this.log(`node ${node.name}: link ${l.name}: bandwidth traces are not replayed live; shaping with its fixed caps`);
    this.speed = opts.scenario.environment ? speedSchedules(opts.scenario.environment, this.tb.topology.nodes).get(node.index) ?? null : null;
    if (this.speed?.values.some((f) => f < 1)) this.log(`node ${node.name}: environment.nodeSpeed factors below 1 cannot be emulated live (the real compute is the fastest); run at factor 1 there`);
    if (opts.system === 'dtoee' && this.tb.devices.length > 0) this.setupDtoee();
  }

  /**
   * dtoee: every task's policy answers go on its tape (replayed where the task moves next);
   * online, this node runs its side of the distributed rounds (live/dtoee-live.ts).
   */
  private setupDtoee(): void {
    this.protocolOf(0); // builds the run's policy
    const built = dtoeeRunPolicy(this.tb.topology.nodes);
    if (!built) throw new Error('live node: the dtoee protocol built no policy (bug)');
    const inner = built.policy;
    const ids = this.tb.topology.nodes.map((n) => n.name);
    wrapDtoeeRunPolicy(this.tb.topology.nodes, (p) => (this.tape = new PolicyTape(p, ids)));
    const pol = this.opts.scenario.policies.dtoee;
    const arrivalsS = this.tb.workload.flat().map((w) => w.arrivalS).filter((a) => Number.isFinite(a));
    if (inner.name === 'jsq') {
      if (pol.jsqLoad !== 'reported') throw new InputError('policies.dtoee.jsqLoad: jsq live compares the loads its node last heard from its neighbours; set jsqLoad: reported (the simulator models the same reports)', 'policies.dtoee.jsqLoad');
      if (built.spec.nodes.some((n) => n.id === this.self.name)) {
        this.loadReports = new LiveLoadReports(this.self.name, built.spec, built.board, pol.loadPeriodS, {
          headerBytes: this.opts.scenario.network.headerBytes, send: (to, bytes, payload) => this.sendControl(to, bytes, payload),
          reject: (why) => this.reject(why), nowS: () => this.clock.nowMs() / 1000, perfMsAt: (runS) => this.opts.t0EpochMs - performance.timeOrigin + runS * 1000,
          load: () => this.slots.load, untilS: Math.max(0, ...arrivalsS) + 60,
        });
      }
    }
    const online = inner instanceof OnlineDtoee ? inner : null;
    if (!online && !pol.monitor) return;
    const problem = online ? online.problem : compileProblem(built.spec);
    if (!problem.index.has(this.self.name)) return;
    this.control = new LiveDtoeeControl(inner, online, problem, this.self.name, {
      system: this.opts.system, policyName: pol.policy, periodS: pol.periodS, minJobs: pol.minJobs, headerBytes: this.opts.scenario.network.headerBytes,
      servers: this.slots.servers, arrivalsS,
      counters: () => ({ arrivals: this.stats.arrivals, jobs: this.stats.execs, computeMs: this.stats.busyMs, busyMs: this.stats.busyMs }),
      nowS: () => this.clock.nowMs() / 1000,
      perfMsAt: (runS) => this.opts.t0EpochMs - performance.timeOrigin + runS * 1000,
      send: (to, bytes, payload) => this.sendControl(to, bytes, payload),
      reject: (why) => this.reject(why),
      rowsPath: join(this.opts.outDir, `dtoee-${this.self.name}.jsonl`),
    });
  }

  /** A dropped DTO-EE message: kept (bounded) for node-<name>.json and logged. */
  private reject(why: string): void {
    this.rejections.push(why);
    if (this.rejections.length > 1000) this.rejections.splice(0, this.rejections.length - 1000);
    this.log(`node ${this.self.name}: ${why}`);
  }

  /** One DTO-EE algorithm message to a neighbour, behind the task frames already queued on that connection. */
  private sendControl(to: string, modelledBytes: number, payload: Record<string, unknown>): void {
    const ix = this.tb.topology.nodes.findIndex((n) => n.name === to);
    const o = this.outTo(ix);
    const frame = encodeFrame(makeFrame(FrameType.dtoee, { payload: jsonPayload(payload) }));
    this.stats.dtoeeMessagesOut++;
    o.sender.send(modelledBytes, () => { if (o.ws.readyState === WebSocket.OPEN) o.ws.send(frame); });
  }

  private get isDevice(): boolean { return this.self.kind === 'device'; }
  get isDeviceNode(): boolean { return this.isDevice; }
  /** Incoming connections held now: the authenticated peers' node names, and how many have not said hello. */
  get connections(): { peers: string[]; unauthenticated: number } {
    const peers: string[] = [];
    let un = 0;
    for (const p of this.peers) { if (p.node === null) un++; else peers.push(p.node); }
    return { peers: peers.sort(), unauthenticated: un };
  }
  /** Device nodes: the records written so far (device-<name>.jsonl). */
  get recordsFile(): string { return this.recordsPath; }

  /** Peers' addresses and the run's start, when they are known only after every node listens (live local). */
  setPeers(peers: Record<string, string>, t0EpochMs: number): void {
    Object.assign(this.opts.peers, peers);
    this.opts.t0EpochMs = t0EpochMs;
  }

  /** Load compute, listen; resolves with the bound port. */
  async start(): Promise<number> {
    mkdirSync(this.opts.outDir, { recursive: true });
    if (this.self.stage !== null && this.self.hardware !== null) {
      const m = this.tb.model;
      this.compute = new HybridCompute({
        plan: { modelId: m.id, inputLayers: this.tb.plan.inputLayers, outputLayers: this.tb.plan.outputLayers, middleLayers: this.tb.plan.middleLayers, drafterModelId: this.tb.drafterModel.id },
        need: { device: false, drafter: false, cloud: true },
      }, smallModel(m.hiddenSize, m.intermediateSize) ? 2 : 0);
      await this.compute.init();
    }
    const wss = new WebSocketServer({ host: this.opts.host ?? '127.0.0.1', port: this.opts.port ?? 0, maxPayload: this.maxFrame + HEADER_BYTES, perMessageDeflate: false });
    this.wss = wss;
    await new Promise<void>((resolve, reject) => { wss.once('listening', resolve); wss.once('error', reject); });
    wss.on('connection', (ws, req) => this.onConnection(ws, req));
    return (wss.address() as AddressInfo).port;
  }

  // ---- incoming peers ------------------------------------------------------------

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const max = this.opts.maxConnections ?? 64;
    if (this.peers.size >= max) {
      this.rejections.push(`connection from ${req.socket.remoteAddress}: over the cap of ${max} connections`);
      ws.close(1013, 'too many connections');
      return;
    }
    const peer: Peer = { ws, id: this.nextPeerId++, node: null, timer: null, closed: false };
    this.peers.add(peer);
    peer.timer = setTimeout(() => this.drop(peer, `no hello within ${this.opts.helloTimeoutMs ?? 2000} ms`), this.opts.helloTimeoutMs ?? 2000);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(peer, data, isBinary));
    ws.on('close', (code) => {
      if (code === 1009 && !peer.closed) this.rejections.push(`connection ${peer.id}: a message larger than ${this.maxFrame} bytes (cut by the WebSocket layer)`);
      this.forget(peer);
    });
    ws.on('error', (e) => {
      if (!peer.closed) this.rejections.push(`connection ${peer.id}: ${e.message}`);
      this.forget(peer);
    });
  }

  private forget(peer: Peer): void {
    if (peer.closed) return;
    peer.closed = true;
    if (peer.timer) clearTimeout(peer.timer);
    this.peers.delete(peer);
  }

  private drop(peer: Peer, why: string): void {
    if (peer.closed) return;
    this.rejections.push(`connection ${peer.id}${peer.node ? ` (${peer.node})` : ''}: ${why}`);
    if (this.rejections.length > 1000) this.rejections.splice(0, this.rejections.length - 1000); // bounded
    try {
      if (peer.ws.readyState === WebSocket.OPEN) peer.ws.send(encodeFrame(makeFrame(FrameType.error, { dtype: Dtype.utf8, payload: new TextEncoder().encode(why.slice(0, 200)) })));
    } catch { /* the socket is going away anyway */ }
    peer.ws.terminate();
    this.forget(peer);
  }

  private onMessage(peer: Peer, data: Buffer, isBinary: boolean): void {
    if (peer.closed) return;
    try {
      if (!isBinary) throw new WireError('bad-type', 'text messages are not part of the protocol');
      const f = decodeFrame(data, this.maxFrame);
      if (peer.node === null) {
        if (f.type !== FrameType.nodeHello) throw new WireError('bad-state', `${frameTypeName(f.type)} before nodeHello`);
        const j = parseJsonPayload(f);
        const name = j.node;
        if (typeof name !== 'string' || !this.tb.topology.nodes.some((n) => n.name === name)) throw new WireError('bad-state', `nodeHello from an unknown node ${JSON.stringify(name)}`);
        if (this.opts.token && j.tokenSha256 !== tokenHash(this.opts.token)) throw new WireError('bad-auth', 'nodeHello without the right shared-secret token');
        peer.node = name;
        if (peer.timer) { clearTimeout(peer.timer); peer.timer = null; }
        peer.ws.send(encodeFrame(makeFrame(FrameType.helloAck, { payload: jsonPayload({ node: this.self.name }) })));
        return;
      }
      if (f.type === FrameType.ping) { peer.ws.send(encodeFrame(makeFrame(FrameType.pong, { seq: f.seq }))); return; } // unshaped echo: the sender measures transit
      if (f.type === FrameType.dtoee) {
        // An algorithm message: a bad one is dropped with its reason, the connection stays.
        this.stats.dtoeeMessagesIn++;
        let j: Record<string, unknown>;
        try { j = parseJsonPayload(f); } catch (e) { this.rejections.push(`dtoee message from ${peer.node} dropped: ${e instanceof Error ? e.message : String(e)}`); return; }
        if (j.kind === 'load') {
          if (this.loadReports) this.loadReports.receive(peer.node, j);
          else this.reject(`dtoee load report from ${peer.node} dropped: this node runs no jsq with reported loads`);
        } else if (this.control) this.control.receive(peer.node, j);
        else this.reject(`dtoee message from ${peer.node} dropped: this node runs no online DTO-EE rounds`);
        return;
      }
      if (f.type !== FrameType.task) throw new WireError('bad-type', `a node accepts task and dtoee frames, got ${frameTypeName(f.type)}`);
      const { state } = this.decodeTask(f);
      this.stats.tasksIn++;
      void this.continueTask(state).catch((e: unknown) => this.log(`node ${this.self.name}: task ${state.dev}/${state.req} failed: ${e instanceof Error ? e.message : String(e)}`));
    } catch (e) {
      this.drop(peer, e instanceof WireError ? `${e.code}: ${e.message}` : `internal: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private decodeTask(f: Frame): { state: TaskState; data: Uint8Array } {
    const p = f.payload;
    if (p.byteLength < 4) throw new WireError('bad-shape', 'task frame without its state');
    const len = Buffer.from(p.buffer, p.byteOffset, 4).readUInt32LE(0);
    if (len > p.byteLength - 4 || len > 1024 * 1024) throw new WireError('bad-length', `task state of ${len} bytes does not fit the frame`);
    let state: TaskState;
    try {
      state = JSON.parse(new TextDecoder().decode(p.subarray(4, 4 + len))) as TaskState;
    } catch {
      throw new WireError('bad-shape', 'task state is not JSON');
    }
    const nDev = this.tb.devices.length;
    if (!Number.isInteger(state.dev) || state.dev < 0 || state.dev >= nDev) throw new WireError('bad-state', `task for device ${state.dev}; the scenario has ${nDev}`);
    if (!Number.isInteger(state.req) || state.req < 0 || state.req >= this.tb.workload[state.dev].length) throw new WireError('bad-state', `task for request ${state.req} of device ${state.dev}, which does not exist`);
    if (!Array.isArray(state.log) || state.log.length > 100_000 || !state.log.every((v) => v === null || typeof v === 'number')) throw new WireError('bad-shape', 'task log must be a list of numbers');
    if (state.pol !== undefined && (!Array.isArray(state.pol) || state.pol.length > 100_000 || !state.pol.every((v) => typeof v === 'number' && Number.isFinite(v)))) throw new WireError('bad-shape', 'task pol (policy answers) must be a list of finite numbers');
    const data = p.subarray(4 + len);
    if (data.byteLength !== state.dataBytes) throw new WireError('bad-shape', `task carries ${data.byteLength} payload bytes, its state says ${state.dataBytes}`);
    return { state, data };
  }

  // ---- outgoing ------------------------------------------------------------------

  private outTo(to: number): Out {
    let o = this.outs.get(to);
    if (o) return o;
    const name = this.tb.topology.nodes[to].name;
    const addr = this.opts.peers[name];
    if (!addr) throw new Error(`live node ${this.self.name}: no address for node '${name}' (give --peer ${name}=HOST:PORT)`);
    const p = this.compiled.lookup(this.self.index, to);
    if (!p) throw new Error(`live node ${this.self.name}: the system never sends to '${name}' (bug)`);
    const spec = this.compiled.devices[p.path];
    const up = p.dir === 'up';
    const mbps = up ? spec.link.uplinkMbps : spec.link.downlinkMbps;
    const latencyMs = !up && spec.link.downLatencyMs !== undefined ? spec.link.downLatencyMs : spec.link.latencyMs;
    const jitterMs = !up && spec.link.downJitterMs !== undefined ? spec.link.downJitterMs : spec.link.jitterMs;
    const shared = spec.viaDirected?.[p.dir] ?? [];
    if (shared.length > 0) this.log(`node ${this.self.name}: route to ${name} crosses shared link(s) ${shared.map((h) => h.name).join(', ')}; shaped live at its own cap only`);
    const stream = spec.streamName ?? String(p.path);
    const model = new LinkModel({ mbps, latencyMs, jitterMs }, jitterMs > 0 ? this.streams.get(`net/${stream}/jitter/${p.dir}`) : null);
    const ws = new WebSocket(`ws://${addr}`, { perMessageDeflate: false, maxPayload: this.maxFrame + HEADER_BYTES });
    const out: Out = { ws, sender: new ShapedSender(model, this.clock), ready: Promise.resolve() };
    let pong: ((seq: number) => void) | null = null;
    const hello = new Promise<void>((resolve, reject) => {
      ws.once('open', () => ws.send(encodeFrame(makeFrame(FrameType.nodeHello, {
        payload: jsonPayload({ node: this.self.name, ...(this.opts.token ? { tokenSha256: tokenHash(this.opts.token) } : {}) }),
      }))));
      ws.on('message', (d: Buffer) => {
        try {
          const f = decodeFrame(d, this.maxFrame);
          if (f.type === FrameType.helloAck) resolve();
          else if (f.type === FrameType.pong) pong?.(f.seq);
          else if (f.type === FrameType.error) reject(new Error(`node ${name} refused ${this.self.name}: ${new TextDecoder().decode(f.payload)}`));
        } catch (e) { reject(e instanceof Error ? e : new Error(String(e))); }
      });
      ws.once('error', (e) => reject(e));
      ws.once('close', () => { out.sender.close(); this.outs.delete(to); reject(new Error(`connection to ${name} closed`)); });
    });
    // The real path's one-way transit (median RTT/2 of unshaped pings): frames are written that much
    // before their modelled delivery, so they arrive on time (as the device-cloud runner does).
    out.ready = hello.then(async () => {
      const rtts: number[] = [];
      for (let i = 0; i < 9; i++) {
        const t0 = performance.now();
        await new Promise<void>((resolve) => { pong = () => resolve(); ws.send(encodeFrame(makeFrame(FrameType.ping, { seq: i }))); });
        rtts.push(performance.now() - t0);
      }
      pong = null;
      rtts.sort((a, b) => a - b);
      out.transitMs = rtts[4] / 2;
      out.sender = new ShapedSender(model, this.clock, out.transitMs);
    });
    out.ready.catch(() => undefined);
    o = out;
    this.outs.set(to, o);
    return o;
  }

  /** Connect to every node this one sends to (retrying while they start). */
  async connectAll(deadlineMs = 60_000): Promise<void> {
    const targets = new Set<number>();
    for (const p of this.compiled.paths) {
      if (p.a === this.self.index) targets.add(p.b);
      if (p.b === this.self.index) targets.add(p.a);
    }
    const t0 = Date.now();
    for (const to of targets) {
      for (;;) {
        try { await this.outTo(to).ready; break; } catch (e) {
          this.outs.get(to)?.ws.terminate();
          this.outs.delete(to);
          if (Date.now() - t0 > deadlineMs) throw new Error(`live node ${this.self.name}: could not reach ${this.tb.topology.nodes[to].name}: ${e instanceof Error ? e.message : String(e)}`);
          await sleepMs(100);
        }
      }
    }
    // Online DTO-EE: ticks on the run clock from now on (the first at t0 + periodS).
    if (this.control) void this.control.run().catch((e: unknown) => this.log(`node ${this.self.name}: dtoee rounds stopped: ${e instanceof Error ? e.message : String(e)}`));
    if (this.loadReports) void this.loadReports.run().catch((e: unknown) => this.log(`node ${this.self.name}: dtoee load reports stopped: ${e instanceof Error ? e.message : String(e)}`));
  }

  private ship(to: number, state: TaskState, modelledBytes: number): void {
    const o = this.outTo(to);
    const json = new TextEncoder().encode(JSON.stringify(state));
    const payload = new Uint8Array(4 + json.byteLength + state.dataBytes);
    Buffer.from(payload.buffer).writeUInt32LE(json.byteLength, 0);
    payload.set(json, 4);
    const frame = encodeFrame(makeFrame(FrameType.task, { deviceId: state.dev, requestId: state.req, seq: state.log.length, payload }));
    this.stats.tasksOut++;
    o.sender.send(modelledBytes, () => { if (o.ws.readyState === WebSocket.OPEN) o.ws.send(frame); });
  }

  // ---- the protocol, where the task is -------------------------------------------

  private protocolOf(dev: number): DeviceProtocol {
    let p = this.protocols.get(dev);
    if (p) return p;
    const d = this.tb.devices[dev];
    const s = this.opts.scenario;
    const env: ProtocolEnv = {
      hiddenBytesPerToken: this.tb.model.hiddenSize * this.tb.model.activationBytesPerElem,
      tokenBytes: s.network.tokenBytes,
      policies: s.policies,
      topology: topologyView(this.tb, d, -1),
      predictor: {
        deviceMs: () => { throw new Error('the topology runner has no latency predictor (protocols that predict run on the device-cloud runner)'); },
        cloudMs: () => { throw new Error('no predictor on the topology runner'); },
        txMs: () => { throw new Error('no predictor on the topology runner'); },
        latencyMs: () => { throw new Error('no predictor on the topology runner'); },
      },
    };
    p = SYSTEMS[this.opts.system].createDevice(env);
    this.protocols.set(dev, p);
    return p;
  }

  private generator(state: TaskState): { gen: Proto; op: IteratorResult<Op, void>; tape: { values: number[]; cursor: number } } {
    const w = this.tb.workload[state.dev][state.req];
    const tape = { values: state.pol ?? (state.pol = []), cursor: 0 };
    const gen = this.protocolOf(state.dev)({ index: state.req, promptTokens: w.promptTokens, outputTokens: w.outputTokens });
    let r = this.resume(gen, tape, undefined);
    for (const v of state.log) {
      if (r.done) throw new WireError('bad-state', `task log of request ${state.dev}/${state.req} is longer than its protocol`);
      r = this.resume(gen, tape, v === null ? undefined : v);
    }
    if (tape.cursor !== tape.values.length) throw new WireError('bad-state', `task pol of request ${state.dev}/${state.req} holds ${tape.values.length} policy answers, its replay read ${tape.cursor}`);
    return { gen, op: r, tape };
  }

  /** Resume a task's generator with its policy tape in force (the policy reads it synchronously inside next()). */
  private resume(gen: Proto, tape: { values: number[]; cursor: number }, v: Resume): IteratorResult<Op, void> {
    if (this.tape) this.tape.current = tape;
    try { return gen.next(v); } finally { if (this.tape) this.tape.current = null; }
  }

  /** Run the task's ops that name this node; ship it on at the first send to another node. */
  private async continueTask(state: TaskState): Promise<void> {
    const { gen: g, op: first, tape } = this.generator(state);
    let r = first;
    const me = this.self.index, s = this.opts.scenario;
    for (;;) {
      if (r.done) { this.finishRequest(state); return; }
      const op = r.value;
      let value: Resume = undefined;
      switch (op.op) {
        case 'exec': {
          if (op.node !== me) throw new Error(`protocol runs ${op.label} on ${this.tb.topology.nodes[op.node].name} while the task is at ${this.self.name} (send it there first)`);
          const submitMs = this.clock.nowMs();
          this.stats.arrivals++;
          // environment.nodeSpeed: a job submitted in a slowdown window takes factor x its time (fixed at submission, as simulated).
          const factor = Math.max(1, this.speed?.at(submitMs / 1000) ?? 1);
          let startMs = 0;
          await this.slots.submit(async () => {
            startMs = this.clock.nowMs();
            await this.runPart(op.part, op.tokens, op.ctx, op.logits);
            if (factor > 1) await sleepMs((factor - 1) * (this.clock.nowMs() - startMs));
          });
          const endMs = this.clock.nowMs();
          this.stats.execs++;
          this.stats.busyMs += endMs - startMs;
          state.acct.hops.push([me, submitMs, startMs, endMs]);
          if (me === this.tb.devices[state.dev].node.index) state.acct.deviceComputeMs += endMs - startMs;
          else { state.acct.cloudComputeMs += endMs - startMs; state.acct.cloudQueueMs += startMs - submitMs; }
          break;
        }
        case 'send': {
          if (op.from !== me) throw new Error(`protocol sends from ${this.tb.topology.nodes[op.from].name} while the task is at ${this.self.name}`);
          if (op.to === me) break;
          const header = s.network.headerBytes;
          const toDevice = op.to === this.tb.devices[state.dev].node.index;
          if (toDevice) { state.acct.hiddenDown += op.hiddenBytes; state.acct.rawDown += op.rawTokenBytes; state.acct.headerDown += header; }
          else { state.acct.hiddenUp += op.hiddenBytes; state.acct.rawUp += op.rawTokenBytes; state.acct.headerUp += header; }
          state.log.push(null);
          state.dataBytes = op.hiddenBytes + op.rawTokenBytes;
          this.ship(op.to, state, state.dataBytes + header);
          return;
        }
        case 'draw':
          value = decideDraw(s.seed, state.dev, state.req, state.draws++);
          break;
        case 'nodeLoad':
          if (op.node !== me) throw new Error(`nodeLoad of ${this.tb.topology.nodes[op.node].name} from ${this.self.name}: the topology runner answers only for the node holding the task`);
          value = this.slots.load;
          break;
        case 'mark':
          if (op.key === 'exitStage') state.acct.exitStage = op.value; else state.acct.correct = op.value;
          break;
        case 'note':
          break;
        case 'now':
          value = this.clock.nowMs();
          break;
        case 'emit': {
          const req = this.inflight.get(state.req);
          if (!req || !this.isDevice) throw new Error(`emit for request ${state.dev}/${state.req} at ${this.self.name}, which did not issue it`);
          req.tokens(op.tokens, this.clock.nowMs() / 1000);
          break;
        }
        default:
          throw new Error(`op ${op.op} is a device-cloud op: system ${this.opts.system} cannot run on the topology runner`);
      }
      state.log.push(value === undefined ? null : (value as number));
      r = this.resume(g, tape, value);
    }
  }

  private async runPart(part: { embedding: boolean; layers: number; lmHead: boolean; key: string; adapter: boolean }, tokens: number, ctx: number, logits: number): Promise<void> {
    if (!this.compute) throw new Error(`node ${this.self.name} runs a model part but loaded no compute (it has no stage or no hardware)`);
    const t0 = performance.now();
    await this.compute.run([{ work: 'part', tokens, ctx, logits, part }], 0);
    if (this.opts.emulate) {
      const lat = resolveLatency({ hardwareId: this.opts.emulate, model: this.tb.model, plan: this.tb.plan, calibrationDir: this.opts.scenario.calibrationDir });
      const target = lat.part(part.key, part).batchMs(singleShape(tokens, ctx), logits);
      const left = target - (performance.now() - t0);
      if (left > 0) await sleepMs(left);
    }
  }

  // ---- device role ---------------------------------------------------------------

  /** Device nodes: issue this device's requests at their arrival times; resolves when all are done. */
  async runDevice(): Promise<void> {
    if (!this.isDevice) return;
    const d = this.tb.devices.find((x) => x.node.index === this.self.index)!;
    this.recordsPath = join(this.opts.outDir, `device-${this.self.name}.jsonl`);
    writeFileSync(this.recordsPath, '');
    const reqs = this.tb.workload[d.index];
    if (reqs.length === 0) { this.resolveDone?.(); return; }
    const s = this.opts.scenario;
    const closed = s.workload.arrival.kind === 'closed-loop' ? s.workload.arrival.thinkTimeS : null;
    const limit = this.self.concurrency;
    const waiting: RequestState[] = [];
    let running = 0, next = 0;
    const startOne = (): void => {
      while (running < limit && waiting.length > 0) {
        const req = waiting.shift()!;
        running++;
        req.startS = this.clock.nowMs() / 1000;
        this.inflight.set(req.index, req);
        const state: TaskState = { dev: d.index, req: req.index, log: [], draws: 0, acct: emptyAcct(), dataBytes: 0 };
        void this.continueTask(state).catch((e: unknown) => {
          appendFileSync(this.recordsPath, JSON.stringify({ kind: 'unfinished', system: this.opts.system, request: req.index, reason: e instanceof Error ? e.message : String(e) }) + '\n');
          this.inflight.delete(req.index);
          this.requestEnded();
        });
      }
    };
    this.onRequestEnd = (finishedS: number) => {
      running--;
      if (closed !== null && next < reqs.length) {
        const w = reqs[next++];
        const req = new RequestState(w.index, this.opts.system, d.index, d.name, w.index, finishedS + closed, w.promptTokens, w.outputTokens);
        void sleepUntil(this.opts.t0EpochMs - performance.timeOrigin + req.arrivalS * 1000).then(() => { waiting.push(req); startOne(); });
      }
      startOne();
    };
    // Open loop (and a closed loop's first request): at their arrival times.
    const open = closed === null ? reqs : reqs.slice(0, 1);
    next = open.length;
    for (const w of open) {
      const req = new RequestState(w.index, this.opts.system, d.index, d.name, w.index, w.arrivalS, w.promptTokens, w.outputTokens);
      await sleepUntil(this.opts.t0EpochMs - performance.timeOrigin + w.arrivalS * 1000);
      waiting.push(req);
      startOne();
    }
    await this.done;
  }

  private onRequestEnd: ((finishedS: number) => void) | null = null;

  private requestEnded(finishedS = this.clock.nowMs() / 1000): void {
    this.finished++;
    this.onRequestEnd?.(finishedS);
    const d = this.tb.devices.find((x) => x.node.index === this.self.index)!;
    if (this.finished >= this.tb.workload[d.index].length) this.resolveDone?.();
  }

  private finishRequest(state: TaskState): void {
    const req = this.inflight.get(state.req);
    if (!req || !this.isDevice) throw new Error(`request ${state.dev}/${state.req} ended at ${this.self.name}, which did not issue it`);
    this.inflight.delete(state.req);
    const a = state.acct;
    req.hiddenUp = a.hiddenUp; req.rawUp = a.rawUp; req.headerUp = a.headerUp;
    req.hiddenDown = a.hiddenDown; req.rawDown = a.rawDown; req.headerDown = a.headerDown;
    req.deviceComputeMs = a.deviceComputeMs; req.cloudComputeMs = a.cloudComputeMs; req.cloudQueueMs = a.cloudQueueMs;
    req.exitStage = a.exitStage; req.correct = a.correct;
    const nowS = this.clock.nowMs() / 1000;
    req.finishS = nowS;
    // Network time: the request's span less its compute and queueing (the record's network_ms).
    req.networkMs = Math.max(0, (nowS - req.startS) * 1000 - a.cloudComputeMs - a.cloudQueueMs - a.deviceComputeMs);
    const hops = a.hops.map(([node, submitMs, startMs, endMs], seq) => ({
      system: this.opts.system, device: req.deviceName, request: req.index, seq, node: this.tb.topology.nodes[node].name,
      submit_ms: submitMs - req.arrivalS * 1000, start_ms: startMs - req.arrivalS * 1000, end_ms: endMs - req.arrivalS * 1000,
      queue_ms: startMs - submitMs, compute_ms: endMs - startMs,
    }));
    // dtoee per-token tasks: the request's token facts (exit stage, correctness, time per token).
    const tokens = this.opts.system === 'dtoee' && this.opts.scenario.policies.dtoee.task === 'per-token' ? dtoeeRunPolicy(this.tb.topology.nodes)?.tokens.ofRequest(req.deviceName, req.index) : undefined;
    appendFileSync(this.recordsPath, JSON.stringify({ kind: 'record', record: req.toRecord(), hops, ...(tokens ? { tokens } : {}) }) + '\n');
    this.requestEnded(nowS);
  }

  async close(): Promise<void> {
    this.control?.stop();
    this.loadReports?.stop();
    for (const o of this.outs.values()) { o.sender.close(); o.ws.terminate(); }
    this.outs.clear();
    for (const p of this.peers) p.ws.terminate();
    if (this.wss) await new Promise<void>((r) => this.wss!.close(() => r()));
    if (this.compute) await this.compute.close();
    writeFileSync(join(this.opts.outDir, `node-${this.self.name}.json`), JSON.stringify({ node: this.self.name, ...this.stats, rejections: this.rejections.slice(-100), rejected: this.rejections.length }, null, 2));
  }
}

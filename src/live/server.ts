/**
 * The live cloud server: serves the middle (split systems) or full (cloud,
 * sd) submodel to many devices over WebSocket (docs/wire-protocol.md), with
 * the simulator's batching and routing: per replica a queue and continuous
 * batching with composeStep (policy/batching.ts), a router (policy/router.ts)
 * assigning a replica at the first request (or load query) of a (device,
 * request) pair and releasing it on the device's bye-request or disconnect.
 *
 * A step runs its jobs' ONNX passes one after another in the compute worker
 * (replicas share this machine's CPU; the simulator's step latency is one
 * batched pass: docs/LIVE.md). Replies go through the device's shaped
 * downlink and carry the job's cloud queue ms and compute ms.
 *
 * Faults: a malformed, oversized, unauthenticated or out-of-protocol frame
 * gets an error frame, is logged, and its connection is closed; other devices
 * are not disturbed. A device that disconnects frees its state (queued jobs
 * dropped, replicas released).
 */
import { WebSocketServer, type WebSocket } from 'ws';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { RngStreams } from '../core/rng.js';
import { resolveLatency } from '../compute/resolve.js';
import { singleShape, type BatchShape, type SubmodelLatencyModel } from '../compute/types.js';
import { composeStep, type StepWork } from '../policy/batching.js';
import { makeRouter, type Router } from '../policy/router.js';
import { SYSTEMS } from '../protocol/registry.js';
import type { Scenario } from '../scenario/types.js';
import { buildTestbed, deviceLink, deviceNetwork, type Testbed } from '../sim/run.js';
import { sleepUntil } from './clock.js';
import { HybridCompute, smallModel } from './compute-client.js';
import type { PassRequest } from './compute.js';
import { LinkModel, ShapedSender } from './shaper.js';
import { LiveSharedNetwork, OrderedRelease, shapesAtServer } from './shared-net.js';
import { StepLog } from './steps.js';
import { checkLiveModels } from './models.js';
import {
  DEFAULT_MAX_FRAME_BYTES, Dtype, Flag, FrameType, HEADER_BYTES, WireError, Work, checkShape, decodeFrame, encodeFrame, frameTypeName,
  jsonPayload, makeFrame, parseJsonPayload, tokenHash, type Frame,
} from './wire.js';

export interface CloudServerOptions {
  scenario: Scenario;
  host?: string;
  port?: number;
  /** Shared secret; hello must carry its SHA-256. */
  token?: string;
  maxFrameBytes?: number;
  /** Pad every step to this hardware's predicted batch latency. */
  emulate?: string;
  /** Devices that must say hello before a system starts (default: the scenario's device count). */
  devices?: number;
  /** Delay from the barrier to the shared start (ms). */
  startDelayMs?: number;
  stepsPath?: string;
  log?: (line: string) => void;
  /** Do not load ONNX sessions (tests of the wire layer only): steps take the emulated or 0 ms. */
  noCompute?: boolean;
  /** Steps predicted under this (ms) run on the main thread for small models (default 2; 0 = always the worker). */
  inlineBelowMs?: number;
  /** ONNX parts to run instead of the seeded graphs (an export: hatsim export-model). */
  onnxDir?: string;
}

interface Conn {
  ws: WebSocket;
  id: number;
  deviceId: number;
  hello: boolean;
  systemIndex: number;
  sender: ShapedSender;
  closed: boolean;
  /** Shared-bottleneck mode (live/shared-net.ts): the device's network path, and frames in order per direction. */
  path: number;
  ingress: OrderedRelease | null;
  egress: OrderedRelease | null;
}

interface Job extends StepWork {
  request: ReqEntry;
  conn: Conn;
  key: string;
  devRequest: number;
  seq: number;
  work: 'middle' | 'full';
  tokens: number;
  done: number;
  ctx: number;
  logits: number;
  replyBytes: number;
  enqueuedMs: number;
  started: boolean;
  queueMs: number;
  computeMs: number;
  taken: number;
  /** Shared-bottleneck mode: the request frame's shaped uplink ms (added to the reply's f2). */
  upMs: number;
}

interface ReqEntry {
  /** Stamped by formBatch (one job per request per step). */
  batchMark: number;
  replica: number;
  outstanding: number;
  chained: Job[];
  numericId: number;
}

class LiveReplica {
  queue: Job[] = [];
  busy = false;
  queuedTokens = 0;
  activeRequests = 0;
  busyMs = 0;
  constructor(readonly index: number) {}
}

export class CloudServer {
  private wss: WebSocketServer | null = null;
  private readonly conns = new Set<Conn>();
  private nextConnId = 0;
  private readonly tb: Testbed;
  private readonly replicas: LiveReplica[];
  private readonly router: Router;
  private readonly requests = new Map<string, ReqEntry>();
  private nextNumericId = 0;
  private readonly barrier = new Map<number, Set<Conn>>();
  private compute: HybridCompute | null = null;
  private readonly emu: Partial<Record<'middle' | 'full', SubmodelLatencyModel>> = {};
  private readonly predict: Partial<Record<'middle' | 'full', SubmodelLatencyModel>> = {};
  private readonly log: (l: string) => void;
  private readonly maxFrame: number;
  private readonly expectedDevices: number;
  private steps: StepLog | null = null;
  private systemT0 = performance.now();
  private currentSystem = '';
  private readonly taken: number[] = [];
  /** Rejected frames / connections (for tests and run.json). */
  readonly rejections: string[] = [];
  readonly busyMsBySystem = new Map<string, number>();
  /** The server node's batching settings (the legacy form's cloud section). */
  private readonly batching: { gpus: number; tokenBudget: number; maxBatchSeqs: number; router: 'least-loaded' | 'round-robin' };
  /** The scenario has shared bottlenecks: both directions are shaped here, jointly (live/shared-net.ts). */
  readonly sharedMode: boolean;
  /** The current system run's network (shared-bottleneck mode only). */
  private sharedNet: LiveSharedNetwork | null = null;

  constructor(private readonly opts: CloudServerOptions) {
    checkLiveModels(opts.scenario);
    this.tb = buildTestbed(opts.scenario);
    const s = opts.scenario;
    const batching = deviceLink(this.tb, this.tb.devices[0]).batching;
    this.batching = batching;
    this.sharedMode = shapesAtServer(this.tb);
    this.replicas = Array.from({ length: batching.gpus }, (_, i) => new LiveReplica(i));
    this.router = makeRouter(batching.router);
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
    this.maxFrame = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.expectedDevices = opts.devices ?? this.tb.devices.length;
    if (opts.emulate) {
      const lat = resolveLatency({ hardwareId: opts.emulate, model: this.tb.model, plan: this.tb.plan, calibrationDir: s.calibrationDir });
      const works = new Set(s.systems.map((id) => SYSTEMS[id].cloudWork));
      for (const w of works) this.emu[w] = lat.submodel(w);
    }
  }

  /** Load the ONNX parts, then listen. Resolves with the bound port. */
  async start(): Promise<number> {
    const s = this.opts.scenario;
    if (!this.opts.noCompute) {
      const works = new Set(s.systems.map((id) => SYSTEMS[id].cloudWork));
      this.compute = new HybridCompute({
        plan: { modelId: this.tb.model.id, inputLayers: this.tb.plan.inputLayers, outputLayers: this.tb.plan.outputLayers, middleLayers: this.tb.plan.middleLayers, drafterModelId: this.tb.drafterModel.id },
        need: { device: false, drafter: false, cloud: works.size > 0 }, onnxDir: this.opts.onnxDir,
      }, smallModel(this.tb.model.hiddenSize, this.tb.model.intermediateSize) ? (this.opts.inlineBelowMs ?? 2) : 0);
      await this.compute.init();
      for (const id of s.systems) {
        const w = SYSTEMS[id].cloudWork;
        this.predict[w] ??= this.tb.cloudLatency.submodel(w);
      }
    }
    if (this.opts.stepsPath) this.steps = new StepLog(this.opts.stepsPath);
    const host = this.opts.host ?? '127.0.0.1';
    const wss = new WebSocketServer({
      host, port: this.opts.port ?? 0,
      // Frames up to 2x the limit are read and rejected with an error frame; larger ones are cut by ws (close 1009).
      maxPayload: 2 * this.maxFrame + HEADER_BYTES,
      perMessageDeflate: false,
    });
    this.wss = wss;
    await new Promise<void>((resolve, reject) => { wss.once('listening', resolve); wss.once('error', reject); });
    wss.on('connection', (ws, req) => this.onConnection(ws, req));
    return (wss.address() as AddressInfo).port;
  }

  private onConnection(ws: WebSocket, req: IncomingMessage): void {
    const conn: Conn = { ws, id: this.nextConnId++, deviceId: -1, hello: false, systemIndex: -1, sender: new ShapedSender(null), closed: false, path: -1, ingress: null, egress: null };
    this.conns.add(conn);
    ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(conn, data, isBinary));
    ws.on('close', (code) => {
      if (code === 1009) this.reject(conn, `connection ${conn.id} (${req.socket.remoteAddress}): message larger than ${2 * this.maxFrame} bytes cut by the WebSocket layer`, null);
      this.onClose(conn);
    });
    ws.on('error', (e) => this.log(`cloud: connection ${conn.id}: ${e.message}`));
  }

  private reject(conn: Conn, why: string, code: string | null): void {
    this.rejections.push(why);
    this.log(`cloud: rejected: ${why}`);
    if (code !== null && conn.ws.readyState === conn.ws.OPEN) {
      conn.ws.send(encodeFrame(makeFrame(FrameType.error, { deviceId: Math.max(0, conn.deviceId), dtype: Dtype.utf8, payload: new TextEncoder().encode(`${code}: ${why}`) })));
      conn.ws.close(1008, code.slice(0, 100));
    }
  }

  private onMessage(conn: Conn, data: Buffer, isBinary: boolean): void {
    if (conn.closed) return;
    let f: Frame;
    try {
      if (!isBinary) throw new WireError('bad-type', 'text messages are not part of the protocol; send binary frames');
      f = decodeFrame(data, this.maxFrame);
      checkShape(f, this.tb.model.hiddenSize);
    } catch (e) {
      this.failed(conn, e);
      return;
    }
    this.guarded(conn, () => this.handle(conn, f));
  }

  /** Run `fn`; a protocol error it throws rejects the connection (as a bad frame does). */
  private guarded(conn: Conn, fn: () => void): void {
    try { fn(); } catch (e) { this.failed(conn, e); }
  }

  private failed(conn: Conn, e: unknown): void {
    if (e instanceof WireError) this.reject(conn, `connection ${conn.id} device ${conn.deviceId}: ${e.message}`, e.code);
    else this.reject(conn, `connection ${conn.id} device ${conn.deviceId}: ${e instanceof Error ? e.message : String(e)}`, 'internal');
  }

  private handle(conn: Conn, f: Frame): void {
    if (f.type === FrameType.hello) { this.onHello(conn, f); return; }
    if (f.type === FrameType.ping) { this.write(conn, makeFrame(FrameType.pong, { deviceId: f.deviceId, seq: f.seq })); return; }
    if (!conn.hello) throw new WireError('bad-state', `${frameTypeName(f.type)} before hello`);
    if (f.deviceId !== conn.deviceId) throw new WireError('bad-state', `frame for device ${f.deviceId} on device ${conn.deviceId}'s connection`);
    const net = this.sharedNet, ingress = conn.ingress;
    if (net && ingress) {
      // Shared-bottleneck mode: the device wrote its frame unshaped with its modelled uplink bytes
      // in u1; it is processed when the network delivers it, in the connection's frame order.
      const upBytes = f.type === FrameType.request && (f.flags & Flag.chained) === 0 ? f.u1 : 0;
      if (upBytes > 2 * this.maxFrame) throw new WireError('bad-shape', `request says ${upBytes} modelled uplink bytes (u1), more than 2 x the frame limit ${this.maxFrame}`);
      const run = (): void => this.guarded(conn, () => this.dispatch(conn, f));
      if (upBytes > 0) {
        const ready = ingress.hold(run);
        net.send(conn.path, 'up', upBytes, (ms) => { f.f2 = ms; ready(); });
      } else {
        f.f2 = 0;
        ingress.now(run);
      }
      return;
    }
    this.dispatch(conn, f);
  }

  /** A frame of a connection that said hello, when it is due (at once, or at its shared-network delivery). */
  private dispatch(conn: Conn, f: Frame): void {
    if (conn.closed) return;
    switch (f.type) {
      case FrameType.request: this.onRequest(conn, f); break;
      case FrameType.loadQuery: {
        const key = `${conn.deviceId}:${f.requestId}`;
        const e = this.entry(key);
        const r = this.replicas[e.replica];
        this.sendControl(conn, () => this.write(conn, makeFrame(FrameType.loadReply, { deviceId: conn.deviceId, requestId: f.requestId, u0: r.index, u1: r.queuedTokens, f0: r.activeRequests })));
        break;
      }
      case FrameType.bye:
        if (f.flags & Flag.requestDone) this.release(`${conn.deviceId}:${f.requestId}`);
        break;
      default:
        throw new WireError('bad-type', `a device may not send ${frameTypeName(f.type)} frames`);
    }
  }

  private onHello(conn: Conn, f: Frame): void {
    const j = parseJsonPayload(f);
    if (this.opts.token) {
      if (typeof j.tokenSha256 !== 'string' || j.tokenSha256 !== tokenHash(this.opts.token)) throw new WireError('bad-auth', 'hello without the right shared-secret token');
    }
    if (f.deviceId >= this.tb.devices.length) throw new WireError('bad-state', `device ${f.deviceId} is not in the scenario (${this.tb.devices.length} devices)`);
    for (const c of this.conns) {
      if (c !== conn && c.hello && c.deviceId === f.deviceId && !c.closed) throw new WireError('bad-state', `device ${f.deviceId} is already connected`);
    }
    const idx = typeof j.systemIndex === 'number' ? j.systemIndex : -1;
    const system = typeof j.system === 'string' ? j.system : '';
    if (idx < 0 || idx >= this.opts.scenario.systems.length || this.opts.scenario.systems[idx] !== system) {
      throw new WireError('bad-state', `hello for system ${system} #${idx}, the scenario runs ${this.opts.scenario.systems.join(', ')}`);
    }
    conn.hello = true;
    conn.deviceId = f.deviceId;
    conn.systemIndex = idx;
    const d = this.tb.devices[f.deviceId];
    const dl = deviceLink(this.tb, d), link = dl.link;
    const streams = new RngStreams(this.opts.scenario.seed);
    // Shared-bottleneck mode: the system's LiveSharedNetwork shapes both directions; the sender only keeps order.
    const model = this.sharedMode ? null : new LinkModel({ mbps: link.downlinkMbps, latencyMs: link.latencyMs, jitterMs: link.jitterMs }, link.jitterMs > 0 ? streams.get(`net/${d.index}/jitter/down`) : null);
    if (this.sharedMode) { conn.path = dl.path; conn.ingress = new OrderedRelease(); conn.egress = new OrderedRelease(); }
    // The device measured the real one-way transit; the downlink writes that much early (docs/LIVE.md).
    const leadMs = typeof j.transitMs === 'number' && j.transitMs >= 0 && j.transitMs < 50 ? j.transitMs : 0;
    if (f.flags & Flag.rejoin) {
      // After a reconnect: no barrier; the system is already running.
      conn.sender = new ShapedSender(model, undefined, leadMs);
      this.write(conn, makeFrame(FrameType.helloAck, { deviceId: conn.deviceId, payload: jsonPayload({ startInMs: 0 }) }));
      if (this.currentSystem !== system) { this.currentSystem = system; this.systemT0 = performance.now(); this.startSharedNet(); }
      return;
    }
    conn.sender = new ShapedSender(model, undefined, leadMs);
    let set = this.barrier.get(idx);
    if (!set) { set = new Set(); this.barrier.set(idx, set); }
    set.add(conn);
    const live = [...set].filter((c) => !c.closed);
    if (live.length >= this.expectedDevices) {
      this.barrier.delete(idx);
      const delay = this.opts.startDelayMs ?? 300;
      this.currentSystem = system;
      this.systemT0 = performance.now() + delay;
      this.startSharedNet();
      for (const c of live) this.write(c, makeFrame(FrameType.helloAck, { deviceId: c.deviceId, payload: jsonPayload({ startInMs: delay }) }));
      this.log(`cloud: system ${system} starts (${live.length} devices)`);
    }
  }

  /** Shared-bottleneck mode: a fresh network (and jitter streams) for the system run starting at systemT0. */
  private startSharedNet(): void {
    if (!this.sharedMode) return;
    this.sharedNet?.close();
    this.sharedNet = new LiveSharedNetwork(deviceNetwork(this.tb), this.opts.scenario.seed, this.systemT0);
  }

  /** A control frame to the device: unshaped, never ahead of the replies queued before it. */
  private sendControl(conn: Conn, write: () => void): void {
    if (conn.egress) conn.egress.now(write);
    else conn.sender.sendUnshaped(write);
  }

  private entry(key: string): ReqEntry {
    let e = this.requests.get(key);
    if (!e) {
      const active = this.replicas.map((r) => r.activeRequests), queued = this.replicas.map((r) => r.queuedTokens);
      const replica = this.router.pick(active, queued);
      this.replicas[replica].activeRequests++;
      e = { batchMark: 0, replica, outstanding: 0, chained: [], numericId: this.nextNumericId++ };
      this.requests.set(key, e);
    }
    return e;
  }

  private release(key: string): void {
    const e = this.requests.get(key);
    if (!e) return;
    this.requests.delete(key);
    this.replicas[e.replica].activeRequests--;
    const r = this.replicas[e.replica];
    const before = r.queue.length;
    r.queue = r.queue.filter((j) => { const keep = j.key !== key || j.taken > 0; if (!keep) r.queuedTokens -= j.tokens - j.done; return keep; });
    if (r.queue.length !== before) this.log(`cloud: dropped ${before - r.queue.length} queued jobs of ${key}`);
  }

  private onRequest(conn: Conn, f: Frame): void {
    const key = `${conn.deviceId}:${f.requestId}`;
    const e = this.entry(key);
    const job: Job = {
      request: e, conn, key, devRequest: f.requestId, seq: f.seq, work: f.work === Work.middle ? 'middle' : 'full',
      tokens: f.tokens, done: 0, ctx: f.ctx, logits: f.logits, replyBytes: f.u0, enqueuedMs: performance.now(), started: false,
      queueMs: 0, computeMs: 0, taken: 0, upMs: this.sharedNet ? f.f2 : 0,
    };
    if (job.replyBytes > this.maxFrame) throw new WireError('too-large', `requested reply of ${job.replyBytes} bytes exceeds the limit`);
    if ((f.flags & Flag.chained) && e.outstanding > 0) { e.outstanding++; e.chained.push(job); return; }
    e.outstanding++;
    this.submit(e.replica, job);
  }

  private submit(replica: number, job: Job): void {
    const r = this.replicas[replica];
    r.queue.push(job);
    r.queuedTokens += job.tokens;
    if (!r.busy) this.startStep(r);
  }

  private startStep(r: LiveReplica): void {
    const shape: BatchShape = { seqs: 0, tokens: 0, tokCtx: 0, ctx: 0, tokSq: 0 };
    const logits = composeStep(r.queue, this.batching.tokenBudget, this.batching.maxBatchSeqs, this.taken, shape);
    const step: Job[] = [];
    const passes: PassRequest[] = [];
    const now = performance.now();
    let work: 'middle' | 'full' = 'middle';
    for (let i = 0; i < r.queue.length; i++) {
      const t = this.taken[i];
      if (t === 0) continue;
      const job = r.queue[i];
      const ctxNow = job.ctx + job.done;
      const last = job.done + t === job.tokens;
      if (!job.started) { job.started = true; job.queueMs = now - job.enqueuedMs; }
      work = job.work;
      passes.push({ work: job.work, tokens: t, ctx: ctxNow, logits: last ? job.logits : 0 });
      step.push(job);
    }
    if (step.length === 0) { r.busy = false; return; }
    r.busy = true;
    const emu = this.emu[work];
    const target = emu ? emu.batchMs(shape, logits) : 0;
    const predicted = this.predict[work]?.batchMs(shape, logits) ?? Infinity;
    // Logged for host fits: the simulator's step on a CPU server host (sim/cloud.ts), its passes one after another.
    const simMs = passes.reduce((a, p) => a + (this.predict[work]?.batchMs(singleShape(p.tokens, p.ctx), p.logits) ?? 0), 0);
    const system = this.currentSystem;
    const run = async (): Promise<number> => {
      let real = 0;
      if (this.compute) real = (await this.compute.run(passes, predicted)).reduce((a, b) => a + b, 0);
      if (target > 0) await sleepUntil(now + target);
      return real;
    };
    run().then(
      (real) => this.stepDone(r, step, now, real, target, simMs, system),
      (e: unknown) => {
        this.log(`cloud: step failed: ${e instanceof Error ? e.message : String(e)}`);
        this.stepDone(r, step, now, 0, target, simMs, system);
      },
    );
  }

  private stepDone(r: LiveReplica, step: Job[], startMs: number, realMs: number, targetMs: number, simMs: number, system: string): void {
    const endMs = performance.now();
    const ms = endMs - startMs;
    r.busyMs += ms;
    this.busyMsBySystem.set(system, (this.busyMsBySystem.get(system) ?? 0) + ms);
    this.steps?.row({
      system, role: 'cloud', request: -1, kind: 'step', label: `replica ${r.index}: ${step.length} jobs`,
      tokens: step.reduce((a, j) => a + j.taken, 0), ctx: step.reduce((a, j) => a + j.ctx + j.done, 0),
      start_ms: startMs - this.systemT0, end_ms: endMs - this.systemT0, real_ms: realMs, target_ms: targetMs, sim_ms: simMs, bytes: 0, frame_bytes: 0,
    });
    const finished: Job[] = [];
    for (const job of step) {
      job.done += job.taken;
      r.queuedTokens -= job.taken;
      job.taken = 0;
      job.computeMs += ms;
      if (job.done >= job.tokens) finished.push(job);
    }
    if (finished.length > 0) r.queue = r.queue.filter((j) => j.done < j.tokens);
    // Same order as the simulator: the next step is formed before waiters see their results.
    this.startStep(r);
    for (const job of finished) {
      this.reply(job);
      const e = this.requests.get(job.key);
      if (!e) continue;
      e.outstanding--;
      if (e.outstanding > 0 && e.chained.length > 0 && e.outstanding === e.chained.length) {
        const next = e.chained.shift()!;
        next.enqueuedMs = performance.now();
        this.submit(e.replica, next);
      }
    }
  }

  private reply(job: Job): void {
    const conn = job.conn;
    if (conn.closed) return;
    // Per-request attribution (live/attribution.ts): the job's queueing and compute, on this process's clock.
    const startedMs = job.enqueuedMs + job.queueMs, nowMs = performance.now();
    for (const [kind, a, b] of [['job-queue', job.enqueuedMs, startedMs], ['job-compute', startedMs, nowMs]] as const) {
      this.steps?.row({
        system: this.currentSystem, role: 'cloud', request: job.devRequest, kind, label: `device ${conn.deviceId} seq ${job.seq}`, tokens: job.tokens, ctx: job.ctx,
        start_ms: a - this.systemT0, end_ms: b - this.systemT0, real_ms: kind === 'job-compute' ? job.computeMs : 0, target_ms: 0, sim_ms: 0, bytes: 0, frame_bytes: 0,
      });
    }
    const s = this.opts.scenario;
    const elem = this.tb.model.activationBytesPerElem === 4 ? 4 : 2;
    const hiddenRow = this.tb.model.hiddenSize * elem;
    const isHidden = job.work === 'middle';
    const payloadTokens = isHidden ? Math.round(job.replyBytes / hiddenRow) : Math.round(job.replyBytes / 4);
    const payload = new Uint8Array(isHidden ? payloadTokens * hiddenRow : payloadTokens * 4);
    const frame = makeFrame(FrameType.reply, {
      deviceId: conn.deviceId, requestId: job.devRequest, seq: job.seq, work: isHidden ? Work.middle : Work.full,
      dtype: isHidden ? (elem === 4 ? Dtype.fp32 : Dtype.fp16) : Dtype.int32, tokens: job.tokens, ctx: job.ctx, logits: job.logits, payloadTokens,
      f0: job.queueMs, f1: job.computeMs, u0: this.requests.get(job.key)?.replica ?? 0, u1: this.replicas[this.requests.get(job.key)?.replica ?? 0]?.activeRequests ?? 0,
      payload,
    });
    const bytes = job.replyBytes + s.network.headerBytes;
    const net = this.sharedNet, egress = conn.egress;
    if (net && egress) {
      // f2 = the shaped network ms of the exchange: this reply's downlink + its request's uplink (the device sent it unshaped).
      const ready = egress.hold(() => this.write(conn, frame));
      net.send(conn.path, 'down', bytes, (ms) => { frame.f2 = job.upMs + ms; ready(); });
      return;
    }
    conn.sender.send(bytes, (t) => { frame.f2 = t.deliverMs - t.handedMs; this.write(conn, frame); });
  }

  private write(conn: Conn, f: Frame): void {
    if (conn.closed || conn.ws.readyState !== conn.ws.OPEN) return;
    conn.ws.send(encodeFrame(f), { binary: true });
  }

  private onClose(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    conn.sender.close();
    conn.ingress?.close();
    conn.egress?.close();
    this.conns.delete(conn);
    if (conn.deviceId < 0 || !conn.hello) return;
    // Free the device's state: queued jobs (not running) dropped, replicas released.
    let dropped = 0;
    for (const r of this.replicas) {
      const before = r.queue.length;
      r.queue = r.queue.filter((j) => { const keep = j.conn !== conn || j.taken > 0; if (!keep) r.queuedTokens -= j.tokens - j.done; return keep; });
      dropped += before - r.queue.length;
    }
    let released = 0;
    for (const key of [...this.requests.keys()]) {
      if (key.startsWith(`${conn.deviceId}:`)) { this.release(key); released++; }
    }
    for (const set of this.barrier.values()) set.delete(conn);
    this.log(`cloud: device ${conn.deviceId} disconnected; dropped ${dropped} queued jobs, released ${released} requests`);
  }

  /** For tests: current server state. */
  state(): { connections: number; requests: number; queued: number; active: number[] } {
    return {
      connections: this.conns.size, requests: this.requests.size,
      queued: this.replicas.reduce((a, r) => a + r.queue.length, 0), active: this.replicas.map((r) => r.activeRequests),
    };
  }

  /** Stop accepting, say bye to every device, close. */
  async close(): Promise<void> {
    const wss = this.wss;
    this.wss = null;
    for (const c of this.conns) {
      this.write(c, makeFrame(FrameType.bye, { deviceId: Math.max(0, c.deviceId) }));
      c.ws.close(1001, 'server shutting down');
    }
    if (wss) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => { for (const c of wss.clients) c.terminate(); resolve(); }, 1500);
        wss.close(() => { clearTimeout(t); resolve(); });
      });
    }
    this.sharedNet?.close();
    this.sharedNet = null;
    this.steps?.close();
    this.steps = null;
    if (this.compute) await this.compute.close();
    this.compute = null;
  }
}

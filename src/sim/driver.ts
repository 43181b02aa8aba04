/**
 * The simulator's driver for protocol generators. A `Proc` runs one protocol
 * branch: it pulls ops from the generator and executes them against the
 * simulated device processor, network and cloud, resuming the generator when
 * the op completes (in simulated time). Ops that take no time (accept, emit,
 * fork, cloudLoad, now, note) are handled inline without an event.
 */
import type { Engine, Handler } from '../core/engine.js';
import type { Rng } from '../core/rng.js';
import type { Direction, SimNetwork } from '../network/types.js';
import { OpSequence, type Op, type Proto, type Resume } from '../protocol/ops.js';
import type { CloudCluster, CloudJob, CloudWaiter } from './cloud.js';
import type { ComputeWaiter, DeviceProcessor } from './device.js';
import type { RequestState } from './request.js';
import type { NodeStats, SimWorld } from './world.js';
import { decideStream } from '../policy/decide.js';

/** Everything a request's processes need from its device and the testbed. */
export interface DeviceContext {
  engine: Engine;
  /** Network path of this device to its server (the HAT family's up/down), or -1. */
  index: number;
  /** This device's node in the topology. */
  node: number;
  processor: DeviceProcessor;
  network: SimNetwork;
  /** The batching cluster of this device's server (the HAT family's `cloud` op), or null. */
  cloud: CloudCluster | null;
  world: SimWorld;
  /** This device node's accounting (nodes.csv), kept here for the hot path. */
  stats: NodeStats;
  acceptRng: Rng;
  /** The run's seed (per-request decision streams of the `draw` op). */
  seed: number;
  headerBytes: number;
  /** Latency (ms) of device work, from the device's latency models. */
  computeMs(op: Extract<Op, { op: 'compute' }>): number;
}


/**
 * All branches of one request. A fork handle indexes `doneAtS` (when that branch
 * finished), so any branch can join a branch forked by another (e.g. the root joins
 * adapter passes forked by chunk branches). Only the flags are kept, not the
 * branches: a finished branch and its generator are garbage at once (a request of
 * the cloud system forks one branch per output token).
 */
class Family {
  /** Per fork handle: when the branch finished (or will: a settled delivery), Infinity while it runs. */
  readonly doneAtS: number[] = [];
  /** Forked branches still running (settled ones not counted). */
  running = 0;
  /** The latest finish time of a settled branch. */
  settledUntilS = -Infinity;
  readonly joiners: Proc[] = [];

  /** A new running branch: its handle. */
  add(): number {
    this.running++;
    return this.doneAtS.push(Infinity) - 1;
  }

  /** A branch settled in closed form, finishing at `atS`: its handle. */
  addSettled(atS: number): number {
    if (atS > this.settledUntilS) this.settledUntilS = atS;
    return this.doneAtS.push(atS) - 1;
  }
}

/** Proc event tags: a network delivery, or the end of a join on settled branches. */
const TAG_DELIVERED = 0, TAG_JOINED = 1;

/** One running protocol branch. The root proc calls `onFinish` when the whole request is done. */
export class Proc implements Handler, ComputeWaiter, CloudWaiter {
  private waitingOn: readonly number[] | null = null;
  finished = false;
  private netStartS = 0;
  private netDir: Direction = 'up';
  private netLabel = '';
  private drafting = false;
  private job: CloudJob | null = null;
  private readonly family: Family;
  /** This branch's fork handle (-1: the root). */
  private handle = -1;
  /** Node of the `exec` or `compute` op in flight (-1: none), when it was submitted, the request's cloud queue time then. */
  private execNode = -1;
  private execSubmitS = 0;
  private execQueueBeforeMs = 0;

  constructor(
    private readonly gen: Proto,
    private readonly dev: DeviceContext,
    readonly req: RequestState,
    private readonly onFinish: ((engine: Engine) => void) | null,
    family?: Family,
  ) {
    this.family = family ?? new Family();
  }

  start(): void { this.step(undefined); }

  // Network delivery, or a join's wake-up (Handler).
  fire(engine: Engine, tag: number): void {
    const req = this.req;
    req.applyUntil(engine.nowS);
    if (tag === TAG_JOINED) { this.step(undefined); return; }
    const ms = (engine.nowS - this.netStartS) * 1000;
    req.networkMs += ms;
    if (req.spans) req.span(this.netDir === 'up' ? 'uplink' : 'downlink', this.netLabel, this.netStartS, engine.nowS);
    this.step(undefined);
  }

  computeDone(engine: Engine, startS: number, durationMs: number): void {
    const req = this.req, n = this.execNode;
    if (n >= 0) {
      // A place-naming exec on a single/workers node.
      this.execNode = -1;
      const st = this.dev.world.nodes[n].stats;
      const waitMs = (startS - this.execSubmitS) * 1000;
      st.jobs++; st.waitMs += waitMs; st.computeMs += durationMs;
      if (n === this.dev.node) req.deviceComputeMs += durationMs;
      else { req.cloudComputeMs += durationMs; req.cloudQueueMs += waitMs; }
      if (req.hops) req.hops.push({ node: n, submitS: this.execSubmitS, startS, endS: engine.nowS });
      if (req.spans) req.span(n === this.dev.node ? 'device-compute' : 'node-compute', this.netLabel, startS, engine.nowS);
      this.step(undefined);
      return;
    }
    req.deviceComputeMs += durationMs;
    const st = this.dev.stats;
    st.jobs++; st.waitMs += (startS - this.execSubmitS) * 1000; st.computeMs += durationMs;
    if (req.spans) req.span(this.drafting ? 'drafting' : 'device-compute', this.netLabel, startS, engine.nowS);
    this.step(undefined);
  }

  cloudDone(engine: Engine): void {
    const n = this.execNode;
    if (n >= 0) {
      this.execNode = -1;
      const req = this.req;
      if (req.hops) {
        const startS = this.execSubmitS + (req.cloudQueueMs - this.execQueueBeforeMs) / 1000;
        req.hops.push({ node: n, submitS: this.execSubmitS, startS, endS: engine.nowS });
      }
    }
    this.step(undefined);
  }

  /** When every branch this proc joins will have finished: Infinity while one still runs. */
  private joinAtS(): number {
    const handles = this.waitingOn!, doneAt = this.family.doneAtS;
    let t = -Infinity;
    for (let i = 0; i < handles.length; i++) { const d = doneAt[handles[i]]; if (d > t) t = d; }
    return t;
  }

  /** Resume after a join whose branches finish at `atS`: now, or by an event then (settled branches). */
  private joined(engine: Engine, atS: number): void {
    this.waitingOn = null;
    if (atS <= engine.nowS) this.step(undefined);
    else engine.schedule(atS, this, TAG_JOINED);
  }

  /** A branch of the family finished: wake joiners whose branches are now all done. */
  private static branchFinished(family: Family, engine: Engine): void {
    if (family.joiners.length === 0) return;
    if (family.joiners.length === 1) {
      // The common case (the root joining its chunks or a verification): no arrays.
      const p = family.joiners[0], at = p.joinAtS();
      if (at === Infinity) return;
      family.joiners.pop();
      p.joined(engine, at);
      return;
    }
    const ready = family.joiners.filter((p) => p.joinAtS() !== Infinity);
    if (ready.length === 0) return;
    for (const p of ready) family.joiners.splice(family.joiners.indexOf(p), 1);
    const at = ready.map((p) => p.joinAtS());
    ready.forEach((p, i) => p.joined(engine, at[i]));
  }

  /**
   * Fork of a fixed "down, emit" branch (protocol/ops.ts OpSequence) on a fixed-rate path:
   * its delivery time is known now, so it is settled without a branch or an event (the
   * request applies its network time and tokens when the clock gets there). False if it
   * does not qualify (the caller forks it as usual).
   */
  private forkSettled(body: OpSequence): number {
    const ops = body.ops, dev = this.dev, req = this.req;
    if (ops.length !== 2 || req.spans !== null || dev.index < 0) return -1;
    const d = ops[0], e = ops[1];
    if (d.op !== 'down' || e.op !== 'emit') return -1;
    const now = dev.engine.nowS;
    const net = dev.network;
    if (net.settle === undefined) return -1;
    const atS = net.settle(dev.index, 'down', d.hiddenBytes + d.rawTokenBytes + dev.headerBytes, dev.engine.untilS);
    if (atS !== atS) return -1; // NaN: not a fixed-rate pipe, or delivered after the horizon
    req.hiddenDown += d.hiddenBytes; req.rawDown += d.rawTokenBytes; req.headerDown += dev.headerBytes;
    req.settle(atS, (atS - now) * 1000, e.tokens);
    return this.family.addSettled(atS);
  }

  private step(value: Resume): void {
    const dev = this.dev, req = this.req, engine = dev.engine;
    for (;;) {
      const r = this.gen.next(value);
      if (r.done) { this.finish(engine); return; }
      const op = r.value;
      value = undefined;
      switch (op.op) {
        case 'compute': {
          this.netLabel = op.label;
          this.drafting = op.work === 'slm' || (op.work === 'drafter' && op.tokens === 1);
          this.execSubmitS = engine.nowS;
          dev.processor.submit(this, dev.computeMs(op), op.background);
          return;
        }
        case 'up':
        case 'down': {
          const payload = op.hiddenBytes + op.rawTokenBytes;
          const bytes = payload + dev.headerBytes;
          if (op.op === 'up') { req.hiddenUp += op.hiddenBytes; req.rawUp += op.rawTokenBytes; req.headerUp += dev.headerBytes; }
          else { req.hiddenDown += op.hiddenBytes; req.rawDown += op.rawTokenBytes; req.headerDown += dev.headerBytes; }
          this.netStartS = engine.nowS;
          this.netDir = op.op;
          this.netLabel = op.label;
          dev.network.send(dev.index, op.op, bytes, this, TAG_DELIVERED);
          return;
        }
        case 'cloud': {
          if (dev.cloud === null) throw new Error(`system issued a cloud op but device ${req.deviceName} has no batching server (bug: SystemDef.check)`);
          const replica = dev.cloud.assign(req);
          replica.submit(this.cloudJob(op.tokens, op.ctx, op.logits, op.label));
          return;
        }
        case 'accept':
          value = req.verifyRound(dev.acceptRng, op.drafted, op.rate, op.rates);
          break;
        case 'emit':
          req.applyUntil(engine.nowS);
          req.tokens(op.tokens, engine.nowS);
          break;
        case 'fork': {
          if (op.body instanceof OpSequence) {
            const h = this.forkSettled(op.body);
            if (h >= 0) { value = h; break; }
          }
          const child = new Proc(op.body, dev, req, null, this.family);
          value = child.handle = this.family.add();
          child.start();
          break;
        }
        case 'join': {
          if (op.handles.length === 0) break;
          this.waitingOn = op.handles;
          const atS = this.joinAtS();
          if (atS <= engine.nowS) { this.waitingOn = null; break; }
          if (atS === Infinity) this.family.joiners.push(this);
          else this.joined(engine, atS);
          return;
        }
        case 'cloudLoad':
          if (dev.cloud === null) throw new Error(`system asked for a cloud load but device ${req.deviceName} has no batching server (bug: SystemDef.check)`);
          value = dev.cloud.load(req);
          break;
        case 'now':
          value = engine.nowS * 1000;
          break;
        case 'note':
          if (op.key === 'chunkTokens') req.chunkTokens = op.value;
          break;
        // Place-naming ops (topology systems), after the HAT family's hot ones.
        case 'exec': {
          const sn = dev.world.nodes[op.node];
          sn.stats.arrivals++;
          this.netLabel = op.label;
          this.drafting = false;
          this.execNode = op.node;
          this.execSubmitS = engine.nowS;
          if (sn.node.processor.kind === 'batching') {
            const replica = sn.clusterFor(op.part.key, () => sn.partModel(op.part)).assignExec(req);
            this.execQueueBeforeMs = req.cloudQueueMs;
            replica.submit(this.cloudJob(op.tokens, op.ctx, op.logits, op.label));
            return;
          }
          const ms = sn.partMs(op.part, op.tokens, op.ctx, op.logits);
          if (sn.single !== null) sn.single.submit(this, ms, false);
          else sn.pool!.submit(this, ms);
          return;
        }
        case 'send': {
          if (op.from === op.to) break; // same node: no network
          const world = dev.world;
          const bytes = op.hiddenBytes + op.rawTokenBytes + world.headerBytes;
          // From the request's point of view: a message to its device is "down", any other "up".
          if (op.to !== dev.node) { req.hiddenUp += op.hiddenBytes; req.rawUp += op.rawTokenBytes; req.headerUp += world.headerBytes; }
          else { req.hiddenDown += op.hiddenBytes; req.rawDown += op.rawTokenBytes; req.headerDown += world.headerBytes; }
          const p = world.path(op.from, op.to);
          this.netStartS = engine.nowS;
          this.netDir = op.to === dev.node ? 'down' : 'up';
          this.netLabel = op.label;
          world.network.send(p.path, p.dir, bytes, this, TAG_DELIVERED);
          return;
        }
        case 'draw':
          // One stream per request (policy/decide.ts): the same draws wherever the task runs, live or simulated.
          value = (req.decide ??= decideStream(dev.seed, req.device, req.index)).uniform();
          break;
        case 'nodeLoad':
          value = dev.world.nodes[op.node].load;
          break;
        case 'mark':
          if (op.key === 'exitStage') req.exitStage = op.value;
          else req.correct = op.value;
          break;
      }
    }
  }

  /**
   * This branch's cloud job, reused: a branch has at most one cloud job in flight, and
   * the replica drops a finished job before resuming its waiter.
   */
  private cloudJob(tokens: number, ctx: number, logits: number, label: string): CloudJob {
    const req = this.req, now = this.dev.engine.nowS;
    let job = this.job;
    if (job === null) {
      job = this.job = {
        request: req, req, waiter: this, tokens, done: 0, ctx, logits,
        enqueuedS: now, started: false, label, taken: 0,
      };
    } else {
      job.tokens = tokens; job.done = 0; job.ctx = ctx; job.logits = logits;
      job.enqueuedS = now; job.started = false; job.label = label; job.taken = 0;
    }
    return job;
  }

  private finish(engine: Engine): void {
    this.finished = true;
    if (this.onFinish) {
      // The root: every branch of the request must have finished (all forks joined).
      if (this.family.running !== 0 || this.family.settledUntilS > engine.nowS) throw new Error(`invariant: request ${this.req.index} on device ${this.req.device} finished with a branch still running`);
      this.req.applyUntil(engine.nowS);
      this.onFinish(engine);
    } else {
      this.family.doneAtS[this.handle] = engine.nowS;
      this.family.running--;
      Proc.branchFinished(this.family, engine);
    }
  }
}

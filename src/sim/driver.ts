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
import type { Op, Proto, Resume } from '../protocol/ops.js';
import type { CloudCluster, CloudJob, CloudWaiter } from './cloud.js';
import type { ComputeWaiter, DeviceProcessor } from './device.js';
import type { RequestState } from './request.js';

/** Everything a request's processes need from its device and the testbed. */
export interface DeviceContext {
  engine: Engine;
  index: number;
  processor: DeviceProcessor;
  network: SimNetwork;
  cloud: CloudCluster;
  acceptRng: Rng;
  headerBytes: number;
  /** Latency (ms) of device work, from the device's latency models. */
  computeMs(op: Extract<Op, { op: 'compute' }>): number;
}


/**
 * All branches of one request. Fork handles index `procs`, so any branch can
 * join a branch forked by another (e.g. the root joins adapter passes forked
 * by chunk branches).
 */
class Family {
  readonly procs: Proc[] = [];
  readonly joiners: Proc[] = [];
}

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

  // Network delivery (Handler).
  fire(engine: Engine): void {
    const req = this.req;
    const ms = (engine.nowS - this.netStartS) * 1000;
    req.networkMs += ms;
    if (req.spans) req.span(this.netDir === 'up' ? 'uplink' : 'downlink', this.netLabel, this.netStartS, engine.nowS);
    this.step(undefined);
  }

  computeDone(engine: Engine, startS: number, durationMs: number): void {
    this.req.deviceComputeMs += durationMs;
    if (this.req.spans) this.req.span(this.drafting ? 'drafting' : 'device-compute', this.netLabel, startS, engine.nowS);
    this.step(undefined);
  }

  cloudDone(): void {
    this.step(undefined);
  }

  private joinReady(): boolean {
    const handles = this.waitingOn!, procs = this.family.procs;
    for (let i = 0; i < handles.length; i++) if (!procs[handles[i]].finished) return false;
    return true;
  }

  /** A branch of the family finished: wake joiners whose branches are now all done. */
  private static branchFinished(family: Family): void {
    if (family.joiners.length === 0) return;
    const ready = family.joiners.filter((p) => p.joinReady());
    if (ready.length === 0) return;
    for (const p of ready) family.joiners.splice(family.joiners.indexOf(p), 1);
    for (const p of ready) {
      p.waitingOn = null;
      p.step(undefined);
    }
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
          dev.network.send(dev.index, op.op, bytes, this, 0);
          return;
        }
        case 'cloud': {
          const replica = dev.cloud.assign(req);
          // One job object per branch, reused: a branch has at most one cloud job in
          // flight, and the replica drops a finished job before resuming its waiter.
          let job = this.job;
          if (job === null) {
            job = this.job = {
              request: req, req, waiter: this, tokens: op.tokens, done: 0, ctx: op.ctx, logits: op.logits,
              enqueuedS: engine.nowS, started: false, label: op.label, taken: 0,
            };
          } else {
            job.tokens = op.tokens; job.done = 0; job.ctx = op.ctx; job.logits = op.logits;
            job.enqueuedS = engine.nowS; job.started = false; job.label = op.label; job.taken = 0;
          }
          replica.submit(job);
          return;
        }
        case 'accept':
          value = req.verifyRound(dev.acceptRng, op.drafted, op.rate);
          break;
        case 'emit':
          req.tokens(op.tokens, engine.nowS);
          break;
        case 'fork': {
          const child = new Proc(op.body, dev, req, null, this.family);
          this.family.procs.push(child);
          value = this.family.procs.length - 1;
          child.start();
          break;
        }
        case 'join': {
          if (op.handles.length === 0) break;
          this.waitingOn = op.handles;
          if (this.joinReady()) { this.waitingOn = null; break; }
          this.family.joiners.push(this);
          return;
        }
        case 'cloudLoad':
          value = dev.cloud.load(req);
          break;
        case 'now':
          value = engine.nowS * 1000;
          break;
        case 'note':
          if (op.key === 'chunkTokens') req.chunkTokens = op.value;
          break;
      }
    }
  }

  private finish(engine: Engine): void {
    this.finished = true;
    if (this.onFinish) {
      // The root: every branch of the request must have finished (all forks joined).
      for (const p of this.family.procs) {
        if (!p.finished) throw new Error(`invariant: request ${this.req.index} on device ${this.req.device} finished with a branch still running`);
      }
      this.onFinish(engine);
    } else {
      Proc.branchFinished(this.family);
    }
  }
}

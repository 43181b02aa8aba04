/**
 * The cloud server: N GPUs, each a replica of the hosted submodel (middle
 * layers for split systems, the whole LLM for cloud/sd), with continuous
 * batching: whenever a replica is idle and work is queued it runs one step
 * over up to `tokenBudget` tokens and `maxBatchSeqs` sequences, taken from its
 * queue in FIFO order. A job larger than the remaining budget is split across
 * steps (chunked prefill). A request contributes at most one job per step, so
 * the chunks and rounds of one request are processed in order (KV cache
 * dependency). A router assigns each request to a replica at its first cloud
 * interaction; the request stays there until it finishes.
 */
import { Prio, type Engine, type Handler } from '../core/engine.js';
import { singleShape, type BatchShape, type SubmodelLatencyModel } from '../compute/types.js';
import { composeStep, type StepWork } from '../policy/batching.js';
import type { Router } from '../policy/router.js';
import type { CloudLoad } from '../protocol/ops.js';
import type { RequestState } from './request.js';
import type { HostCpu, HostJob } from './host.js';

export interface CloudWaiter {
  cloudDone(engine: Engine): void;
}

export interface CloudJob extends StepWork {
  readonly request: RequestState;
  req: RequestState;
  waiter: CloudWaiter;
  tokens: number;
  done: number;
  ctx: number;
  logits: number;
  enqueuedS: number;
  started: boolean;
  label: string;
  /** Tokens taken in the current step. */
  taken: number;
}

export class Replica implements Handler, HostJob {
  private readonly queue: CloudJob[] = [];
  private readonly finished: CloudJob[] = [];
  private step: CloudJob[] = [];
  private stepStartS = 0;
  private busy = false;
  queuedTokens = 0;
  activeRequests = 0;
  busyMs = 0;
  steps = 0;
  /** Jobs started and their total queueing time (nodes.csv). */
  jobs = 0;
  waitMs = 0;
  /** Busy intervals [start, end] in seconds, flattened (growable buffer; see busyIntervalsS). */
  private busyBuf = new Float64Array(1024);
  private busyLen = 0;
  private readonly shape: BatchShape = { seqs: 0, tokens: 0, tokCtx: 0, ctx: 0, tokSq: 0 };
  private readonly taken: number[] = [];
  private stepSize = 0;
  private plannedMs = 0;

  constructor(
    private readonly engine: Engine,
    readonly index: number,
    private readonly model: SubmodelLatencyModel,
    private readonly tokenBudget: number,
    private readonly maxBatchSeqs: number,
    /** The shared host CPU its steps run on (a CPU server on a declared host, sim/host.ts), or null. */
    private readonly host: HostCpu | null = null,
  ) {}

  submit(job: CloudJob): void {
    this.queue.push(job);
    this.queuedTokens += job.tokens;
    if (!this.busy) this.startStep();
  }

  private startStep(): void {
    const s = this.shape;
    const now = this.engine.nowS;
    const logits = composeStep(this.queue, this.tokenBudget, this.maxBatchSeqs, this.taken, s);
    for (let i = 0; i < this.queue.length; i++) {
      if (this.taken[i] === 0) continue;
      const job = this.queue[i];
      if (!job.started) {
        job.started = true;
        const waitMs = (now - job.enqueuedS) * 1000;
        job.req.cloudQueueMs += waitMs;
        this.waitMs += waitMs;
        this.jobs++;
        if (job.req.spans) job.req.span('cloud-queue', job.label, job.enqueuedS, now);
      }
      this.step[this.stepSize++] = job;
    }
    if (this.stepSize === 0) { this.busy = false; return; }
    this.busy = true;
    this.stepStartS = now;
    const ms = this.host !== null ? this.sequentialMs() : this.model.batchMs(s, logits);
    this.plannedMs = ms;
    this.busyMs += ms;
    this.steps++;
    if (this.busyLen + 2 > this.busyBuf.length) {
      const b = new Float64Array(this.busyBuf.length * 2); b.set(this.busyBuf); this.busyBuf = b;
    }
    this.busyBuf[this.busyLen++] = now;
    this.busyBuf[this.busyLen++] = now + ms / 1000;
    if (this.host !== null) this.host.start(this, ms);
    else this.engine.schedule(now + ms / 1000, this, 0, Prio.completion); // = after(ms / 1000): one call less per step
  }

  /**
   * A CPU server process on a shared host (host.shareBatching) runs a step's sequences one
   * pass after another, as the live server does (docs/LIVE.md "Cloud server") [assumption:
   * no batched kernel on the CPU]: the step is the sum of its jobs' single-sequence passes.
   */
  private sequentialMs(): number {
    let ms = 0;
    for (let i = 0; i < this.stepSize; i++) {
      const job = this.step[i];
      ms += this.model.batchMs(singleShape(job.taken, job.ctx + job.done), job.done + job.taken === job.tokens ? job.logits : 0);
    }
    return ms;
  }

  hostDone(engine: Engine): void {
    // The step took what the host gave it (dispatch included, stretched when oversubscribed).
    const ms = (engine.nowS - this.stepStartS) * 1000;
    this.busyBuf[this.busyLen - 1] = engine.nowS;
    this.busyMs += ms - this.plannedMs;
    this.fire(engine);
  }

  /** Busy intervals [start, end] in seconds, flattened, for utilisation over time. */
  get busyIntervalsS(): Float64Array { return this.busyBuf.subarray(0, this.busyLen); }

  fire(engine: Engine): void {
    const startS = this.stepStartS, endS = engine.nowS;
    const ms = (endS - startS) * 1000;
    const finished = this.finished;
    let nFinished = 0;
    for (let i = 0; i < this.stepSize; i++) {
      const job = this.step[i];
      job.done += job.taken;
      this.queuedTokens -= job.taken;
      job.req.cloudComputeMs += ms;
      if (job.req.spans) job.req.span('cloud-compute', job.label, startS, endS);
      if (job.done === job.tokens) finished[nFinished++] = job;
    }
    this.stepSize = 0;
    if (nFinished > 0) {
      // Drop finished jobs from the queue in place, keeping FIFO order.
      const q = this.queue;
      let w = 0;
      for (let r = 0; r < q.length; r++) if (q[r].done < q[r].tokens) q[w++] = q[r];
      while (q.length > w) q.pop(); // pop, not `length = w`: no backing-store trim per step
    }
    this.startStep();
    // Resume waiters after the next step has been formed (iteration-level scheduling:
    // work they issue now joins the step after).
    for (let i = 0; i < nFinished; i++) finished[i].waiter.cloudDone(engine);
  }
}

export class CloudCluster {
  readonly replicas: Replica[];
  private readonly active: Int32Array;
  private readonly queued: Float64Array;

  constructor(engine: Engine, gpus: number, model: SubmodelLatencyModel, tokenBudget: number, maxBatchSeqs: number, private readonly router: Router, host: HostCpu | null = null) {
    this.replicas = [];
    for (let i = 0; i < gpus; i++) this.replicas.push(new Replica(engine, i, model, tokenBudget, maxBatchSeqs, host));
    this.active = new Int32Array(gpus);
    this.queued = new Float64Array(gpus);
  }

  /** The replica serving this request, assigning one by the router on first use. */
  assign(req: RequestState): Replica {
    if (req.replica < 0) {
      for (let i = 0; i < this.replicas.length; i++) {
        this.active[i] = this.replicas[i].activeRequests;
        this.queued[i] = this.replicas[i].queuedTokens;
      }
      req.replica = this.router.pick(this.active, this.queued);
      this.replicas[req.replica].activeRequests++;
    }
    return this.replicas[req.replica];
  }

  /**
   * The replica serving this request on this cluster for `exec` work (a request may visit
   * several batching nodes, so the assignment is kept per cluster on the request).
   */
  assignExec(req: RequestState): Replica {
    let m = req.execReplicas;
    if (m === null) m = req.execReplicas = new Map();
    let r = m.get(this);
    if (r === undefined) {
      for (let i = 0; i < this.replicas.length; i++) {
        this.active[i] = this.replicas[i].activeRequests;
        this.queued[i] = this.replicas[i].queuedTokens;
      }
      r = this.router.pick(this.active, this.queued);
      this.replicas[r].activeRequests++;
      m.set(this, r);
    }
    return this.replicas[r];
  }

  /** Requests assigned to the replicas (the load a node-choosing policy sees). */
  get activeLoad(): number {
    let n = 0;
    for (const r of this.replicas) n += r.activeRequests;
    return n;
  }

  releaseExec(req: RequestState): void {
    const r = req.execReplicas?.get(this);
    if (r !== undefined) this.replicas[r].activeRequests--;
  }

  load(req: RequestState): CloudLoad {
    const r = this.assign(req);
    return { replica: r.index, queuedTokens: r.queuedTokens, activeRequests: r.activeRequests };
  }

  release(req: RequestState): void {
    if (req.replica >= 0) this.replicas[req.replica].activeRequests--;
  }
}

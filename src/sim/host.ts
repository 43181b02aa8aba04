/**
 * A host: the physical machine several nodes sit on (scenario `hosts:`, topology/types.ts
 * HostSpec). Its `cores` are shared by the compute jobs of every member node's processor
 * (single or workers) by processor sharing [assumption]: with n jobs running, each
 * progresses at min(1, cores / (n + backgroundLoad)) of its own speed, so a job's elapsed
 * time stretches when the host is oversubscribed and the host's work is conserved;
 * `backgroundLoad` (default 0) stands for runnable jobs of other programs on the machine
 * (a shared machine's load) [assumption: they are always runnable, like n more jobs]. Each job also pays the
 * host's `dispatchMs` (per-op cost: a process wake-up, feeds, a session call) at full
 * speed as part of its work. Batching processors are not shared [assumption: their
 * steps run on the accelerator] unless the host says `shareBatching` (a CPU server process,
 * as in a live run on one machine): then each step is one job on the cores, pays dispatchMs
 * and runs its sequences' passes one after another (sim/cloud.ts sequentialMs).
 *
 * One completion event is pending at a time (the job that ends first); a change in the
 * number of jobs reschedules it and the stale one is dropped by a generation counter.
 */
import { Prio, type Engine, type Handler } from '../core/engine.js';

export interface HostJob {
  /** Called when the job's work is done. */
  hostDone(engine: Engine): void;
}

interface Running { job: HostJob; remainingMs: number; seq: number }

export class HostCpu implements Handler {
  private readonly running: Running[] = [];
  private lastS = 0;
  private generation = 0;
  private seq = 0;
  /** Work done (ms at full speed), for conservation checks. */
  workMs = 0;

  constructor(private readonly engine: Engine, readonly name: string, readonly cores: number, readonly dispatchMs: number, readonly shareBatching = false, readonly backgroundLoad = 0) {}

  /** Jobs running now. */
  get active(): number { return this.running.length; }

  /** Processor sharing among the own jobs and `backgroundLoad` jobs of other programs. */
  private rate(): number {
    const n = this.running.length + this.backgroundLoad;
    return n <= this.cores ? 1 : this.cores / n;
  }

  /** Bring every job's remaining work up to now at the current rate. */
  private advance(): void {
    const now = this.engine.nowS;
    const doneMs = (now - this.lastS) * 1000 * this.rate();
    if (doneMs > 0) for (const r of this.running) r.remainingMs -= doneMs;
    this.lastS = now;
  }

  /** Run `workMs` (+ dispatchMs) of work for `job`. */
  start(job: HostJob, workMs: number): void {
    this.advance();
    this.running.push({ job, remainingMs: workMs + this.dispatchMs, seq: this.seq++ });
    this.workMs += workMs + this.dispatchMs;
    this.reschedule();
  }

  private reschedule(): void {
    this.generation++;
    if (this.running.length === 0) return;
    let first = this.running[0];
    for (const r of this.running) if (r.remainingMs < first.remainingMs || (r.remainingMs === first.remainingMs && r.seq < first.seq)) first = r;
    this.engine.after(Math.max(0, first.remainingMs) / 1000 / this.rate(), this, this.generation, Prio.completion);
  }

  fire(engine: Engine, tag: number): void {
    if (tag !== this.generation) return; // stale: the job mix changed since it was scheduled
    this.advance();
    // Every job whose work is done (ties end together, in start order).
    const eps = 1e-9;
    const done = this.running.filter((r) => r.remainingMs <= eps).sort((a, b) => a.seq - b.seq);
    if (done.length === 0) { this.reschedule(); return; }
    for (const d of done) this.running.splice(this.running.indexOf(d), 1);
    this.reschedule();
    for (const d of done) d.job.hostDone(engine);
  }
}

/**
 * A device's processor: compute jobs run one at a time (one GPU stream on a
 * Jetson). Foreground jobs run in FIFO order; background jobs (FIFO among
 * themselves) run only when no foreground job is waiting. A running job is
 * never preempted.
 */
import { Prio, type Engine, type Handler } from '../core/engine.js';
import type { HostCpu, HostJob } from './host.js';

export interface ComputeWaiter {
  computeDone(engine: Engine, startS: number, durationMs: number): void;
}

/** FIFO over two arrays whose slots are reused: no resizing on the hot path. */
class Fifo {
  waiters: (ComputeWaiter | null)[] = [];
  durationsMs: number[] = [];
  head = 0;
  tail = 0;
  get empty(): boolean { return this.head === this.tail; }
  push(w: ComputeWaiter, ms: number): void {
    if (this.tail === this.waiters.length) { this.waiters.push(w); this.durationsMs.push(ms); }
    else { this.waiters[this.tail] = w; this.durationsMs[this.tail] = ms; }
    this.tail++;
  }
  reset(): void { this.head = 0; this.tail = 0; }
}

export class DeviceProcessor implements Handler, HostJob {
  private readonly fg = new Fifo();
  private readonly bg = new Fifo();
  private busy = false;
  private currentStartS = 0;
  private currentWaiter: ComputeWaiter | null = null;
  private currentMs = 0;
  busyMs = 0;
  /** Jobs waiting + in service. */
  load = 0;

  /** `host`: the shared host CPU the jobs run on (sim/host.ts), or null (the processor's own). */
  constructor(private readonly engine: Engine, private readonly host: HostCpu | null = null) {}

  submit(waiter: ComputeWaiter, durationMs: number, background = false): void {
    this.load++;
    (background ? this.bg : this.fg).push(waiter, durationMs);
    if (!this.busy) this.startNext();
  }

  private startNext(): void {
    const q = !this.fg.empty ? this.fg : !this.bg.empty ? this.bg : null;
    if (q === null) {
      this.busy = false;
      this.fg.reset(); this.bg.reset();
      return;
    }
    this.busy = true;
    this.currentWaiter = q.waiters[q.head];
    this.currentMs = q.durationsMs[q.head];
    q.waiters[q.head] = null;
    q.head++;
    if (q.empty) q.reset();
    this.currentStartS = this.engine.nowS;
    if (this.host !== null) this.host.start(this, this.currentMs);
    else this.engine.schedule(this.currentStartS + this.currentMs / 1000, this, 0, Prio.completion); // = after(): one call less per job
  }

  hostDone(engine: Engine): void { this.fire(engine); }

  fire(engine: Engine): void {
    const waiter = this.currentWaiter!;
    const startS = this.currentStartS;
    // On a shared host the job took what the host gave it (dispatch included, stretched when oversubscribed).
    const durationMs = this.host === null ? this.currentMs : (engine.nowS - startS) * 1000;
    this.busyMs += durationMs;
    this.load--;
    this.startNext();
    waiter.computeDone(engine, startS, durationMs);
  }
}

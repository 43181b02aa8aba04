/**
 * A node with k identical workers serving one FIFO queue (processor kind `workers`):
 * a job starts as soon as a worker is free, in arrival order. k = 1 is an M/G/1 server
 * (without the `single` processor's background lane).
 */
import { Prio, type Engine, type Handler } from '../core/engine.js';
import type { ComputeWaiter } from './device.js';
import type { HostCpu, HostJob } from './host.js';

interface Slot extends Handler, HostJob { waiter: ComputeWaiter | null; startS: number; ms: number }

export class WorkerPool {
  private readonly waiting: { waiter: ComputeWaiter; ms: number }[] = [];
  private head = 0;
  private readonly free: Slot[] = [];
  busyMs = 0;
  /** Jobs waiting + in service. */
  load = 0;

  /** `host`: the shared host CPU the workers run on (sim/host.ts), or null. */
  constructor(private readonly engine: Engine, readonly workers: number, private readonly host: HostCpu | null = null) {
    for (let i = 0; i < workers; i++) {
      const slot: Slot = {
        waiter: null, startS: 0, ms: 0,
        hostDone: (engine: Engine): void => slot.fire(engine, 0),
        fire: (engine: Engine): void => {
          const w = slot.waiter!;
          slot.waiter = null;
          if (this.host !== null) slot.ms = (engine.nowS - slot.startS) * 1000;
          this.busyMs += slot.ms;
          this.load--;
          this.free.push(slot);
          this.startNext();
          w.computeDone(engine, slot.startS, slot.ms);
        },
      };
      this.free.push(slot);
    }
    this.free.reverse(); // worker 0 first
  }

  submit(waiter: ComputeWaiter, durationMs: number): void {
    this.waiting.push({ waiter, ms: durationMs });
    this.load++;
    this.startNext();
  }

  private startNext(): void {
    while (this.free.length > 0 && this.head < this.waiting.length) {
      const job = this.waiting[this.head++];
      const slot = this.free.pop()!;
      slot.waiter = job.waiter; slot.ms = job.ms; slot.startS = this.engine.nowS;
      if (this.host !== null) this.host.start(slot, job.ms);
      else this.engine.after(job.ms / 1000, slot, 0, Prio.completion);
    }
    if (this.head === this.waiting.length) { this.waiting.length = 0; this.head = 0; }
    else if (this.head > 1024) { this.waiting.splice(0, this.head); this.head = 0; }
  }
}

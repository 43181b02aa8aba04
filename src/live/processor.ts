/**
 * The live device processor: same semantics as sim/device.ts. One job at a
 * time; foreground jobs FIFO; background jobs (FIFO among themselves) only
 * when no foreground job waits; a running job is never preempted.
 */
export type Job = () => Promise<void>;

export class LiveProcessor {
  private readonly fg: { job: Job; done: () => void; fail: (e: Error) => void }[] = [];
  private readonly bg: { job: Job; done: () => void; fail: (e: Error) => void }[] = [];
  private busy = false;
  busyMs = 0;

  submit(job: Job, background = false): Promise<void> {
    return new Promise<void>((done, fail) => {
      (background ? this.bg : this.fg).push({ job, done, fail });
      if (!this.busy) void this.next();
    });
  }

  private async next(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const item = this.fg.shift() ?? this.bg.shift();
        if (!item) return;
        const t0 = performance.now();
        try {
          await item.job();
          this.busyMs += performance.now() - t0;
          item.done();
        } catch (e) {
          item.fail(e instanceof Error ? e : new Error(String(e)));
        }
      }
    } finally {
      this.busy = false;
    }
  }
}

/** Real-time helpers of the live runner: a precise sleep that never blocks the event loop for long. */

/** Resolve at performance.now() >= atMs: setTimeout to ~1.5 ms before, then setImmediate polling. */
export function sleepUntil(atMs: number): Promise<void> {
  return new Promise((resolve) => {
    const tick = (): void => {
      const wait = atMs - performance.now();
      if (wait <= 0) resolve();
      else if (wait > 1.5) setTimeout(tick, wait - 1.5);
      else setImmediate(tick);
    };
    tick();
  });
}

export function sleepMs(ms: number): Promise<void> {
  return sleepUntil(performance.now() + ms);
}

/** Reject after `ms` unless `p` settles first. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then((v) => { clearTimeout(t); resolve(v); }, (e: unknown) => { clearTimeout(t); reject(e instanceof Error ? e : new Error(String(e))); });
  });
}

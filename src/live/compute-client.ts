/** Main-thread handle of the compute worker (compute-worker.ts). */
import { Worker } from 'node:worker_threads';
import type { ComputeConfig, PassRequest } from './compute.js';

interface Reply { id: number; ms?: number[]; error?: string; ready?: boolean }

export class ComputeClient {
  private readonly worker: Worker;
  private nextId = 0;
  private readonly waiting = new Map<number, { resolve: (ms: number[]) => void; reject: (e: Error) => void }>();
  readonly ready: Promise<void>;

  constructor(cfg: ComputeConfig) {
    this.worker = new Worker(new URL('./compute-worker.js', import.meta.url), { workerData: cfg });
    this.ready = new Promise((resolve, reject) => {
      const onMsg = (m: Reply): void => {
        if (m.id === -1) {
          if (m.error) reject(new Error(`compute worker failed to start: ${m.error}`));
          else resolve();
          return;
        }
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        if (m.error) w.reject(new Error(m.error));
        else w.resolve(m.ms ?? []);
      };
      this.worker.on('message', onMsg);
      this.worker.on('error', (e) => { reject(e); for (const w of this.waiting.values()) w.reject(e); this.waiting.clear(); });
    });
  }

  /** Run passes one after another in the worker; resolves with each pass's wall ms. */
  run(passes: PassRequest[]): Promise<number[]> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ id, passes });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/**
 * Worker compute plus, for small models, an in-thread copy: a pass predicted
 * to take less than `inlineBelowMs` runs on the calling (main) thread. On this
 * machine the hop to the worker and its wake-up cost 0.1-0.5 ms, more than
 * such a pass; blocking the event loop for under a couple of ms delays a held
 * frame by at most that. Longer passes always go to the worker.
 */
export class HybridCompute {
  private inline: import('./compute.js').LiveCompute | null = null;
  readonly worker: ComputeClient;

  constructor(private readonly cfg: ComputeConfig, private readonly inlineBelowMs: number) {
    this.worker = new ComputeClient(cfg);
  }

  async init(): Promise<void> {
    await this.worker.ready;
    if (this.inlineBelowMs > 0) {
      const { LiveCompute } = await import('./compute.js');
      this.inline = new LiveCompute(this.cfg);
      await this.inline.init();
    }
  }

  get inlineEnabled(): boolean { return this.inline !== null; }

  async run(passes: PassRequest[], predictedMs: number): Promise<number[]> {
    if (this.inline && predictedMs < this.inlineBelowMs) {
      const out: number[] = [];
      for (const p of passes) out.push(await this.inline.pass(p));
      return out;
    }
    return this.worker.run(passes);
  }

  close(): Promise<void> { return this.worker.close(); }
}

/** Inline small passes only for small models (decoder layer under 16 MB of fp32 weights). */
export function smallModel(hiddenSize: number, intermediateSize: number): boolean {
  return (4 * hiddenSize * hiddenSize + 3 * hiddenSize * intermediateSize) * 4 < 16 * 1024 * 1024;
}

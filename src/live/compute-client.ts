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

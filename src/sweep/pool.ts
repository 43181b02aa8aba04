/**
 * Runs sweep points inline (jobs = 1) or on a pool of worker threads. Points
 * are dispatched in order; completions are reported through `onDone` on the
 * main thread (the single writer of sweep.csv). On abort, nothing new starts
 * and the workers are terminated (their unfinished points are lost and rerun
 * on resume). On a failing point, nothing new starts, running points finish,
 * then the failure is thrown.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { InputError } from '../core/errors.js';
import { runPoint, type PointOutcome, type PointTask, type WorkerReply, type WorkerRequest } from './point.js';

export interface PoolOptions {
  jobs: number;
  signal?: AbortSignal;
  /** Called on the main thread after each finished point (task index into `tasks`). */
  onDone: (taskIndex: number, outcome: PointOutcome, wallMs: number) => void;
  /** Called when a point is handed to a worker (or starts inline). */
  onStart?: (taskIndex: number) => void;
  /** Names a task in error messages. */
  label: (taskIndex: number) => string;
}

export interface PoolResult {
  interrupted: boolean;
}

/** dist/src/sweep/worker.js; when running from the TypeScript sources (tests), the built copy under dist/. */
export function workerUrl(): URL {
  const here = new URL('./worker.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  const file = fileURLToPath(here);
  const built = file.replace(/([\\/])src([\\/])sweep([\\/])worker\.js$/, '$1dist$1src$2sweep$3worker.js');
  if (built !== file && existsSync(built)) return pathToFileURL(built);
  throw new Error(`sweep worker script not found at ${file}; run 'npm run build' (or use jobs: 1 to run inline)`);
}

function failureOf(reply: Extract<WorkerReply, { type: 'error' }>, label: string): Error {
  if (reply.input) return new InputError(`point ${label}: ${reply.message}`);
  const err = new Error(`point ${label} failed: ${reply.message}`);
  if (reply.stack) err.stack = `${err.message}\n--- in the worker:\n${reply.stack}`;
  return err;
}

export async function runPool(tasks: readonly PointTask[], opts: PoolOptions): Promise<PoolResult> {
  if (tasks.length === 0) return { interrupted: opts.signal?.aborted ?? false };
  if (opts.jobs <= 1) return runInline(tasks, opts);
  return runWorkers(tasks, opts);
}

async function runInline(tasks: readonly PointTask[], opts: PoolOptions): Promise<PoolResult> {
  for (let i = 0; i < tasks.length; i++) {
    // Let signal handlers run between points (a point itself is synchronous).
    await new Promise<void>((r) => setImmediate(r));
    if (opts.signal?.aborted) return { interrupted: true };
    opts.onStart?.(i);
    const t0 = performance.now();
    let outcome: PointOutcome;
    try {
      outcome = runPoint(tasks[i]);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(`point ${opts.label(i)}: ${e.message}`, e.field);
      throw e;
    }
    opts.onDone(i, outcome, performance.now() - t0);
  }
  return { interrupted: false };
}

function runWorkers(tasks: readonly PointTask[], opts: PoolOptions): Promise<PoolResult> {
  const url = workerUrl();
  const n = Math.min(opts.jobs, tasks.length);
  return new Promise<PoolResult>((resolvePool, rejectPool) => {
    const workers: Worker[] = [];
    const busy = new Map<Worker, { taskIndex: number; t0: number }>();
    let next = 0;
    let failure: unknown;
    let settled = false;

    const settle = (interrupted: boolean): void => {
      if (settled) return;
      settled = true;
      opts.signal?.removeEventListener('abort', onAbort);
      void Promise.all(workers.map((w) => w.terminate().catch(() => 0))).then(() => {
        if (failure !== undefined && !interrupted) rejectPool(failure);
        else resolvePool({ interrupted });
      });
    };
    const onAbort = (): void => settle(true);

    const dispatch = (w: Worker): void => {
      if (settled) return;
      if (failure === undefined && !opts.signal?.aborted && next < tasks.length) {
        const taskIndex = next++;
        busy.set(w, { taskIndex, t0: performance.now() });
        opts.onStart?.(taskIndex);
        const req: WorkerRequest = { taskId: taskIndex, task: tasks[taskIndex] };
        w.postMessage(req);
        return;
      }
      if (busy.size === 0) settle(false);
    };

    for (let k = 0; k < n; k++) {
      const w = new Worker(url);
      workers.push(w);
      w.on('message', (reply: WorkerReply) => {
        const job = busy.get(w);
        busy.delete(w);
        if (reply.type === 'done') {
          try {
            opts.onDone(reply.taskId, reply.outcome, performance.now() - (job?.t0 ?? performance.now()));
          } catch (e) {
            failure ??= e;
          }
        } else {
          failure ??= failureOf(reply, opts.label(reply.taskId));
        }
        dispatch(w);
      });
      w.on('error', (e: Error) => {
        // An uncaught exception inside the worker: the worker is gone.
        const job = busy.get(w);
        busy.delete(w);
        failure ??= job ? new Error(`point ${opts.label(job.taskIndex)}: worker crashed: ${e.message}`, { cause: e }) : e;
        if (busy.size === 0) settle(false);
      });
      w.on('exit', (code) => {
        if (settled || !busy.has(w)) return;
        const job = busy.get(w);
        busy.delete(w);
        failure ??= new Error(`point ${opts.label(job?.taskIndex ?? -1)}: worker exited with code ${code}`);
        if (busy.size === 0) settle(false);
      });
    }
    if (opts.signal?.aborted) { settle(true); return; }
    opts.signal?.addEventListener('abort', onAbort);
    for (const w of workers) dispatch(w);
  });
}

/**
 * One sweep point: load the scenario with the point's overrides, simulate it,
 * write its results directory. Runs in a worker thread (worker.ts) or inline;
 * the task and its result are plain data so they cross postMessage.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { writeRunOutputs } from '../results/write.js';
import { loadScenario } from '../scenario/load.js';
import { runOutputs } from '../sim/outputs.js';
import { runScenario } from '../sim/run.js';

/** What run.json records under `sweep`; resume compares it with the current command. */
export interface PointStamp {
  point: string;
  index: number;
  /** Parsed grid value per dotted path. */
  grid: Record<string, unknown>;
  /** Grid values as typed, per dotted path. */
  gridText: Record<string, string>;
  /** `--seed`/`--systems`/`--set` overrides common to all points, in order. */
  baseOverrides: string[];
  /** The point's resolved scenario seed. */
  seed: number;
  scenarioSha256: string;
  timelineRequests: number | null;
}

export interface PointTask {
  /** Absolute scenario path. */
  scenarioPath: string;
  /** Base overrides followed by the point's `path=value` overrides. */
  overrides: string[];
  /** The point's results directory. */
  dir: string;
  timelineRequests?: number;
  /** run.json's `sweep` field, without the seed (filled in from the loaded scenario). */
  stamp: Omit<PointStamp, 'seed'>;
}

export interface PointOutcome {
  /** summary.csv as written. */
  summaryCsv: string;
  /** Simulation wall time (ms), excluding loading and writing. */
  simWallMs: number;
  eventCount: number;
  warnings: string[];
}

export function runPoint(task: PointTask): PointOutcome {
  const scenario = loadScenario(task.scenarioPath, task.overrides);
  const result = runScenario(scenario, task.timelineRequests !== undefined ? { timelineRequests: task.timelineRequests } : {});
  const stamp: PointStamp = { ...task.stamp, seed: scenario.seed };
  writeRunOutputs(task.dir, runOutputs(result, { sweep: stamp }));
  return {
    summaryCsv: readFileSync(join(task.dir, 'summary.csv'), 'utf8'),
    simWallMs: result.wallMs,
    eventCount: result.eventCount,
    warnings: result.warnings,
  };
}

/** Messages from a worker to the main thread. */
export type WorkerReply =
  | { type: 'done'; taskId: number; outcome: PointOutcome }
  | { type: 'error'; taskId: number; message: string; input: boolean; stack?: string };

/** Messages from the main thread to a worker. */
export interface WorkerRequest {
  taskId: number;
  task: PointTask;
}

/** Turn an exception into a reply (InputErrors keep their message only). */
export function errorReply(taskId: number, e: unknown): WorkerReply {
  if (e instanceof InputError) return { type: 'error', taskId, message: e.message, input: true };
  const err = e instanceof Error ? e : new Error(String(e));
  return { type: 'error', taskId, message: err.message, input: false, stack: err.stack };
}

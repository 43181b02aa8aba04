/**
 * Workload generation: per device, a list of requests (arrival time, prompt
 * and output lengths), drawn from named random streams so that adding a
 * device never changes the draws of the others:
 *   workload/<deviceIndex>/arrivals, workload/<deviceIndex>/prompt, workload/<deviceIndex>/output
 * Streams are taken with `streams.fresh()`, so calling generateRequests twice
 * with the same seed returns identical requests.
 *
 * Arrival processes:
 *  - poisson: exponential gaps with mean 1/ratePerS; the first request arrives after one gap.
 *  - gamma: gamma-distributed gaps with mean 1/ratePerS and coefficient of variation cv (shape 1/cv^2).
 *  - trace: the first requestsPerDevice*deviceCount rows of the trace, row j to device j % deviceCount
 *    (round-robin); arrivalS = (arrived_at_j - arrived_at_0) * timeScale (the trace is re-based to start at 0).
 *    With round-robin assignment, the device count changes which rows a device gets.
 *  - closed-loop: request 0 arrives at a seeded stagger uniform in [0, thinkTimeS); every later request has
 *    arrivalS = NaN: the simulator issues it thinkTimeS after the device's previous request finished
 *    (see `closedLoopNextArrivalS`).
 *
 * Lengths: fixed; uniform (integers, both ends inclusive); lognormal (mean and cv of the result, rounded,
 * clamped to [minTokens, maxTokens]); trace (num_prefill_tokens / num_decode_tokens of the trace at
 * workload.tracePath, else the arrival trace). With trace arrivals the request of row j uses row j's lengths.
 * With any other arrival process each request takes a uniformly random row (with replacement) drawn from
 * the device's prompt stream (or from its output stream when only the output length is traced); when both
 * lengths are traced they come from the same row, so their correlation is kept.
 * Tokens are always integers >= 1.
 */
import path from 'node:path';
import { InputError } from '../core/errors.js';
import type { Rng, RngStreams } from '../core/rng.js';
import type { ArrivalSpec, LengthSpec, WorkloadSpec } from '../scenario/types.js';
import { readTrace, type TraceColumn, type TraceRow } from './trace.js';

export interface DeviceRequest {
  /** Position of the request in its device's list (0-based, in arrival order). */
  index: number;
  /** Arrival time (s); NaN for closed-loop requests after the first (issued by the simulator). */
  arrivalS: number;
  promptTokens: number;
  outputTokens: number;
}

export interface GenerateOptions {
  /** Relative trace paths are resolved against this directory (scenario paths are already absolute). */
  baseDir: string;
}

/** Stream names used for device `d`. */
export function workloadStreamNames(d: number): { arrivals: string; prompt: string; output: string } {
  return { arrivals: `workload/${d}/arrivals`, prompt: `workload/${d}/prompt`, output: `workload/${d}/output` };
}

/** Closed-loop: when the device's next request is issued, given when its previous one finished. */
export function closedLoopNextArrivalS(arrival: ArrivalSpec, previousFinishedS: number): number {
  if (arrival.kind !== 'closed-loop') throw new Error(`closedLoopNextArrivalS called for arrival kind ${arrival.kind}`);
  return previousFinishedS + arrival.thinkTimeS;
}

export function isClosedLoop(spec: WorkloadSpec): boolean {
  return spec.arrival.kind === 'closed-loop';
}

/** Draw one length (integer >= 1) from a non-trace length distribution. */
export function sampleLength(spec: LengthSpec, rng: Rng): number {
  switch (spec.kind) {
    case 'trace':
      throw new Error('sampleLength: trace lengths are read from the trace file, not sampled');
    case 'fixed':
      return Math.max(1, Math.round(spec.tokens));
    case 'uniform': {
      const lo = Math.max(1, Math.ceil(spec.minTokens));
      const hi = Math.max(lo, Math.floor(spec.maxTokens));
      return lo + rng.int(hi - lo + 1);
    }
    case 'lognormal': {
      const x = spec.cv > 0 ? rng.lognormalMeanCv(spec.meanTokens, spec.cv) : spec.meanTokens;
      const clamped = Math.min(spec.maxTokens, Math.max(spec.minTokens, Math.round(x)));
      return Math.max(1, clamped);
    }
  }
}

/** Gaps between arrivals of a renewal process (poisson/gamma): arrival times of `n` requests. */
function renewalArrivals(arrival: ArrivalSpec, n: number, rng: Rng): number[] {
  const out: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    if (arrival.kind === 'poisson') t += rng.exponential(arrival.ratePerS);
    else if (arrival.kind === 'gamma') {
      const shape = 1 / (arrival.cv * arrival.cv);
      t += rng.gamma(shape, 1 / (arrival.ratePerS * shape));
    } else throw new Error(`not a renewal process: ${arrival.kind}`);
    out.push(t);
  }
  return out;
}

function traceFile(spec: WorkloadSpec, baseDir: string, purpose: 'arrivals' | 'lengths'): string {
  let p: string | undefined;
  if (purpose === 'arrivals') p = spec.arrival.kind === 'trace' ? spec.arrival.path : undefined;
  else p = spec.tracePath ?? (spec.arrival.kind === 'trace' ? spec.arrival.path : undefined);
  if (p === undefined) {
    throw new InputError(`workload.tracePath: required when prompt or output lengths come from a trace and the arrivals do not`, 'workload.tracePath');
  }
  return path.resolve(baseDir, p);
}

export function generateRequests(spec: WorkloadSpec, deviceCount: number, streams: RngStreams, opts: GenerateOptions): DeviceRequest[][] {
  if (!Number.isInteger(deviceCount) || deviceCount < 0) throw new RangeError(`deviceCount must be an integer >= 0, got ${deviceCount}`);
  const n = spec.requestsPerDevice;
  const promptTraced = spec.promptTokens.kind === 'trace';
  const outputTraced = spec.outputTokens.kind === 'trace';

  // Trace rows for lengths, if any.
  let lengthRows: TraceRow[] | undefined;
  if (promptTraced || outputTraced) {
    const cols: TraceColumn[] = [];
    if (promptTraced) cols.push('num_prefill_tokens');
    if (outputTraced) cols.push('num_decode_tokens');
    const file = traceFile(spec, opts.baseDir, 'lengths');
    lengthRows = readTrace(file, cols);
    if (lengthRows.length === 0) throw new InputError(`trace file ${file} has no rows`);
  }

  const result: DeviceRequest[][] = [];
  for (let d = 0; d < deviceCount; d++) result.push([]);

  if (spec.arrival.kind === 'trace') {
    const file = traceFile(spec, opts.baseDir, 'arrivals');
    const rows = readTrace(file, ['arrived_at']);
    const total = n * deviceCount;
    if (rows.length < total) {
      throw new InputError(`trace file ${file} has ${rows.length} requests but workload.requestsPerDevice x devices = ${n} x ${deviceCount} = ${total} are needed; lower workload.requestsPerDevice`, 'workload.requestsPerDevice');
    }
    if (lengthRows && lengthRows.length < total) {
      throw new InputError(`length trace has ${lengthRows.length} rows but ${total} requests are needed (row j of the arrival trace uses row j of the length trace)`, 'workload.tracePath');
    }
    const local = new Map<string, Rng>();
    const stream = (name: string): Rng => {
      let r = local.get(name);
      if (!r) { r = streams.fresh(name); local.set(name, r); }
      return r;
    };
    const t0 = total > 0 ? rows[0].arrivedAtS : 0;
    const scale = spec.arrival.timeScale;
    for (let j = 0; j < total; j++) {
      const d = j % deviceCount;
      const names = workloadStreamNames(d);
      const row = lengthRows?.[j];
      result[d].push({
        index: 0,
        arrivalS: (rows[j].arrivedAtS - t0) * scale,
        promptTokens: row && promptTraced ? row.promptTokens : sampleLength(spec.promptTokens, stream(names.prompt)),
        outputTokens: row && outputTraced ? row.outputTokens : sampleLength(spec.outputTokens, stream(names.output)),
      });
    }
  } else {
    for (let d = 0; d < deviceCount; d++) {
      const names = workloadStreamNames(d);
      const arrivalRng = streams.fresh(names.arrivals);
      const promptRng = streams.fresh(names.prompt);
      const outputRng = streams.fresh(names.output);
      let arrivals: number[];
      if (spec.arrival.kind === 'closed-loop') {
        const think = spec.arrival.thinkTimeS;
        arrivals = Array.from({ length: n }, (_, i) => (i === 0 ? (think > 0 ? arrivalRng.uniform() * think : 0) : NaN));
      } else {
        arrivals = renewalArrivals(spec.arrival, n, arrivalRng);
      }
      for (let i = 0; i < n; i++) {
        let promptTokens: number;
        let outputTokens: number;
        if (lengthRows) {
          const row = lengthRows[(promptTraced ? promptRng : outputRng).int(lengthRows.length)];
          promptTokens = promptTraced ? row.promptTokens : sampleLength(spec.promptTokens, promptRng);
          outputTokens = outputTraced ? row.outputTokens : sampleLength(spec.outputTokens, outputRng);
        } else {
          promptTokens = sampleLength(spec.promptTokens, promptRng);
          outputTokens = sampleLength(spec.outputTokens, outputRng);
        }
        result[d].push({ index: i, arrivalS: arrivals[i], promptTokens, outputTokens });
      }
    }
  }

  // Sort by arrival (stable; closed-loop lists are already in issue order) and number in that order.
  if (spec.arrival.kind !== 'closed-loop') {
    for (const list of result) list.sort((a, b) => a.arrivalS - b.arrivalS);
  }
  for (const list of result) list.forEach((r, i) => { r.index = i; });
  return result;
}

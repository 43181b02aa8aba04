/**
 * Timing one ONNX part over one batch shape with onnxruntime-node: builds the
 * feeds from the session's input names (the graph contract of graph.ts, also
 * accepted from user exports), warms up, repeats, reports median and p10/p90.
 */
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import ort from 'onnxruntime-node';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import { quantile } from './fit.js';
import type { PartId } from './graph.js';

export type Session = ort.InferenceSession;

export interface SessionOptions {
  ep: string;
  threads: number;
}

export function ortVersion(): string {
  try {
    const v = ort.env.versions as Record<string, string | undefined>;
    if (v.node ?? v.common) return (v.node ?? v.common) as string;
  } catch {
    // fall through to the package version
  }
  const require = createRequire(import.meta.url);
  return (require('onnxruntime-node/package.json') as { version: string }).version;
}

export async function createSession(path: string, opts: SessionOptions): Promise<Session> {
  try {
    return await ort.InferenceSession.create(path, {
      executionProviders: [opts.ep],
      intraOpNumThreads: opts.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
    });
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    if (/execution provider|backend|EP/i.test(reason) && opts.ep !== 'cpu') {
      throw new InputError(`execution provider "${opts.ep}" is not available in this onnxruntime-node build: ${reason}`, 'ep');
    }
    throw err;
  }
}

/** One shape to time: `seqs` uniform sequences of `tokensPerSeq` new tokens over `ctxPerSeq` past tokens, through `layers` stacked layers. */
export interface MeasureShape {
  tokensPerSeq: number;
  ctxPerSeq: number;
  seqs: number;
}

export interface Timing {
  medianMs: number;
  p10Ms: number;
  p90Ms: number;
  reps: number;
}

export interface RepPolicy {
  warmup: number;
  minReps: number;
  maxReps: number;
  /** Aim for about this much timed work per point (ms). */
  targetMs: number;
}

/**
 * Fast points get many repeats (timer and scheduler noise), slow points few.
 * The cap is high so that microsecond-scale passes (an embedding lookup) still
 * accumulate about `targetMs` of timed work.
 */
export const QUICK_REPS: RepPolicy = { warmup: 2, minReps: 3, maxReps: 2000, targetMs: 100 };
export const FULL_REPS: RepPolicy = { warmup: 2, minReps: 5, maxReps: 5000, targetMs: 500 };

let fillPool: Float32Array | null = null;
function randomFloats(count: number): Float32Array {
  if (!fillPool) {
    fillPool = new Float32Array(1 << 16);
    let s = 987654321;
    for (let i = 0; i < fillPool.length; i++) {
      s ^= s << 13;
      s ^= s >>> 17;
      s ^= s << 5;
      fillPool[i] = ((s >>> 0) / 4294967296 - 0.5) * 0.1;
    }
  }
  const out = new Float32Array(count);
  for (let off = 0; off < count; off += fillPool.length) out.set(fillPool.subarray(0, Math.min(fillPool.length, count - off)), off);
  return out;
}

const PAST_KEY = /^(past_key_values\.\d+\.key|past_key(_\d+)?|past\.\d+\.key)$/;
const PAST_VALUE = /^(past_key_values\.\d+\.value|past_value(_\d+)?|past\.\d+\.value)$/;

/** Build the feeds for a shape from the session's input names. */
export function makeFeeds(session: Session, model: ModelSpec, shape: MeasureShape): Record<string, ort.Tensor> {
  const B = shape.seqs;
  const S = shape.tokensPerSeq;
  const P = shape.ctxPerSeq;
  const headDim = model.hiddenSize / model.numHeads;
  const feeds: Record<string, ort.Tensor> = {};
  for (const name of session.inputNames) {
    if (name === 'input_ids') {
      const ids = new BigInt64Array(B * S);
      for (let i = 0; i < ids.length; i++) ids[i] = BigInt((i * 7919) % model.vocabSize);
      feeds[name] = new ort.Tensor('int64', ids, [B, S]);
    } else if (name === 'hidden_states' || name === 'inputs_embeds') {
      feeds[name] = new ort.Tensor('float32', randomFloats(B * S * model.hiddenSize), [B, S, model.hiddenSize]);
    } else if (PAST_KEY.test(name) || PAST_VALUE.test(name)) {
      feeds[name] = new ort.Tensor('float32', randomFloats(B * model.numKvHeads * P * headDim), [B, model.numKvHeads, P, headDim]);
    } else if (name === 'seqlens_k') {
      feeds[name] = new ort.Tensor('int32', new Int32Array(B).fill(P + S - 1), [B]);
    } else if (name === 'total_sequence_length') {
      feeds[name] = new ort.Tensor('int32', Int32Array.of(P + S), []);
    } else if (name === 'attention_mask') {
      feeds[name] = new ort.Tensor('int64', new BigInt64Array(B * (P + S)).fill(1n), [B, P + S]);
    } else if (name === 'position_ids') {
      const pos = new BigInt64Array(B * S);
      for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) pos[b * S + s] = BigInt(P + s);
      feeds[name] = new ort.Tensor('int64', pos, [B, S]);
    } else {
      throw new InputError(
        `ONNX input "${name}" is not understood by the profiler; supported inputs: input_ids, hidden_states (or inputs_embeds), ` +
          'past_key_values.<i>.key/value, seqlens_k, total_sequence_length, attention_mask, position_ids (see docs/CALIBRATION.md)',
        'onnx-dir',
      );
    }
  }
  return feeds;
}

/** The output fetched while timing (present KV outputs are computed but not copied back to JS). */
export function primaryOutput(session: Session): string {
  const names = session.outputNames;
  return names.find((n) => n === 'hidden_states_out' || n === 'logits') ?? names.find((n) => !/present/.test(n)) ?? names[0];
}

/**
 * Page in a lookup table before timing: an embedding's Gather touches only the
 * rows of the ids it is given, and ONNX Runtime maps the weights lazily, so the
 * first pass over each new set of rows pays page faults (measured here: the
 * first pass at 600-1000 tokens 2-4x slower than later ones). Runs the part over
 * every token id once, in chunks. Only for a part whose sole input is input_ids.
 */
export async function pageInTable(session: Session, model: ModelSpec, chunkTokens = 2048): Promise<boolean> {
  if (session.inputNames.length !== 1 || session.inputNames[0] !== 'input_ids') return false;
  const fetch = [primaryOutput(session)];
  for (let start = 0; start < model.vocabSize; start += chunkTokens) {
    const n = Math.min(chunkTokens, model.vocabSize - start);
    const ids = new BigInt64Array(n);
    for (let i = 0; i < n; i++) ids[i] = BigInt(start + i);
    await session.run({ input_ids: new ort.Tensor('int64', ids, [1, n]) }, fetch);
  }
  return true;
}

/** Warm up, then time `shape` repeatedly (the count from the policy and the warm-up time); the times in ms. */
export async function timeReps(session: Session, model: ModelSpec, shape: MeasureShape, policy: RepPolicy): Promise<number[]> {
  const feeds = makeFeeds(session, model, shape);
  const fetch = [primaryOutput(session)];
  const times: number[] = [];
  let first = 0;
  for (let i = 0; i < policy.warmup; i++) {
    const t0 = performance.now();
    await session.run(feeds, fetch);
    first = performance.now() - t0;
  }
  const reps = Math.max(policy.minReps, Math.min(policy.maxReps, Math.ceil(policy.targetMs / Math.max(first, 0.01))));
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await session.run(feeds, fetch);
    times.push(performance.now() - t0);
  }
  return times;
}

/** Median, p10 and p90 of repeat times (ms). */
export function timingOf(times: readonly number[]): Timing {
  return { medianMs: quantile(times, 0.5), p10Ms: quantile(times, 0.1), p90Ms: quantile(times, 0.9), reps: times.length };
}

export async function timeShape(session: Session, model: ModelSpec, shape: MeasureShape, policy: RepPolicy): Promise<Timing> {
  return timingOf(await timeReps(session, model, shape, policy));
}

/** Total shape figures (format semantics) of a uniform batch. */
export function totals(part: PartId, s: MeasureShape): { tokens: number; ctx: number; seqs: number } {
  void part;
  return { tokens: s.tokensPerSeq * s.seqs, ctx: s.ctxPerSeq * s.seqs, seqs: s.seqs };
}

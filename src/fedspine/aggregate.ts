/**
 * Heterogeneous-rank LoRA aggregation (pure: no simulator or network imports,
 * so the live runner uses the same code).
 *
 * One adapted matrix W (d_out x d_in) carries LoRA factors A (r x d_in,
 * row-major) and B (d_out x r, row-major); the update is B A. The server keeps
 * a global pair of rank R = max rank; device i trains the first r_i rank
 * components (its slice: rows 0..r_i-1 of A, columns 0..r_i-1 of B), on the
 * rows/columns its pruned model kept (masks).
 *
 * Rule (HetLoRA-style zero padding), per element k of A and of B:
 *   holders(k) = devices whose rank covers k's rank index and whose masks keep
 *                k's row/column;
 *   normalize 'all' (default, HetLoRA): global[k] = sum_{i holds k} w_i x_i[k] / sum_{all i} w_i
 *                (a device that does not hold k counts as a zero: zero padding);
 *   normalize 'holders' [assumption, option]: global[k] = sum_{i holds k} w_i x_i[k] / sum_{i holds k} w_i,
 *                and an element nobody holds keeps the previous global value (0 without one).
 * Weights: 'data' (w_i = data size n_i) or 'norm' (w_i = the Frobenius
 * norm of the device's factors, sqrt(|A_i|^2 + |B_i|^2): larger updates count
 * more). The factors are averaged separately (as HetLoRA does), not B A.
 * Sums in float64, results stored as float32.
 */
import { InputError } from '../core/errors.js';

export interface LoraFactors {
  rank: number;
  dIn: number;
  dOut: number;
  /** rank x dIn, row-major. */
  a: Float32Array;
  /** dOut x rank, row-major. */
  b: Float32Array;
}

export interface LoraUpdate {
  factors: LoraFactors;
  /** Local data size (samples): the 'data' weight. */
  dataSize: number;
  /** Kept input columns (length dIn, 1 = kept); absent = all kept. */
  inMask?: Uint8Array;
  /** Kept output rows (length dOut, 1 = kept); absent = all kept. */
  outMask?: Uint8Array;
}

export interface AggregateOptions {
  weighting: 'data' | 'norm';
  normalize: 'all' | 'holders';
}

export const DEFAULT_AGGREGATE: AggregateOptions = { weighting: 'data', normalize: 'all' };

export function zeroFactors(rank: number, dIn: number, dOut: number): LoraFactors {
  return { rank, dIn, dOut, a: new Float32Array(rank * dIn), b: new Float32Array(dOut * rank) };
}

function frobenius(f: LoraFactors): number {
  let s = 0;
  for (const x of f.a) s += x * x;
  for (const x of f.b) s += x * x;
  return Math.sqrt(s);
}

function check(u: LoraUpdate, i: number, rank: number, dIn: number, dOut: number): void {
  const f = u.factors;
  const where = `updates[${i}]`;
  if (f.dIn !== dIn || f.dOut !== dOut) throw new InputError(`${where}: shape ${f.dOut}x${f.dIn} differs from the global ${dOut}x${dIn}`, where);
  if (!Number.isInteger(f.rank) || f.rank < 1 || f.rank > rank) throw new InputError(`${where}.rank = ${f.rank} is outside [1, ${rank}] (the global rank)`, `${where}.rank`);
  if (f.a.length !== f.rank * dIn || f.b.length !== dOut * f.rank) throw new InputError(`${where}: factor lengths ${f.a.length}/${f.b.length} do not match rank ${f.rank}`, where);
  if (u.inMask && u.inMask.length !== dIn) throw new InputError(`${where}.inMask has ${u.inMask.length} entries, expected ${dIn}`, `${where}.inMask`);
  if (u.outMask && u.outMask.length !== dOut) throw new InputError(`${where}.outMask has ${u.outMask.length} entries, expected ${dOut}`, `${where}.outMask`);
  if (!(u.dataSize >= 0)) throw new InputError(`${where}.dataSize must be >= 0, got ${u.dataSize}`, `${where}.dataSize`);
}

/** Aggregate device updates into a global pair of rank `rank` (see the rule above). */
export function aggregateLora(
  updates: readonly LoraUpdate[],
  rank: number,
  opts: AggregateOptions = DEFAULT_AGGREGATE,
  previous?: LoraFactors,
): LoraFactors {
  if (updates.length === 0) throw new InputError('aggregateLora: no updates to aggregate', 'updates');
  const { dIn, dOut } = updates[0].factors;
  updates.forEach((u, i) => check(u, i, rank, dIn, dOut));
  const w = updates.map((u) => (opts.weighting === 'data' ? u.dataSize : frobenius(u.factors)));
  const wAll = w.reduce((s, x) => s + x, 0);
  const numA = new Float64Array(rank * dIn), denA = new Float64Array(rank * dIn);
  const numB = new Float64Array(dOut * rank), denB = new Float64Array(dOut * rank);
  updates.forEach((u, i) => {
    const f = u.factors, wi = w[i];
    for (let k = 0; k < f.rank; k++) {
      for (let c = 0; c < dIn; c++) {
        if (u.inMask && u.inMask[c] === 0) continue;
        numA[k * dIn + c] += wi * f.a[k * dIn + c];
        denA[k * dIn + c] += wi;
      }
    }
    for (let row = 0; row < dOut; row++) {
      if (u.outMask && u.outMask[row] === 0) continue;
      for (let k = 0; k < f.rank; k++) {
        numB[row * rank + k] += wi * f.b[row * f.rank + k];
        denB[row * rank + k] += wi;
      }
    }
  });
  const out = zeroFactors(rank, dIn, dOut);
  const fill = (num: Float64Array, den: Float64Array, dst: Float32Array, prev: Float32Array | undefined): void => {
    for (let k = 0; k < dst.length; k++) {
      if (opts.normalize === 'all') dst[k] = wAll > 0 ? num[k] / wAll : 0;
      else dst[k] = den[k] > 0 ? num[k] / den[k] : (prev?.[k] ?? 0);
    }
  };
  const prevOk = previous !== undefined && previous.rank === rank && previous.dIn === dIn && previous.dOut === dOut;
  fill(numA, denA, out.a, prevOk ? previous.a : undefined);
  fill(numB, denB, out.b, prevOk ? previous.b : undefined);
  return out;
}

/** The slice of a global pair a device of rank r trains (first r rank components). */
export function sliceLora(global: LoraFactors, rank: number): LoraFactors {
  if (!Number.isInteger(rank) || rank < 1 || rank > global.rank) throw new InputError(`rank = ${rank} is outside [1, ${global.rank}]`, 'rank');
  const out = zeroFactors(rank, global.dIn, global.dOut);
  out.a.set(global.a.subarray(0, rank * global.dIn));
  for (let row = 0; row < global.dOut; row++) for (let k = 0; k < rank; k++) out.b[row * rank + k] = global.b[row * global.rank + k];
  return out;
}

/**
 * Bandwidth traces for access links.
 *
 * A trace gives, per direction, the link capacity over time as a periodic
 * piecewise-constant function (`CapacityTrace`): segment i has capacity
 * `bps[i]` from `startsS[i]` to the next start (the last segment ends at
 * `periodS`), and the whole function repeats with period `periodS`.
 * Alongside it the trace stores the cumulative bits deliverable since time 0,
 * so the finish time of a lone flow is found by binary search (no per-segment
 * events).
 *
 * Two file formats:
 * - CSV with header `time_s,uplink_bps,downlink_bps` (columns in any order):
 *   the capacity is constant from each row's time to the next row's time. The
 *   first row must be at time 0; the trace loops after the last row's time +
 *   the last step (the gap between the last two rows).
 * - Mahimahi (`<prefix>.up`, `<prefix>.down`): one line per 1500-byte delivery
 *   opportunity, in integer ms since the trace start; a repeated number means
 *   several packets in that ms. The trace loops with period = the last
 *   timestamp (as Mahimahi's LinkQueue does). Each direction is kept twice:
 *   `exact` with 1 ms bins (used for the finish time of a lone flow via the
 *   cumulative function: exact to the millisecond) and `binned` with
 *   `mahimahiBinS` bins (default `DEFAULT_MAHIMAHI_BIN_S` = 100 ms), used when
 *   rates must be recomputed at every capacity change (flows crossing shared
 *   bottlenecks) and for "capacity now" estimates. Both have the same
 *   cumulative capacity at every bin boundary, hence the same mean.
 *
 * Parsed traces are cached per (format, absolute path, bin size).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { InputError } from '../core/errors.js';

/** Default bin (s) of the piecewise-constant capacity derived from a Mahimahi trace. */
export const DEFAULT_MAHIMAHI_BIN_S = 0.1;
/** Bits per Mahimahi delivery opportunity (one 1500-byte packet). */
export const MAHIMAHI_PACKET_BITS = 1500 * 8;

/** Structurally identical to scenario's LinkTraceSpec (network/ imports only core/). */
export interface TraceSpec {
  format: 'csv' | 'mahimahi';
  path: string;
  offsetS: number;
  randomOffset: boolean;
}

export interface TraceLoadOptions {
  /** Bin size (s) of the piecewise-constant capacity derived from Mahimahi traces. */
  mahimahiBinS?: number;
}

/** A periodic piecewise-constant capacity function (bits per second over time). */
export class CapacityTrace {
  /** Segment starts within one period, strictly increasing, startsS[0] = 0. */
  readonly startsS: Float64Array;
  /** Capacity of each segment (bps, >= 0); neighbours differ. */
  readonly bps: Float64Array;
  /** cumBits[i] = bits deliverable in [0, startsS[i]); cumBits[n] = bits per period. */
  readonly cumBits: Float64Array;
  readonly periodS: number;
  readonly bitsPerPeriod: number;
  readonly meanBps: number;

  /**
   * Build from segments (merging equal neighbours). `startsS` must start at 0 and
   * increase strictly, all below `periodS`; the caller validates and reports errors.
   */
  constructor(startsS: ArrayLike<number>, bps: ArrayLike<number>, periodS: number) {
    const n = startsS.length;
    if (n === 0 || startsS[0] !== 0 || !(periodS > startsS[n - 1])) {
      throw new RangeError('CapacityTrace: segments must start at 0 and end before the period');
    }
    let m = 0;
    const s = new Float64Array(n), b = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (m > 0 && b[m - 1] === bps[i]) continue;
      s[m] = startsS[i]; b[m] = bps[i]; m++;
    }
    this.startsS = s.slice(0, m);
    this.bps = b.slice(0, m);
    const cum = new Float64Array(m + 1);
    for (let i = 0; i < m; i++) {
      const endS = i + 1 < m ? this.startsS[i + 1] : periodS;
      cum[i + 1] = cum[i] + this.bps[i] * (endS - this.startsS[i]);
    }
    this.cumBits = cum;
    this.periodS = periodS;
    this.bitsPerPeriod = cum[m];
    this.meanBps = this.bitsPerPeriod / periodS;
  }

  /** Index of the segment containing position `xS` in [0, periodS). */
  private segmentAt(xS: number): number {
    const s = this.startsS;
    let lo = 0, hi = s.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (s[mid] <= xS) lo = mid; else hi = mid - 1;
    }
    return lo;
  }

  private wrap(tS: number): number {
    const x = tS % this.periodS;
    return x < 0 ? x + this.periodS : x;
  }

  /** Capacity (bps) at trace time `tS` (any real; the trace loops). */
  capacityAt(tS: number): number {
    return this.bps[this.segmentAt(this.wrap(tS))];
  }

  /** Next trace time strictly after `tS` at which the capacity changes (Infinity if constant). */
  nextChangeS(tS: number): number {
    if (this.startsS.length === 1) return Infinity;
    const loops = Math.floor(tS / this.periodS);
    const x = tS - loops * this.periodS;
    const i = this.segmentAt(x);
    const base = loops * this.periodS;
    return i + 1 < this.startsS.length ? base + this.startsS[i + 1] : base + this.periodS;
  }

  /** Bits deliverable in trace time [0, tS) for tS >= 0. */
  cumulativeBits(tS: number): number {
    const loops = Math.floor(tS / this.periodS);
    let x = tS - loops * this.periodS;
    if (x < 0) x = 0;
    const i = this.segmentAt(x);
    return loops * this.bitsPerPeriod + this.cumBits[i] + this.bps[i] * (x - this.startsS[i]);
  }

  /** Earliest trace time t with cumulativeBits(t) >= bits (bits > 0). */
  timeForCumulativeBits(bits: number): number {
    const total = this.bitsPerPeriod;
    let loops = Math.floor(bits / total);
    let rem = bits - loops * total;
    if (rem <= 0) { loops -= 1; rem += total; }
    // first i with cumBits[i + 1] >= rem; then cumBits[i] < rem, so bps[i] > 0
    const c = this.cumBits;
    let lo = 0, hi = this.startsS.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (c[mid + 1] >= rem) hi = mid; else lo = mid + 1;
    }
    const within = this.bps[lo] > 0 ? this.startsS[lo] + (rem - c[lo]) / this.bps[lo] : this.startsS[lo];
    return loops * this.periodS + within;
  }
}

/** One direction of a link trace. */
export interface TraceDirection {
  /** Finest representation: used for a lone flow's finish time via the cumulative function. */
  exact: CapacityTrace;
  /** Coarser representation: used for rate recomputes and "capacity now". Same object as exact for CSV. */
  binned: CapacityTrace;
}

export interface LinkTrace {
  source: string;
  up: TraceDirection;
  down: TraceDirection;
}

const cache = new Map<string, LinkTrace>();

/** Forget cached traces (tests). */
export function clearTraceCache(): void { cache.clear(); }

/** Load (or get from the cache) the trace a spec names. Throws InputError on bad files. */
export function loadLinkTrace(spec: TraceSpec, opts: TraceLoadOptions = {}): LinkTrace {
  const binS = opts.mahimahiBinS ?? DEFAULT_MAHIMAHI_BIN_S;
  if (!(binS > 0) || !Number.isFinite(binS)) {
    throw new InputError(`mahimahi bin size must be a positive number of seconds, got ${binS}`);
  }
  const abs = resolve(spec.path);
  const key = `${spec.format}\n${abs}\n${spec.format === 'mahimahi' ? binS : ''}`;
  const hit = cache.get(key);
  if (hit) return hit;
  let t: LinkTrace;
  if (spec.format === 'csv') t = parseCsvTrace(readTraceFile(abs, spec.path), spec.path);
  else if (spec.format === 'mahimahi') {
    t = {
      source: spec.path,
      up: parseMahimahi(readTraceFile(`${abs}.up`, `${spec.path}.up`), `${spec.path}.up`, binS),
      down: parseMahimahi(readTraceFile(`${abs}.down`, `${spec.path}.down`), `${spec.path}.down`, binS),
    };
  } else {
    throw new InputError(`link trace ${spec.path}: unknown format '${String(spec.format)}'; use 'csv' or 'mahimahi'`);
  }
  cache.set(key, t);
  return t;
}

function readTraceFile(abs: string, shown: string): string {
  try {
    return readFileSync(abs, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? String(e);
    throw new InputError(`link trace ${shown}: cannot read ${abs} (${code}); check the trace path (for mahimahi give the prefix: <prefix>.up and <prefix>.down are read)`);
  }
}

/** Parse a CSV trace `time_s,uplink_bps,downlink_bps`. `name` is used in error messages. */
export function parseCsvTrace(text: string, name: string): LinkTrace {
  const lines = text.split(/\r?\n/);
  let li = 0;
  while (li < lines.length && (lines[li].trim() === '' || lines[li].trim().startsWith('#'))) li++;
  if (li === lines.length) {
    throw new InputError(`link trace ${name}: empty file; write a header 'time_s,uplink_bps,downlink_bps' and at least one row`);
  }
  const header = lines[li].split(',').map((h) => h.trim().toLowerCase());
  const iT = header.indexOf('time_s'), iU = header.indexOf('uplink_bps'), iD = header.indexOf('downlink_bps');
  if (iT < 0 || iU < 0 || iD < 0) {
    throw new InputError(`link trace ${name}:${li + 1}: header must name columns time_s,uplink_bps,downlink_bps (got '${lines[li].trim()}')`);
  }
  const times: number[] = [], up: number[] = [], down: number[] = [];
  for (li++; li < lines.length; li++) {
    const raw = lines[li].trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const cells = raw.split(',');
    const at = (i: number, what: string): number => {
      const c = cells[i]?.trim() ?? '';
      const v = c === '' ? NaN : Number(c);
      if (!Number.isFinite(v) || v < 0) {
        throw new InputError(`link trace ${name}:${li + 1}: ${what} must be a non-negative number, got '${c}'; fix or remove the line`);
      }
      return v;
    };
    const t = at(iT, 'time_s'), u = at(iU, 'uplink_bps'), d = at(iD, 'downlink_bps');
    if (times.length === 0 && t !== 0) {
      throw new InputError(`link trace ${name}:${li + 1}: the first row must be at time_s 0 (got ${t}); add a row at time 0`);
    }
    if (times.length > 0 && !(t > times[times.length - 1])) {
      throw new InputError(`link trace ${name}:${li + 1}: time_s ${t} is not after the previous row's ${times[times.length - 1]}; sort the rows by strictly increasing time_s`);
    }
    times.push(t); up.push(u); down.push(d);
  }
  if (times.length === 0) {
    throw new InputError(`link trace ${name}: no data rows after the header; add rows time_s,uplink_bps,downlink_bps`);
  }
  const n = times.length;
  const periodS = n === 1 ? 1 : times[n - 1] + (times[n - 1] - times[n - 2]);
  const mk = (bps: number[], dir: string): TraceDirection => {
    const c = new CapacityTrace(times, bps, periodS);
    if (!(c.bitsPerPeriod > 0)) {
      throw new InputError(`link trace ${name}: ${dir} capacity is zero over the whole trace; give some row a positive ${dir}_bps`);
    }
    return { exact: c, binned: c };
  };
  return { source: name, up: mk(up, 'uplink'), down: mk(down, 'downlink') };
}

/** Parse one direction of a Mahimahi trace. `name` is used in error messages. */
export function parseMahimahi(text: string, name: string, binS: number = DEFAULT_MAHIMAHI_BIN_S): TraceDirection {
  const stamps: number[] = [];
  let line = 1, prev = -1;
  const len = text.length;
  let i = 0;
  while (i < len) {
    // one line: optional spaces, digits, optional spaces (and \r)
    let v = 0, digits = 0, bad = false;
    let j = i;
    while (j < len && text.charCodeAt(j) !== 10) {
      const c = text.charCodeAt(j);
      if (c >= 48 && c <= 57) {
        if (digits > 0 && (text.charCodeAt(j - 1) === 32 || text.charCodeAt(j - 1) === 9)) bad = true;
        v = v * 10 + (c - 48); digits++;
      } else if (c !== 32 && c !== 9 && c !== 13) bad = true;
      j++;
    }
    if (bad) {
      const shown = text.slice(i, Math.min(j, i + 40)).trim();
      throw new InputError(`link trace ${name}:${line}: expected one integer (ms since trace start) per line, got '${shown}'; fix or remove the line`);
    }
    if (digits > 0) {
      if (v < prev) {
        throw new InputError(`link trace ${name}:${line}: timestamp ${v} ms is before the previous line's ${prev} ms; Mahimahi traces must be non-decreasing`);
      }
      stamps.push(v); prev = v;
    }
    i = j + 1; line++;
  }
  if (stamps.length === 0) {
    throw new InputError(`link trace ${name}: no delivery opportunities (empty trace); a Mahimahi trace needs one integer ms timestamp per line`);
  }
  const periodMs = stamps[stamps.length - 1];
  if (!(periodMs > 0)) {
    throw new InputError(`link trace ${name}:${line - 1}: the last timestamp must be > 0 ms (it is the trace period); append a later timestamp`);
  }
  const exact = binMahimahi(stamps, periodMs, 1);
  const binMs = binS * 1000;
  const binned = binMs <= 1 ? exact : binMahimahi(stamps, periodMs, binMs);
  return { exact, binned };
}

/** Piecewise-constant capacity over bins of `binMs` (the last bin may be shorter). A stamp equal to the period wraps to 0. */
function binMahimahi(stamps: number[], periodMs: number, binMs: number): CapacityTrace {
  const nBins = Math.ceil(periodMs / binMs);
  const counts = new Float64Array(nBins);
  for (const t of stamps) {
    const x = t >= periodMs ? t - periodMs : t;
    counts[Math.min(nBins - 1, Math.floor(x / binMs))]++;
  }
  const starts: number[] = [], bps: number[] = [];
  for (let b = 0; b < nBins; b++) {
    const s0 = b * binMs, s1 = Math.min((b + 1) * binMs, periodMs);
    const r = (counts[b] * MAHIMAHI_PACKET_BITS) / ((s1 - s0) / 1000);
    if (bps.length > 0 && bps[bps.length - 1] === r) continue;
    starts.push(s0 / 1000); bps.push(r);
  }
  return new CapacityTrace(starts, bps, periodMs / 1000);
}

/**
 * Seeded random streams. Every random draw in a run comes from a stream that is
 * derived from (run seed, stream name), so adding a device or a system never
 * changes the draws of another entity: `streams.get("device/3/arrivals")` is the
 * same sequence whatever else exists.
 *
 * Generator: sfc32 (Small Fast Counting, 32-bit state x4), seeded by hashing the
 * name with cyrb128 mixed with the seed. Fast, no BigInt, good statistical quality
 * for simulation (passes PractRand to 2^40+), and identical on every platform.
 */

function cyrb128(str: string, seed: number): [number, number, number, number] {
  let h1 = 1779033703 ^ seed, h2 = 3144134277 ^ seed, h3 = 1013904242 ^ seed, h4 = 2773480762 ^ seed;
  for (let i = 0; i < str.length; i++) {
    const k = str.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
    h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
  h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
  h1 ^= h2 ^ h3 ^ h4; h2 ^= h1; h3 ^= h1; h4 ^= h1;
  return [h1 >>> 0, h2 >>> 0, h3 >>> 0, h4 >>> 0];
}

/** One independent random stream. */
export class Rng {
  private a: number; private b: number; private c: number; private d: number;
  /** The polar method's second normal, or NaN (a number field: no boxing on the hot path). */
  private spareNormal = NaN;

  constructor(seed: number, name = '') {
    const hi = Math.floor(seed / 4294967296) >>> 0;
    [this.a, this.b, this.c, this.d] = cyrb128(`${name}#${hi}`, seed >>> 0);
    for (let i = 0; i < 12; i++) this.nextU32(); // warm up
  }

  nextU32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1), 32 bits of resolution. */
  uniform(): number { return this.nextU32() / 4294967296; }

  /** Uniform in (0, 1]: safe to take the log of. */
  uniformPositive(): number { return (this.nextU32() + 1) / 4294967296; }

  /** Integer in [0, n). */
  int(n: number): number { return Math.floor(this.uniform() * n); }

  bernoulli(p: number): boolean { return this.uniform() < p; }

  /** Exponential with the given rate (mean 1/rate). */
  exponential(rate: number): number { return -Math.log(this.uniformPositive()) / rate; }

  /** Standard normal (Marsaglia polar method). */
  normal(): number {
    const spare = this.spareNormal;
    if (spare === spare) { this.spareNormal = NaN; return spare; }
    let u: number, v: number, s: number;
    do { u = 2 * this.uniform() - 1; v = 2 * this.uniform() - 1; s = u * u + v * v; } while (s >= 1 || s === 0);
    const m = Math.sqrt(-2 * Math.log(s) / s);
    this.spareNormal = v * m;
    return u * m;
  }

  /** Gamma(shape k, scale theta), Marsaglia-Tsang; mean k*theta. */
  gamma(shape: number, scale: number): number {
    if (shape < 1) return this.gamma(shape + 1, scale) * Math.pow(this.uniformPositive(), 1 / shape);
    const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
    for (;;) {
      let x: number, v: number;
      do { x = this.normal(); v = 1 + c * x; } while (v <= 0);
      v = v * v * v;
      const u = this.uniformPositive();
      if (u < 1 - 0.0331 * x * x * x * x) return d * v * scale;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale;
    }
  }

  /** Lognormal from the mean and coefficient of variation of the result itself. */
  lognormalMeanCv(mean: number, cv: number): number {
    const sigma2 = Math.log(1 + cv * cv);
    const mu = Math.log(mean) - sigma2 / 2;
    return Math.exp(mu + Math.sqrt(sigma2) * this.normal());
  }
}

/** Factory of named streams for one run. */
export class RngStreams {
  private readonly cache = new Map<string, Rng>();
  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  }
  /** The stream with this name; the same object on every call within a run. */
  get(name: string): Rng {
    let r = this.cache.get(name);
    if (!r) { r = new Rng(this.seed, name); this.cache.set(name, r); }
    return r;
  }
  /** A fresh stream (not cached): same name and seed give the same sequence again. */
  fresh(name: string): Rng { return new Rng(this.seed, name); }
}

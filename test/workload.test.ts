import { describe, expect, it } from 'vitest';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { RngStreams } from '../src/core/rng.js';
import { InputError } from '../src/core/errors.js';
import type { WorkloadSpec } from '../src/scenario/types.js';
import { generateRequests, readTrace, sampleLength, closedLoopNextArrivalS } from '../src/workload/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const traces = path.join(here, 'fixtures', 'traces');
const opts = { baseDir: traces };

function spec(over: Partial<WorkloadSpec> = {}): WorkloadSpec {
  return {
    arrival: { kind: 'poisson', ratePerS: 2 },
    promptTokens: { kind: 'fixed', tokens: 100 },
    outputTokens: { kind: 'fixed', tokens: 10 },
    requestsPerDevice: 10,
    ...over,
  };
}

function gaps(arrivals: number[]): number[] {
  return arrivals.map((t, i) => (i === 0 ? t : t - arrivals[i - 1]));
}

function meanCv(xs: number[]): { mean: number; cv: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1);
  return { mean, cv: Math.sqrt(variance) / mean };
}

describe('arrivals', () => {
  it('poisson: mean gap ~ 1/rate over 20k draws (within 3%) and cv ~ 1', () => {
    const reqs = generateRequests(spec({ arrival: { kind: 'poisson', ratePerS: 4 }, requestsPerDevice: 20000 }), 1, new RngStreams(7), opts)[0];
    const { mean, cv } = meanCv(gaps(reqs.map((r) => r.arrivalS)));
    expect(Math.abs(mean - 0.25) / 0.25).toBeLessThan(0.03);
    expect(Math.abs(cv - 1)).toBeLessThan(0.05);
  });

  it('gamma: mean gap ~ 1/rate and the requested cv', () => {
    for (const cv of [0.5, 2]) {
      const reqs = generateRequests(spec({ arrival: { kind: 'gamma', ratePerS: 2, cv }, requestsPerDevice: 20000 }), 1, new RngStreams(3), opts)[0];
      const s = meanCv(gaps(reqs.map((r) => r.arrivalS)));
      expect(Math.abs(s.mean - 0.5) / 0.5).toBeLessThan(0.05);
      expect(Math.abs(s.cv - cv) / cv).toBeLessThan(0.06);
    }
  });

  it('arrivals are sorted and indices follow them', () => {
    const reqs = generateRequests(spec(), 3, new RngStreams(1), opts);
    for (const list of reqs) {
      list.forEach((r, i) => {
        expect(r.index).toBe(i);
        if (i > 0) expect(r.arrivalS).toBeGreaterThanOrEqual(list[i - 1].arrivalS);
      });
    }
  });

  it('closed-loop: first request staggered in [0, think), the rest NaN', () => {
    const s = spec({ arrival: { kind: 'closed-loop', thinkTimeS: 2 } });
    const reqs = generateRequests(s, 4, new RngStreams(1), opts);
    for (const list of reqs) {
      expect(list[0].arrivalS).toBeGreaterThanOrEqual(0);
      expect(list[0].arrivalS).toBeLessThan(2);
      for (const r of list.slice(1)) expect(Number.isNaN(r.arrivalS)).toBe(true);
    }
    expect(new Set(reqs.map((l) => l[0].arrivalS)).size).toBe(4);
    expect(closedLoopNextArrivalS(s.arrival, 10)).toBe(12);
    const zero = generateRequests(spec({ arrival: { kind: 'closed-loop', thinkTimeS: 0 } }), 2, new RngStreams(1), opts);
    expect(zero.map((l) => l[0].arrivalS)).toEqual([0, 0]);
  });
});

describe('lengths', () => {
  it('lognormal: mean ~ meanTokens, integers within [min, max]', () => {
    const reqs = generateRequests(spec({
      promptTokens: { kind: 'lognormal', meanTokens: 512, cv: 0.5, minTokens: 1, maxTokens: 100000 },
      requestsPerDevice: 20000,
    }), 1, new RngStreams(11), opts)[0];
    const xs = reqs.map((r) => r.promptTokens);
    const { mean, cv } = meanCv(xs);
    expect(Math.abs(mean - 512) / 512).toBeLessThan(0.03);
    expect(Math.abs(cv - 0.5)).toBeLessThan(0.05);
    for (const x of xs) expect(Number.isInteger(x) && x >= 1).toBe(true);
  });

  it('lognormal is clamped; uniform is inclusive; tokens >= 1', () => {
    const rng = new RngStreams(1).fresh('x');
    const seen = new Set<number>();
    for (let i = 0; i < 2000; i++) {
      const l = sampleLength({ kind: 'lognormal', meanTokens: 100, cv: 2, minTokens: 20, maxTokens: 150 }, rng);
      expect(l).toBeGreaterThanOrEqual(20);
      expect(l).toBeLessThanOrEqual(150);
      seen.add(sampleLength({ kind: 'uniform', minTokens: 3, maxTokens: 5 }, rng));
    }
    expect([...seen].sort()).toEqual([3, 4, 5]);
    expect(sampleLength({ kind: 'lognormal', meanTokens: 0.1, cv: 0, minTokens: 1, maxTokens: 10 }, rng)).toBe(1);
  });
});

describe('determinism and stream independence', () => {
  const s = spec({
    arrival: { kind: 'gamma', ratePerS: 1, cv: 1.5 },
    promptTokens: { kind: 'lognormal', meanTokens: 300, cv: 0.8, minTokens: 1, maxTokens: 4096 },
    outputTokens: { kind: 'uniform', minTokens: 1, maxTokens: 200 },
  });

  it('same seed gives the same output, also on repeated calls with one RngStreams', () => {
    const streams = new RngStreams(42);
    const a = generateRequests(s, 3, streams, opts);
    const b = generateRequests(s, 3, streams, opts);
    const c = generateRequests(s, 3, new RngStreams(42), opts);
    expect(b).toEqual(a);
    expect(c).toEqual(a);
  });

  it('a different seed gives different output', () => {
    const a = generateRequests(s, 2, new RngStreams(1), opts);
    const b = generateRequests(s, 2, new RngStreams(2), opts);
    expect(b).not.toEqual(a);
  });

  it("adding devices keeps device 0's requests identical", () => {
    const one = generateRequests(s, 1, new RngStreams(5), opts);
    const five = generateRequests(s, 5, new RngStreams(5), opts);
    expect(five[0]).toEqual(one[0]);
    expect(five[1]).not.toEqual(five[0]);
  });
});

describe('traces', () => {
  it('parses the fixture (extra columns ignored, empty lines skipped)', () => {
    const rows = readTrace(path.join(traces, 'tiny.csv'));
    expect(rows.length).toBe(6);
    expect(rows[0]).toEqual({ arrivedAtS: 0.5, promptTokens: 100, outputTokens: 10, line: 2 });
    expect(rows[3].line).toBe(6);
  });

  it('trace arrivals: round-robin over devices, re-based, time-scaled, lengths from the same rows', () => {
    const reqs = generateRequests(spec({
      arrival: { kind: 'trace', path: 'tiny.csv', timeScale: 2 },
      promptTokens: { kind: 'trace' },
      outputTokens: { kind: 'trace' },
      requestsPerDevice: 3,
    }), 2, new RngStreams(1), opts);
    expect(reqs[0].map((r) => r.arrivalS)).toEqual([0, 2, 4]);
    expect(reqs[1].map((r) => r.arrivalS)).toEqual([1, 3, 5]);
    expect(reqs[0].map((r) => r.promptTokens)).toEqual([100, 300, 500]);
    expect(reqs[1].map((r) => r.outputTokens)).toEqual([20, 40, 60]);
  });

  it('trace arrivals with sampled lengths', () => {
    const reqs = generateRequests(spec({
      arrival: { kind: 'trace', path: 'tiny.csv', timeScale: 1 },
      promptTokens: { kind: 'uniform', minTokens: 1, maxTokens: 9 },
      requestsPerDevice: 2,
    }), 3, new RngStreams(1), opts);
    expect(reqs.flat().length).toBe(6);
    for (const r of reqs.flat()) expect(r.promptTokens).toBeGreaterThanOrEqual(1);
  });

  it('trace lengths with poisson arrivals come from rows of the trace (jointly)', () => {
    const reqs = generateRequests(spec({
      promptTokens: { kind: 'trace' },
      outputTokens: { kind: 'trace' },
      tracePath: 'lengths-only.csv',
      requestsPerDevice: 50,
    }), 2, new RngStreams(1), opts);
    const pairs = new Set(reqs.flat().map((r) => `${r.promptTokens}/${r.outputTokens}`));
    expect([...pairs].sort()).toEqual(['7/3', '9/5']);
  });

  it('too few trace rows for the requested requests is an InputError', () => {
    expect(() => generateRequests(spec({ arrival: { kind: 'trace', path: 'tiny.csv', timeScale: 1 }, requestsPerDevice: 4 }), 2, new RngStreams(1), opts))
      .toThrow(/has 6 requests but .* 8 are needed/);
  });

  it('a bad row names file, line, column and value', () => {
    const file = path.join(traces, 'bad-row.csv');
    let err: unknown;
    try { readTrace(file); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toContain(`${file}:3`);
    expect((err as Error).message).toContain('num_prefill_tokens');
    expect((err as Error).message).toContain('"abc"');
  });

  it('a missing column or file is an InputError', () => {
    expect(() => readTrace(path.join(traces, 'missing-column.csv'))).toThrow(/missing column num_decode_tokens/);
    expect(() => readTrace(path.join(traces, 'nope.csv'))).toThrow(InputError);
    // a lengths-only trace is fine when arrivals are not read from it
    expect(readTrace(path.join(traces, 'lengths-only.csv'), ['num_prefill_tokens', 'num_decode_tokens']).length).toBe(2);
    expect(() => readTrace(path.join(traces, 'lengths-only.csv'), ['arrived_at'])).toThrow(/missing column arrived_at/);
  });
});

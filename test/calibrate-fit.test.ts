import { describe, expect, it } from 'vitest';
import { fitLatencyModel, nnlsWeighted, predictMs, scalePieces, type Sample } from '../src/calibrate/fit.js';
import { Rng } from '../src/core/rng.js';

function sample(tokens: number, ctx: number, seqs: number, ms: number, split: 'train' | 'test' = 'train'): Sample {
  return { component: 'decoderLayer', tokens, ctx, seqs, layers: 1, medianMs: ms, p10Ms: ms, p90Ms: ms, reps: 5, split };
}

const TRUE = { c0: 8, c1: 0.6, c2: 2e-5, c3: 1.5e-3, c4: 0.3, c5: 1e-5 };
function truth(tokens: number, ctx: number, seqs: number): number {
  const tokCtx = (tokens * ctx) / seqs, tokSq = (tokens * tokens) / seqs;
  return TRUE.c0 + TRUE.c1 * tokens + TRUE.c2 * tokCtx + TRUE.c3 * ctx + TRUE.c4 * (seqs - 1) + TRUE.c5 * tokSq;
}

function grid(noisePct: number, rng: Rng): Sample[] {
  const out: Sample[] = [];
  for (const n of [1, 2, 4, 8, 16, 64, 256, 1024, 2048]) {
    for (const c of [0, 256, 1024, 4096]) out.push(sample(n, c, 1, truth(n, c, 1) * (1 + noisePct / 100 * (2 * rng.uniform() - 1))));
  }
  for (const b of [2, 4, 8, 16]) for (const c of [128, 2048]) out.push(sample(b, c * b, b, truth(b, c * b, b) * (1 + noisePct / 100 * (2 * rng.uniform() - 1))));
  return out;
}

describe('fitting', () => {
  it('recovers known coefficients from exact synthetic data', () => {
    const fit = fitLatencyModel(grid(0, new Rng(1)), [], [null]);
    expect(fit.pieces).toHaveLength(1);
    const p = fit.pieces[0];
    expect(p.c0Ms).toBeCloseTo(TRUE.c0, 6);
    expect(p.c1MsPerToken).toBeCloseTo(TRUE.c1, 8);
    expect(p.c2MsPerTokenCtx / TRUE.c2).toBeCloseTo(1, 6);
    expect(p.c3MsPerCtx / TRUE.c3).toBeCloseTo(1, 6);
    expect(p.c4MsPerSeq).toBeCloseTo(TRUE.c4, 6);
    expect(p.c5MsPerTokenSq / TRUE.c5).toBeCloseTo(1, 6);
    expect(fit.quality.r2).toBeCloseTo(1, 9);
  });

  it('recovers them within a few percent from 3 % noise, and held-out error is small', () => {
    const rng = new Rng(2);
    const train = grid(3, rng);
    const test = [sample(3, 100, 1, truth(3, 100, 1)), sample(500, 3000, 1, truth(500, 3000, 1)), sample(6, 6000, 6, truth(6, 6000, 6))].map((s) => ({ ...s, split: 'test' as const }));
    const fit = fitLatencyModel(train, test);
    expect(fit.quality.heldOutMedianAbsPctErr).toBeLessThan(4);
    const p = fit.pieces[fit.pieces.length - 1];
    expect(p.c1MsPerToken / TRUE.c1).toBeGreaterThan(0.95);
    expect(p.c1MsPerToken / TRUE.c1).toBeLessThan(1.05);
  });

  it('keeps every coefficient >= 0 even when unconstrained least squares would go negative', () => {
    // latency falls slightly with context (impossible physically): c3 would be negative
    const train = [0, 500, 1000, 2000, 4000].flatMap((c) => [1, 10, 100].map((n) => sample(n, c, 1, 5 + 0.1 * n - 0.0002 * c)));
    const fit = fitLatencyModel(train, [], [null]);
    for (const p of fit.pieces) {
      for (const v of [p.c0Ms, p.c1MsPerToken, p.c2MsPerTokenCtx, p.c3MsPerCtx, p.c4MsPerSeq, p.c5MsPerTokenSq]) expect(v).toBeGreaterThanOrEqual(0);
    }
    const c = nnlsWeighted([[1, -1], [1, -2], [1, -3]], [1, 2, 3], [1, 1, 1]);
    expect(c.every((v) => v >= 0)).toBe(true);
  });

  it('chooses a knee when small token counts are overhead-bound', () => {
    // flat ~10 ms up to 16 tokens, then linear
    const train: Sample[] = [];
    for (const n of [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256, 512, 1024]) train.push(sample(n, 0, 1, n <= 16 ? 10 + 0.01 * n : 2 + 0.5 * n));
    const fit = fitLatencyModel(train, []);
    expect(fit.knee).not.toBeNull();
    expect(fit.knee!).toBeGreaterThanOrEqual(8);
    expect(fit.knee!).toBeLessThanOrEqual(32);
    expect(predictMs(fit.pieces, { tokens: 2, ctx: 0, seqs: 1 })).toBeCloseTo(10.02, 1);
    expect(predictMs(fit.pieces, { tokens: 1024, ctx: 0, seqs: 1 })).toBeCloseTo(514, 0);
  });

  it('statistic p10: fits the 10th percentiles, and held-out error is against them', () => {
    // p10 follows the true model; medians are inflated by interference (+30 %, +0..60 % at random).
    const rng = new Rng(5);
    const withTail = (s: Sample): Sample => ({ ...s, p10Ms: s.medianMs, medianMs: s.medianMs * (1.3 + 0.6 * rng.uniform()) });
    const train = grid(0, rng).map(withTail);
    const test = [sample(3, 100, 1, truth(3, 100, 1), 'test'), sample(500, 3000, 1, truth(500, 3000, 1), 'test')].map(withTail);
    const p10 = fitLatencyModel(train, test, [null], false, { statistic: 'p10' });
    expect(p10.statistic).toBe('p10');
    expect(p10.quality.heldOutMedianAbsPctErr).toBeLessThan(1e-6);
    expect(p10.pieces[0].c1MsPerToken).toBeCloseTo(TRUE.c1, 6);
    const median = fitLatencyModel(train, test, [null], false);
    expect(median.statistic).toBe('median');
    expect(median.pieces[0].c1MsPerToken).toBeGreaterThan(TRUE.c1 * 1.2);
  });

  it('scalePieces doubles every prediction', () => {
    const fit = fitLatencyModel(grid(0, new Rng(3)), [], [null]);
    const s = { tokens: 64, ctx: 512, seqs: 1 };
    expect(predictMs(scalePieces(fit.pieces, 2), s)).toBeCloseTo(2 * predictMs(fit.pieces, s), 9);
  });
});

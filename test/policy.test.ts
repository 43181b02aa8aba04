import { describe, expect, it } from 'vitest';
import { AdaptiveDraft, FixedDraft, expectedTokensPerRound } from '../src/policy/draft.js';
import { chooseChunkTokens, chunkCandidates, predictPipelineMs, splitPrompt, type PipelineStages } from '../src/policy/chunk.js';
import { LeastLoadedRouter, RoundRobinRouter } from '../src/policy/router.js';

const stages = (o: Partial<PipelineStages>): PipelineStages => ({
  deviceInputMs: () => 0, deviceSideMs: () => 0, upTxMs: () => 0, upLatencyMs: 0, cloudMs: () => 0,
  downTxMs: () => 0, downLatencyMs: 0, deviceOutputMs: () => 0, ...o,
});

describe('chunk policy', () => {
  it('splits prompts into chunks that add up', () => {
    expect(splitPrompt(10, 4)).toEqual([4, 4, 2]);
    expect(splitPrompt(10, 20)).toEqual([10]);
    expect(splitPrompt(1, 1)).toEqual([1]);
  });

  it('pipeline of equal stages: makespan = fill + (K-1) x bottleneck', () => {
    // Per chunk of n tokens: input n ms, upload 2n ms, cloud n ms, download n ms, output n ms; latency 0.
    const st = stages({ deviceInputMs: (n) => n, upTxMs: (n) => 2 * n, cloudMs: (n) => n, downTxMs: (n) => n, deviceOutputMs: (n) => n });
    // One chunk of 100: 100+200+100+100+100 = 600.
    expect(predictPipelineMs([100], st)).toBe(600);
    // Four chunks of 25: the upload (50/chunk) is the bottleneck: input 25, 4 uploads end at 225, cloud 250, down 275, output 300.
    expect(predictPipelineMs([25, 25, 25, 25], st)).toBe(300);
  });

  it('per-chunk overhead makes tiny chunks lose: the dynamic policy finds the interior optimum', () => {
    const st = stages({ deviceInputMs: (n) => 1 + 0.1 * n, upTxMs: (n) => 2 + 0.2 * n, cloudMs: (n) => 3 + 0.05 * n, downTxMs: (n) => 0.1 * n, deviceOutputMs: (n) => 1 + 0.1 * n, upLatencyMs: 10, downLatencyMs: 10 });
    const P = 2000;
    const chosen = chooseChunkTokens({ kind: 'dynamic', minTokens: 16, maxTokens: 2048 }, P, st);
    const best = Math.min(...chunkCandidates(P, 16, 2048).map((c) => predictPipelineMs(splitPrompt(P, c), st)));
    expect(predictPipelineMs(splitPrompt(P, chosen), st)).toBe(best);
    expect(chosen).toBeGreaterThan(16);
    expect(chosen).toBeLessThan(P);
    expect(chooseChunkTokens({ kind: 'none' }, P, null)).toBe(P);
    expect(chooseChunkTokens({ kind: 'fixed', tokens: 128 }, P, null)).toBe(128);
  });
});

describe('draft policies', () => {
  it('expected tokens per round: closed form and limits', () => {
    expect(expectedTokensPerRound(0, 4)).toBe(1);
    expect(expectedTokensPerRound(1, 4)).toBe(5);
    expect(expectedTokensPerRound(0.5, 2)).toBeCloseTo(1.75, 12);
  });

  it('fixed draft never drafts past the tokens still needed', () => {
    const p = new FixedDraft(4);
    expect(p.next(100)).toBe(4);
    expect(p.next(3)).toBe(2);
    expect(p.next(1)).toBe(0);
  });

  it('adaptive draft: long drafts when acceptance is high and drafting cheap, short when acceptance drops', () => {
    const cost = (g: number) => 50 + 5 * g; // round trip 50 ms, 5 ms per draft token
    const p = new AdaptiveDraft({ kind: 'adaptive', minGamma: 1, maxGamma: 8, initialGamma: 4, emaWeight: 0.3 }, cost, 0.9);
    const high = p.next(1000);
    for (let i = 0; i < 30; i++) p.observe(high, 0); // everything rejected
    const low = p.next(1000);
    expect(high).toBeGreaterThanOrEqual(6);
    expect(low).toBe(1);
    expect(p.acceptance).toBeLessThan(0.05);
  });
});

describe('routers', () => {
  it('least-loaded picks the fewest active requests, ties by queued tokens then index', () => {
    const r = new LeastLoadedRouter();
    expect(r.pick([3, 1, 1], [0, 50, 10])).toBe(2);
    expect(r.pick([0, 0], [0, 0])).toBe(0);
  });
  it('round-robin cycles', () => {
    const r = new RoundRobinRouter();
    expect([0, 1, 2, 3].map(() => r.pick([0, 0, 0], [0, 0, 0]))).toEqual([0, 1, 2, 0]);
  });
});

/** COMP pruning (src/prune): linear algebra, planted structure, mask tuning, ONNX round trip through ONNX Runtime. */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { Rng } from '../src/core/rng.js';
import { cholesky, choleskyInverse, choleskySolve } from '../src/prune/linalg.js';
import { allocateNeurons, maskGram, maskTune, obsSelect, ridgeOf, sliceLayer, magnitudeScores, lowest } from '../src/prune/algorithm.js';
import { attentionHalf, embed, ffnActivations, ffnInput, layerForward, type Batch } from '../src/prune/forward.js';
import { OnnxDirSource } from '../src/prune/onnx.js';
import { DEFAULT_OPTIONS, makeCalibration, planBudget, runPrune, scoreLayers, type PruneResult } from '../src/prune/run.js';
import { getHardware } from '../src/compute/hardware.js';
import { prunedFullModelMs } from '../src/compute/pruned.js';
import { singleShape } from '../src/compute/types.js';
import { modelMemoryBytes } from '../src/model/pruning.js';
import type { ModelSpec } from '../src/model/types.js';
import { pruningOf, summaryCsv, writePrunePlots } from '../src/prune/plots.js';
import { MemorySource, type ArchDims, type LayerWeights } from '../src/prune/weights.js';

const out = mkdtempSync(join(os.tmpdir(), 'hatsim-prune-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const D: ArchDims = { hidden: 32, heads: 4, kvHeads: 2, headDim: 8, vocab: 64, rmsEps: 1e-5, ropeTheta: 10000 };
const F = 48;

function gauss(rng: Rng, n: number, std: number): Float32Array {
  return Float32Array.from({ length: n }, () => rng.normal() * std);
}

function randomLayer(rng: Rng, d: ArchDims, f: number, branchScale = 1): LayerWeights {
  const h = d.hidden, kv = d.kvHeads * d.headDim, s = 1 / Math.sqrt(h);
  return {
    inputNorm: Float32Array.from({ length: h }, () => 1 + 0.1 * rng.normal()),
    q: gauss(rng, h * h, s), k: gauss(rng, h * kv, s), v: gauss(rng, h * kv, s), o: gauss(rng, h * h, s * branchScale),
    postNorm: Float32Array.from({ length: h }, () => 1 + 0.1 * rng.normal()),
    gate: gauss(rng, h * f, s), up: gauss(rng, h * f, s), down: gauss(rng, f * h, branchScale / Math.sqrt(f)),
    ffn: f,
  };
}

function model(seed: number, layers: number, planted: (i: number, rng: Rng) => LayerWeights | null = () => null): MemorySource {
  const rng = new Rng(seed, 'test-model');
  const ls: LayerWeights[] = [];
  for (let i = 0; i < layers; i++) ls.push(planted(i, rng) ?? randomLayer(rng, D, F));
  return new MemorySource(D, ls, gauss(rng, D.vocab * D.hidden, 1), new Float32Array(D.hidden).fill(1), gauss(rng, D.hidden * D.vocab, 1 / Math.sqrt(D.hidden)));
}

const cal = () => makeCalibration({ sequences: 8, heldOut: 4, seqLen: 16, vocab: D.vocab, seed: 3 });

describe('linear algebra', () => {
  it('Cholesky solve and inverse of an SPD matrix match A x = b and A A^-1 = I', () => {
    const rng = new Rng(1, 'la');
    const n = 7;
    const b0 = Float64Array.from({ length: n * n }, () => rng.normal());
    const a = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = i === j ? 0.5 : 0; for (let k = 0; k < n; k++) s += b0[i * n + k] * b0[j * n + k]; a[i * n + j] = s; }
    const l = Float64Array.from(a);
    expect(cholesky(l, n)).toBe(true);
    const rhs = Float64Array.from({ length: n }, () => rng.normal());
    const x = choleskySolve(l, n, rhs);
    for (let i = 0; i < n; i++) { let s = 0; for (let j = 0; j < n; j++) s += a[i * n + j] * x[j]; expect(s).toBeCloseTo(rhs[i], 9); }
    const inv = choleskyInverse(l, n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) { let s = 0; for (let k = 0; k < n; k++) s += a[i * n + k] * inv[k * n + j]; expect(s).toBeCloseTo(i === j ? 1 : 0, 9); }
    const notPd = Float64Array.from([1, 2, 2, 1]);
    expect(cholesky(notPd, 2)).toBe(false);
  });

  it('greedy OBS ends at the mask-tuning least-squares solution of its kept set (independent solve)', () => {
    const rng = new Rng(2, 'obs');
    const w = randomLayer(rng, D, F);
    const u = gauss(rng, 64 * D.hidden, 1);
    const act = ffnActivations(u, 64, w, D);
    const g = maskGram(act, 64, w.down, F, D.hidden);
    const lambda = ridgeOf(g, F, 1e-2);
    const { removed, costs } = obsSelect(g, F, 12, lambda);
    expect(new Set(removed).size).toBe(12);
    const kept = [...Array(F).keys()].filter((j) => !removed.includes(j));
    // the objective (m-1)^T (G + lambda I) (m-1) at the tuned m equals the sum of the OBS costs
    const mt = maskTune(g, F, kept, lambda, { scaleMin: -100, scaleMax: 100, maxScaleVariance: 1e9, retries: 0 });
    const m = new Float64Array(F);
    kept.forEach((j, a) => { m[j] = mt.scales[a]; });
    let obj = 0;
    for (let i = 0; i < F; i++) for (let j = 0; j < F; j++) obj += (m[i] - 1) * (g[i * F + j] + (i === j ? lambda : 0)) * (m[j] - 1);
    const sum = costs.reduce((a, b) => a + b, 0);
    expect(Math.abs(obj - sum) / sum).toBeLessThan(1e-6);
  });

  it('neuron allocation: sums to the total, respects the cap, uniform is proportional', () => {
    expect(allocateNeurons([100, 100, 100], [1, 1, 1], 60, 'uniform', 0.9)).toEqual([20, 20, 20]);
    const a = allocateNeurons([100, 100, 100], [0.1, 1, 1], 200, 'score', 0.9);
    expect(a.reduce((x, y) => x + y, 0)).toBe(200);
    expect(a[0]).toBe(90);
    expect(allocateNeurons([10, 10], [1, 1], 19, 'uniform', 0.9)).toEqual([]);
  });
});

describe('planted structure', () => {
  it('near-identity layers (tiny residual branches) score lowest and are dropped first', () => {
    const src = model(5, 6, (i, rng) => (i === 1 || i === 4 ? randomLayer(rng, D, F, 1e-3) : null));
    const c = cal();
    const scores = scoreLayers(src, c, src.embedding());
    const order = lowest(scores, 6);
    expect(new Set(order.slice(0, 2))).toEqual(new Set([1, 4]));
    const lp = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * F + 64;
    const plan = planBudget(src, scores, { ...DEFAULT_OPTIONS, method: 'layers', ratio: (2 * lp) / (6 * lp) });
    expect([...plan.drop].sort()).toEqual([1, 4]);
    const plan1 = planBudget(src, scores, { ...DEFAULT_OPTIONS, method: 'comp', ratio: (2 * lp) / (6 * lp), layerShare: 0.5 });
    expect(plan1.drop.size).toBe(1);
    expect([1, 4]).toContain([...plan1.drop][0]);
  });

  it('budget: --count all counts embedding and head (never pruned); --layer-share 1 spends everything on layers', () => {
    const src = model(5, 6);
    const scores = [0.5, 0.1, 0.4, 0.3, 0.2, 0.6];
    const lp = 2 * 32 * 32 + 2 * 32 * 16 + 3 * 32 * F + 64;
    const dec = planBudget(src, scores, { ...DEFAULT_OPTIONS, method: 'magnitude', ratio: 0.1 });
    expect(dec.countedParams).toBe(6 * lp);
    const all = planBudget(src, scores, { ...DEFAULT_OPTIONS, method: 'magnitude', ratio: 0.1, count: 'all' });
    expect(all.countedParams).toBe(6 * lp + 2 * 64 * 32 + 32);
    expect(all.removedParams).toBeGreaterThan(dec.removedParams);
    expect(Math.abs(all.removedParams / all.countedParams - 0.1)).toBeLessThan(3 * 32 / all.countedParams);
    const layersOnly = planBudget(src, scores, { ...DEFAULT_OPTIONS, method: 'comp', ratio: (2 * lp) / (6 * lp), layerShare: 1 });
    expect([...layersOnly.drop].sort()).toEqual([1, 4]);
    expect(layersOnly.neuronsToRemove.every((k) => k === 0)).toBe(true);
    const neuronsOnly = planBudget(src, scores, { ...DEFAULT_OPTIONS, method: 'comp', ratio: 0.3, layerShare: 0 });
    expect(neuronsOnly.drop.size).toBe(0);
    // score allocation: the lowest-scoring layer (1) loses the most neurons, the highest (5) the fewest
    const k = neuronsOnly.neuronsToRemove;
    expect(Math.max(...k)).toBe(k[1]);
    expect(Math.min(...k)).toBe(k[5]);
  });

  it('dead and duplicated FFN neurons are pruned first by COMP; magnitude misses the duplicates', () => {
    const rng = new Rng(9, 'planted-neurons');
    const w = randomLayer(rng, D, F);
    const h = D.hidden;
    const dead = [3, 17, 30];
    const dup: [number, number][] = [[5, 40], [11, 25], [20, 44]];
    for (const j of dead) for (let r = 0; r < h; r++) { w.gate[r * F + j] = 0; w.up[r * F + j] = 0; }
    for (const [a, b] of dup) {
      for (let r = 0; r < h; r++) { w.gate[r * F + b] = w.gate[r * F + a]; w.up[r * F + b] = w.up[r * F + a]; }
      for (let c = 0; c < h; c++) w.down[b * h + c] = w.down[a * h + c];
    }
    const u = gauss(rng, 128 * h, 1);
    const act = ffnActivations(u, 128, w, D);
    const g = maskGram(act, 128, w.down, F, h);
    const { removed } = obsSelect(g, F, 6, ridgeOf(g, F, 1e-2));
    for (const j of dead) expect(removed).toContain(j);
    for (const [a, b] of dup) expect(removed.filter((j) => j === a || j === b)).toHaveLength(1);
    // magnitude scores weight norms: a duplicate has the norm of a typical neuron, so none is among its first removals
    const mag = lowest(magnitudeScores(w, h), 6);
    expect(dup.some(([a, b]) => mag.includes(a) || mag.includes(b))).toBe(false);
  });
});

function meanFfnErr(r: PruneResult): number {
  const e = r.layers.filter((l) => l.ffnRelErr !== undefined).map((l) => l.ffnRelErr as number);
  return e.reduce((a, b) => a + b, 0) / e.length;
}

describe('runPrune', () => {
  const src = model(11, 4);
  const results: Record<string, PruneResult> = {};
  for (const method of ['comp', 'comp-notune', 'magnitude', 'random', 'layers'] as const) {
    it(`${method} at 30 % writes a model, pruning.json and report; held-out quality is finite`, () => {
      const r = runPrune(src, cal(), { ...DEFAULT_OPTIONS, method, ratio: 0.3, outDir: join(out, method) });
      results[method] = r;
      for (const f of ['model/decoder.onnx', 'model/decoder.onnx.data', 'model/embedding.onnx', 'model/lmHead.onnx', 'model/decoderLayer.onnx', 'pruning.json', 'report.md', 'report.json']) {
        expect(existsSync(join(out, method, f)), f).toBe(true);
      }
      expect(Math.abs(r.achievedRatio - 0.3)).toBeLessThan(method === 'layers' ? 0.13 : 0.01);
      expect(r.quality.top1Match).toBeGreaterThan(0);
      expect(Number.isFinite(r.quality.meanKl)).toBe(true);
    });
  }

  it('mask tuning lowers the held-out FFN reconstruction error against no tuning, with margin (correlated neurons)', () => {
    // Half of each FFN's neurons are noisy copies of the other half (correlated neurons, as in trained FFNs):
    // a removed neuron's output can be recovered by scaling its partner, which only mask tuning does.
    const corr = model(13, 3, (_i, rng) => {
      const w = randomLayer(rng, D, F);
      const h = D.hidden, half = F / 2;
      for (let j = half; j < F; j++) {
        for (let r = 0; r < h; r++) {
          w.gate[r * F + j] = w.gate[r * F + j - half] * (1 + 0.05 * rng.normal());
          w.up[r * F + j] = w.up[r * F + j - half] * (1 + 0.05 * rng.normal());
        }
        for (let c = 0; c < h; c++) w.down[j * h + c] = w.down[(j - half) * h + c];
      }
      return w;
    });
    const c = makeCalibration({ sequences: 16, heldOut: 4, seqLen: 16, vocab: D.vocab, seed: 4 });
    const opts = { ...DEFAULT_OPTIONS, ratio: 0.25, layerShare: 0 };
    const tuned = runPrune(corr, c, { ...opts, method: 'comp', outDir: join(out, 'corr-comp') });
    const plain = runPrune(corr, c, { ...opts, method: 'comp-notune', outDir: join(out, 'corr-notune') });
    expect(tuned.layers.map((l) => l.ffnAfter)).toEqual(plain.layers.map((l) => l.ffnAfter));
    expect(meanFfnErr(tuned)).toBeLessThan(0.5 * meanFfnErr(plain));
    expect(tuned.quality.finalHiddenRelErr).toBeLessThan(0.5 * plain.quality.finalHiddenRelErr);
    expect(tuned.quality.meanKl).toBeLessThan(plain.quality.meanKl);
  });


  it('same seed, same input: byte-identical pruned ONNX and pruning.json; another seed changes the random baseline', () => {
    runPrune(src, cal(), { ...DEFAULT_OPTIONS, method: 'comp', ratio: 0.3, outDir: join(out, 'comp-again') });
    for (const f of ['model/decoder.onnx', 'model/decoder.onnx.data', 'pruning.json']) {
      expect(readFileSync(join(out, 'comp-again', f)).equals(readFileSync(join(out, 'comp', f))), f).toBe(true);
    }
    runPrune(src, cal(), { ...DEFAULT_OPTIONS, method: 'random', ratio: 0.3, seed: 2, outDir: join(out, 'random-2') });
    expect(readFileSync(join(out, 'random-2', 'pruning.json')).equals(readFileSync(join(out, 'random', 'pruning.json')))).toBe(false);
  });

  it('perplexity is reported for a token file; a zero LM head gives exactly the vocabulary size (uniform prediction)', () => {
    const tokFile = join(out, 'tokens.txt');
    const rng = new Rng(4, 'tokens');
    writeFileSync(tokFile, Array.from({ length: 12 * 16 }, () => rng.int(D.vocab)).join(' ') + '\n');
    const c = makeCalibration({ tokensFile: tokFile, sequences: 8, heldOut: 4, seqLen: 16, vocab: D.vocab, seed: 1 });
    expect(c.calibBatch.seqs).toBe(8);
    expect(c.heldOutBatch.seqs).toBe(4);
    const zeroHead = new MemorySource(D, src.layers, src.emb, src.norm, new Float32Array(D.hidden * D.vocab));
    const r = runPrune(zeroHead, c, { ...DEFAULT_OPTIONS, method: 'magnitude', ratio: 0.2, outDir: join(out, 'ppl') });
    expect(r.quality.perplexityBefore).toBeCloseTo(D.vocab, 6);
    expect(r.quality.perplexityAfter).toBeCloseTo(D.vocab, 6);
    const r2 = runPrune(src, c, { ...DEFAULT_OPTIONS, method: 'magnitude', ratio: 0.2, outDir: join(out, 'ppl2') });
    expect(r2.quality.perplexityBefore).toBeGreaterThan(1);
    expect(Number.isFinite(r2.quality.perplexityAfter)).toBe(true);
  });

  it('summary.csv and the figures: one row per run; every pruned model is faster (roofline) and smaller than the unpruned one', async () => {
    const runs = Object.values(results);
    const csv = summaryCsv(runs).trim().split('\n');
    expect(csv).toHaveLength(runs.length + 1);
    expect(csv[0].split(',')).toContain('top1_match');
    const spec: ModelSpec = { id: 'micro', name: 'micro', numLayers: 4, hiddenSize: 32, intermediateSize: F, numHeads: 4, numKvHeads: 2, vocabSize: 64, weightBytesPerElem: 2, activationBytesPerElem: 2, maxContext: 1024 };
    const files = await writePrunePlots(join(out, 'plots'), runs, spec, 'jetson-orin-nx-16gb');
    expect(files.map((f) => f.split('/').pop())).toEqual(['quality.svg', 'latency.svg', 'memory.svg', 'front.svg']);
    for (const f of files) expect(readFileSync(f, 'utf8')).toMatch(/^<svg/);
    const lat = JSON.parse(readFileSync(join(out, 'plots', 'latency.vl.json'), 'utf8')).data.values as { phase: string; ms: number }[];
    const full = prunedFullModelMs(spec, null, getHardware('jetson-orin-nx-16gb'), singleShape(256, 0));
    for (const v of lat.filter((x) => x.phase.startsWith('prefill'))) expect(v.ms).toBeLessThan(full);
    for (const r of runs) expect(modelMemoryBytes(spec, pruningOf(r), 2048)).toBeLessThan(modelMemoryBytes(spec, null, 2048));
  });

  it('the pruned ONNX loads in ONNX Runtime (no custom ops) and matches the reference forward of the pruned network', async () => {
    const dir = join(out, 'comp', 'model');
    const pruned = new OnnxDirSource(dir, D);
    expect(pruned.numLayers).toBe(results.comp.layers.filter((l) => l.kept).length);
    expect(pruned.ffnWidths()).toEqual(results.comp.layers.filter((l) => l.kept).map((l) => l.ffnAfter));
    const b: Batch = { seqs: 1, seqLen: 12 };
    const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7) % D.vocab);
    let x = embed(ids, pruned.embedding(), D.hidden);
    const x0 = x.slice();
    for (let l = 0; l < pruned.numLayers; l++) x = layerForward(x, b, pruned.layer(l), D);
    const session = await ort.InferenceSession.create(join(dir, 'decoder.onnx'));
    const feeds: Record<string, ort.Tensor> = { hidden_states: new ort.Tensor('float32', x0, [1, 12, D.hidden]) };
    for (let l = 0; l < pruned.numLayers; l++) {
      feeds[`past_key_values.${l}.key`] = new ort.Tensor('float32', new Float32Array(0), [1, D.kvHeads, 0, D.headDim]);
      feeds[`past_key_values.${l}.value`] = new ort.Tensor('float32', new Float32Array(0), [1, D.kvHeads, 0, D.headDim]);
    }
    const res = await session.run(feeds);
    const y = res.hidden_states_out.data as Float32Array;
    let maxErr = 0, maxRef = 0;
    for (let i = 0; i < y.length; i++) { maxErr = Math.max(maxErr, Math.abs(y[i] - x[i])); maxRef = Math.max(maxRef, Math.abs(x[i])); }
    expect(maxErr / maxRef).toBeLessThan(1e-4);
  });
});

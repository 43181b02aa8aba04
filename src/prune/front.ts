/**
 * The quality/latency front of a prune grid, per device: one point per
 * (method, ratio) plus the unpruned model, x = whole-model decode latency per
 * token (1 new token over a long context), y = quality (held-out perplexity
 * after pruning when the model and the text are real, else top-1 agreement
 * with the unpruned model). Latency per device is the data-sheet roofline of
 * the pruning description (compute/pruned.ts, an estimate) or, where
 * <calibration-dir>/<hw>/<pruned id>/model.json exists, the measured
 * calibration (embedding + kept layers x decoderLayer + LM head).
 *
 * Pruned ids follow the scenario convention `<base id>-<method>-r<ratio>`
 * (e.g. brown-small-comp-r0.2), the id `hatsim calibrate --as-model-id` writes.
 */
import { existsSync, readdirSync } from 'node:fs';
import { calibratedComponent, findCalibration, loadCalibration, type CalibrationFile } from '../compute/calibration.js';
import { getHardware } from '../compute/hardware.js';
import { prunedFullModelMs } from '../compute/pruned.js';
import { singleShape, type BatchShape } from '../compute/types.js';
import type { PruningSpec } from '../model/pruning.js';
import type { ModelSpec } from '../model/types.js';

/** Id of a pruned grid point: what a scenario declares and calibration files are written under. */
export function prunedModelId(baseId: string, method: string, ratio: number): string {
  return `${baseId}-${method}-r${ratio}`;
}

/** One new token over the longest context the model takes, up to 512 (decode step). */
export function decodeShapeOf(model: ModelSpec): BatchShape {
  return singleShape(1, Math.min(512, model.maxContext - 1));
}

/** A prompt of 256 tokens (at most half the context) from an empty cache. */
export function prefillShapeOf(model: ModelSpec): BatchShape {
  return singleShape(Math.min(256, Math.floor(model.maxContext / 2)), 0);
}

/**
 * Pareto flags for "lower x is better" and y better when lower or higher: a
 * point is optimal iff no other point has x <= and y at least as good with
 * one of them strictly better. Equal points are all optimal. O(n log n).
 */
export function paretoFlags(points: readonly { x: number; y: number }[], yBetter: 'lower' | 'higher'): boolean[] {
  const g = (y: number): number => (yBetter === 'lower' ? y : -y); // goodness as "lower is better"
  const order = points.map((_, i) => i).sort((a, b) => points[a].x - points[b].x || g(points[a].y) - g(points[b].y));
  const flags = new Array<boolean>(points.length).fill(false);
  let bestBefore = Infinity; // best (lowest) g among points with strictly smaller x
  let i = 0;
  while (i < order.length) {
    let j = i;
    while (j < order.length && points[order[j]].x === points[order[i]].x) j++;
    const groupBest = g(points[order[i]].y); // sorted: the first of the group is its best
    for (let k = i; k < j; k++) {
      const gy = g(points[order[k]].y);
      flags[order[k]] = gy === groupBest && gy < bestBefore;
    }
    bestBefore = Math.min(bestBefore, groupBest);
    i = j;
  }
  return flags;
}

export interface FrontInput {
  method: string;
  ratio: number;
  pruning: PruningSpec;
  quality: { top1Match: number; perplexityBefore: number | null; perplexityAfter: number | null };
}

export interface FrontPoint {
  device: string;
  source: 'measured' | 'estimate';
  method: string;
  ratio: number;
  label: string;
  decodeMsPerToken: number;
  quality: number;
  pareto: boolean;
}

export interface FrontOptions {
  /** Data-sheet hardware ids (roofline estimate of each pruning description). */
  hardware: readonly string[];
  /** Root of calibration files; every <hw>/ with a file for a pruned id of the grid gives a measured facet. */
  calibrationDir?: string;
}

/** Whole-model pass from calibration files: embedding + layers x decoderLayer + LM head; parts missing from `file` come from `base`. */
export function calibratedFullModelMs(file: CalibrationFile, filePath: string, base: CalibrationFile | null, basePath: string, layers: number, shape: BatchShape): number {
  const part = (id: 'embedding' | 'decoderLayer' | 'lmHead'): number => {
    if (file.components[id] !== undefined || base === null) return calibratedComponent(file, id, filePath).batchMs(shape);
    return calibratedComponent(base, id, basePath).batchMs(shape);
  };
  return part('embedding') + layers * part('decoderLayer') + part('lmHead');
}

/** The front's points, device by device, with Pareto flags per device. */
export function frontPoints(model: ModelSpec, results: readonly FrontInput[], o: FrontOptions): { points: FrontPoint[]; quality: 'perplexity' | 'top-1 agreement' } {
  const real = results.length > 0 && results.every((r) => r.quality.perplexityAfter !== null && r.quality.perplexityBefore !== null);
  const q = (r: FrontInput): number => (real ? (r.quality.perplexityAfter as number) : r.quality.top1Match);
  const unprunedQuality = real ? (results[0].quality.perplexityBefore as number) : 1;
  const shape = decodeShapeOf(model);
  const all: FrontPoint[] = [];
  const add = (device: string, source: FrontPoint['source'], rows: { method: string; ratio: number; label: string; ms: number; quality: number }[]): void => {
    const flags = paretoFlags(rows.map((r) => ({ x: r.ms, y: r.quality })), real ? 'lower' : 'higher');
    rows.forEach((r, i) => all.push({ device, source, method: r.method, ratio: r.ratio, label: r.label, decodeMsPerToken: r.ms, quality: r.quality, pareto: flags[i] }));
  };
  for (const id of o.hardware) {
    const hw = getHardware(id);
    add(`${id} (roofline estimate)`, 'estimate', [
      { method: 'unpruned', ratio: 0, label: 'unpruned', ms: prunedFullModelMs(model, null, hw, shape), quality: unprunedQuality },
      ...results.map((r) => ({ method: r.method, ratio: r.ratio, label: `${r.method} ${r.ratio}`, ms: prunedFullModelMs(model, r.pruning, hw, shape), quality: q(r) })),
    ]);
  }
  const dir = o.calibrationDir;
  if (dir !== undefined && existsSync(dir)) {
    for (const hwId of readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name).sort()) {
      const basePath = findCalibration(dir, hwId, model.id);
      const base = basePath === null ? null : loadCalibration(basePath, { hardwareId: hwId, modelId: model.id });
      const rows: { method: string; ratio: number; label: string; ms: number; quality: number }[] = [];
      if (base !== null && basePath !== null && base.components.decoderLayer && base.components.embedding && base.components.lmHead) {
        rows.push({ method: 'unpruned', ratio: 0, label: 'unpruned', ms: calibratedFullModelMs(base, basePath, null, basePath, model.numLayers, shape), quality: unprunedQuality });
      }
      for (const r of results) {
        const id = prunedModelId(model.id, r.method, r.ratio);
        const path = findCalibration(dir, hwId, id);
        if (path === null) continue;
        const file = loadCalibration(path, { hardwareId: hwId, modelId: id });
        if (!file.components.decoderLayer) continue;
        const complete = file.components.embedding !== undefined && file.components.lmHead !== undefined;
        if (!complete && (base === null || !base.components.embedding || !base.components.lmHead)) continue;
        rows.push({ method: r.method, ratio: r.ratio, label: `${r.method} ${r.ratio}`, ms: calibratedFullModelMs(file, path, base, basePath ?? path, r.pruning.layersKept.length, shape), quality: q(r) });
      }
      if (rows.some((r) => r.method !== 'unpruned')) add(`${hwId} (measured)`, 'measured', rows);
    }
  }
  return { points: all, quality: real ? 'perplexity' : 'top-1 agreement' };
}

/** vega-lite spec: one panel per device; hollow marks, Pareto-optimal points filled and joined. */
export function frontSpec(model: ModelSpec, points: readonly FrontPoint[], quality: 'perplexity' | 'top-1 agreement'): Record<string, unknown> {
  const shape = decodeShapeOf(model);
  const x = { field: 'decodeMsPerToken', type: 'quantitative', title: `decode ms per token (1 token @ ctx ${shape.ctx})`, scale: { zero: false } };
  const y = { field: 'quality', type: 'quantitative', title: quality === 'perplexity' ? 'held-out perplexity (lower is better)' : 'top-1 agreement with unpruned (higher is better)', scale: { zero: false } };
  const color = { field: 'method', type: 'nominal' };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `quality vs decode latency per device (${model.id}; filled = Pareto-optimal; measured = calibration files, else roofline estimate)`,
    data: { values: points.map((p) => ({ ...p })) },
    facet: { column: { field: 'device', type: 'nominal', title: null } },
    spec: {
      width: 220,
      height: 200,
      layer: [
        { transform: [{ filter: 'datum.pareto' }], mark: { type: 'line', color: '#444', strokeDash: [4, 3] }, encoding: { x, y, order: { field: 'decodeMsPerToken', type: 'quantitative' } } },
        { mark: { type: 'point', filled: false, size: 60 }, encoding: { x, y, color, shape: { field: 'ratio', type: 'nominal', title: 'ratio' } } },
        { transform: [{ filter: 'datum.pareto' }], mark: { type: 'point', filled: true, size: 60 }, encoding: { x, y, color, shape: { field: 'ratio', type: 'nominal', title: 'ratio' } } },
      ],
    },
    resolve: { scale: { x: 'independent', y: 'shared' } },
  };
}

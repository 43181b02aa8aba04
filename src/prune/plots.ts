/**
 * The grid's summary.csv and figures: quality against pruning ratio per
 * method; roofline latency (decode and prefill on a data-sheet device, from
 * the pruning description) and memory (fp16 weights, peak RSS of the run)
 * against ratio. Figures are vega-lite specs rendered by plot/ (SVG).
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { getHardware } from '../compute/hardware.js';
import { prunedFullModelMs } from '../compute/pruned.js';
import { singleShape } from '../compute/types.js';
import { modelMemoryBytes, type PruningSpec } from '../model/pruning.js';
import type { ModelSpec } from '../model/types.js';
import { specToSvg } from '../plot/render.js';
import type { PruneResult } from './run.js';
import { frontPoints, frontSpec } from './front.js';

/** Data-sheet devices of the quality/latency front when none are given. */
export const DEFAULT_FRONT_HARDWARE = ['jetson-agx-orin-64gb', 'jetson-orin-nx-16gb', 'jetson-tx2'];

export interface PrunePlotOptions {
  /** Data-sheet devices of front.svg (default DEFAULT_FRONT_HARDWARE). */
  frontHardware?: readonly string[];
  /** Calibration root: measured facets of front.svg for pruned ids found there. */
  calibrationDir?: string;
}

export function pruningOf(r: PruneResult): PruningSpec {
  const kept = r.layers.filter((l) => l.kept);
  return { layersKept: kept.map((l) => l.index), ffnWidths: kept.map((l) => l.ffnAfter) };
}

const COLUMNS = ['method', 'ratio', 'achieved_ratio', 'layers_kept', 'params_after', 'final_hidden_rel_err', 'mean_ffn_rel_err', 'top1_match', 'mean_kl', 'perplexity_before', 'perplexity_after', 'peak_rss_bytes', 'baseline_rss_bytes', 'model_bytes_fp32', 'duration_ms'];

export function meanFfnRelErr(r: PruneResult): number | null {
  const e = r.layers.filter((l) => l.ffnRelErr !== undefined && l.ffnRelErr !== null).map((l) => l.ffnRelErr as number);
  return e.length ? e.reduce((a, b) => a + b, 0) / e.length : null;
}

export function summaryCsv(results: readonly PruneResult[]): string {
  const rows = results.map((r) => [
    r.method, r.ratio, r.achievedRatio, r.layers.filter((l) => l.kept).length, r.paramsAfter, r.quality.finalHiddenRelErr, meanFfnRelErr(r) ?? '',
    r.quality.top1Match, r.quality.meanKl, r.quality.perplexityBefore ?? '', r.quality.perplexityAfter ?? '', r.memory.peakRssBytes, r.memory.baselineRssBytes ?? '', r.memory.modelBytesFp32, r.durationMs,
  ].join(','));
  return [COLUMNS.join(','), ...rows].join('\n') + '\n';
}

function lineChart(title: string, values: Record<string, unknown>[], y: string, yTitle: string, facet?: string, logY = false): Record<string, unknown> {
  const enc = {
    x: { field: 'ratio', type: 'quantitative', title: 'pruning ratio (target)' },
    y: { field: y, type: 'quantitative', title: yTitle, ...(logY ? { scale: { type: 'log' } } : {}) },
    color: { field: 'method', type: 'nominal' },
  };
  const layer = { mark: { type: 'line', point: true }, encoding: enc };
  return facet
    ? { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title, data: { values }, facet: { column: { field: facet, type: 'nominal', title: null } }, spec: { width: 220, height: 200, ...layer }, resolve: { scale: { y: 'independent' } } }
    : { $schema: 'https://vega.github.io/schema/vega-lite/v6.json', title, data: { values }, width: 420, height: 260, ...layer };
}

/** Writes quality.svg, latency.svg, memory.svg and front.svg (quality vs decode latency per device) into `dir`; returns their paths. */
export async function writePrunePlots(dir: string, results: readonly PruneResult[], model: ModelSpec, hardwareId = 'jetson-orin-nx-16gb', opts: PrunePlotOptions = {}): Promise<string[]> {
  const hw = getHardware(hardwareId);
  const quality: Record<string, unknown>[] = [];
  const latency: Record<string, unknown>[] = [];
  const memory: Record<string, unknown>[] = [];
  for (const r of results) {
    const q = r.quality;
    quality.push({ method: r.method, ratio: r.ratio, metric: 'final hidden rel. error', value: q.finalHiddenRelErr });
    quality.push({ method: r.method, ratio: r.ratio, metric: 'top-1 agreement', value: q.top1Match });
    quality.push({ method: r.method, ratio: r.ratio, metric: 'mean KL (nats)', value: q.meanKl });
    const p = pruningOf(r);
    latency.push({ method: r.method, ratio: r.ratio, phase: 'decode 1 token @512', ms: prunedFullModelMs(model, p, hw, singleShape(1, 512)) });
    latency.push({ method: r.method, ratio: r.ratio, phase: 'prefill 256 tokens', ms: prunedFullModelMs(model, p, hw, singleShape(256, 0)) });
    memory.push({ method: r.method, ratio: r.ratio, kind: 'fp16 weights + 2048-token KV (GB)', gb: modelMemoryBytes(model, p, 2048) / 1e9 });
    memory.push({ method: r.method, ratio: r.ratio, kind: 'peak RSS of the pruning run (GB)', gb: r.memory.peakRssBytes / 1e9 });
  }
  const files: [string, Record<string, unknown>][] = [
    ['quality.svg', lineChart(`held-out quality vs pruning ratio (${model.id}, ${results[0]?.source ?? ''})`, quality, 'value', 'value', 'metric')],
    ['latency.svg', lineChart(`roofline latency of the pruned model on ${hw.id} (estimate)`, latency, 'ms', 'ms', 'phase')],
    ['memory.svg', lineChart(`memory vs pruning ratio (${model.id})`, memory, 'gb', 'GB', 'kind')],
  ];
  const front = frontPoints(model, results.map((r) => ({ method: r.method, ratio: r.ratio, pruning: pruningOf(r), quality: r.quality })), {
    hardware: opts.frontHardware ?? DEFAULT_FRONT_HARDWARE,
    calibrationDir: opts.calibrationDir,
  });
  files.push(['front.svg', frontSpec(model, front.points, front.quality)]);
  const written: string[] = [];
  for (const [name, spec] of files) {
    const path = join(dir, name);
    writeFileAtomic(path, await specToSvg(spec));
    writeFileAtomic(path.replace(/\.svg$/, '.vl.json'), JSON.stringify(spec, null, 1) + '\n');
    written.push(path);
  }
  return written;
}

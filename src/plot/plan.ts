/**
 * Decides which figures and tables a directory's files allow: a run dir, a
 * sweep dir (sweep.csv + points/<id>/), a calibration dir, a validation dir,
 * or a mix. Figures whose inputs are absent are listed as skipped with the
 * reason; a file that is present but malformed is an InputError.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import { InputError } from '../core/errors.js';
import * as F from './figures.js';
import type { VlSpec } from './figures.js';
import {
  findCalibrationDirs, readCalibration, readGpuUtil, readRequests, readRunJson, readSummary, readSweep,
  readTimeline, readValidation,
} from './read.js';
import type { RequestRow } from './read.js';
import { planDtoeeOnline } from './dtoee-online.js';
import { metricLabel, systemsIn } from './style.js';
import { isFedSpineDir, planFedSpine } from './fedspine.js';
import { isDtoeeSweep, planDtoeeConvergence, planDtoeeSweep } from './dtoee.js';

export type FigureGroup = 'run' | 'sweep' | 'calibration' | 'validation';

export interface Figure {
  /** Stable id; also the output file name (without extension), possibly with a sub-folder (points/<id>/...). */
  id: string;
  title: string;
  /** What the figure shows, one or two sentences (used by the report and docs). */
  description: string;
  group: FigureGroup;
  spec: VlSpec;
  /** Systems drawn as one series each (empty for figures that are not per system). */
  systems: string[];
}

export interface Skipped {
  id: string;
  reason: string;
}

export interface Table {
  id: string;
  title: string;
  columns: string[];
  rows: (string | number)[][];
}

export interface FigurePlan {
  dir: string;
  /** What the directory turned out to hold. */
  kinds: FigureGroup[];
  figures: Figure[];
  skipped: Skipped[];
  tables: Table[];
  /** run.json of the directory (or of the first sweep point), for display. */
  run?: Record<string, unknown>;
  notes: string[];
}

export interface PlanOptions {
  /** Sweep points whose per-run figures to draw: 'auto' (all if <= 4, else first, middle, last), 'all', 'none', or ids. */
  points?: 'auto' | 'all' | 'none' | string[];
  /** Extra calibration dirs to include (a calibration root or `<hw>/<model>` dirs). */
  calibration?: string[];
}

const has = (dir: string, file: string) => existsSync(join(dir, file));

function withContext(spec: VlSpec, context: string): VlSpec {
  const t = spec.title;
  if (typeof t === 'string') return { ...spec, title: { text: t, subtitle: context } };
  if (t && typeof t === 'object') {
    const o = t as { text: string; subtitle?: string | string[] };
    const sub = o.subtitle === undefined ? [] : Array.isArray(o.subtitle) ? o.subtitle : [o.subtitle];
    return { ...spec, title: { ...o, subtitle: [context, ...sub] } };
  }
  return spec;
}

/** Figures of one run directory; `prefix` is prepended to ids (e.g. "points/p1/"). */
function planRun(dir: string, prefix: string, context: string | undefined, plan: FigurePlan): void {
  const add = (id: string, title: string, description: string, spec: VlSpec, systems: string[]) =>
    plan.figures.push({ id: prefix + id, title, description, group: 'run', spec: context ? withContext(spec, context) : spec, systems });
  const skip = (id: string, reason: string) => plan.skipped.push({ id: prefix + id, reason });
  const where = prefix ? `${prefix.replace(/\/$/, '')}` : 'the directory';

  let requests: RequestRow[] | undefined;
  if (has(dir, 'requests.csv')) {
    requests = readRequests(dir);
    if (requests.length === 0) {
      for (const id of ['ttft-cdf', 'tbt-cdf', 'bytes-per-request']) skip(id, `requests.csv in ${where} has no rows`);
      requests = undefined;
    } else {
      const systems = systemsIn(requests);
      add('ttft-cdf', 'TTFT CDF per system', 'Distribution of time to first token over all requests, one line per system.', F.latencyCdf(requests, 'ttft'), systems);
      add('tbt-cdf', 'TBT CDF per system', 'Distribution of each request\'s mean time between tokens, one line per system.', F.latencyCdf(requests, 'tbt'), systems);
      add('bytes-per-request', 'Bytes per request', 'Mean bytes per request up and down, split into hidden states, raw tokens (privacy exposure) and the rest.', F.bytesPerRequest(requests), systems);
    }
  } else {
    for (const id of ['ttft-cdf', 'tbt-cdf', 'bytes-per-request']) skip(id, `no requests.csv in ${where}`);
  }

  if (has(dir, 'summary.csv')) {
    const summary = readSummary(dir);
    const systems = systemsIn(summary);
    add('ttft-bars', 'TTFT mean and p99', 'Mean and 99th-percentile time to first token per system (summary.csv).', F.latencyBars(summary, 'ttft'), systems);
    if (summary.every((r) => typeof r.tbt_mean_ms === 'number')) add('tbt-bars', 'TBT mean and p99', 'Mean and 99th-percentile time between tokens per system (summary.csv).', F.latencyBars(summary, 'tbt'), systems);
    else skip('tbt-bars', `summary.csv in ${where} has systems without a time between tokens (single-pass tasks)`);
    if (!prefix) {
      const cols = ['system', 'requests', 'ttft_mean_ms', 'ttft_p50_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p50_ms', 'tbt_p99_ms',
        'e2e_mean_ms', 'throughput_tok_s', 'bytes_up_per_request', 'raw_token_bytes_up', 'cloud_queue_mean_ms', 'gpu_util_mean', 'latency_source']
        .filter((c) => summary.some((s) => c in s));
      plan.tables.push({
        id: 'summary',
        title: 'Summary per system (summary.csv)',
        columns: cols,
        rows: systems.map((sys) => {
          const s = summary.find((x) => x.system === sys)! as unknown as Record<string, string | number>;
          return cols.map((c) => s[c] ?? '');
        }),
      });
    }
  } else {
    for (const id of ['ttft-bars', 'tbt-bars']) skip(id, `no summary.csv in ${where}`);
  }

  if (has(dir, 'timeline.csv')) {
    const spans = readTimeline(dir);
    if (spans.length === 0) {
      skip('timeline', `timeline.csv in ${where} has no spans`);
    } else {
      const picked = F.pickTimelineRequests(spans);
      const ttft = new Map<string, number>();
      for (const [sys, k] of picked) {
        const r = requests?.find((x) => x.system === sys && x.device === k.device && x.request === k.request);
        if (r) ttft.set(sys, r.ttft_ms);
      }
      const systems = [...picked.keys()];
      add('timeline', 'Timeline of one request', 'Gantt chart of one request under each system: device compute, drafting, uplink, cloud queue, cloud compute, downlink.', F.timeline(spans, { ttftMs: ttft }), systems);
      // The prefill zoom: up to the slowest system's first token (from requests.csv, else the first downlink span).
      let zoom = Math.max(0, ...ttft.values());
      if (zoom === 0) {
        for (const [sys, k] of picked) {
          const mine = spans.filter((s) => s.system === sys && s.device === k.device && s.request === k.request);
          const t0 = Math.min(...mine.map((s) => s.start_ms));
          const down = mine.filter((s) => s.kind === 'downlink').sort((a, b) => a.start_ms - b.start_ms)[0];
          if (down) zoom = Math.max(zoom, down.end_ms - t0);
        }
      }
      if (zoom > 0) {
        add('timeline-prefill', 'Timeline until the first token', 'The same requests zoomed to the prefill: HAT\'s chunks overlap device compute, upload and cloud compute.', F.timeline(spans, { ttftMs: ttft, zoomMs: zoom * 1.08 }), systems);
      } else {
        skip('timeline-prefill', 'no first-token time known (no requests.csv row and no downlink span for the sampled requests)');
      }
    }
  } else {
    skip('timeline', `no timeline.csv in ${where}`);
  }

  if (has(dir, 'gpu_util.csv')) {
    const rows = readGpuUtil(dir);
    if (rows.length > 0) add('gpu-util', 'Cloud GPU utilisation', 'Fraction of each time bin the cloud GPUs were busy (mean over GPUs), one line per system.', F.gpuUtil(rows), systemsIn(rows));
    else skip('gpu-util', `gpu_util.csv in ${where} has no rows`);
  } else {
    skip('gpu-util', `no gpu_util.csv in ${where}`);
  }
  planDtoeeOnline(dir, add); // dtoee_nodes.csv / dtoee_rounds.csv (DTO-EE online or monitor)
}

function pointDirs(dir: string): string[] {
  const p = join(dir, 'points');
  if (!existsSync(p)) return [];
  const collator = new Intl.Collator('en', { numeric: true });
  return readdirSync(p)
    .filter((n) => !n.startsWith('.') && statSync(join(p, n)).isDirectory())
    .sort(collator.compare);
}

function planSweep(dir: string, opts: PlanOptions, plan: FigurePlan): void {
  const sweep = readSweep(dir);
  const systems = systemsIn(sweep.rows);
  // Metrics with a value in some row (single-pass systems leave the TBT columns empty).
  const metrics = F.SWEEP_METRICS.filter((m) => sweep.metrics.includes(m) && sweep.rows.some((r) => typeof (r as Record<string, unknown>)[m] === 'number'));
  for (const param of sweep.params) {
    const distinct = new Set(sweep.rows.map((r) => r[param])).size;
    const pid = param.replace(/[^A-Za-z0-9._-]+/g, '_');
    if (distinct < 2) {
      plan.skipped.push({ id: `sweep-*-vs-${pid}`, reason: `parameter ${param} has a single value in sweep.csv` });
      continue;
    }
    for (const m of metrics) {
      plan.figures.push({
        id: `sweep-${m}-vs-${pid}`,
        title: `${metricLabel(m)} vs ${param}`,
        description: `${metricLabel(m)} against the swept parameter ${param}, one line per system.`,
        group: 'sweep',
        spec: F.sweepLine(sweep, param, m),
        systems,
      });
    }
  }
  const missing = F.SWEEP_METRICS.filter((m) => !sweep.metrics.includes(m));
  if (missing.length) plan.skipped.push({ id: 'sweep-<metric>-vs-*', reason: `sweep.csv has no column ${missing.join(', ')}` });
  const empty = F.SWEEP_METRICS.filter((m) => sweep.metrics.includes(m) && !metrics.includes(m));
  if (empty.length) plan.skipped.push({ id: 'sweep-<metric>-vs-*', reason: `sweep.csv has no value in column ${empty.join(', ')} (single-pass tasks)` });

  const cols = [...sweep.params, 'system', ...metrics.filter((m) => m !== 'gpu_util_mean')];
  plan.tables.push({
    id: 'sweep',
    title: 'Sweep (sweep.csv)',
    columns: cols,
    rows: sweep.rows.map((r) => cols.map((c) => (r as Record<string, string | number>)[c] ?? '')),
  });

  // Per-run figures of some points.
  const ids = pointDirs(dir);
  const choice = opts.points ?? 'auto';
  let chosen: string[];
  if (choice === 'none') chosen = [];
  else if (choice === 'all') chosen = ids;
  else if (choice === 'auto') chosen = ids.length <= 4 ? ids : [...new Set([ids[0], ids[Math.floor(ids.length / 2)], ids[ids.length - 1]])];
  else {
    const unknown = choice.filter((c) => !ids.includes(c));
    if (unknown.length) throw new InputError(`--points: no point ${unknown.join(', ')} under ${join(dir, 'points')} (have: ${ids.join(', ') || 'none'})`, 'points');
    chosen = choice;
  }
  const notChosen = ids.filter((i) => !chosen.includes(i));
  if (notChosen.length) plan.skipped.push({ id: 'points/<id>/*', reason: `per-run figures of ${notChosen.length} other points not drawn (use --points all or --points ${notChosen[0]})` });
  if (ids.length === 0) plan.skipped.push({ id: 'points/<id>/*', reason: `no ${join(dir, 'points')} directory: no per-run figures for the sweep points` });
  for (const id of chosen) {
    const pdir = join(dir, 'points', id);
    const row = sweep.rows.find((r) => r.point === id);
    const ctx = row ? `point ${id} (${sweep.params.map((p) => `${p}=${row[p]}`).join(', ')})` : `point ${id}`;
    planRun(pdir, `points/${id}/`, ctx, plan);
    if (!plan.run) plan.run = readRunJson(pdir);
  }
}

function planCalibration(calDir: string, plan: FigurePlan): void {
  const cal = readCalibration(calDir);
  const tag = `calibration-${cal.hardwareId}-${cal.modelId}`.replace(/[^A-Za-z0-9._-]+/g, '_');
  const withSamples = Object.keys(cal.components).filter((c) => cal.samples.some((s) => s.component === c));
  for (const c of Object.keys(cal.components)) {
    if (!withSamples.includes(c)) {
      plan.skipped.push({ id: `${tag}-${c}`, reason: `${join(calDir, 'model.json')}: component ${c} has no samples (no samplesFile or no rows for it)` });
      continue;
    }
    plan.figures.push({
      id: `${tag}-${c}`,
      title: `Calibration fit: ${c} (${cal.hardwareId} / ${cal.modelId})`,
      description: `Measured latency of ${c} (median, p10-p90) against new tokens, with the fitted piecewise model as lines.`,
      group: 'calibration',
      spec: F.calibrationFit(cal, c),
      systems: [],
    });
  }
  if (withSamples.length) {
    plan.figures.push({
      id: `${tag}-parity`,
      title: `Calibration: measured vs fitted (${cal.hardwareId} / ${cal.modelId})`,
      description: 'Every sample\'s measured median against the fitted model; points on the diagonal are fitted exactly.',
      group: 'calibration',
      spec: F.calibrationParity(cal),
      systems: [],
    });
  }
  plan.tables.push({
    id: tag,
    title: `Calibration fit quality: ${cal.hardwareId} / ${cal.modelId}`,
    columns: ['component', 'source', 'pieces', 'samples', 'r2', 'held-out samples', 'held-out median |err| %', 'held-out p90 |err| %'],
    rows: Object.entries(cal.components).map(([name, c]) => [
      name, c.source, c.pieces.length, c.fit?.samples ?? '', c.fit?.r2 ?? '', c.fit?.heldOutSamples ?? '',
      c.fit?.heldOutMedianAbsPctErr ?? '', c.fit?.heldOutP90AbsPctErr ?? '',
    ]),
  });
}

function planValidation(dir: string, plan: FigurePlan): void {
  const rows = readValidation(dir);
  if (rows.length === 0) {
    plan.skipped.push({ id: 'validation', reason: 'validation.csv has no rows' });
    return;
  }
  const systems = systemsIn(rows);
  plan.figures.push({ id: 'validation', title: 'Validation: live vs simulated', description: 'Live and simulated value of each metric per system; labels give the simulator error in percent.', group: 'validation', spec: F.validationBars(rows), systems });
  plan.figures.push({ id: 'validation-error', title: 'Validation error', description: 'Simulator error (sim - live) / live in percent, per system and metric.', group: 'validation', spec: F.validationError(rows), systems: [] });
  plan.tables.push({
    id: 'validation',
    title: 'Validation (validation.csv)',
    columns: ['system', 'metric', 'live', 'sim', 'error_pct'],
    rows: rows.map((r) => [r.system, r.metric, r.live, r.sim, r.error_pct]),
  });
}

/** Reads the directory and builds every figure its files allow. */
export function planFigures(dir: string, opts: PlanOptions = {}): FigurePlan {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(`${dir}: not a directory`);
  if (isFedSpineDir(dir)) return planFedSpine(dir); // FedSpine results: rounds.csv, kind: fedspine
  const plan: FigurePlan = { dir, kinds: [], figures: [], skipped: [], tables: [], notes: [] };
  const isSweep = has(dir, 'sweep.csv');
  const isRun = has(dir, 'requests.csv') || has(dir, 'summary.csv') || has(dir, 'timeline.csv') || has(dir, 'gpu_util.csv');
  const calDirs = [...findCalibrationDirs(dir), ...(opts.calibration ?? []).flatMap((d) => {
    const found = findCalibrationDirs(d);
    if (found.length === 0) throw new InputError(`--calibration ${d}: no model.json in it or in <hw>/<model>/ below it`, 'calibration');
    return found;
  })];
  const isValidation = has(dir, 'validation.csv');

  if (isRun) {
    plan.kinds.push('run');
    plan.run = readRunJson(dir);
    planRun(dir, '', undefined, plan);
  }
  if (isSweep) {
    plan.kinds.push('sweep');
    planSweep(dir, opts, plan);
    if (isDtoeeSweep(dir)) planDtoeeSweep(dir, plan); // per-policy figures of a dtoee sweep
  } else if (isRun) {
    plan.skipped.push({ id: 'sweep-*', reason: 'no sweep.csv (not a sweep directory)' });
  }
  if (calDirs.length) {
    plan.kinds.push('calibration');
    for (const c of [...new Set(calDirs)]) planCalibration(c, plan);
  } else if (isRun || isSweep) {
    plan.skipped.push({ id: 'calibration-*', reason: 'no calibration model.json here (pass --calibration calibration/<hw>/<model>)' });
  }
  if (isValidation) {
    plan.kinds.push('validation');
    planValidation(dir, plan);
  } else if (isRun || isSweep) {
    plan.skipped.push({ id: 'validation*', reason: 'no validation.csv' });
  }
  if (has(dir, 'convergence.csv')) { // hatsim dtoee-convergence
    if (!plan.kinds.includes('run')) plan.kinds.push('run');
    planDtoeeConvergence(dir, plan);
  }
  if (plan.kinds.length === 0) {
    throw new InputError(
      `${dir}: nothing to plot: expected requests.csv/summary.csv/timeline.csv/gpu_util.csv (a run), sweep.csv (a sweep), ` +
        `model.json or <hw>/<model>/model.json (calibration) or validation.csv`,
    );
  }
  plan.notes.push(`directory ${basename(dir) || dir} holds: ${plan.kinds.join(', ')}`);
  return plan;
}

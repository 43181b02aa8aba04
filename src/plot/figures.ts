/**
 * One function per figure; each returns a vega-lite spec as a plain object
 * with its data inlined (tidy rows with simple field names, so dotted
 * parameter paths never reach vega-lite's field-path syntax).
 *
 * Specs are typed loosely (`VlSpec`) and checked by vega-lite's `compile`
 * (see render.ts and test/plot.test.ts), because vega-lite's TopLevelSpec
 * union makes literal objects with shared config hard to type-check usefully.
 */
import type { SpanRecord } from '../results/types.js';
import type { Calibration, CalibrationComponent, GpuUtilRow, RequestRow, SummaryRow, SweepTable, ValidationRow } from './read.js';
import { predictSample } from './read.js';
import {
  BASE_CONFIG, SPAN_COLORS, SPAN_KINDS, metricLabel, paramLabel, systemScale, systemsIn,
} from './style.js';

export type VlSpec = Record<string, unknown>;

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const WIDTH = 640;
const HEIGHT = 360;

/** Long subtitles are broken at '; ' into lines so figures stay narrow enough to read. */
export function wrapSubtitle(subtitle: string, maxChars = 90): string | string[] {
  if (subtitle.length <= maxChars) return subtitle;
  const lines: string[] = [];
  let cur = '';
  for (const part of subtitle.split('; ')) {
    if (cur && cur.length + part.length + 2 > maxChars) {
      lines.push(cur + ';');
      cur = part;
    } else cur = cur ? `${cur}; ${part}` : part;
  }
  if (cur) lines.push(cur);
  return lines;
}

function top(title: string, subtitle: string | undefined, body: VlSpec): VlSpec {
  return {
    $schema: SCHEMA,
    title: subtitle ? { text: title, subtitle: wrapSubtitle(subtitle) } : title,
    config: BASE_CONFIG,
    ...body,
  };
}

function systemColor(systems: readonly string[], legend = true): VlSpec {
  return {
    field: 'system',
    type: 'nominal',
    title: 'System',
    scale: systemScale(systems),
    sort: [...systems],
    ...(legend ? {} : { legend: null }),
  };
}

/** Legend-bound selection: clicking a system in the legend highlights it (interactive views only). */
const LEGEND_PICK = { name: 'pick', select: { type: 'point', fields: ['system'] }, bind: 'legend' };
const PICK_OPACITY = { condition: { param: 'pick', value: 1 }, value: 0.15 };

// ---- CDFs -----------------------------------------------------------------------------------

/** Empirical CDF, downsampled to at most `maxPoints` per system (quantile positions). */
export function ecdf(values: readonly number[], maxPoints = 400): { value: number; fraction: number }[] {
  const v = [...values].sort((a, b) => a - b);
  const n = v.length;
  if (n === 0) return [];
  const out: { value: number; fraction: number }[] = [{ value: v[0], fraction: 0 }];
  const step = Math.max(1, Math.floor(n / maxPoints));
  for (let i = 0; i < n; i += step) out.push({ value: v[i], fraction: (i + 1) / n });
  if (out[out.length - 1].fraction !== 1) out.push({ value: v[n - 1], fraction: 1 });
  return out;
}

export function latencyCdf(requests: readonly RequestRow[], metric: 'ttft' | 'tbt'): VlSpec {
  const col = metric === 'ttft' ? 'ttft_ms' : 'tbt_mean_ms';
  const systems = systemsIn(requests);
  const values: VlSpec[] = [];
  for (const system of systems) {
    const xs = requests.filter((r) => r.system === system).map((r) => r[col]);
    for (const p of ecdf(xs)) values.push({ system, value_ms: p.value, fraction: p.fraction });
  }
  const name = metric === 'ttft' ? 'Time to first token' : 'Time between tokens (per-request mean)';
  // Latencies of different systems often differ by orders of magnitude: use a log axis then.
  const positive = values.map((v) => v.value_ms as number).filter((x) => x > 0);
  const logX = positive.length === values.length && positive.length > 0 && Math.max(...positive) / Math.min(...positive) >= 50;
  const perSystem = systems.length > 0 ? Math.round(requests.length / systems.length) : 0;
  return top(`${name}: CDF per system`, `${perSystem} requests per system; further left is better${logX ? '; log x axis' : ''}`, {
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    params: [LEGEND_PICK, { name: 'zoom', select: 'interval', bind: 'scales' }],
    mark: { type: 'line', interpolate: 'step-after', strokeWidth: 2.5 },
    encoding: {
      x: {
        field: 'value_ms', type: 'quantitative',
        title: metric === 'ttft' ? `TTFT (ms${logX ? ', log scale' : ''})` : `Mean TBT (ms${logX ? ', log scale' : ''})`,
        ...(logX ? { scale: { type: 'log' } } : {}),
      },
      y: { field: 'fraction', type: 'quantitative', title: 'Fraction of requests', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: systemColor(systems),
      opacity: PICK_OPACITY,
      tooltip: [
        { field: 'system', type: 'nominal' },
        { field: 'value_ms', type: 'quantitative', title: 'ms', format: '.1f' },
        { field: 'fraction', type: 'quantitative', format: '.1%' },
      ],
    },
  });
}

// ---- mean / p99 bars --------------------------------------------------------------------------

export function latencyBars(summary: readonly SummaryRow[], metric: 'ttft' | 'tbt'): VlSpec {
  const systems = systemsIn(summary);
  const values: VlSpec[] = [];
  for (const s of summary) {
    values.push({ system: s.system, stat: 'mean', value_ms: metric === 'ttft' ? s.ttft_mean_ms : s.tbt_mean_ms });
    values.push({ system: s.system, stat: 'p99', value_ms: metric === 'ttft' ? s.ttft_p99_ms : s.tbt_p99_ms });
  }
  const unit = metric === 'ttft' ? 'TTFT (ms)' : 'TBT (ms)';
  return top(`${metric.toUpperCase()}: mean and p99 per system`, 'from summary.csv; lower is better', {
    data: { values },
    facet: { column: { field: 'stat', type: 'nominal', title: null, sort: ['mean', 'p99'], header: { labelExpr: "datum.value === 'mean' ? 'Mean' : 'p99 (99th percentile)'" } } },
    spec: {
      width: 300,
      height: HEIGHT,
      encoding: {
        x: { field: 'system', type: 'nominal', title: 'System', sort: systems, axis: { labelAngle: -30 } },
        y: { field: 'value_ms', type: 'quantitative', title: unit },
      },
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            color: systemColor(systems),
            tooltip: [{ field: 'system' }, { field: 'stat' }, { field: 'value_ms', type: 'quantitative', title: 'ms', format: '.1f' }],
          },
        },
        { mark: { type: 'text', dy: -8, fontSize: 12 }, encoding: { text: { field: 'value_ms', type: 'quantitative', format: '.0f' } } },
      ],
    },
    resolve: { scale: { y: 'shared' } },
  });
}

// ---- sweeps ---------------------------------------------------------------------------------

/** Metrics drawn against every swept parameter, when present in sweep.csv. */
export const SWEEP_METRICS = [
  'ttft_mean_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p99_ms', 'e2e_mean_ms', 'throughput_tok_s',
  'bytes_up_per_request', 'cloud_queue_mean_ms', 'gpu_util_mean',
] as const;

export function sweepLine(sweep: SweepTable, param: string, metric: string): VlSpec {
  const systems = systemsIn(sweep.rows);
  const others = sweep.params.filter((p) => p !== param);
  const numeric = sweep.rows.every((r) => typeof r[param] === 'number');
  const values = sweep.rows.map((r) => ({
    system: r.system,
    x: r[param],
    y: r[metric],
    group: others.map((o) => `${o}=${r[o]}`).join(', ') || 'all',
  }));
  // Panels in the order of the other parameters' values (numbers numerically, not as text).
  const byOthers = [...sweep.rows].sort((a, b) => {
    for (const o of others) {
      const va = a[o], vb = b[o];
      const c = typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va).localeCompare(String(vb));
      if (c !== 0) return c;
    }
    return 0;
  });
  const groups = [...new Set(byOthers.map((r) => others.map((o) => `${o}=${r[o]}`).join(', ') || 'all'))];
  const xs = values.map((v) => v.x).filter((x): x is number => typeof x === 'number');
  const distinctX = [...new Set(xs)].sort((a, b) => a - b);
  const logX = numeric && xs.length > 0 && Math.min(...xs) > 0 && Math.max(...xs) / Math.min(...xs) >= 20;
  const unit = {
    spec: {
      width: groups.length > 1 ? 360 : WIDTH,
      height: groups.length > 1 ? 260 : HEIGHT,
      params: [LEGEND_PICK],
      mark: { type: 'line', point: { size: 70, filled: true }, strokeWidth: 2.5 },
      encoding: {
        x: numeric
          ? {
            field: 'x', type: 'quantitative', title: paramLabel(param),
            scale: logX ? { type: 'log', nice: false } : { zero: false },
            // tick at every swept value when there are few (log axes otherwise label 5, 6, 10, 20, ...)
            ...(distinctX.length <= 12 ? { axis: { values: distinctX, labelOverlap: false } } : {}),
          }
          : { field: 'x', type: 'ordinal', title: paramLabel(param), sort: null },
        y: { field: 'y', type: 'quantitative', title: metricLabel(metric) },
        color: systemColor(systems),
        opacity: PICK_OPACITY,
        tooltip: [
          { field: 'system' },
          { field: 'x', title: param },
          { field: 'y', type: 'quantitative', title: metric, format: ',.2f' },
          ...(groups.length > 1 ? [{ field: 'group', title: 'other parameters' }] : []),
        ],
      },
    },
  };
  const title = `${metricLabel(metric).replace(/ \(.*\)$/, '')} vs ${param}`;
  const sub = `sweep of ${new Set(values.map((v) => v.x)).size} values${logX ? ' (log x axis)' : ''}`;
  if (groups.length > 1) {
    return top(title, `${sub}; one panel per value of the other parameters`, {
      data: { values },
      facet: { field: 'group', type: 'nominal', title: null, sort: groups },
      columns: 2,
      ...unit,
    });
  }
  return top(title, sub, { data: { values }, ...unit.spec });
}

// ---- timeline ---------------------------------------------------------------------------------

/**
 * Picks one request per system: the first (device, request) key sampled under
 * every system if there is one (so the systems serve the same prompt), else
 * each system's first sampled request.
 */
export function pickTimelineRequests(spans: readonly SpanRecord[]): Map<string, { device: string; request: number }> {
  const systems = systemsIn(spans);
  const keysBySystem = new Map<string, string[]>();
  for (const s of spans) {
    const k = `${s.device}\u0000${s.request}`;
    const list = keysBySystem.get(s.system) ?? [];
    if (!list.includes(k)) list.push(k);
    keysBySystem.set(s.system, list);
  }
  const first = keysBySystem.get(systems[0]) ?? [];
  const common = first.find((k) => systems.every((sys) => keysBySystem.get(sys)?.includes(k)));
  const out = new Map<string, { device: string; request: number }>();
  for (const sys of systems) {
    const k = common ?? keysBySystem.get(sys)![0];
    const [device, request] = k.split('\u0000');
    out.set(sys, { device, request: Number(request) });
  }
  return out;
}

/**
 * Gantt chart of one request under each system: one row of panels per system,
 * one lane per span kind. `zoomMs` clips the time axis (e.g. to the prefill).
 */
export function timeline(spans: readonly SpanRecord[], opts: { zoomMs?: number; ttftMs?: Map<string, number> } = {}): VlSpec {
  const picked = pickTimelineRequests(spans);
  const systems = [...picked.keys()];
  const values: VlSpec[] = [];
  const marks: VlSpec[] = [];
  for (const sys of systems) {
    const key = picked.get(sys)!;
    const mine = spans.filter((s) => s.system === sys && s.device === key.device && s.request === key.request);
    const t0 = Math.min(...mine.map((s) => s.start_ms));
    for (const s of mine) {
      const start = s.start_ms - t0;
      const end = s.end_ms - t0;
      if (opts.zoomMs !== undefined && start > opts.zoomMs) continue;
      values.push({
        system: sys,
        kind: s.kind,
        label: s.label,
        start_ms: start,
        end_ms: opts.zoomMs !== undefined ? Math.min(end, opts.zoomMs) : end,
        duration_ms: s.end_ms - s.start_ms,
        request: `${key.device} #${key.request}`,
      });
    }
    const ttft = opts.ttftMs?.get(sys);
    // First-token marker rows travel in the same (faceted) data so each panel gets only its own line.
    if (ttft !== undefined) marks.push({ system: sys, marker: true, ttft_ms: ttft });
  }
  const kinds = [...SPAN_KINDS, ...[...new Set(values.map((v) => String(v.kind)))].filter((k) => !(SPAN_KINDS as readonly string[]).includes(k))];
  const kindColors = kinds.map((k) => SPAN_COLORS[k] ?? '#888');
  const keys = [...new Set([...picked.values()].map((k) => `${k.device} #${k.request}`))];
  const zoomed = opts.zoomMs !== undefined;
  const xScale = zoomed ? { domain: [0, opts.zoomMs] } : {};
  const layer: VlSpec[] = [
    {
      transform: [{ filter: '!datum.marker' }],
      mark: { type: 'bar', height: 12, clip: true, stroke: 'white', strokeWidth: 0.5 },
      encoding: {
        x: { field: 'start_ms', type: 'quantitative', title: 'Time since the request started (ms)', scale: xScale },
        x2: { field: 'end_ms' },
        y: { field: 'kind', type: 'nominal', title: null, sort: kinds, scale: { domain: kinds } },
        color: { field: 'kind', type: 'nominal', title: 'Span', scale: { domain: kinds, range: kindColors }, sort: kinds },
        tooltip: [
          { field: 'system' }, { field: 'kind' }, { field: 'label' },
          { field: 'start_ms', type: 'quantitative', format: '.1f', title: 'start (ms)' },
          { field: 'duration_ms', type: 'quantitative', format: '.1f', title: 'duration (ms)' },
        ],
      },
    },
  ];
  if (marks.length > 0) {
    layer.push({
      transform: [{ filter: 'datum.marker' }],
      mark: { type: 'rule', strokeDash: [5, 3], color: '#222', strokeWidth: 1.5, clip: true },
      encoding: { x: { field: 'ttft_ms', type: 'quantitative', scale: xScale } },
    });
  }
  const sub = `${keys.length === 1 ? `request ${keys[0]}, same request under every system` : 'first sampled request of each system'}` +
    (marks.length ? '; dashed line = first token' : '') +
    (zoomed ? `; zoomed to the first ${Math.round(opts.zoomMs!)} ms (prefill)` : '');
  return top(zoomed ? 'Where the time goes until the first token (one request per system)' : 'Where the time of one request goes, per system', sub, {
    data: { values: [...values, ...marks] },
    facet: { row: { field: 'system', type: 'nominal', title: null, sort: systems, header: { labelAngle: 0, labelAlign: 'left', labelFontWeight: 'bold' } } },
    spacing: 6,
    spec: { width: 700, height: kinds.length * 16, layer },
    resolve: { scale: { x: 'shared' } },
  });
}

// ---- GPU utilisation ----------------------------------------------------------------------------

export function gpuUtil(rows: readonly GpuUtilRow[]): VlSpec {
  const systems = systemsIn(rows);
  const agg = new Map<string, { system: string; time_s: number; sum: number; n: number }>();
  for (const r of rows) {
    const k = `${r.system}\u0000${r.time_s}`;
    const a = agg.get(k) ?? { system: r.system, time_s: r.time_s, sum: 0, n: 0 };
    a.sum += r.busy_fraction;
    a.n += 1;
    agg.set(k, a);
  }
  const values = [...agg.values()]
    .map((a) => ({ system: a.system, time_s: a.time_s, busy: a.sum / a.n }))
    .sort((a, b) => a.time_s - b.time_s);
  const gpus = new Set(rows.map((r) => r.gpu)).size;
  return top('Cloud GPU utilisation over time', `busy fraction per time bin, mean over ${gpus} GPU${gpus === 1 ? '' : 's'}`, {
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    params: [LEGEND_PICK, { name: 'zoom', select: 'interval', bind: 'scales', encodings: ['x'] }],
    mark: { type: 'line', strokeWidth: 2, interpolate: 'step-after' },
    encoding: {
      x: { field: 'time_s', type: 'quantitative', title: 'Simulated time (s)' },
      y: { field: 'busy', type: 'quantitative', title: 'GPU busy (% of time)', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      color: systemColor(systems),
      opacity: PICK_OPACITY,
      tooltip: [{ field: 'system' }, { field: 'time_s', title: 'time (s)' }, { field: 'busy', type: 'quantitative', format: '.1%' }],
    },
  });
}

// ---- bytes per request ---------------------------------------------------------------------------

export const BYTE_PARTS = ['hidden states', 'raw tokens', 'other (ids, headers)'] as const;
const BYTE_PART_COLORS = ['#7570b3', '#d95f02', '#a6a6a6'];

/** Mean bytes per request per system and direction, split into hidden states, raw tokens and the rest. */
export function bytesPerRequestData(requests: readonly RequestRow[]): { system: string; direction: string; part: string; bytes: number }[] {
  const out: { system: string; direction: string; part: string; bytes: number }[] = [];
  for (const system of systemsIn(requests)) {
    const mine = requests.filter((r) => r.system === system);
    const mean = (f: (r: RequestRow) => number) => mine.reduce((a, r) => a + f(r), 0) / mine.length;
    const hidUp = mean((r) => r.hidden_bytes_up);
    const rawUp = mean((r) => r.raw_token_bytes_up);
    const up = mean((r) => r.bytes_up);
    const hidDown = mean((r) => r.hidden_bytes_down);
    const down = mean((r) => r.bytes_down);
    out.push(
      { system, direction: 'Uplink (device → cloud)', part: BYTE_PARTS[0], bytes: hidUp },
      { system, direction: 'Uplink (device → cloud)', part: BYTE_PARTS[1], bytes: rawUp },
      { system, direction: 'Uplink (device → cloud)', part: BYTE_PARTS[2], bytes: Math.max(0, up - hidUp - rawUp) },
      { system, direction: 'Downlink (cloud → device)', part: BYTE_PARTS[0], bytes: hidDown },
      { system, direction: 'Downlink (cloud → device)', part: BYTE_PARTS[2], bytes: Math.max(0, down - hidDown) },
    );
  }
  return out;
}

export function bytesPerRequest(requests: readonly RequestRow[]): VlSpec {
  const systems = systemsIn(requests);
  const data = bytesPerRequestData(requests);
  const positive = data.map((d) => d.bytes).filter((b) => b > 0);
  // Log axis (hidden states and token ids differ by ~1000x); zero bars start and end at the floor and say "0 B".
  const floor = positive.length ? 10 ** Math.floor(Math.log10(Math.min(...positive)) - 0.5) : 1;
  const values = data.map((d) => ({ ...d, lo: floor, hi: Math.max(d.bytes, floor), text: d.bytes === 0 ? '0 B' : fmtBytes(d.bytes) }));
  return top('Bytes per request: hidden states vs raw tokens', 'mean per request; raw tokens up = privacy exposure; log axis', {
    data: { values },
    facet: { column: { field: 'direction', type: 'nominal', title: null, sort: ['Uplink (device → cloud)', 'Downlink (cloud → device)'] } },
    spec: {
      width: 330,
      height: 320,
      encoding: {
        y: { field: 'system', type: 'nominal', title: 'System', sort: systems },
        yOffset: { field: 'part', type: 'nominal', sort: [...BYTE_PARTS] },
      },
      layer: [
        {
          mark: { type: 'bar', height: { band: 0.85 } },
          encoding: {
            x: { field: 'lo', type: 'quantitative', title: 'Bytes per request (bytes, log scale)', scale: { type: 'log', domainMin: floor }, axis: { format: '~s' } },
            x2: { field: 'hi' },
            color: { field: 'part', type: 'nominal', title: 'Payload', scale: { domain: [...BYTE_PARTS], range: BYTE_PART_COLORS } },
            tooltip: [{ field: 'system' }, { field: 'direction' }, { field: 'part' }, { field: 'bytes', type: 'quantitative', format: ',.0f', title: 'bytes' }],
          },
        },
        {
          mark: { type: 'text', align: 'left', baseline: 'middle', dx: 3, fontSize: 11 },
          encoding: { x: { field: 'hi', type: 'quantitative' }, text: { field: 'text' } },
        },
      ],
    },
  });
}

export function fmtBytes(b: number): string {
  if (b < 1e3) return `${Math.round(b)} B`;
  if (b < 1e6) return `${(b / 1e3).toFixed(1)} kB`;
  if (b < 1e9) return `${(b / 1e6).toFixed(1)} MB`;
  return `${(b / 1e9).toFixed(2)} GB`;
}

// ---- calibration ---------------------------------------------------------------------------------

export function calibrationFit(cal: Calibration, component: string): VlSpec {
  const comp: CalibrationComponent = cal.components[component];
  const p10 = comp.fit?.statistic === 'p10'; // the statistic the model was fitted to
  const values = cal.samples
    .filter((s) => s.component === component)
    .map((s) => ({
      tokens: s.tokens,
      ctx: `ctx ${s.ctx}${s.seqs > 1 ? `, ${s.seqs} seqs` : ''}`,
      curve: `${s.ctx}/${s.seqs}/${s.layers}`,
      measured_ms: p10 ? s.p10_ms : s.median_ms,
      p10_ms: s.p10_ms,
      p90_ms: s.p90_ms,
      model_ms: predictSample(comp, s),
      split: s.split === 'test' ? 'held out' : 'train',
      layers: s.layers,
    }))
    .sort((a, b) => a.tokens - b.tokens);
  const layers = [...new Set(values.map((v) => v.layers))];
  const layerNote = component === 'decoderLayer' ? ` (samples of ${layers.join('/')} stacked layers; model = layers x one layer)` : '';
  const fit = comp.fit;
  const sub = `points: measured ${p10 ? 'p10' : 'median'} with p10-p90 of the repeats; lines: fitted model${layerNote}` +
    (fit?.heldOutMedianAbsPctErr !== undefined ? `; held-out error median ${fit.heldOutMedianAbsPctErr}%, p90 ${fit.heldOutP90AbsPctErr ?? '?'}%` : '');
  const x = { field: 'tokens', type: 'quantitative', title: 'New tokens in the batch (tokens, log scale)', scale: { type: 'log', base: 2 } };
  return top(`Calibration of ${component} on ${cal.hardwareId} / ${cal.modelId}`, sub, {
    width: WIDTH,
    height: HEIGHT,
    data: { values },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x,
          y: { field: 'model_ms', type: 'quantitative', title: 'Latency (ms, log scale)', scale: { type: 'log' } },
          color: { field: 'ctx', type: 'nominal', title: 'Context', sort: null },
          detail: { field: 'curve' },
        },
      },
      {
        mark: { type: 'rule' },
        encoding: { x, y: { field: 'p10_ms', type: 'quantitative' }, y2: { field: 'p90_ms' }, color: { field: 'ctx', type: 'nominal', sort: null } },
      },
      {
        mark: { type: 'point', size: 60, strokeWidth: 2 },
        encoding: {
          x,
          y: { field: 'measured_ms', type: 'quantitative' },
          color: { field: 'ctx', type: 'nominal', sort: null },
          shape: { field: 'split', type: 'nominal', title: 'Sample', scale: { domain: ['train', 'held out'], range: ['circle', 'triangle-up'] } },
          tooltip: [
            { field: 'tokens' }, { field: 'ctx' },
            { field: 'measured_ms', type: 'quantitative', format: '.3f' },
            { field: 'model_ms', type: 'quantitative', format: '.3f' }, { field: 'split' },
          ],
        },
      },
    ],
  });
}

export function calibrationParity(cal: Calibration): VlSpec {
  const values = cal.samples
    .filter((s) => cal.components[s.component])
    .map((s) => ({ component: s.component, measured_ms: s.median_ms, model_ms: predictSample(cal.components[s.component], s), split: s.split === 'test' ? 'held out' : 'train' }));
  const all = values.flatMap((v) => [v.measured_ms, v.model_ms]).filter((v) => v > 0);
  const lo = all.length ? Math.min(...all) * 0.8 : 0.01;
  const hi = all.length ? Math.max(...all) * 1.25 : 1;
  return top(`Calibration on ${cal.hardwareId} / ${cal.modelId}: measured vs fitted`, 'every sample; on the diagonal = perfect fit', {
    width: 480,
    height: 480,
    layer: [
      {
        data: { values: [{ a: lo, b: lo }, { a: hi, b: hi }] },
        mark: { type: 'line', color: '#888', strokeDash: [4, 4] },
        encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'b', type: 'quantitative' } },
      },
      {
        data: { values },
        mark: { type: 'point', size: 50, strokeWidth: 2 },
        encoding: {
          x: { field: 'model_ms', type: 'quantitative', title: 'Fitted model (ms, log scale)', scale: { type: 'log', domain: [lo, hi] } },
          y: { field: 'measured_ms', type: 'quantitative', title: 'Measured median (ms, log scale)', scale: { type: 'log', domain: [lo, hi] } },
          color: { field: 'component', type: 'nominal', title: 'Component' },
          shape: { field: 'split', type: 'nominal', title: 'Sample', scale: { domain: ['train', 'held out'], range: ['circle', 'triangle-up'] } },
          tooltip: [{ field: 'component' }, { field: 'measured_ms', format: '.3f' }, { field: 'model_ms', format: '.3f' }, { field: 'split' }],
        },
      },
    ],
  });
}

// ---- validation ----------------------------------------------------------------------------------

export function validationBars(rows: readonly ValidationRow[]): VlSpec {
  const systems = systemsIn(rows);
  const metrics = [...new Set(rows.map((r) => r.metric))];
  const values = rows.flatMap((r) => [
    { system: r.system, metric: metricLabel(r.metric), source: 'live', value: r.live, error_pct: r.error_pct },
    { system: r.system, metric: metricLabel(r.metric), source: 'simulated', value: r.sim, error_pct: r.error_pct },
  ]);
  return top('Validation: live vs simulated, per system and metric', 'solid = live run, light = simulator; label = simulator error (%)', {
    data: { values },
    facet: { field: 'metric', type: 'nominal', title: null, sort: metrics.map(metricLabel), header: { labelFontWeight: 'bold' } },
    columns: Math.min(3, metrics.length),
    spec: {
      width: 280,
      height: 240,
      encoding: {
        x: { field: 'system', type: 'nominal', title: 'System', sort: systems, axis: { labelAngle: -30 } },
        xOffset: { field: 'source', type: 'nominal', sort: ['live', 'simulated'] },
        y: { field: 'value', type: 'quantitative', title: 'Value (unit in panel title)' },
      },
      layer: [
        {
          mark: 'bar',
          encoding: {
            color: systemColor(systems),
            opacity: { field: 'source', type: 'ordinal', sort: ['live', 'simulated'], title: 'Source', scale: { domain: ['live', 'simulated'], range: [1, 0.45] } },
            tooltip: [{ field: 'system' }, { field: 'metric' }, { field: 'source' }, { field: 'value', type: 'quantitative', format: ',.2f' }, { field: 'error_pct', format: '+.1f', title: 'sim error %' }],
          },
        },
        {
          transform: [{ filter: "datum.source === 'simulated'" }],
          mark: { type: 'text', dy: -6, fontSize: 11 },
          encoding: { text: { field: 'error_pct', type: 'quantitative', format: '+.0f' } },
        },
      ],
    },
    resolve: { scale: { y: 'independent' } },
  });
}

export function validationError(rows: readonly ValidationRow[]): VlSpec {
  const systems = systemsIn(rows);
  const metrics = [...new Set(rows.map((r) => r.metric))];
  const maxAbs = Math.max(5, ...rows.map((r) => Math.abs(r.error_pct)));
  const values = rows.map((r) => ({ system: r.system, metric: metricLabel(r.metric), error_pct: r.error_pct }));
  return top('Validation: simulator error per system and metric', 'error = (sim - live) / live, in percent; white = exact', {
    width: Math.max(300, systems.length * 90),
    height: metrics.length * 44,
    data: { values },
    encoding: {
      x: { field: 'system', type: 'nominal', title: 'System', sort: systems, axis: { labelAngle: 0 } },
      y: { field: 'metric', type: 'nominal', title: null, sort: metrics.map(metricLabel) },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: { field: 'error_pct', type: 'quantitative', title: 'Error (%)', scale: { scheme: 'redblue', reverse: true, domain: [-maxAbs, maxAbs] } },
          tooltip: [{ field: 'system' }, { field: 'metric' }, { field: 'error_pct', format: '+.2f' }],
        },
      },
      { mark: { type: 'text', fontSize: 13 }, encoding: { text: { field: 'error_pct', type: 'quantitative', format: '+.1f' } } },
    ],
  });
}

/**
 * Shared look of every figure: fixed system order and colors, lane colors of
 * the timeline, fonts and sizes, units derived from column names.
 */

/** Canonical order of the five systems (same as scenario SYSTEM_IDS; plot/ may not import scenario/). */
export const SYSTEM_ORDER = ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat'] as const;

/** A fixed color per system, so a system looks the same in every figure. */
export const SYSTEM_COLORS: Record<string, string> = {
  cloud: '#4c78a8',
  ushape: '#f58518',
  sd: '#54a24b',
  'hat-nochunk': '#b279a2',
  hat: '#e45756',
};
const EXTRA_COLORS = ['#72b7b2', '#9d755d', '#bab0ac', '#eeca3b', '#ff9da6'];

/** Systems that occur in `rows`, canonical ones first in canonical order, unknown ones after (sorted). */
export function systemsIn(rows: readonly { system: string }[]): string[] {
  const seen = new Set(rows.map((r) => r.system));
  const known = SYSTEM_ORDER.filter((s) => seen.has(s));
  const other = [...seen].filter((s) => !(SYSTEM_ORDER as readonly string[]).includes(s)).sort();
  return [...known, ...other];
}

/** vega-lite scale for the `system` field: domain = systems present, range = their fixed colors. */
export function systemScale(systems: readonly string[]): { domain: string[]; range: string[] } {
  let extra = 0;
  return {
    domain: [...systems],
    range: systems.map((s) => SYSTEM_COLORS[s] ?? EXTRA_COLORS[extra++ % EXTRA_COLORS.length]),
  };
}

/** Timeline lanes in the order a request meets them, each with its color. */
export const SPAN_KINDS = ['device-compute', 'drafting', 'uplink', 'cloud-queue', 'cloud-compute', 'downlink'] as const;
export const SPAN_COLORS: Record<string, string> = {
  'device-compute': '#1b9e77',
  drafting: '#66a61e',
  uplink: '#d95f02',
  'cloud-queue': '#bdbdbd',
  'cloud-compute': '#7570b3',
  downlink: '#e7298a',
};

/** Font stack; resvg (PNG) resolves the first installed family, browsers likewise. */
export const FONT_FAMILY = 'DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif';

/** vega-lite `config` shared by every figure: white background, readable sizes. */
export const BASE_CONFIG = {
  background: 'white',
  font: FONT_FAMILY,
  padding: 12,
  title: { fontSize: 17, anchor: 'start', subtitleFontSize: 13, subtitleColor: '#444', offset: 10 },
  axis: { labelFontSize: 13, titleFontSize: 14, titlePadding: 8, gridColor: '#e6e6e6' },
  legend: { labelFontSize: 13, titleFontSize: 14, symbolSize: 140, labelLimit: 260 },
  header: { labelFontSize: 14, titleFontSize: 14 },
  view: { stroke: '#999' },
} as const;

/** Human label with unit for a metric column of summary.csv / sweep.csv / validation.csv. */
export function metricLabel(col: string): string {
  const known: Record<string, string> = {
    ttft_mean_ms: 'Mean TTFT (ms)',
    ttft_p50_ms: 'Median TTFT (ms)',
    ttft_p99_ms: 'p99 TTFT (ms)',
    tbt_mean_ms: 'Mean TBT (ms)',
    tbt_p50_ms: 'Median TBT (ms)',
    tbt_p99_ms: 'p99 TBT (ms)',
    e2e_mean_ms: 'Mean end-to-end latency (ms)',
    throughput_tok_s: 'Throughput (tokens/s)',
    bytes_up_per_request: 'Uplink bytes per request (bytes)',
    bytes_down_per_request: 'Downlink bytes per request (bytes)',
    raw_token_bytes_up: 'Raw-token bytes up (bytes)',
    hidden_bytes_up: 'Hidden-state bytes up (bytes)',
    cloud_queue_mean_ms: 'Mean cloud queueing (ms)',
    gpu_util_mean: 'Mean GPU busy fraction (0-1)',
    acceptance_rate: 'Draft acceptance rate (0-1)',
    tokens_per_round: 'Tokens per verification round',
    requests: 'Finished requests',
    unfinished: 'Unfinished requests',
  };
  if (known[col]) return known[col];
  const words = col.replace(/_/g, ' ');
  if (col.endsWith('_ms')) return `${words.slice(0, -3)} (ms)`;
  if (col.endsWith('_tok_s')) return `${words.slice(0, -6)} (tokens/s)`;
  if (col.endsWith('_s')) return `${words.slice(0, -2)} (s)`;
  if (col.endsWith('_pct')) return `${words.slice(0, -4)} (%)`;
  if (col.includes('bytes')) return `${words} (bytes)`;
  return words;
}

/** Axis title with unit for a grid parameter given as a dotted scenario path. */
export function paramLabel(path: string): string {
  const last = path.split('.').pop() ?? path;
  const units: [RegExp, string][] = [
    [/Mbps$/, 'Mbit/s'],
    [/Kbps$/, 'kbit/s'],
    [/Bps$|Bytes$|bytes$/, 'bytes'],
    [/Ms$|_ms$/, 'ms'],
    [/PerS$|_per_s$/, '1/s'],
    [/S$|_s$/, 's'],
    [/[Tt]okens$|[Bb]udget$/, 'tokens'],
    [/^gpus$/, 'GPUs'],
  ];
  for (const [re, unit] of units) if (re.test(last)) return `${path} (${unit})`;
  if (last === 'count' && path.startsWith('devices')) return `${path} (devices)`;
  return path;
}

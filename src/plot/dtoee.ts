/**
 * DTO-EE figures (docs/PLOTS.md "DTO-EE"):
 * - a sweep whose points hold task_summary.csv (the dtoee system): mean delay, p99 delay and
 *   accuracy against each swept parameter, one line per policy (the policy is a grid axis,
 *   not a system), mean over the seeds of a `seed` axis with 95 % confidence intervals;
 * - a convergence.csv (`hatsim dtoee-convergence`): the distributed algorithm's objective per
 *   iteration against the centralised optimum, and the gap in percent.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import { InputError } from '../core/errors.js';
import type { VlSpec } from './figures.js';
import type { FigurePlan } from './plan.js';
import { readSweep } from './read.js';
import { BASE_CONFIG, paramLabel } from './style.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const W = 560, H = 320;

/** Policies in legend order, each with one colour everywhere. */
export const POLICY_ORDER = ['dtoee', 'centralised', 'threshold-opt', 'routing-opt', 'jsq', 'random', 'nearest', 'no-exit'] as const;
const POLICY_COLORS: Record<string, string> = {
  dtoee: '#d62728', centralised: '#7f0000', 'threshold-opt': '#9467bd', 'routing-opt': '#1f77b4',
  jsq: '#2ca02c', random: '#7f7f7f', nearest: '#8c564b', 'no-exit': '#ff7f0e',
};
const EXTRA_COLORS = ['#17becf', '#bcbd22', '#e377c2', '#393b79'];

function policyScale(policies: readonly string[]): { domain: string[]; range: string[] } {
  const known = POLICY_ORDER.filter((p) => policies.includes(p));
  const rest = policies.filter((p) => !(POLICY_ORDER as readonly string[]).includes(p)).sort();
  const domain = [...known, ...rest];
  return { domain, range: domain.map((p, i) => POLICY_COLORS[p] ?? EXTRA_COLORS[(i - known.length) % EXTRA_COLORS.length]) };
}

/** The task_summary.csv metrics drawn per policy. */
export const DTOEE_METRICS = ['delay_mean_ms', 'delay_p99_ms', 'accuracy'] as const;
export type DtoeeMetric = (typeof DTOEE_METRICS)[number];
const METRIC_LABEL: Record<DtoeeMetric, string> = { delay_mean_ms: 'Mean delay (ms)', delay_p99_ms: 'p99 delay (ms)', accuracy: 'Accuracy' };

export interface DtoeeSweepRow {
  point: string;
  /** Grid values of the point (numbers where every point's value is numeric). */
  params: Record<string, string | number>;
  policy: string;
  tasks: number;
  delay_mean_ms: number;
  delay_p99_ms: number;
  accuracy: number;
}

export interface DtoeeSweep {
  /** Every grid parameter, in grid order. */
  params: string[];
  /** The parameter holding the seed (`seed`), if swept; its values are replications. */
  seedParam: string | undefined;
  /** The parameter naming the policy (`policies.dtoee.policy`), if swept. */
  policyParam: string | undefined;
  rows: DtoeeSweepRow[];
}

const POLICY_PATH = 'policies.dtoee.policy';

function csvRecords(file: string): Record<string, string>[] {
  return readCsvRecords(file);
}

/** Does this sweep directory hold dtoee points (task_summary.csv with a policy column)? */
export function isDtoeeSweep(dir: string): boolean {
  if (!existsSync(join(dir, 'sweep.csv'))) return false;
  const t = readSweep(dir);
  const first = t.rows.find((r) => r.system === 'dtoee');
  return first !== undefined && existsSync(join(dir, 'points', String(first.point), 'task_summary.csv'));
}

/** The dtoee rows of every finished point of a sweep (task_summary.csv per point). */
export function readDtoeeSweep(dir: string): DtoeeSweep {
  const t = readSweep(dir);
  const rows: DtoeeSweepRow[] = [];
  for (const r of t.rows) {
    if (r.system !== 'dtoee') continue;
    const point = String(r.point);
    const file = join(dir, 'points', point, 'task_summary.csv');
    if (!existsSync(file)) continue; // an unfinished or other-system point
    const rec = csvRecords(file).find((x) => x.system === 'dtoee');
    if (!rec) continue;
    for (const c of ['policy', 'tasks', ...DTOEE_METRICS]) {
      if (!(c in rec)) throw new InputError(`${file}: missing column ${c} (task_summary.csv, docs/OUTPUTS.md)`);
    }
    const params: Record<string, string | number> = {};
    for (const p of t.params) params[p] = (r as Record<string, string | number>)[p];
    rows.push({
      point, params, policy: rec.policy, tasks: Number(rec.tasks),
      delay_mean_ms: Number(rec.delay_mean_ms), delay_p99_ms: Number(rec.delay_p99_ms), accuracy: Number(rec.accuracy),
    });
  }
  return {
    params: t.params,
    seedParam: t.params.find((p) => p === 'seed'),
    policyParam: t.params.find((p) => p === POLICY_PATH),
    rows,
  };
}

// Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom (then the normal's 1.96).
const T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131,
  2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

/** Mean and 95 % confidence half-width (Student's t, n - 1 degrees of freedom; NaN for n < 2). */
export function meanCi95(xs: readonly number[]): { mean: number; half: number; n: number } {
  const n = xs.length;
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (n < 2) return { mean, half: NaN, n };
  const s2 = xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
  const t = n - 1 <= T975.length ? T975[n - 2] : 1.96;
  return { mean, half: (t * Math.sqrt(s2)) / Math.sqrt(n), n };
}

export interface PolicyPoint {
  policy: string;
  /** Value of the x parameter. */
  x: string | number;
  /** The other parameters (not x, seed or policy), as `p=v, ...` ('all' when none). */
  group: string;
  /** Replications (seeds) averaged. */
  n: number;
  mean: Record<DtoeeMetric, number>;
  half: Record<DtoeeMetric, number>;
}

/**
 * Per (x value, policy, other parameters): the mean of each metric over the seeds, with its
 * 95 % confidence half-width. Points in x order (numbers numerically, else first-seen order),
 * then policy order.
 */
export function aggregatePolicies(sw: DtoeeSweep, xParam: string): PolicyPoint[] {
  const others = sw.params.filter((p) => p !== xParam && p !== sw.seedParam && p !== sw.policyParam);
  const groups = new Map<string, { policy: string; x: string | number; group: string; rows: DtoeeSweepRow[] }>();
  for (const r of sw.rows) {
    const group = others.map((o) => `${o}=${r.params[o]}`).join(', ') || 'all';
    const x = r.params[xParam];
    const key = JSON.stringify([x, group, r.policy]);
    const g = groups.get(key) ?? { policy: r.policy, x, group, rows: [] };
    g.rows.push(r);
    groups.set(key, g);
  }
  const xs = [...new Set(sw.rows.map((r) => r.params[xParam]))];
  const numeric = xs.every((x) => typeof x === 'number');
  const xRank = new Map((numeric ? [...xs].sort((a, b) => (a as number) - (b as number)) : xs).map((x, i) => [x, i]));
  const pol = policyScale([...new Set(sw.rows.map((r) => r.policy))]).domain;
  const out = [...groups.values()].map((g) => {
    const mean = {} as Record<DtoeeMetric, number>, half = {} as Record<DtoeeMetric, number>;
    let n = 0;
    for (const m of DTOEE_METRICS) {
      const s = meanCi95(g.rows.map((r) => r[m]));
      mean[m] = s.mean; half[m] = s.half; n = s.n;
    }
    return { policy: g.policy, x: g.x, group: g.group, n, mean, half };
  });
  return out.sort((a, b) => xRank.get(a.x)! - xRank.get(b.x)! || a.group.localeCompare(b.group) || pol.indexOf(a.policy) - pol.indexOf(b.policy));
}

/**
 * Short axis labels for categorical values: a JSON list (a linked grid axis's value) as its
 * entries joined by ' + ', without the prefix (up to a '-') that every entry shares.
 */
export function categoryLabels(texts: readonly string[]): Map<string, string> {
  const lists = texts.map((t) => {
    try {
      const v: unknown = JSON.parse(t);
      return Array.isArray(v) ? v.map(String) : [t];
    } catch {
      return [t];
    }
  });
  const all = lists.flat();
  let prefix = all[0] ?? '';
  for (const e of all) while (!e.startsWith(prefix)) prefix = prefix.slice(0, -1);
  prefix = prefix.slice(0, prefix.lastIndexOf('-') + 1);
  if (all.some((e) => e.length === prefix.length)) prefix = '';
  return new Map(texts.map((t, i) => [t, lists[i].map((e) => e.slice(prefix.length)).join(' + ')]));
}

function sweepFigure(points: readonly PolicyPoint[], xParam: string, metric: DtoeeMetric, xOrder: (string | number)[]): VlSpec {
  const numeric = points.every((p) => typeof p.x === 'number');
  const xsNum = points.map((p) => p.x).filter((x): x is number => typeof x === 'number');
  const logX = numeric && xsNum.length > 0 && Math.min(...xsNum) > 0 && Math.max(...xsNum) / Math.min(...xsNum) >= 20;
  const ys = points.map((p) => p.mean[metric]).filter((y) => Number.isFinite(y) && y > 0);
  const logY = metric !== 'accuracy' && ys.length > 0 && Math.max(...ys) / Math.min(...ys) >= 20;
  const hasCi = points.some((p) => Number.isFinite(p.half[metric]));
  const values = points.map((p) => {
    const h = Number.isFinite(p.half[metric]) ? p.half[metric] : 0;
    const lo = p.mean[metric] - h;
    return { policy: p.policy, x: typeof p.x === 'number' ? p.x : String(p.x), y: p.mean[metric], lo: logY ? Math.max(lo, p.mean[metric] / 10) : lo, hi: p.mean[metric] + h, n: p.n, group: p.group };
  });
  const groups = [...new Set(points.map((p) => p.group))];
  if (!numeric) {
    const short = categoryLabels(xOrder.map(String));
    for (const v of values) v.x = short.get(String(v.x)) ?? String(v.x);
    xOrder = xOrder.map((o) => short.get(String(o)) ?? String(o));
  }
  const x = numeric
    ? { field: 'x', type: 'quantitative', title: paramLabel(xParam), scale: logX ? { type: 'log', nice: false } : { zero: false }, axis: { values: [...new Set(xsNum)].sort((a, b) => a - b), labelOverlap: false } }
    : { field: 'x', type: 'ordinal', title: paramLabel(xParam), sort: xOrder.map(String), axis: { labelAngle: -20, labelLimit: 0 } };
  const y = { field: 'y', type: 'quantitative', title: METRIC_LABEL[metric], scale: logY ? { type: 'log' } : { zero: metric === 'accuracy' ? false : true } };
  const color = { field: 'policy', type: 'nominal', title: 'Policy', scale: policyScale([...new Set(points.map((p) => p.policy))]) };
  const layer: VlSpec[] = [
    // The oracle dashed, so that dtoee's line shows where the two coincide.
    { mark: { type: 'line', point: { size: 50, filled: true }, strokeWidth: 2 }, encoding: { x, y, color,
      strokeDash: { condition: { test: "datum.policy === 'centralised'", value: [6, 4] }, value: [1, 0] },
      tooltip: [{ field: 'policy' }, { field: 'x', title: xParam }, { field: 'y', type: 'quantitative', format: ',.4~f', title: metric }, { field: 'n', title: 'seeds' }] } },
  ];
  if (hasCi) layer.push({ mark: { type: 'errorbar', ticks: numeric }, encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color } });
  const sub = `under hatsim's model of DTO-EE; mean over ${Math.max(...points.map((p) => p.n))} seed(s)${hasCi ? ', bars: 95 % confidence interval' : ''}${logY ? '; log y axis' : ''}`;
  const title = { text: `${METRIC_LABEL[metric].replace(/ \(.*\)$/, '')} vs ${xParam}, per policy`, subtitle: sub };
  if (groups.length > 1) {
    return { $schema: SCHEMA, title, config: BASE_CONFIG, data: { values }, facet: { field: 'group', type: 'nominal', title: null, sort: groups }, columns: 2, spec: { width: 360, height: 240, layer } };
  }
  return { $schema: SCHEMA, title, config: BASE_CONFIG, width: W, height: H, data: { values }, layer };
}

const fmt = (v: number, digits: number): string => (Number.isFinite(v) ? v.toFixed(digits) : '');

/** Add the per-policy figures and table of a dtoee sweep to a plan. */
export function planDtoeeSweep(dir: string, plan: FigurePlan): void {
  const sw = readDtoeeSweep(dir);
  const xParams = sw.params.filter((p) => p !== sw.seedParam && p !== sw.policyParam);
  if (sw.rows.length === 0) { plan.skipped.push({ id: 'dtoee-*', reason: 'no finished dtoee point with task_summary.csv' }); return; }
  const policies = policyScale([...new Set(sw.rows.map((r) => r.policy))]).domain;
  for (const xp of xParams) {
    const pid = xp.replace(/[^A-Za-z0-9._-]+/g, '_');
    const xs = [...new Set(sw.rows.map((r) => r.params[xp]))];
    if (xs.length < 2) { plan.skipped.push({ id: `dtoee-*-vs-${pid}`, reason: `parameter ${xp} has a single value` }); continue; }
    const pts = aggregatePolicies(sw, xp);
    for (const m of DTOEE_METRICS) {
      plan.figures.push({
        id: `dtoee-${m.replace(/_/g, '-')}-vs-${pid}`, title: `${METRIC_LABEL[m]} vs ${xp} per policy`,
        description: `${METRIC_LABEL[m]} of the dtoee tasks (task_summary.csv) against ${xp}, one line per policy, mean over seeds with 95 % confidence intervals.`,
        group: 'sweep', spec: sweepFigure(pts, xp, m, xs), systems: [],
      });
    }
    plan.tables.push({
      id: `dtoee-${pid}`, title: `DTO-EE per policy vs ${xp} (mean over seeds ± 95 % CI half-width)`,
      columns: [xp, 'group', 'policy', 'seeds', 'mean delay ms', '±', 'p99 delay ms', '±', 'accuracy', '±'],
      rows: pts.map((p) => [String(p.x), p.group, p.policy, p.n, fmt(p.mean.delay_mean_ms, 1), fmt(p.half.delay_mean_ms, 1), fmt(p.mean.delay_p99_ms, 1), fmt(p.half.delay_p99_ms, 1), fmt(p.mean.accuracy, 4), fmt(p.half.accuracy, 4)]),
    });
  }
  if (xParams.length === 0) {
    // Only policies (and seeds) swept: one bar chart per metric.
    const pts = aggregatePolicies({ ...sw, params: [...sw.params, '_'], rows: sw.rows.map((r) => ({ ...r, params: { ...r.params, _: 'all' } })) }, '_');
    for (const m of DTOEE_METRICS) {
      plan.figures.push({
        id: `dtoee-${m.replace(/_/g, '-')}-bars`, title: `${METRIC_LABEL[m]} per policy`, description: `${METRIC_LABEL[m]} per policy (mean over seeds, 95 % CI).`, group: 'sweep', systems: [],
        spec: { $schema: SCHEMA, title: { text: `${METRIC_LABEL[m]} per policy`, subtitle: "under hatsim's model of DTO-EE" }, config: BASE_CONFIG, width: W, height: H,
          data: { values: pts.map((p) => ({ policy: p.policy, y: p.mean[m], lo: p.mean[m] - (Number.isFinite(p.half[m]) ? p.half[m] : 0), hi: p.mean[m] + (Number.isFinite(p.half[m]) ? p.half[m] : 0) })) },
          layer: [
            { mark: 'bar', encoding: { x: { field: 'policy', type: 'nominal', sort: policies, title: 'Policy' }, y: { field: 'y', type: 'quantitative', title: METRIC_LABEL[m] }, color: { field: 'policy', type: 'nominal', scale: policyScale(policies), legend: null } } },
            { mark: { type: 'errorbar', ticks: true }, encoding: { x: { field: 'policy', type: 'nominal', sort: policies }, y: { field: 'lo', type: 'quantitative', title: METRIC_LABEL[m] }, y2: { field: 'hi' } } },
          ] },
      });
    }
  }
}

// ---- convergence.csv ---------------------------------------------------------------------------

export interface ConvergenceCsvRow { start_tau: number; iteration: number; round: number; objective: number; centralised_objective: number; gap_pct: number }

export function readConvergence(dir: string): ConvergenceCsvRow[] {
  const file = join(dir, 'convergence.csv');
  const recs = csvRecords(file);
  const cols = ['start_tau', 'iteration', 'round', 'objective', 'centralised_objective', 'gap_pct'] as const;
  for (const c of cols) if (recs.length > 0 && !(c in recs[0])) throw new InputError(`${file}: missing column ${c} (written by hatsim dtoee-convergence, docs/DTOEE.md)`);
  return recs.map((r) => {
    const o = {} as ConvergenceCsvRow;
    for (const c of cols) {
      const v = Number(r[c]);
      if (!Number.isFinite(v)) throw new InputError(`${file}: column ${c} holds "${r[c]}", not a number`);
      o[c] = v;
    }
    return o;
  });
}

/** The convergence figures: objective per iteration against the centralised optimum, and |gap| in percent. */
export function planDtoeeConvergence(dir: string, plan: FigurePlan): void {
  const rows = readConvergence(dir);
  if (rows.length === 0) { plan.skipped.push({ id: 'dtoee-convergence', reason: 'convergence.csv has no rows' }); return; }
  const Jc = rows[0].centralised_objective;
  const starts = [...new Set(rows.map((r) => `from tau ${r.start_tau}`))];
  const values = rows.map((r) => ({ start: `from tau ${r.start_tau}`, iteration: r.iteration, objective: r.objective, gap: Math.max(Math.abs(r.gap_pct), 1e-6) }));
  const x = { field: 'iteration', type: 'quantitative', title: 'Iteration (one message per link each way)', scale: { type: 'log' } };
  const color = { field: 'start', type: 'nominal', title: 'Distributed', sort: starts };
  const sub = "under hatsim's model of DTO-EE; objective = mean delay + beta (1 - accuracy) + penalty, at the final penalty weight";
  plan.figures.push({
    id: 'dtoee-convergence', title: 'Distributed objective per iteration vs the centralised optimum', group: 'run', systems: [],
    description: 'Objective of the distributed algorithm after every iteration (one line per starting threshold), and the centralised solver\'s objective (dashed).',
    spec: { $schema: SCHEMA, title: { text: 'Distributed algorithm vs centralised optimum', subtitle: sub }, config: BASE_CONFIG, width: W, height: H,
      layer: [
        { data: { values }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y: { field: 'objective', type: 'quantitative', title: 'Objective J (s)', scale: { type: 'log' } }, color } },
        { data: { values: [{ J: Jc, label: `centralised ${Jc.toPrecision(5)}` }] }, mark: { type: 'rule', strokeDash: [6, 4], color: '#000' }, encoding: { y: { field: 'J', type: 'quantitative' } } },
        { data: { values: [{ J: Jc, label: `centralised ${Jc.toPrecision(5)}` }] }, mark: { type: 'text', align: 'right', dy: -8, x: W }, encoding: { y: { field: 'J', type: 'quantitative' }, text: { field: 'label' } } },
      ] },
  });
  plan.figures.push({
    id: 'dtoee-convergence-gap', title: 'Gap to the centralised optimum per iteration', group: 'run', systems: [],
    description: '|J_distributed - J_centralised| / J_centralised in percent after every iteration, log axes; the dashed line is 1 %.',
    spec: { $schema: SCHEMA, title: { text: 'Gap to the centralised optimum', subtitle: `${sub}; dashed: 1 %` }, config: BASE_CONFIG, width: W, height: H,
      layer: [
        { data: { values }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y: { field: 'gap', type: 'quantitative', title: '|gap| (%)', scale: { type: 'log' } }, color } },
        { data: { values: [{ g: 1 }] }, mark: { type: 'rule', strokeDash: [6, 4], color: '#000' }, encoding: { y: { field: 'g', type: 'quantitative' } } },
      ] },
  });
  plan.tables.push({
    id: 'dtoee-convergence', title: 'Convergence (convergence.csv, last iteration per start)', columns: ['start', 'iterations', 'objective', 'centralised', 'gap %'],
    rows: starts.map((s) => {
      const last = values.filter((v) => v.start === s).at(-1)!;
      const r = rows.find((x) => `from tau ${x.start_tau}` === s && x.iteration === last.iteration)!;
      return [s, r.iteration, r.objective, Jc, r.gap_pct];
    }),
  });
}

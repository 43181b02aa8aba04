/**
 * Figures of a DTO-EE run with per-node rows over time (dtoee_nodes.csv: policies.dtoee
 * online or monitor; dtoee_rounds.csv: online rounds; docs/OUTPUTS.md, docs/PLOTS.md):
 *  - dtoee-thresholds: each node's exit threshold over time (the value it held at the end
 *    of each measurement window, drawn over that window: step-before), one line per node;
 *  - dtoee-routing: each sending node's routing fractions over time, one panel per sender,
 *    one line per next-stage node;
 *  - dtoee-load: each node's measured arrival rate per window, one panel per stage;
 *  - dtoee-rounds: the optimiser's objective per online round under that window's measured
 *    model, before and after the round (convergence per round).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import type { VlSpec } from './figures.js';
import { BASE_CONFIG } from './style.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const W = 640, H = 300;

type Add = (id: string, title: string, description: string, spec: VlSpec, systems: string[]) => void;

function readRows(file: string, needed: readonly string[]): Record<string, string>[] {
  return readCsvRecords(file, { needed, expected: 'the columns of docs/OUTPUTS.md, dtoee_nodes.csv / dtoee_rounds.csv' });
}

const num = (s: string | undefined): number | null => (s === undefined || s === '' ? null : Number(s));
const spec = (title: string, subtitle: string, body: VlSpec): VlSpec => ({ $schema: SCHEMA, title: { text: title, subtitle }, config: BASE_CONFIG, ...body });

/** Data of the routing figure: one value per (time, sender, receiver). */
export function routingValues(rows: readonly Record<string, string>[]): { system: string; time_s: number; from: string; to: string; fraction: number }[] {
  const out: { system: string; time_s: number; from: string; to: string; fraction: number }[] = [];
  for (const r of rows) {
    if (!r.routing) continue;
    for (const part of r.routing.split('|')) {
      const [to, f] = part.split('=');
      out.push({ system: r.system, time_s: Number(r.time_s), from: r.node, to, fraction: Number(f) });
    }
  }
  return out;
}

/** Adds the DTO-EE figures a run directory allows (nothing when it has no dtoee_nodes.csv). */
export function planDtoeeOnline(dir: string, add: Add): void {
  const nodesFile = join(dir, 'dtoee_nodes.csv');
  if (!existsSync(nodesFile)) return;
  const rows = readRows(nodesFile, ['system', 'policy', 'time_s', 'node', 'stage', 'threshold', 'routing', 'arrival_per_s']);
  if (rows.length === 0) return;
  const lastStage = Math.max(...rows.map((r) => Number(r.stage)));
  const policy = rows[0].policy;
  const online = existsSync(join(dir, 'dtoee_rounds.csv'));
  // A live run (hatsim live local): the node processes' rows, on the wall clock since the run's start.
  const live = existsSync(join(dir, 'run.json')) && (JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as { mode?: string }).mode === 'live';
  const clock = live ? 'wall time since the start (live node processes)' : 'simulated time';
  const sub = `under hatsim's model of DTO-EE; policy ${policy}, ${online ? 'online re-optimisation' : 'offline (optimised once)'}; ${clock}`;
  const x = { field: 'time_s', type: 'quantitative', title: live ? 'Wall time (s)' : 'Simulated time (s)' };
  const systems = [...new Set(rows.map((r) => r.system))];

  const th = rows.filter((r) => Number(r.stage) < lastStage).map((r) => ({ time_s: Number(r.time_s), node: r.node, stage: `stage ${r.stage}`, threshold: Number(r.threshold) }));
  add('dtoee-thresholds', 'DTO-EE exit thresholds over time', 'Each node\'s exit threshold at the end of every measurement window (dtoee_nodes.csv), one panel per stage, one line per node (nodes holding the same value overlap).', spec('Exit threshold per node over time', sub, {
    data: { values: th },
    facet: { field: 'stage', type: 'nominal', title: null },
    columns: 3,
    spec: {
      width: 300, height: 200,
      mark: { type: 'line', interpolate: 'step-before', point: true },
      encoding: {
        x, y: { field: 'threshold', type: 'quantitative', title: 'Exit threshold tau', scale: { domain: [0, 1] } },
        color: { field: 'node', type: 'nominal', title: 'Node' },
        tooltip: [{ field: 'node', type: 'nominal' }, { field: 'time_s', type: 'quantitative' }, { field: 'threshold', type: 'quantitative', format: '.3f' }],
      },
    },
  }), systems);

  const rv = routingValues(rows);
  if (rv.length > 0) {
    add('dtoee-routing', 'DTO-EE routing fractions over time', 'Each sending node\'s routing fractions over its next-stage nodes at the end of every window, one panel per sender.', spec('Routing fractions per sending node over time', sub, {
      data: { values: rv },
      facet: { field: 'from', type: 'nominal', title: 'Sending node' },
      columns: 3,
      spec: {
        width: 220, height: 150,
        mark: { type: 'line', interpolate: 'step-before' },
        encoding: {
          x, y: { field: 'fraction', type: 'quantitative', title: 'Fraction sent', scale: { domain: [0, 1] } },
          color: { field: 'to', type: 'nominal', title: 'To node' },
          tooltip: [{ field: 'from', type: 'nominal' }, { field: 'to', type: 'nominal' }, { field: 'time_s', type: 'quantitative' }, { field: 'fraction', type: 'quantitative', format: '.3f' }],
        },
      },
    }), systems);
  }

  const load = rows.map((r) => ({ time_s: Number(r.time_s), node: r.node, stage: `stage ${r.stage}`, arrival_per_s: Number(r.arrival_per_s) }));
  add('dtoee-load', 'DTO-EE measured arrival rate per node', 'Tasks that reached each node per second over every measurement window, one panel per stage.', spec('Measured arrival rate per node', sub, {
    data: { values: load },
    facet: { field: 'stage', type: 'nominal', title: null },
    columns: 3,
    spec: {
      width: 220, height: 150,
      mark: { type: 'line', interpolate: 'step-before' },
      encoding: {
        x, y: { field: 'arrival_per_s', type: 'quantitative', title: 'Tasks/s' },
        color: { field: 'node', type: 'nominal', title: 'Node' },
      },
    },
  }), systems);

  if (!online) return;
  const rounds = readRows(join(dir, 'dtoee_rounds.csv'), ['round', 'status', 'objective_before', 'objective_after']).filter((r) => r.status === 'done');
  const rv2 = rounds.flatMap((r) => [
    { round: Number(r.round), when: 'before the round', objective: num(r.objective_before) },
    { round: Number(r.round), when: 'after the round', objective: num(r.objective_after) },
  ]).filter((v) => v.objective !== null && v.objective > 0);
  if (rv2.length === 0) return;
  add('dtoee-rounds', 'DTO-EE objective per online round', 'The optimiser\'s objective under each window\'s measured model with the values held before the round and after it (dtoee_rounds.csv).', spec('Objective per round (measured model)', `${sub}; log y axis`, {
    width: W, height: H, data: { values: rv2 },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'round', type: 'quantitative', title: 'Round' },
      y: { field: 'objective', type: 'quantitative', title: 'Objective J (s, log scale)', scale: { type: 'log' } },
      color: { field: 'when', type: 'nominal', title: null },
    },
  }), systems);
}

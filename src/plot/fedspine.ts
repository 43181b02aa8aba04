/**
 * Figures of a FedSpine results directory (rounds.csv + summary.csv +
 * run.json with kind: fedspine): loss against simulated wall-clock time per
 * method; each device's pruning ratio and LoRA rank over rounds (FedSpine's
 * bandit, or the first method present); waiting-time distributions; bytes
 * per round.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import type { VlSpec } from './figures.js';
import type { Figure, FigurePlan } from './plan.js';
import { readRunJson } from './read.js';
import { BASE_CONFIG } from './style.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const W = 640, H = 360;

export function isFedSpineDir(dir: string): boolean {
  if (!existsSync(join(dir, 'rounds.csv'))) return false;
  return readRunJson(dir)?.kind === 'fedspine';
}

interface Row { method: string; round: number; device: string; hardware: string; status: string; ratio_after: number; rank: number; start_s: number; round_s: number; wait_s: number; bytes: number; loss: number }

function readRounds(dir: string): Row[] {
  const file = join(dir, 'rounds.csv');
  const recs = readCsvRecords(file, {
    needed: ['method', 'round', 'device', 'status', 'ratio_after', 'rank', 'start_s', 'round_s', 'wait_s', 'bytes_down', 'bytes_up', 'loss'],
    expected: 'the rounds.csv of a FedSpine run (docs/OUTPUTS.md, FedSpine runs)',
  });
  const n = (s: string | undefined) => (s === undefined || s === '' ? NaN : Number(s));
  return recs.map((r) => ({
    method: r.method, round: n(r.round), device: r.device, hardware: r.hardware, status: r.status, ratio_after: n(r.ratio_after), rank: n(r.rank),
    start_s: n(r.start_s), round_s: n(r.round_s), wait_s: n(r.wait_s), bytes: n(r.bytes_down) + n(r.bytes_up), loss: n(r.loss),
  }));
}

const spec = (title: string, subtitle: string, body: VlSpec): VlSpec => ({ $schema: SCHEMA, title: { text: title, subtitle }, config: BASE_CONFIG, width: W, height: H, ...body });
const methodColor = (methods: string[]) => ({ field: 'method', type: 'nominal', title: 'Method', sort: methods });

/** Plan the figures and the summary table of a FedSpine directory. */
export function planFedSpine(dir: string): FigurePlan {
  const rows = readRounds(dir);
  const methods = [...new Set(rows.map((r) => r.method))];
  const plan: FigurePlan = { dir, kinds: ['run'], figures: [], skipped: [], tables: [], run: readRunJson(dir), notes: ['FedSpine results (rounds.csv)'] };
  const add = (id: string, title: string, description: string, s: VlSpec, systems: string[]) => plan.figures.push({ id, title, description, group: 'run', spec: s, systems } satisfies Figure);
  const sub = "under hatsim's model of FedSpine; simulated time";

  // One point per (method, round): the round's end and loss.
  const perRound = new Map<string, { method: string; round: number; end_s: number; loss: number; bytes: number }>();
  for (const r of rows) {
    const k = `${r.method}/${r.round}`;
    const e = perRound.get(k) ?? { method: r.method, round: r.round, end_s: r.start_s + (Number.isNaN(r.round_s) ? 0 : r.round_s), loss: r.loss, bytes: 0 };
    e.bytes += Number.isNaN(r.bytes) ? 0 : r.bytes;
    perRound.set(k, e);
  }
  const rounds = [...perRound.values()];
  add('fedspine-loss-time', 'Loss against wall-clock time', 'Global loss after each round against the simulated time the round ended, one line per method.',
    spec('Loss against wall-clock time', sub, { data: { values: rounds }, mark: { type: 'line', point: false }, encoding: {
      x: { field: 'end_s', type: 'quantitative', title: 'Simulated time (s)' }, y: { field: 'loss', type: 'quantitative', title: 'Loss', scale: { zero: false } }, color: methodColor(methods) } }), methods);
  add('fedspine-bytes-round', 'Bytes per round', 'Bytes sent per round (downloads + uploads of every participant), one line per method.',
    spec('Bytes per round', sub, { data: { values: rounds.map((r) => ({ ...r, mb: r.bytes / 1e6 })) }, mark: 'line', encoding: {
      x: { field: 'round', type: 'quantitative', title: 'Round' }, y: { field: 'mb', type: 'quantitative', title: 'MB per round' }, color: methodColor(methods) } }), methods);
  const waits = rows.filter((r) => r.status === 'ok' && !Number.isNaN(r.wait_s)).map((r) => ({ method: r.method, wait_s: r.wait_s }));
  if (waits.length > 0) {
    add('fedspine-wait', 'Waiting-time distribution', 'Per delivered update, the time the device waited for the round to end, per method (box: quartiles, whiskers: 1.5 IQR).',
      spec('Waiting time per update', sub, { data: { values: waits }, mark: { type: 'boxplot', extent: 1.5 }, encoding: {
        x: { field: 'method', type: 'nominal', title: 'Method', sort: methods, axis: { labelAngle: 0 } }, y: { field: 'wait_s', type: 'quantitative', title: 'Wait (s)' }, color: { ...methodColor(methods), legend: null } } }), methods);
  } else {
    plan.skipped.push({ id: 'fedspine-wait', reason: 'no delivered updates in rounds.csv' });
  }
  const who = methods.includes('fedspine') ? 'fedspine' : methods[0];
  const mine = rows.filter((r) => r.method === who && r.status === 'ok');
  for (const [id, field, title] of [['fedspine-ratio-rounds', 'ratio_after', 'Pruning ratio'], ['fedspine-rank-rounds', 'rank', 'LoRA rank']] as const) {
    // 80 device lines are unreadable: the mean over each hardware's devices per round, with a band of one standard deviation.
    const x = { field: 'round', type: 'quantitative', title: 'Round' };
    const color = { field: 'hardware', type: 'nominal', title: 'Hardware' };
    add(id, `${title} per device over rounds (${who})`, `${title} of the devices' delivered updates over rounds under ${who}: mean per hardware (line) and one standard deviation across its devices (band).`,
      spec(`${title} over rounds (${who})`, `${sub}; mean and s.d. over each hardware's devices`, { data: { values: mine.map((r) => ({ round: r.round, device: r.device, hardware: r.hardware, v: r[field] })) },
        layer: [
          { mark: { type: 'errorband', extent: 'stdev', opacity: 0.25 }, encoding: { x, y: { field: 'v', type: 'quantitative', title }, color } },
          { mark: 'line', encoding: { x, y: { field: 'v', type: 'quantitative', aggregate: 'mean', title }, color } },
        ] }), [who]);
  }
  if (existsSync(join(dir, 'summary.csv'))) {
    const recs = readCsvRecords(join(dir, 'summary.csv'));
    const cols = ['method', 'rounds', 'time_to_target_s', 'final_loss', 'mean_round_s', 'mean_wait_s', 'total_bytes', 'mean_ratio', 'mean_rank'].filter((c) => recs.length === 0 || c in recs[0]);
    plan.tables.push({ id: 'summary', title: 'Summary per method (summary.csv)', columns: cols, rows: recs.map((r) => cols.map((c) => (c === 'method' ? r[c] : r[c] === '' ? '' : Number(r[c])))) });
  }
  return plan;
}

/**
 * Observe -> calibrate for learning: turn a results directory (rounds.csv +
 * run.json, from the simulator or, later, the live runner in the same schema)
 * into learning-model rows and fit the parameters (learning.ts).
 *
 * Per method and round: lossBefore = the previous round's loss (round 1:
 * run.json's learning.lossInit), lossAfter = the round's loss, participants =
 * the `ok` rows (share = data size / total data of all devices, ratio =
 * ratio_after, rank), K and heterogeneity from the resolved scenario.
 * Identifiability: with a single K (one scenario) only eta x s(K) and the
 * floor are determined, not kappaSteps; vary K across runs to pin it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import { InputError } from '../core/errors.js';
import type { LearningRow } from './learning.js';

interface RunInfo {
  kind?: string;
  devices?: { name: string; dataSize: number }[];
  learning?: { lossInit?: number };
  scenario?: { rounds?: { localSteps?: number }; heterogeneity?: number };
}

export function learningRowsFromResults(dir: string, method?: string): LearningRow[] {
  let info: RunInfo;
  try {
    info = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as RunInfo;
  } catch (e) {
    throw new InputError(`${dir}: need rounds.csv and run.json of a FedSpine run (${(e as Error).message})`, 'results');
  }
  if (info.kind !== 'fedspine' || !info.devices) throw new InputError(`${dir}/run.json is not from a FedSpine run (kind: fedspine)`, 'results');
  const K = info.scenario?.rounds?.localSteps, h = info.scenario?.heterogeneity, l0 = info.learning?.lossInit;
  if (K === undefined || h === undefined || l0 === undefined) throw new InputError(`${dir}/run.json lacks scenario.rounds.localSteps, scenario.heterogeneity or learning.lossInit`, 'results');
  const size = new Map(info.devices.map((d) => [d.name, d.dataSize]));
  const total = info.devices.reduce((s, d) => s + d.dataSize, 0);
  const records = readCsvRecords(join(dir, 'rounds.csv'), { expected: 'the rounds.csv of a FedSpine run', field: 'results' });
  const byRound = new Map<string, { method: string; round: number; loss: number; parts: LearningRow['participants'] }>();
  records.forEach((r, i) => {
    if (method !== undefined && r.method !== method) return;
    const round = Number(r.round), loss = Number(r.loss);
    if (!Number.isInteger(round) || !Number.isFinite(loss)) throw new InputError(`${dir}/rounds.csv:${i + 2}: field round or loss is not a number`, 'rounds.csv');
    const key = `${r.method}/${round}`;
    let e = byRound.get(key);
    if (!e) { e = { method: r.method, round, loss, parts: [] }; byRound.set(key, e); }
    if (r.status === 'ok') {
      const n = size.get(r.device);
      if (n === undefined) throw new InputError(`${dir}/rounds.csv:${i + 2}: field device: "${r.device}" is not in run.json's devices`, 'rounds.csv');
      e.parts.push({ share: n / total, ratio: Number(r.ratio_after), rank: Number(r.rank) });
    }
  });
  const rows: LearningRow[] = [];
  const prev = new Map<string, number>();
  for (const e of [...byRound.values()].sort((a, b) => (a.method < b.method ? -1 : a.method > b.method ? 1 : a.round - b.round))) {
    const before = prev.get(e.method) ?? l0;
    if (e.parts.length > 0) rows.push({ lossBefore: before, lossAfter: e.loss, localSteps: K, heterogeneity: h, participants: e.parts });
    prev.set(e.method, e.loss);
  }
  return rows;
}

/**
 * `hatsim validate <fedspine scenario>`: run the scenario live (fed-server.ts,
 * or reuse --live-dir), then simulate the same scenario, devices and seed with
 * the configurations the live policy picked (rounds.ts simulateMethod's
 * replay), and compare round times and their parts:
 *   round_s: mean over rounds; download_s, compute_s, upload_s: mean over
 *   delivered updates; error = (sim - live) / live.
 *   wait_s: mean over delivered updates; its error is taken relative to the
 *   live mean round time (waits are differences of near-equal times, so a
 *   ratio of waits says little).
 * With `calibrate`, this machine's training steps are timed just before AND
 * just after the live run (fed-calibrate.ts, pooled, into <out>/calibration;
 * load drift during the run averages out) and the simulator uses that file.
 * With `speedFromLive`, a second simulation scales the calibration's times
 * by the machine's speed during the run (sum of live compute / sum of
 * simulated compute over the same updates: one number, in-sample for
 * compute_s by construction) and the verdict is on that one: it still tests
 * the round composition (max over devices, waits), the rank dependence of
 * the step time and the links. validation.csv has both (`variant`).
 * Pass: |error| <= maxErrorPct on the GATED metrics: round_s (the
 * acceptance: round time), download_s and upload_s (the link model); and no
 * dropped update. compute_s and wait_s are reported with the same rule but
 * do not gate: real training steps on this shared 2-core machine move by
 * 10-40 % with the other developers' load between the calibration and the
 * run (docs/LIVE.md, "Federated runs").
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { readCsvRecords } from '../core/csv.js';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { toCsv } from '../results/csv.js';
import { loadFedSpineScenario } from '../fedspine/scenario.js';
import { buildCostModels, simulateMethod, type RoundRow } from '../fedspine/rounds.js';
import type { Choice, MethodId } from '../fedspine/policies.js';
import { runFedLive } from './fed-server.js';
import { runFedCalibrate } from './fed-calibrate.js';
import { trainCalPath, type TrainCalibration } from '../fedspine/traincal.js';

export const FED_VALIDATION_METRICS = ['round_s', 'download_s', 'compute_s', 'upload_s', 'wait_s'] as const;
export type FedMetric = (typeof FED_VALIDATION_METRICS)[number];

export const FED_GATED: readonly FedMetric[] = ['round_s', 'download_s', 'upload_s'];

export interface FedValidationRow { method: string; metric: FedMetric; live: number; sim: number; error_pct: number; within: boolean; gated: boolean }

export interface FedValidationOptions {
  scenarioPath: string;
  overrides?: string[];
  /** Overrides for the simulator only (a wrong model must fail). */
  simOverrides?: string[];
  method?: MethodId;
  outDir: string;
  maxErrorPct: number;
  liveDir?: string;
  calibrate?: boolean;
  /** Also simulate with the calibration's times scaled to the machine's speed during the live run (live compute / simulated compute), and gate on that. */
  speedFromLive?: boolean;
  log?: (line: string) => void;
}

export interface FedValidationResult { rows: (FedValidationRow & { variant: 'calibrated' | 'live-speed' })[]; pass: boolean; liveDir: string; liveErrors: string[]; speedScale: number | null; gatedVariant: string }

const mean = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);

/** The round-time metrics of a set of rounds.csv rows (one method). */
export function roundMetrics(rows: readonly Pick<RoundRow, 'round' | 'status' | 'round_s' | 'download_s' | 'compute_s' | 'upload_s' | 'wait_s'>[]): Record<FedMetric, number> {
  const ok = rows.filter((r) => r.status === 'ok');
  const perRound = new Map<number, number>();
  for (const r of rows) if (Number.isFinite(r.round_s)) perRound.set(r.round, r.round_s);
  return {
    round_s: mean([...perRound.values()]),
    download_s: mean(ok.map((r) => r.download_s)),
    compute_s: mean(ok.map((r) => r.compute_s)),
    upload_s: mean(ok.map((r) => r.upload_s)),
    wait_s: mean(ok.map((r) => r.wait_s)),
  };
}

/** Compare live and simulated metrics (see the header for the wait rule). */
export function compareMetrics(method: string, live: Record<FedMetric, number>, sim: Record<FedMetric, number>, maxErrorPct: number): FedValidationRow[] {
  return FED_VALIDATION_METRICS.map((metric) => {
    const base = metric === 'wait_s' ? live.round_s : live[metric];
    const error_pct = ((sim[metric] - live[metric]) / base) * 100;
    return { method, metric, live: live[metric], sim: sim[metric], error_pct, within: Math.abs(error_pct) <= maxErrorPct, gated: FED_GATED.includes(metric) };
  });
}

function readLiveRows(dir: string): { method: MethodId; rows: RoundRow[]; errors: string[] } {
  let info: { kind?: string; mode?: string; method?: MethodId; errors?: string[] };
  try {
    info = JSON.parse(readFileSync(join(dir, 'run.json'), 'utf8')) as typeof info;
  } catch (e) {
    throw new InputError(`--live-dir ${dir}: need rounds.csv and run.json of a live FedSpine run (${(e as Error).message})`, 'live-dir');
  }
  if (info.kind !== 'fedspine' || info.mode !== 'live' || !info.method) throw new InputError(`--live-dir ${dir}: run.json is not from a live FedSpine run (kind fedspine, mode live)`, 'live-dir');
  const recs = readCsvRecords(join(dir, 'rounds.csv'), { prefix: '--live-dir: ', expected: 'the rounds.csv of a live FedSpine run', field: 'live-dir' });
  const rows = recs.map((r) => {
    const o: Record<string, unknown> = { ...r };
    for (const k of ['round', 'ratio', 'rank', 'ratio_after', 'start_s', 'download_s', 'compute_s', 'upload_s', 'finish_s', 'wait_s', 'round_s', 'bytes_down', 'bytes_up', 'loss', 'loss_improvement', 'reward']) o[k] = r[k] === '' ? NaN : Number(r[k]);
    o.feasible = r.feasible === 'true';
    return o as unknown as RoundRow;
  });
  return { method: info.method, rows, errors: info.errors ?? [] };
}

export async function runFedValidation(o: FedValidationOptions): Promise<FedValidationResult> {
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const overrides = o.overrides ?? [];
  const loaded = loadFedSpineScenario(o.scenarioPath, overrides);
  const simSet = [...(o.simOverrides ?? [])];
  let liveDir = o.liveDir;
  const runLive = async (): Promise<void> => {
    liveDir = join(o.outDir, 'live');
    const method = o.method ?? loaded.config.methods[0];
    await runFedLive({ cfg: loaded.config, scenarioPath: o.scenarioPath, overrides, method, outDir: liveDir, resolved: loaded.parsed, log });
  };
  if (o.calibrate) {
    // Training steps timed just before and just after the live run (pooled), under the same sharing of the cores.
    const file = join(o.outDir, 'calibration', loaded.config.devices[0].hardwareId, loaded.config.model.id, 'train.json');
    const r = await runFedCalibrate({ cfg: loaded.config, scenarioPath: o.scenarioPath, overrides, reps: 2, abReps: 1, out: file, around: liveDir === undefined ? runLive : undefined });
    log(`validate: calibrated training steps (in-round step ${r.calibration.points.map((p) => p.stepMs.toFixed(0)).join('/')} ms) into ${file}`);
    simSet.unshift(`calibrationDir=${resolve(o.outDir, 'calibration')}`);
  }
  if (liveDir === undefined) await runLive();
  if (liveDir === undefined) throw new Error('no live run');
  const live = readLiveRows(liveDir);
  const sim = loadFedSpineScenario(o.scenarioPath, [...overrides, ...simSet]).config;
  if (sim.devices.length !== loaded.config.devices.length) throw new InputError('--sim-set must not change the number of devices', 'sim-set');
  const plan = new Map<string, Choice | null>();
  for (const r of live.rows) plan.set(`${r.round}/${r.device}`, r.status === 'infeasible' ? null : { ratio: r.ratio, rank: r.rank });
  const names = sim.devices.map((d) => d.name);
  const simRounds = Math.max(...live.rows.map((r) => r.round));
  const simulate = (cfg: typeof sim) => {
    const simCfg = { ...cfg, rounds: { ...cfg.rounds, max: simRounds } };
    const costs = buildCostModels(simCfg);
    return { costs, rows: simulateMethod(simCfg, live.method, costs, {
      replay: (round, d) => {
        const c = plan.get(`${round}/${names[d]}`);
        if (c === undefined) throw new InputError(`live rounds.csv has no row for round ${round}, device ${names[d]}`, 'live-dir');
        return c;
      },
    }).rows };
  };
  const liveM = roundMetrics(live.rows);
  const first = simulate(sim);
  let rows: FedValidationResult['rows'] = compareMetrics(live.method, liveM, roundMetrics(first.rows), o.maxErrorPct).map((r) => ({ ...r, variant: 'calibrated' as const }));
  let simRows = first.rows;
  let speedScale: number | null = null;
  if (o.speedFromLive) {
    // The machine's speed during the run, from the live run's own steps: one scale on the calibration's times.
    const calFile = first.costs[0].trainCalibration;
    if (calFile === null) throw new InputError('--speed-from-live scales a training calibration (train.json) and the scenario has none for its hardware and model: run hatsim live fed-calibrate or add --calibrate', 'speed-from-live');
    const ok = (xs: readonly RoundRow[]) => xs.filter((r) => r.status === 'ok').reduce((a, r) => a + r.compute_s, 0);
    speedScale = ok(live.rows) / ok(first.rows);
    const cal = JSON.parse(readFileSync(calFile, 'utf8')) as TrainCalibration;
    const scaled: TrainCalibration = {
      ...cal, roundOverheadMs: cal.roundOverheadMs * speedScale,
      points: cal.points.map((p) => ({ ...p, baseForwardMs: p.baseForwardMs * speedScale!, forwardMs: p.forwardMs * speedScale!, abStepMs: p.abStepMs * speedScale!, stepMs: p.stepMs * speedScale! })),
    };
    const dir = join(o.outDir, 'calibration-live-speed');
    writeFileAtomic(trainCalPath(dir, cal.hardwareId, cal.model), JSON.stringify({ ...scaled, note: `times of ${calFile} x ${speedScale} (live compute / simulated compute of the same configurations)` }, null, 2) + '\n');
    const second = simulate(loadFedSpineScenario(o.scenarioPath, [...overrides, ...simSet, `calibrationDir=${resolve(dir)}`]).config);
    simRows = second.rows;
    rows = [...rows, ...compareMetrics(live.method, liveM, roundMetrics(second.rows), o.maxErrorPct).map((r) => ({ ...r, variant: 'live-speed' as const }))];
    log(`validate: machine speed during the live run = ${speedScale.toFixed(3)} x the calibration's`);
  }
  const gatedVariant = o.speedFromLive ? 'live-speed' : 'calibrated';
  const pass = rows.filter((r) => r.variant === gatedVariant).every((r) => r.within || !r.gated) && live.rows.every((r) => r.status !== 'dropped');
  writeFileAtomic(join(o.outDir, 'sim-rounds.csv'), toCsv(simRows));
  writeFileAtomic(join(o.outDir, 'validation.csv'), toCsv(rows));
  writeFileAtomic(join(o.outDir, 'validation.json'), JSON.stringify({ kind: 'fedspine', liveDir, maxErrorPct: o.maxErrorPct, simOverrides: simSet, gatedVariant, speedScale, pass, rows, liveErrors: live.errors }, null, 2) + '\n');
  return { rows, pass, liveDir, liveErrors: live.errors, speedScale, gatedVariant };
}

/**
 * `hatsim live fed-calibrate <scenario>`: real training-step times of the
 * scenario's model on this machine, for the FedSpine cost model
 * (fedspine/traincal.ts has the file format and the fit).
 *
 * `concurrency` worker processes (default: the scenario's device count, so
 * the cores are shared as in the live run) each load the model folder and
 * a device's shard and, per rank, time interleaved (A/B/C, same load):
 * forward + loss of the frozen base, forward of base + LoRA, and the full
 * step (forward + backward + Adam); then two real rounds of K local steps
 * (fed-train.ts trainRound, the code the live devices run) for the per-round
 * overhead = round wall time - its steps. Medians over workers and
 * repetitions; the load average before and after goes into the file.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { forwardFlops, pruneStructure } from '../fedspine/cost.js';
import type { FedConfig } from '../fedspine/rounds.js';
import { fitStepFactors, trainCalPath, TRAIN_CAL_FORMAT, type TrainCalibration, type TrainCalPoint } from '../fedspine/traincal.js';
import { loadModelFolder } from '../train/folder.js';
import type { LoraTarget } from '../train/lora.js';
import { FedTrainer, deviceCategories, shardTokens } from './fed-train.js';
import { initGlobalLora, loraMatrices, toDeviceLayout } from './fedwire.js';
import { liveOptions } from './fed-options.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface WorkerResult { ranks: { rank: number; baseForwardMs: number[]; forwardMs: number[]; stepMs: number[] }[]; overheadMs: number[] }

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function defaultRanks(cfg: FedConfig): number[] {
  const { rankMin, rankMax } = cfg.space;
  return [...new Set([rankMin, Math.round((rankMin + rankMax) / 2), rankMax])];
}

/** One worker: the timings of this process (device `worker`'s shard). */
export async function calibrateWorker(cfg: FedConfig, worker: number, ranks: readonly number[], reps: number): Promise<WorkerResult> {
  const live = liveOptions(cfg);
  const folder = loadModelFolder(live.modelDir);
  const category = deviceCategories(Math.max(cfg.devices.length, worker + 1), live.categories && worker < live.categories.length ? live.categories : null)[worker];
  const shard = shardTokens(folder.tokenizer, category, live.maxShardDocs);
  const targets = cfg.training.loraTargets as readonly LoraTarget[];
  const trainer = await FedTrainer.create(folder.model, folder.values, { targets, batch: cfg.training.batch, seq: cfg.training.seqLen, lr: live.lr, alphaOverRank: live.alphaOverRank });
  const mats = loraMatrices(folder.model, targets);
  const out: WorkerResult = { ranks: [], overheadMs: [] };
  for (const rank of ranks) {
    const lora = toDeviceLayout(initGlobalLora(mats, rank, cfg.seed), rank);
    out.ranks.push({ rank, ...trainer.stepTimes(lora, rank, shard, cfg.seed + worker, reps) });
  }
  const rank = ranks[ranks.length - 1];
  const lora = toDeviceLayout(initGlobalLora(mats, rank, cfg.seed), rank);
  for (let i = 0; i < 3; i++) {
    const r = await trainer.trainRound(lora, rank, cfg.rounds.localSteps, shard, cfg.seed + worker, i * cfg.rounds.localSteps);
    if (i > 0) out.overheadMs.push(r.totalMs - r.stepMs.reduce((s, x) => s + x, 0));
  }
  trainer.dispose();
  return out;
}

export interface FedCalibrateOptions { cfg: FedConfig; scenarioPath: string; overrides: string[]; reps: number; ranks?: number[]; concurrency?: number; out?: string }

export async function runFedCalibrate(o: FedCalibrateOptions): Promise<{ calibration: TrainCalibration; file: string }> {
  const { cfg } = o;
  const ranks = o.ranks ?? defaultRanks(cfg);
  const hw = cfg.devices[0].hardwareId;
  if (cfg.devices.some((d) => d.hardwareId !== hw)) throw new InputError(`fed-calibrate times this machine as one hardware id; the scenario's devices use ${[...new Set(cfg.devices.map((d) => d.hardwareId))].join(', ')}`, 'devices.hardware');
  const conc = o.concurrency ?? cfg.devices.length;
  if (!(Number.isInteger(conc) && conc >= 1)) throw new InputError('--concurrency: give an integer >= 1', 'concurrency');
  const loadAvgBefore = os.loadavg();
  const args = (w: number) => ['live', 'fed-calibrate', o.scenarioPath, '--worker', String(w), '--reps', String(o.reps), '--ranks', ranks.join(','), ...o.overrides.flatMap((s) => ['--set', s])];
  const results = await Promise.all(Array.from({ length: conc }, (_, w) => new Promise<WorkerResult>((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args(w)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.on('exit', (code) => {
      if (code !== 0) { reject(new Error(`calibration worker ${w} exited with ${code}: ${err.trim().split('\n').slice(-3).join(' | ')}`)); return; }
      try { resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as WorkerResult); } catch { reject(new Error(`calibration worker ${w} printed no result: ${err.trim()}`)); }
    });
  })));
  const loadAvgAfter = os.loadavg();
  const full = pruneStructure(cfg.model, 0);
  const points: TrainCalPoint[] = ranks.map((rank, i) => {
    const all = (k: 'baseForwardMs' | 'forwardMs' | 'stepMs') => results.flatMap((r) => r.ranks[i][k]);
    const f = forwardFlops(cfg.model, full, rank, cfg.training);
    return { rank, loraFlopShare: f.lora / f.frozen, baseForwardMs: median(all('baseForwardMs')), forwardMs: median(all('forwardMs')), stepMs: median(all('stepMs')), samples: all('stepMs').length };
  });
  const calibration: TrainCalibration = {
    format: TRAIN_CAL_FORMAT, hardwareId: hw, model: cfg.model.id, batch: cfg.training.batch, seqLen: cfg.training.seqLen,
    loraTargets: [...cfg.training.loraTargets], concurrency: conc, points,
    roundOverheadMs: Math.max(0, median(results.flatMap((r) => r.overheadMs))),
    fit: fitStepFactors(points),
    measured: {
      at: new Date().toISOString(), loadAvgBefore, loadAvgAfter,
      command: `hatsim live fed-calibrate ${o.scenarioPath} --reps ${o.reps} --ranks ${ranks.join(',')} --concurrency ${conc}${o.overrides.map((s) => ` --set ${s}`).join('')}`,
      backend: 'tfjs wasm, 1 thread per process',
    },
  };
  const file = o.out ?? trainCalPath(cfg.calibrationDir, hw, cfg.model.id);
  writeFileAtomic(file, JSON.stringify(calibration, null, 2) + '\n');
  return { calibration, file };
}

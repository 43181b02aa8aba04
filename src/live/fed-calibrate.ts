/**
 * `hatsim live fed-calibrate <scenario>`: real training-step times of the
 * scenario's model on this machine, for the FedSpine cost model
 * (fedspine/traincal.ts has the file format and the fit).
 *
 * `concurrency` worker processes (default: the scenario's device count, so
 * the cores are shared as in the live run) each load the model folder and
 * a device's shard and, per rank, time interleaved (A/B/C, same load):
 * forward + loss of the frozen base, forward of base + LoRA, and the full
 * step (forward + backward + Adam): the backward factor proper (abStepMs,
 * abFit); then real rounds of K local steps (fed-train.ts trainRound, the
 * code the live devices run: fresh LoRA variables and Adam state, its first
 * step included), ranks interleaved: stepMs = round wall time / K, which the
 * fit the cost model reads is made on (measured here: the in-round step is
 * ~20 % slower than the interleaved single step). Medians over workers and
 * repetitions; the load average before and after goes into the file.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { forwardFlops, loraWireBytes, pruneStructure } from '../fedspine/cost.js';
import type { FedConfig } from '../fedspine/rounds.js';
import { fitStepFactors, trainCalPath, TRAIN_CAL_FORMAT, type TrainCalibration, type TrainCalPoint } from '../fedspine/traincal.js';
import { loadModelFolder } from '../train/folder.js';
import type { LoraTarget } from '../train/lora.js';
import { FedTrainer, deviceCategories, shardTokens } from './fed-train.js';
import { initGlobalLora, loraMatrices, toDeviceLayout } from './fedwire.js';
import { liveOptions } from './fed-options.js';

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface WorkerResult {
  /** Per rank: A/B interleaved single passes (the backward factor) and real rounds of K steps (what the devices run). */
  ranks: { rank: number; baseForwardMs: number[]; forwardMs: number[]; stepMs: number[]; roundStepMs: number[] }[];
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export function defaultRanks(cfg: FedConfig): number[] {
  const { rankMin, rankMax } = cfg.space;
  return [...new Set([rankMin, Math.round((rankMin + rankMax) / 2), rankMax])];
}

/**
 * The rank (index into the calibration's ranks) worker `worker` runs in lock-step round i of a repetition: rotated,
 * so the workers of one round run different ranks (as the live devices do) and each runs every rank over n rounds.
 */
export function calibrationRankIndex(round: number, worker: number, n: number): number {
  return (round + worker) % n;
}

/**
 * One worker: the timings of this process (device `worker`'s shard). `barrier` resolves when every worker may start
 * the next round (the CLI worker: a "go" line on stdin after printing "ready"; default: at once).
 */
export async function calibrateWorker(cfg: FedConfig, worker: number, ranks: readonly number[], reps: number, abReps = reps, barrier: () => Promise<void> = () => Promise.resolve()): Promise<WorkerResult> {
  const live = liveOptions(cfg);
  const folder = loadModelFolder(live.modelDir);
  const category = deviceCategories(Math.max(cfg.devices.length, worker + 1), live.categories && worker < live.categories.length ? live.categories : null)[worker];
  const shard = shardTokens(folder.tokenizer, category, live.maxShardDocs);
  const targets = cfg.training.loraTargets as readonly LoraTarget[];
  const trainer = await FedTrainer.create(folder.model, folder.values, { targets, batch: cfg.training.batch, seq: cfg.training.seqLen, lr: live.lr, alphaOverRank: live.alphaOverRank });
  const mats = loraMatrices(folder.model, targets);
  const full = pruneStructure(cfg.model, 0);
  const out: WorkerResult = { ranks: [] };
  const slices = ranks.map((rank) => toDeviceLayout(initGlobalLora(mats, rank, cfg.seed), rank));
  ranks.forEach((rank, i) => out.ranks.push({ rank, ...trainer.stepTimes(slices[i], rank, shard, cfg.seed + worker, abReps), roundStepMs: [] }));
  // Real rounds (fresh LoRA variables and optimizer each time, as a device), ranks interleaved so load drift spreads over
  // all, run like the live rounds: every worker waits at a barrier (the parent's "go" on stdin), then its device's
  // download time at that rank, trains, then its upload time. So the workers compute at the same moments as the live
  // devices do (measured: unsynchronised workers ran 1.9x faster than the synchronised live devices at load 3, and
  // continuous ones 75 % slower at load 13).
  const K = cfg.rounds.localSteps;
  const dev = cfg.devices[worker % cfg.devices.length];
  const xferMs = (rank: number, dir: 'down' | 'up'): number => {
    const bytes = loraWireBytes(cfg.model, full, rank, cfg.training) + (dir === 'down' ? cfg.rounds.configBytes : cfg.rounds.headerBytes);
    const mbps = dir === 'down' ? Math.min(dev.link.downlinkMbps, cfg.server.downlinkMbps) : Math.min(dev.link.uplinkMbps, cfg.server.uplinkMbps);
    return dev.link.latencyMs + (bytes * 8) / (mbps * 1e3);
  };
  const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
  // Workers run different ranks in the same round (worker w at ranks[(i + w) mod n]), as the live devices do: with one
  // rank for all, their transfer times (so their steps) lined up more than live, and the step came out 1.7-2.2x the
  // live one at load 1-3. Over ranks.length rounds every worker still runs every rank.
  for (let rep = 0; rep < reps; rep++) {
    for (let i = 0; i < ranks.length; i++) {
      const j = calibrationRankIndex(i, worker, ranks.length);
      await barrier();
      await sleep(xferMs(ranks[j], 'down'));
      const r = await trainer.trainRound(slices[j], ranks[j], K, shard, cfg.seed + worker, (rep * ranks.length + i) * K);
      out.ranks[j].roundStepMs.push(r.totalMs / K);
      await sleep(xferMs(ranks[j], 'up'));
    }
  }
  trainer.dispose();
  return out;
}

export interface FedCalibrateOptions {
  cfg: FedConfig; scenarioPath: string; overrides: string[]; reps: number; ranks?: number[]; concurrency?: number; out?: string;
  /** Repetitions of the A/B single-step timing (default reps). */
  abReps?: number;
  /** Bracketing: measure, run this (e.g. the live run), measure again, and pool both measurements (load drift during it averages out). */
  around?: () => Promise<void>;
}

export async function runFedCalibrate(o: FedCalibrateOptions): Promise<{ calibration: TrainCalibration; file: string }> {
  const { cfg } = o;
  const ranks = o.ranks ?? defaultRanks(cfg);
  const hw = cfg.devices[0].hardwareId;
  if (cfg.devices.some((d) => d.hardwareId !== hw)) throw new InputError(`fed-calibrate times this machine as one hardware id; the scenario's devices use ${[...new Set(cfg.devices.map((d) => d.hardwareId))].join(', ')}`, 'devices.hardware');
  const conc = o.concurrency ?? cfg.devices.length;
  if (!(Number.isInteger(conc) && conc >= 1)) throw new InputError('--concurrency: give an integer >= 1', 'concurrency');
  const loadAvgBefore = os.loadavg();
  const args = (w: number) => ['live', 'fed-calibrate', o.scenarioPath, '--worker', String(w), '--reps', String(o.reps), '--ab-reps', String(o.abReps ?? o.reps), '--ranks', ranks.join(','), ...o.overrides.flatMap((s) => ['--set', s])];
  const rounds = o.reps * ranks.length;
  const measure = async (): Promise<WorkerResult[]> => {
    const kids = Array.from({ length: conc }, (_, w) => {
      const child = spawn(process.execPath, [CLI, ...args(w)], { stdio: ['pipe', 'pipe', 'pipe'] });
      const lines: string[] = [];
      let buf = '', err = '', wake: (() => void) | null = null;
      child.stdout.on('data', (c: Buffer) => {
        buf += c.toString();
        let k;
        while ((k = buf.indexOf('\n')) >= 0) { lines.push(buf.slice(0, k)); buf = buf.slice(k + 1); wake?.(); }
      });
      child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
      const exited = new Promise<number>((r) => child.on('exit', (code) => { wake?.(); r(code ?? 1); }));
      let dead = false;
      void exited.then(() => { dead = true; });
      const next = async (): Promise<string> => {
        for (;;) {
          const l = lines.shift();
          if (l !== undefined) return l;
          if (dead) throw new Error(`calibration worker ${w} exited early: ${err.trim().split('\n').slice(-3).join(' | ')}`);
          await new Promise<void>((r) => { wake = r; });
          wake = null;
        }
      };
      return { child, next, exited, err: () => err };
    });
    try {
      // Lock-step rounds: every worker says "ready", then all get "go".
      for (let j = 0; j < rounds; j++) {
        for (const k of kids) { const l = await k.next(); if (l !== 'ready') throw new Error(`calibration worker printed "${l.slice(0, 80)}", expected "ready"`); }
        for (const k of kids) k.child.stdin.write('go\n');
      }
      const out: WorkerResult[] = [];
      for (const k of kids) {
        const l = await k.next();
        if (!l.startsWith('result ')) throw new Error(`calibration worker printed no result: ${k.err().trim()}`);
        out.push(JSON.parse(l.slice('result '.length)) as WorkerResult);
      }
      return out;
    } finally {
      for (const k of kids) { k.child.stdin.end(); if (k.child.exitCode === null) k.child.kill('SIGTERM'); }
    }
  };
  const results = await measure();
  if (o.around) {
    await o.around();
    results.push(...(await measure()));
  }
  const loadAvgAfter = os.loadavg();
  const full = pruneStructure(cfg.model, 0);
  const points: TrainCalPoint[] = ranks.map((rank, i) => {
    const all = (k: 'baseForwardMs' | 'forwardMs' | 'stepMs' | 'roundStepMs') => results.flatMap((r) => r.ranks[i][k]);
    const f = forwardFlops(cfg.model, full, rank, cfg.training);
    return {
      rank, loraFlopShare: f.lora / f.frozen, baseForwardMs: median(all('baseForwardMs')), forwardMs: median(all('forwardMs')),
      abStepMs: median(all('stepMs')), stepMs: median(all('roundStepMs')), samples: all('roundStepMs').length,
    };
  });
  const ab = fitStepFactors(points.map((p) => ({ ...p, stepMs: p.abStepMs })));
  const calibration: TrainCalibration = {
    format: TRAIN_CAL_FORMAT, hardwareId: hw, model: cfg.model.id, batch: cfg.training.batch, seqLen: cfg.training.seqLen,
    loraTargets: [...cfg.training.loraTargets], concurrency: conc, points,
    roundOverheadMs: 0,
    fit: fitStepFactors(points),
    abFit: ab,
    measured: {
      at: new Date().toISOString(), loadAvgBefore, loadAvgAfter,
      command: `hatsim ${o.around ? 'validate --calibrate (before and after the live run)' : 'live fed-calibrate'} ${o.scenarioPath} --reps ${o.reps} --ranks ${ranks.join(',')} --concurrency ${conc}${o.overrides.map((s) => ` --set ${s}`).join('')}`,
      backend: 'tfjs wasm, 1 thread per process',
    },
  };
  const file = o.out ?? trainCalPath(cfg.calibrationDir, hw, cfg.model.id);
  writeFileAtomic(file, JSON.stringify(calibration, null, 2) + '\n');
  return { calibration, file };
}

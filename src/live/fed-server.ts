/**
 * The live FedSpine run (`hatsim live fedspine <scenario>`): this process is
 * the server; it starts one device process per scenario device
 * (`hatsim live fed-device`, child processes over loopback WebSocket), and
 * runs synchronous rounds with the SAME policy objects as the simulator
 * (fedspine/rounds.ts buildPolicy, policies.ts, bandit.ts):
 *
 * 1. policy.choose(d) for every device (memory feasibility from cost.ts);
 * 2. download: the global LoRA slice of the chosen rank (fedwire.ts) through
 *    the device's downlink shaper (modelled bytes = LoRA wire size +
 *    rounds.configBytes, as the simulator);
 * 3. the device trains K real steps and uploads its factors (fed-device.ts);
 * 4. the round ends when every participant delivered (or its update failed
 *    its checks or its process died: status "dropped");
 * 5. aggregation: fedspine/aggregate.ts per adapted matrix (zero-padded
 *    heterogeneous ranks; scenario live.aggregation, default data-size
 *    weights, normalise over all);
 * 6. loss: the new global model on each device's validation windows (row
 *    loss = that device's; the summary's final_loss = the data-weighted mean);
 *    a device's loss improvement = its validation loss before - after the
 *    round [assumption: the reward's loss term]; rewards (rounds.ts
 *    roundRewards) go to policy.observe.
 * Times per row (device clocks are this machine's: one epoch clock):
 *   download_s = device received - round start; compute_s = device handed its
 *   update to its uplink shaper - received; upload_s = server received -
 *   handed; wait_s = round end - own finish. Aggregation + evaluation between
 *   rounds is logged in run.json (aggregation_s), not in round_s.
 * Not live (refused, fed-options.ts): pruning, availability other than
 * always, deadlines, link traces; the server NIC is not shaped (each device
 * link alone, as live/node.ts): run.json warns when the NIC would bind.
 */
import { createWriteStream, mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import WebSocket, { WebSocketServer } from 'ws';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { RngStreams } from '../core/rng.js';
import { aggregateLora, type LoraUpdate } from '../fedspine/aggregate.js';
import { loraWireBytes, pruneStructure } from '../fedspine/cost.js';
import { buildCostModels, buildPolicy, checkDevicesFit, roundRewards, ROUND_COLUMNS, type FedConfig, type RoundRow } from '../fedspine/rounds.js';
import type { MethodId } from '../fedspine/policies.js';
import { FEDSPINE_ASSUMPTIONS } from '../fedspine/outputs.js';
import { toCsv } from '../results/csv.js';
import { VERSION } from '../results/write.js';
import { loadModelFolder } from '../train/folder.js';
import type { LoraTarget } from '../train/lora.js';
import { FedTrainer, deviceCategories, validationWindows } from './fed-train.js';
import { checkLiveFedScenario, liveOptions } from './fed-options.js';
import { decodeUpdate, encodeRound, fromDeviceLayout, initGlobalLora, loraMatrices, toDeviceLayout, type FedLimits, type GlobalLora } from './fedwire.js';
import { startChild } from './local.js';
import { LinkModel, ShapedSender } from './shaper.js';
import { Dtype, FrameType, WireError, decodeFrame, encodeFrame, makeFrame, parseJsonPayload, tokenHash, DEFAULT_MAX_FRAME_BYTES } from './wire.js';
import { epochNowMs } from './fed-device.js';

export interface FedLiveOptions {
  cfg: FedConfig;
  scenarioPath: string;
  overrides: string[];
  method: MethodId;
  outDir: string;
  /** The resolved scenario (run.json). */
  resolved: unknown;
  token?: string;
  /** Give up on a round (its missing devices: dropped) after this long. */
  roundTimeoutS?: number;
  /** Kill everything after this long. */
  timeoutS?: number;
  log?: (line: string) => void;
}

export interface FedLiveSummary {
  method: string;
  rounds: number;
  mean_round_s: number;
  mean_download_s: number;
  mean_compute_s: number;
  mean_upload_s: number;
  mean_wait_s: number;
  loss_initial: number;
  final_loss: number;
  total_bytes: number;
  dropped: number;
}

export interface FedLiveResult { rows: RoundRow[]; summary: FedLiveSummary; errors: string[]; wallMs: number; outDir: string }

const mean = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);

interface Conn { ws: WebSocket; device: number | null; sender: ShapedSender | null }

export async function runFedLive(o: FedLiveOptions): Promise<FedLiveResult> {
  const { cfg, method } = o;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const wall0 = performance.now();
  checkLiveFedScenario(cfg);
  if (!cfg.methods.includes(method)) throw new InputError(`--method ${method} is not a method of the scenario (${cfg.methods.join(', ')})`, 'method');
  const live = liveOptions(cfg);
  const n = cfg.devices.length;
  const costs = buildCostModels(cfg);
  checkDevicesFit(cfg, costs);
  const folder = loadModelFolder(live.modelDir);
  if (folder.model.id !== cfg.model.id) throw new InputError(`live.modelDir holds ${folder.model.id}, the scenario's model is ${cfg.model.id}`, 'live.modelDir');
  const categories = deviceCategories(n, live.categories);
  const windows = categories.map((c) => validationWindows(folder.tokenizer, c, cfg.training.seqLen, live.evalWindows));
  const targets = cfg.training.loraTargets as readonly LoraTarget[];
  const mats = loraMatrices(folder.model, targets);
  const lim: FedLimits = { mats, rankMax: cfg.space.rankMax };
  const R = cfg.space.rankMax;
  const dtype = cfg.training.wireBytesPerElem === 2 ? Dtype.fp16 : Dtype.fp32;
  const evaluator = await FedTrainer.create(folder.model, folder.values, { targets, batch: cfg.training.batch, seq: cfg.training.seqLen, lr: live.lr, alphaOverRank: live.alphaOverRank });
  const streams = new RngStreams(cfg.seed);
  const policy = buildPolicy(cfg, method, costs, streams);
  const feasibleOf = (d: number) => (p: number, r: number) => costs[d].cost(p, r).feasible;
  let global: GlobalLora = initGlobalLora(mats, R, cfg.seed);
  const evalAll = (g: GlobalLora): number[] => { const l = toDeviceLayout(g, R); return windows.map((w) => evaluator.evalLoss(l, R, w)); };
  const totalData = cfg.devices.reduce((s, d) => s + d.dataSize, 0);
  const weighted = (xs: readonly number[]) => xs.reduce((s, x, d) => s + x * cfg.devices[d].dataSize, 0) / totalData;
  let losses = evalAll(global);
  const initialLosses = losses;
  const lossInitial = weighted(losses);
  log(`server: initial validation loss ${lossInitial.toFixed(4)} (${categories.join(', ')})`);

  // Output directory: nothing half-written (run.json last marks a complete directory).
  mkdirSync(o.outDir, { recursive: true });
  rmSync(join(o.outDir, 'run.json'), { force: true });
  const logStream = createWriteStream(join(o.outDir, 'live.log'));
  const errors: string[] = [];
  const note = (e: string): void => { errors.push(e); log(`server: ${e}`); };

  // Server socket; device processes.
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: DEFAULT_MAX_FRAME_BYTES });
  await new Promise<void>((r) => wss.once('listening', () => r()));
  const port = (wss.address() as { port: number }).port;
  log(`server: listening on 127.0.0.1:${port}`);
  const conns = new Set<Conn>();
  const byDevice = new Map<number, Conn>();
  const want = o.token ? tokenHash(o.token) : '';
  let onUpdate: ((c: Conn, data: Buffer, at: number) => void) | null = null;
  /** A device's connection closed during a round: its update will not come. */
  let onGone: ((device: number) => void) | null = null;
  let helloWaiter: (() => void) | null = null;
  wss.on('connection', (ws) => {
    const c: Conn = { ws, device: null, sender: null };
    conns.add(c);
    ws.on('close', () => {
      conns.delete(c); c.sender?.close();
      if (c.device !== null && byDevice.get(c.device) === c) { byDevice.delete(c.device); onGone?.(c.device); }
    });
    ws.on('message', (data: Buffer) => {
      const at = epochNowMs();
      if (c.device === null) {
        try {
          const f = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          if (f.type !== FrameType.fedHello) throw new WireError('bad-state', `expected fedHello first, got type ${f.type}`);
          const j = parseJsonPayload(f);
          const d = j.device;
          if (typeof d !== 'number' || !Number.isInteger(d) || d < 0 || d >= n) throw new WireError('bad-shape', `fedHello device ${JSON.stringify(d)} is not 0..${n - 1}`);
          if ((j.tokenSha256 ?? '') !== want) throw new WireError('bad-auth', 'fedHello token hash does not match');
          if (byDevice.has(d)) throw new WireError('bad-state', `device ${d} is already connected`);
          const link = cfg.devices[d].link;
          c.device = d;
          c.sender = new ShapedSender(new LinkModel({ mbps: link.downlinkMbps, latencyMs: link.latencyMs, jitterMs: link.jitterMs ?? 0 }, streams.get(`net/${d}/jitter/down`)));
          byDevice.set(d, c);
          helloWaiter?.();
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
          note(`dropped a frame before hello (${e.code}): ${e.message}; connection closed`);
          ws.close();
        }
        return;
      }
      onUpdate?.(c, data, at);
    });
  });
  const procs = cfg.devices.map((_, d) => startChild(['live', 'fed-device', '--scenario', o.scenarioPath, '--server', `127.0.0.1:${port}`, '--device', String(d),
    ...o.overrides.flatMap((s) => ['--set', s]), ...(o.token ? ['--token', o.token] : [])], logStream, `device-${d}`));
  const killAll = (): void => { for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM'); };
  const deadline = setTimeout(() => { note(`timeout after ${o.timeoutS ?? 900} s: stopping`); killAll(); }, (o.timeoutS ?? 900) * 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      const check = (): void => { if (byDevice.size === n) resolve(); };
      helloWaiter = check;
      for (const p of procs) void p.exited.then((code) => { if (byDevice.size < n) reject(new Error(`a device process exited (code ${code}) before every device joined: see ${join(o.outDir, 'live.log')}`)); });
    });
    helloWaiter = null;
    log(`server: ${n} devices joined on port ${port}`);

    const rows: RoundRow[] = [];
    const aggregationS: number[] = [];
    const iter = new Array<number>(n).fill(0);
    let bytesTotal = 0;
    const runStart = epochNowMs();
    const wire = (rank: number) => loraWireBytes(cfg.model, pruneStructure(cfg.model, 0), rank, cfg.training);
    for (let round = 1; round <= cfg.rounds.max; round++) {
      const t0 = epochNowMs();
      const roundRows: RoundRow[] = [];
      const pending = new Map<number, { row: RoundRow; choice: { ratio: number; rank: number; cell?: number } }>();
      for (let d = 0; d < n; d++) {
        const blank: RoundRow = {
          method, round, device: cfg.devices[d].name, hardware: cfg.devices[d].hardwareId, status: 'ok', feasible: true, ratio: NaN, rank: NaN, ratio_after: 0,
          start_s: (t0 - runStart) / 1000, download_s: NaN, compute_s: NaN, upload_s: NaN, finish_s: NaN, wait_s: NaN, round_s: NaN,
          bytes_down: 0, bytes_up: 0, loss: NaN, loss_improvement: NaN, reward: NaN,
        };
        roundRows.push(blank);
        const choice = policy.choose(d, feasibleOf(d));
        if (choice === null) { blank.status = 'infeasible'; blank.feasible = false; continue; }
        const c = byDevice.get(d);
        if (!c) { blank.status = 'dropped'; policy.observe(d, choice, 0); continue; }
        blank.ratio = choice.ratio; blank.rank = choice.rank;
        blank.bytes_down = wire(choice.rank) + cfg.rounds.configBytes;
        pending.set(d, { row: blank, choice });
        const frame = encodeFrame(encodeRound(d, { round, ratio: 0, rank: choice.rank, steps: cfg.rounds.localSteps, firstStep: iter[d] }, toDeviceLayout(global, choice.rank), mats, dtype));
        iter[d] += cfg.rounds.localSteps;
        c.sender!.send(blank.bytes_down, () => c.ws.send(frame));
      }
      const updates = new Map<string, LoraUpdate[]>();
      const delivered: number[] = [];
      await new Promise<void>((resolve) => {
        let left = pending.size;
        if (left === 0) { resolve(); return; }
        const settle = (): void => { if (--left === 0) { clearTimeout(timer); onUpdate = null; onGone = null; resolve(); } };
        onGone = (d) => {
          const p = pending.get(d);
          if (p && Number.isNaN(p.row.finish_s) && p.row.status === 'ok') { note(`round ${round}: device ${d} disconnected before delivering`); p.row.status = 'dropped'; p.row.finish_s = Infinity; settle(); }
        };
        const timer = setTimeout(() => {
          for (const [d, p] of pending) if (Number.isNaN(p.row.finish_s) && p.row.status === 'ok') { p.row.status = 'dropped'; note(`round ${round}: device ${d} did not deliver within ${o.roundTimeoutS ?? 300} s`); }
          onUpdate = null; onGone = null; resolve();
        }, (o.roundTimeoutS ?? 300) * 1000);
        onUpdate = (c, data, at) => {
          const d = c.device!;
          const p = pending.get(d);
          try {
            const f = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
            if (f.deviceId !== d) throw new WireError('bad-shape', `frame deviceId ${f.deviceId} on device ${d}'s connection`);
            const { info, lora } = decodeUpdate(f, lim);
            if (!p || info.round !== round || !Number.isNaN(p.row.finish_s)) throw new WireError('bad-state', `update for round ${info.round} from device ${d} is not expected (round ${round})`);
            if (info.rank !== p.choice.rank) throw new WireError('bad-shape', `update of rank ${info.rank}, the round asked for ${p.choice.rank}`);
            const factors = fromDeviceLayout(mats, lora, info.rank);
            for (const [name, fct] of factors) { const l = updates.get(name) ?? []; l.push({ factors: fct, dataSize: cfg.devices[d].dataSize }); updates.set(name, l); }
            const row = p.row;
            row.download_s = (info.recvEpochMs - t0) / 1000;
            row.compute_s = (info.handedEpochMs - info.recvEpochMs) / 1000;
            row.upload_s = (at - info.handedEpochMs) / 1000;
            row.finish_s = (at - runStart) / 1000;
            row.bytes_up = wire(info.rank) + cfg.rounds.headerBytes;
            delivered.push(d);
            settle();
          } catch (e) {
            if (!(e instanceof WireError)) throw e;
            note(`round ${round}: dropped a frame from device ${d} (${e.code}): ${e.message}`);
            if (p && Number.isNaN(p.row.finish_s) && p.row.status === 'ok') { p.row.status = 'dropped'; p.row.finish_s = Infinity; settle(); }
          }
        };
      });
      const tEnd = epochNowMs();
      const a0 = performance.now();
      if (delivered.length > 0) {
        const next: GlobalLora = new Map();
        for (const m of mats) next.set(m.name, aggregateLora(updates.get(m.name)!, R, live.aggregation, global.get(m.name)));
        global = next;
      }
      const before = losses;
      losses = evalAll(global);
      const ok = [...pending.entries()].filter(([, p]) => p.row.status === 'ok');
      const rewards = roundRewards(cfg, ok.map(([d, p]) => ({ lossImprovement: before[d] - losses[d], ratioAfter: 0, rank: p.choice.rank, timeS: (p.row.finish_s * 1000 + runStart - t0) / 1000 })));
      ok.forEach(([d, p], k) => {
        p.row.loss_improvement = before[d] - losses[d];
        p.row.reward = rewards[k];
        p.row.wait_s = (tEnd - runStart) / 1000 - p.row.finish_s;
        policy.observe(d, p.choice, rewards[k]);
        bytesTotal += p.row.bytes_down + p.row.bytes_up;
      });
      for (const [d, p] of pending) if (p.row.status !== 'ok') { policy.observe(d, p.choice, 0); p.row.finish_s = NaN; }
      roundRows.forEach((r, d) => { r.loss = losses[d]; r.round_s = (tEnd - t0) / 1000; rows.push(r); });
      aggregationS.push((performance.now() - a0) / 1000);
      log(`server: round ${round}: ${((tEnd - t0) / 1000).toFixed(2)} s, ranks ${roundRows.map((r) => r.rank).join(',')}, validation loss ${weighted(losses).toFixed(4)}`);
    }
    for (const c of byDevice.values()) c.sender!.sendUnshaped(() => c.ws.send(encodeFrame(makeFrame(FrameType.bye, {}))));
    const codes = await Promise.race([Promise.all(procs.map((p) => p.exited)), new Promise<null>((r) => setTimeout(() => r(null), 20000))]);
    if (codes === null) note('device processes did not exit within 20 s of bye');
    else codes.forEach((code, d) => { if (code !== 0) note(`device process ${d} exited with code ${code} (see live.log)`); });
    const okRows = rows.filter((r) => r.status === 'ok');
    const roundS = [...new Set(rows.map((r) => r.round))].map((t) => rows.find((r) => r.round === t)!.round_s);
    const summary: FedLiveSummary = {
      method, rounds: roundS.length, mean_round_s: mean(roundS),
      mean_download_s: mean(okRows.map((r) => r.download_s)), mean_compute_s: mean(okRows.map((r) => r.compute_s)),
      mean_upload_s: mean(okRows.map((r) => r.upload_s)), mean_wait_s: mean(okRows.map((r) => r.wait_s)),
      loss_initial: lossInitial, final_loss: weighted(losses), total_bytes: bytesTotal, dropped: rows.filter((r) => r.status === 'dropped').length,
    };
    const nicWarn = cfg.devices.reduce((s, d) => s + d.link.downlinkMbps, 0) > cfg.server.downlinkMbps || cfg.devices.reduce((s, d) => s + d.link.uplinkMbps, 0) > cfg.server.uplinkMbps;
    writeFileAtomic(join(o.outDir, 'rounds.csv'), toCsv(rows, ROUND_COLUMNS));
    writeFileAtomic(join(o.outDir, 'summary.csv'), toCsv([summary]));
    writeFileAtomic(join(o.outDir, 'run.json'), JSON.stringify({
      hatsimVersion: VERSION, mode: 'live', kind: 'fedspine', method, seed: cfg.seed, scenario: o.resolved,
      devices: cfg.devices.map((d, i) => ({ name: d.name, hardware: d.hardwareId, memoryBytes: d.memoryBytes, dataSize: d.dataSize, category: categories[i] })),
      learning: { lossInit: lossInitial }, initialLossPerDevice: initialLosses,
      aggregation_s: aggregationS, errors,
      warnings: nicWarn ? ['the server NIC would bind in the simulator (sum of device links > server rate); live shapes each device link alone'] : [],
      loadAvgEnd: os.loadavg(), assumptions: FEDSPINE_ASSUMPTIONS, wallMs: Math.round(performance.now() - wall0),
    }, null, 2) + '\n');
    return { rows, summary, errors, wallMs: performance.now() - wall0, outDir: o.outDir };
  } finally {
    clearTimeout(deadline);
    killAll();
    for (const c of conns) c.ws.terminate();
    await new Promise<void>((r) => wss.close(() => r()));
    evaluator.dispose();
    logStream.end();
  }
}

/**
 * FedSpine round simulator: a server and N devices, one simulation per method.
 *
 * Round t starts at time t0 (the previous round's end + aggregationS):
 * 1. Participants: devices online at t0 and not still busy with a late
 *    update; the policy picks each one's (ratio p, rank r) among the
 *    configurations that fit its memory (none: the device sits out, row
 *    status "infeasible"). Fewer than minParticipants online: the server
 *    waits idleRetryS and tries again.
 * 2. Download: LoRA slice (rank r, the device's current pruned shape) +
 *    configBytes, over the device's downlink and the server NIC (network/).
 * 3. Compute: K local steps; every stepsBetween local iterations (counted
 *    across rounds) a pruning step raises the device's ratio by at most
 *    maxStep toward p (a lower p is restored at once from the base model in
 *    storage [assumption]); step time from cost.ts at the current ratio, plus
 *    pruneOverheadMs per pruning step. Memory is checked at the target (p, r);
 *    a device whose current model does not fit rank r first prunes at once to
 *    the lowest grid ratio that fits [assumption].
 * 4. Upload: the LoRA update at the final shape + headerBytes.
 * 5. The round ends when every participant has delivered or dropped out
 *    (synchronous: waits for the slowest), or at t0 + deadlineS when a
 *    deadline is set (later updates are discarded: status "late"; a late
 *    device stays busy until its upload ends). A device that goes offline
 *    before its upload is delivered drops out at that instant (status
 *    "dropped"; the server learns it at once [assumption]).
 * 6. Aggregation (zero-padded heterogeneous ranks, aggregate.ts in the live
 *    runner) is modelled by the learning model (learning.ts): the global loss
 *    moves with the delivered updates; each delivered device gets a reward
 *    (bandit.ts) and its policy observes it.
 * Waiting time of a delivered device = round end - its own finish.
 */
import { RngStreams, type Rng } from '../core/rng.js';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import type { NetLinkSpec } from '../network/network.js';
import { deviceCostModel, loraWireBytes, pruneStructure, type DeviceCostModel, type TrainingOptions } from './cost.js';
import { fedspineReward, updateImportance, type ConfigSpace, type RewardWeights, type SucbOptions } from './bandit.js';
import { deviceImprovement, deviceProgress, lossFloor, nextLoss, type LearningParams, type Participant } from './learning.js';
import { makePolicy, type BaselineOptions, type Choice, type ConfigPolicy, type MethodId } from './policies.js';
import { loadAvailability, type AvailabilitySpec } from './availability.js';
import { simSeam } from './seam.js';
import type { AggregateOptions } from './aggregate.js';

export interface FedDevice {
  name: string;
  group: string;
  hardwareId: string;
  memoryBytes: number;
  link: NetLinkSpec;
  /** Local training samples (the aggregation and learning weight). */
  dataSize: number;
}

export interface FedConfig {
  name: string;
  seed: number;
  model: ModelSpec;
  calibrationDir: string;
  training: TrainingOptions;
  devices: FedDevice[];
  server: { uplinkMbps: number; downlinkMbps: number };
  rounds: {
    max: number;
    horizonS: number;
    localSteps: number;
    targetLoss: number;
    deadlineS: number | null;
    minParticipants: number;
    aggregationS: number;
    idleRetryS: number;
    configBytes: number;
    headerBytes: number;
  };
  pruning: { stepsBetween: number; maxStep: number; overheadMs: number };
  space: ConfigSpace;
  sucb: SucbOptions;
  reward: RewardWeights & { targetRatio: number; importanceExponent: number };
  baselines: BaselineOptions;
  learning: LearningParams;
  heterogeneity: number;
  availability: AvailabilitySpec;
  methods: MethodId[];
  /** The live runner's options (scenario `live`); the simulator ignores them. */
  live?: LiveFedOptions;
}

/** Scenario `live` block (live/fed-server.ts, live/fed-device.ts). */
export interface LiveFedOptions {
  /** Trained model folder (weights, tokenizer) the devices fine-tune. */
  modelDir: string;
  /** Brown category of each device's shard, in device order (default: the categories with validation documents, sorted, round-robin). */
  categories: string[] | null;
  /** Validation windows per device for the loss. */
  evalWindows: number;
  lr: number;
  alphaOverRank: number;
  /** Train documents per shard (default all). */
  maxShardDocs: number | null;
  /** aggregate.ts's rule for the real tensors (default data weights, normalise over all: HetLoRA's zero padding). */
  aggregation: AggregateOptions;
}

export type RowStatus = 'ok' | 'late' | 'dropped' | 'offline' | 'infeasible' | 'busy';

export interface RoundRow {
  method: string;
  round: number;
  device: string;
  hardware: string;
  status: RowStatus;
  feasible: boolean;
  ratio: number;
  rank: number;
  ratio_after: number;
  start_s: number;
  download_s: number;
  compute_s: number;
  upload_s: number;
  finish_s: number;
  wait_s: number;
  round_s: number;
  bytes_down: number;
  bytes_up: number;
  loss: number;
  loss_improvement: number;
  reward: number;
}

export const ROUND_COLUMNS: (keyof RoundRow)[] = ['method', 'round', 'device', 'hardware', 'status', 'feasible', 'ratio', 'rank', 'ratio_after',
  'start_s', 'download_s', 'compute_s', 'upload_s', 'finish_s', 'wait_s', 'round_s', 'bytes_down', 'bytes_up', 'loss', 'loss_improvement', 'reward'];

export interface MethodSummary {
  method: string;
  rounds: number;
  sim_time_s: number;
  time_to_target_s: number;
  rounds_to_target: number;
  final_loss: number;
  mean_round_s: number;
  mean_wait_s: number;
  p90_wait_s: number;
  participants_mean: number;
  dropped: number;
  late: number;
  total_bytes: number;
  bytes_per_round: number;
  mean_ratio: number;
  mean_rank: number;
  latency_source: string;
  events: number;
}

export const SUMMARY_COLUMNS: (keyof MethodSummary)[] = ['method', 'rounds', 'sim_time_s', 'time_to_target_s', 'rounds_to_target', 'final_loss',
  'mean_round_s', 'mean_wait_s', 'p90_wait_s', 'participants_mean', 'dropped', 'late', 'total_bytes', 'bytes_per_round', 'mean_ratio', 'mean_rank', 'latency_source', 'events'];

export interface FedResult {
  rows: RoundRow[];
  summaries: MethodSummary[];
  wallMs: number;
}

const r9 = (x: number) => Math.round(x * 1e9) / 1e9;

/** One cost model per (hardware, memory) pair. */
export function buildCostModels(cfg: FedConfig): DeviceCostModel[] {
  const cache = new Map<string, DeviceCostModel>();
  return cfg.devices.map((d) => {
    const key = `${d.hardwareId}/${d.memoryBytes}`;
    let m = cache.get(key);
    if (!m) {
      m = deviceCostModel({ hardwareId: d.hardwareId, memoryCapacityBytes: d.memoryBytes, model: cfg.model, training: cfg.training, calibrationDir: cfg.calibrationDir });
      cache.set(key, m);
    }
    return m;
  });
}

/** Refuse a scenario in which some device cannot hold even the smallest configuration (ratioMax, rankMin). */
export function checkDevicesFit(cfg: FedConfig, costs: readonly DeviceCostModel[]): void {
  cfg.devices.forEach((d, i) => {
    const c = costs[i].cost(cfg.space.ratioMax, cfg.space.rankMin);
    if (!c.feasible) {
      const gib = (x: number) => (x / 1024 ** 3).toFixed(2);
      throw new InputError(
        `device ${d.name} (${d.hardwareId}, ${gib(d.memoryBytes)} GiB) cannot hold even the smallest configuration ` +
          `(ratio ${cfg.space.ratioMax}, rank ${cfg.space.rankMin}): it needs ${gib(c.memory.totalBytes)} GiB ` +
          `(weights ${gib(c.memory.weightsBytes)}, activations ${gib(c.memory.activationsBytes)}, LoRA ${gib(c.memory.loraBytes)}, reserved ${gib(c.memory.reservedBytes)}); ` +
          `lower training.batch or training.seqLen, raise space.ratioMax, or remove the device`,
        'devices',
      );
    }
  });
}

/** Idle transfer time (s) of bytes on a device's link, capped by the server NIC. */
function idleTransferS(link: NetLinkSpec, nicMbps: number, dir: 'up' | 'down', bytes: number): number {
  const mbps = Math.min(dir === 'up' ? link.uplinkMbps : link.downlinkMbps, nicMbps);
  return link.latencyMs / 1000 + (bytes * 8) / (mbps * 1e6);
}

interface DevState {
  ratioNow: number;
  iter: number;
  busyUntilS: number;
}

interface Live {
  choice: Choice;
  row: RoundRow;
  done: boolean;
  /** Seconds from round start to delivered upload. */
  timeS: number;
}

function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * q, lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** The method's policy over the scenario's devices (the same object kind in the simulator and the live runner). */
export function buildPolicy(cfg: FedConfig, method: MethodId, costs: readonly DeviceCostModel[], streams: RngStreams): ConfigPolicy {
  const R = cfg.rounds, K = R.localSteps;
  const cond = { localSteps: K, heterogeneity: cfg.heterogeneity };
  const L = cfg.learning;
  const totalData = cfg.devices.reduce((s, d) => s + d.dataSize, 0);
  const share = cfg.devices.map((d) => d.dataSize / totalData);
  const wire = (ratio: number, rank: number) => loraWireBytes(cfg.model, pruneStructure(cfg.model, ratio), rank, cfg.training);
  const feasibleOf = (d: number) => (p: number, r: number) => costs[d].cost(p, r).feasible;
  return makePolicy(method, {
    devices: cfg.devices.length,
    space: cfg.space,
    sucb: cfg.sucb,
    baselines: cfg.baselines,
    rngOf: (d) => streams.get(`fedspine/bandit/${d}`),
    stepMs: (d, p, r) => costs[d].cost(p, r).stepMs,
    roundTimeS: (d, p, r) => {
      const link = cfg.devices[d].link;
      return idleTransferS(link, cfg.server.downlinkMbps, 'down', wire(p, r) + R.configBytes) + (K * costs[d].cost(p, r).stepMs) / 1000 +
        idleTransferS(link, cfg.server.uplinkMbps, 'up', wire(p, r) + R.headerBytes);
    },
    progress: (d, p, r) => share[d] * deviceProgress(L, cond, p, r),
    roundsToTarget: (plan) => {
      const parts: Participant[] = [];
      plan.forEach((c, d) => { if (c) parts.push({ share: share[d], ratio: c.ratio, rank: c.rank }); });
      if (parts.length === 0) return Infinity;
      const ss = parts.reduce((s, q) => s + q.share, 0);
      const f = lossFloor(L, cond, parts.reduce((s, q) => s + q.share * q.ratio, 0) / ss);
      const g = parts.reduce((s, q) => s + q.share * deviceProgress(L, cond, q.ratio, q.rank), 0);
      if (!(R.targetLoss > f) || g <= 0) return Infinity;
      return Math.max(1, Math.ceil(Math.log((L.lossInit - f) / (R.targetLoss - f)) / g));
    },
  }, { feasibleOf });
}

/** One delivered update of a round, for the reward. */
export interface DeliveredUpdate { lossImprovement: number; ratioAfter: number; rank: number; timeS: number }

/** The FedSpine reward of each delivered update of a round (bandit.ts), relative to the round's others. */
export function roundRewards(cfg: FedConfig, ups: readonly DeliveredUpdate[]): number[] {
  const maxImpr = Math.max(0, ...ups.map((u) => u.lossImprovement));
  const times = ups.map((u) => u.timeS);
  const minT = Math.min(...times), maxT = Math.max(...times);
  return ups.map((u) => fedspineReward({
    lossImprovement: u.lossImprovement, maxLossImprovement: maxImpr,
    pruningProgress: cfg.reward.targetRatio > 0 ? u.ratioAfter / cfg.reward.targetRatio : 1,
    importance: updateImportance(u.ratioAfter, u.rank, cfg.space.rankMax, cfg.reward.importanceExponent),
    timeS: u.timeS, minTimeS: minT, maxTimeS: maxT,
  }, cfg.reward));
}

export interface SimulateOptions {
  /** Replay these configurations instead of the policy's (validation of a live run): (round, device) -> choice; null = the device sat out. */
  replay?: (round: number, device: number) => Choice | null;
}

export function simulateMethod(cfg: FedConfig, method: MethodId, costs: readonly DeviceCostModel[], opts: SimulateOptions = {}): { rows: RoundRow[]; summary: MethodSummary } {
  const streams = new RngStreams(cfg.seed);
  const n = cfg.devices.length;
  const { clock, transport } = simSeam({ devices: cfg.devices.map((d) => d.link), server: cfg.server }, streams);
  const avail = loadAvailability(cfg.availability, cfg.devices.map((d) => d.name), streams);
  const totalData = cfg.devices.reduce((s, d) => s + d.dataSize, 0);
  const share = cfg.devices.map((d) => d.dataSize / totalData);
  const R = cfg.rounds, K = R.localSteps;
  const cond = { localSteps: K, heterogeneity: cfg.heterogeneity };
  const L = cfg.learning;
  const wire = (ratio: number, rank: number) => loraWireBytes(cfg.model, pruneStructure(cfg.model, ratio), rank, cfg.training);
  const feasibleOf = (d: number) => (p: number, r: number) => costs[d].cost(p, r).feasible;
  const policy = buildPolicy(cfg, method, costs, streams);
  const noise: Rng[] = cfg.devices.map((_, d) => streams.get(`fedspine/loss-noise/${d}`));
  const state: DevState[] = cfg.devices.map(() => ({ ratioNow: 0, iter: 0, busyUntilS: 0 }));
  const rows: RoundRow[] = [];
  let loss = L.lossInit;
  let round = 0;
  let timeToTarget = NaN, roundsToTarget = NaN;
  const roundTimes: number[] = [];
  const participantsPerRound: number[] = [];
  let lastEndS = 0;

  const blank = (d: number, status: RowStatus, startS: number): RoundRow => ({
    method, round, device: cfg.devices[d].name, hardware: cfg.devices[d].hardwareId, status, feasible: status !== 'infeasible',
    ratio: NaN, rank: NaN, ratio_after: state[d].ratioNow, start_s: startS, download_s: NaN, compute_s: NaN, upload_s: NaN, finish_s: NaN,
    wait_s: NaN, round_s: NaN, bytes_down: 0, bytes_up: 0, loss: NaN, loss_improvement: NaN, reward: NaN,
  });

  const startRound = (): void => {
    const t0 = clock.nowS;
    if (round >= R.max || t0 >= R.horizonS) return;
    const online: number[] = [];
    for (let d = 0; d < n; d++) if (avail.onlineAt(d, t0) && state[d].busyUntilS <= t0) online.push(d);
    if (online.length < R.minParticipants) { clock.at(t0 + R.idleRetryS, startRound); return; }
    round++;
    const thisRound = round;
    const roundRows: RoundRow[] = [];
    const live = new Map<number, Live>();
    for (let d = 0; d < n; d++) {
      if (!online.includes(d)) { roundRows.push(blank(d, avail.onlineAt(d, t0) ? 'busy' : 'offline', t0)); continue; }
      const choice = opts.replay ? opts.replay(round, d) : policy.choose(d, feasibleOf(d));
      if (choice === null) { roundRows.push(blank(d, 'infeasible', t0)); continue; }
      const row = blank(d, 'ok', t0);
      row.ratio = choice.ratio; row.rank = choice.rank;
      roundRows.push(row);
      live.set(d, { choice, row, done: false, timeS: NaN });
    }
    if (live.size === 0) {
      // Nobody can train: record the round and retry later.
      for (const r of roundRows) { r.loss = loss; rows.push(r); }
      clock.at(t0 + R.idleRetryS, startRound);
      return;
    }
    let pending = live.size;
    let ended = false;
    const finishRound = (): void => {
      if (ended) return;
      ended = true;
      const tEnd = clock.nowS;
      const ok = [...live.entries()].filter(([, v]) => v.row.status === 'ok');
      const lossBefore = loss;
      loss = nextLoss(L, cond, lossBefore, ok.map(([d, v]) => ({ share: share[d], ratio: v.row.ratio_after, rank: v.choice.rank })));
      const impr = ok.map(([d, v]) => deviceImprovement(L, cond, lossBefore, v.row.ratio_after, v.choice.rank) + L.noiseStd * noise[d].normal());
      const rewards = roundRewards(cfg, ok.map(([, v], k) => ({ lossImprovement: impr[k], ratioAfter: v.row.ratio_after, rank: v.choice.rank, timeS: v.timeS })));
      ok.forEach(([d, v], k) => {
        const reward = rewards[k];
        v.row.loss_improvement = impr[k];
        v.row.reward = reward;
        v.row.wait_s = tEnd - v.row.finish_s;
        policy.observe(d, v.choice, reward);
      });
      for (const [d, v] of live) if (v.row.status !== 'ok') policy.observe(d, v.choice, 0);
      for (const r of roundRows) { r.loss = loss; r.round_s = tEnd - t0; rows.push(r); }
      roundTimes.push(tEnd - t0);
      lastEndS = tEnd;
      participantsPerRound.push(ok.length);
      if (Number.isNaN(timeToTarget) && loss <= R.targetLoss) { timeToTarget = tEnd; roundsToTarget = thisRound; }
      clock.at(tEnd + R.aggregationS, startRound);
    };
    const settle = (v: Live, status: RowStatus): void => {
      if (v.done) return;
      v.done = true;
      v.row.status = status;
      pending--;
      if (pending === 0) finishRound();
    };
    if (R.deadlineS !== null) {
      clock.at(t0 + R.deadlineS, () => {
        if (ended) return;
        for (const v of live.values()) if (!v.done) settle(v, 'late');
      });
    }
    for (const [d, v] of live) {
      const st = state[d];
      const { ratio: target, rank } = v.choice;
      if (target < st.ratioNow) st.ratioNow = target;
      // A device whose current model does not fit this rank prunes at once, on the space's grid, to the lowest ratio that fits.
      while (st.ratioNow < target && !costs[d].cost(st.ratioNow, rank).feasible) st.ratioNow = r9(Math.min(target, st.ratioNow + cfg.space.ratioStep));
      const downBytes = wire(st.ratioNow, rank) + R.configBytes;
      // Compute time of K local steps with pruning steps between recovery steps.
      let computeMs = 0;
      for (let k = 0; k < K; k++) {
        if (st.iter > 0 && st.iter % cfg.pruning.stepsBetween === 0 && st.ratioNow < target) {
          st.ratioNow = r9(Math.min(target, st.ratioNow + cfg.pruning.maxStep));
          computeMs += cfg.pruning.overheadMs;
        }
        computeMs += costs[d].cost(st.ratioNow, rank).stepMs;
        st.iter++;
      }
      if (costs[d].roundOverheadMs > 0) computeMs += costs[d].roundOverheadMs;
      const upBytes = wire(st.ratioNow, rank) + R.headerBytes;
      v.row.ratio_after = st.ratioNow;
      v.row.bytes_down = downBytes;
      v.row.bytes_up = upBytes;
      v.row.compute_s = computeMs / 1000;
      const offAt = avail.nextOffline(d, t0);
      if (Number.isFinite(offAt)) clock.at(Math.max(t0, offAt), () => { if (thisRound === round && !ended) settle(v, 'dropped'); });
      transport.send(d, 'down', downBytes, () => {
        const tDown = clock.nowS;
        v.row.download_s = tDown - t0;
        clock.at(tDown + computeMs / 1000, () => {
          const tUp0 = clock.nowS;
          transport.send(d, 'up', upBytes, () => {
            const tFin = clock.nowS;
            v.row.upload_s = tFin - tUp0;
            v.row.finish_s = tFin;
            v.timeS = tFin - t0;
            st.busyUntilS = tFin;
            if (thisRound === round && !ended && !v.done) settle(v, 'ok');
          });
        });
      });
      st.busyUntilS = Infinity; // until its upload is delivered
    }
  };

  clock.at(0, startRound);
  clock.run(R.horizonS);
  const okRows = rows.filter((r) => r.status === 'ok');
  const waits = okRows.map((r) => r.wait_s).sort((a, b) => a - b);
  const mean = (xs: readonly number[]) => (xs.length > 0 ? xs.reduce((s, x) => s + x, 0) / xs.length : NaN);
  const bytesTotal = transport.sentBytes('up') + transport.sentBytes('down');
  const summary: MethodSummary = {
    method,
    rounds: roundTimes.length,
    sim_time_s: lastEndS,
    time_to_target_s: timeToTarget,
    rounds_to_target: roundsToTarget,
    final_loss: loss,
    mean_round_s: mean(roundTimes),
    mean_wait_s: mean(waits),
    p90_wait_s: percentile(waits, 0.9),
    participants_mean: mean(participantsPerRound),
    dropped: rows.filter((r) => r.status === 'dropped').length,
    late: rows.filter((r) => r.status === 'late').length,
    total_bytes: bytesTotal,
    bytes_per_round: roundTimes.length > 0 ? bytesTotal / roundTimes.length : NaN,
    mean_ratio: mean(okRows.map((r) => r.ratio_after)),
    mean_rank: mean(okRows.map((r) => r.rank)),
    latency_source: [...new Set(costs.map((c) => c.latencySource))].sort().join('+'),
    events: clock.eventCount,
  };
  return { rows, summary };
}

export function simulateFedSpine(cfg: FedConfig): FedResult {
  const t = performance.now();
  const costs = buildCostModels(cfg);
  checkDevicesFit(cfg, costs);
  const rows: RoundRow[] = [];
  const summaries: MethodSummary[] = [];
  for (const m of cfg.methods) {
    const r = simulateMethod(cfg, m, costs);
    rows.push(...r.rows);
    summaries.push(r.summary);
  }
  return { rows, summaries, wallMs: performance.now() - t };
}

/**
 * One device of a live FedSpine run (`hatsim live fed-device`): loads the
 * trained model folder and its own non-IID shard, connects to the server over
 * WebSocket, says fedHello, and for every fedRound: trains the received LoRA
 * slice for the round's local steps (fed-train.ts) and sends the update back
 * as a fedUpdate through its own uplink shaper (shaper.ts: the simulator's
 * link model, the modelled bytes = the LoRA wire size + rounds.headerBytes).
 * A frame that fails its checks is dropped with a logged reason (the server
 * then records the device as dropped for that round); bye ends the process.
 */
import WebSocket from 'ws';
import { InputError } from '../core/errors.js';
import { RngStreams } from '../core/rng.js';
import { loraWireBytes, pruneStructure } from '../fedspine/cost.js';
import type { FedConfig } from '../fedspine/rounds.js';
import { loadModelFolder } from '../train/folder.js';
import type { LoraTarget } from '../train/lora.js';
import { FedTrainer, deviceCategories, shardTokens } from './fed-train.js';
import { decodeRound, encodeUpdate, loraMatrices, type FedLimits } from './fedwire.js';
import { LinkModel, ShapedSender } from './shaper.js';
import { Dtype, FrameType, WireError, decodeFrame, encodeFrame, jsonPayload, makeFrame, tokenHash, DEFAULT_MAX_FRAME_BYTES } from './wire.js';
import { liveOptions } from './fed-options.js';

export const epochNowMs = (): number => performance.timeOrigin + performance.now();

export interface FedDeviceOptions {
  cfg: FedConfig;
  device: number;
  /** HOST:PORT of the server. */
  server: string;
  token?: string;
  log?: (line: string) => void;
}

export async function runFedDevice(o: FedDeviceOptions): Promise<{ rounds: number; dropped: number }> {
  const { cfg, device } = o;
  const log = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  if (!Number.isInteger(device) || device < 0 || device >= cfg.devices.length) throw new InputError(`--device ${device}: the scenario has devices 0..${cfg.devices.length - 1}`, 'device');
  const live = liveOptions(cfg);
  const folder = loadModelFolder(live.modelDir);
  if (folder.model.id !== cfg.model.id) throw new InputError(`live.modelDir holds ${folder.model.id}, the scenario's model is ${cfg.model.id}`, 'live.modelDir');
  const category = deviceCategories(cfg.devices.length, live.categories)[device];
  const shard = shardTokens(folder.tokenizer, category, live.maxShardDocs);
  const targets = cfg.training.loraTargets as readonly LoraTarget[];
  const trainer = await FedTrainer.create(folder.model, folder.values, { targets, batch: cfg.training.batch, seq: cfg.training.seqLen, lr: live.lr, alphaOverRank: live.alphaOverRank });
  const mats = loraMatrices(folder.model, targets);
  const lim: FedLimits = { mats, rankMax: cfg.space.rankMax };
  const dtype = cfg.training.wireBytesPerElem === 2 ? Dtype.fp16 : Dtype.fp32;
  // Warm the kernels (one step at rankMin, not reported) so round 1 times the same code as the others.
  {
    const warm = new Map<string, Float32Array>();
    for (const m of mats) { warm.set(`${m.name}.lora_a`, new Float32Array(m.dIn * cfg.space.rankMin)); warm.set(`${m.name}.lora_b`, new Float32Array(cfg.space.rankMin * m.dOut)); }
    await trainer.trainRound(warm, cfg.space.rankMin, 1, shard, cfg.seed + 1000 + device, 0);
  }
  log(`device ${device} (${cfg.devices[device].name}): shard "${category}" ${shard.length} tokens, ready`);
  const link = cfg.devices[device].link;
  const streams = new RngStreams(cfg.seed);
  const up = new ShapedSender(new LinkModel({ mbps: link.uplinkMbps, latencyMs: link.latencyMs, jitterMs: link.jitterMs ?? 0 }, streams.get(`net/${device}/jitter/up`)));
  const ws = new WebSocket(`ws://${o.server}`, { maxPayload: DEFAULT_MAX_FRAME_BYTES });
  let rounds = 0, dropped = 0;
  let chain: Promise<void> = Promise.resolve();
  return await new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.send(encodeFrame(makeFrame(FrameType.fedHello, { deviceId: device, dtype: Dtype.utf8, payload: jsonPayload({ device, name: cfg.devices[device].name, tokenSha256: o.token ? tokenHash(o.token) : '' }) })));
    });
    ws.on('error', (e) => reject(new Error(`device ${device}: connection to ${o.server} failed: ${e.message}`)));
    ws.on('close', () => { up.close(); trainer.dispose(); resolve({ rounds, dropped }); });
    ws.on('message', (data: Buffer) => {
      const recvEpochMs = epochNowMs();
      // Rounds are handled one at a time, in order.
      chain = chain.then(async () => {
        let frame;
        try {
          frame = decodeFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
          if (frame.type === FrameType.bye) { ws.close(); return; }
          const { info, lora } = decodeRound(frame, lim);
          if (info.ratio !== 0) throw new WireError('bad-shape', `ratio ${info.ratio}: the live runner trains unpruned models only (space.ratioMax 0)`);
          const r = await trainer.trainRound(lora, info.rank, info.steps, shard, cfg.seed + device, info.firstStep);
          const handedEpochMs = epochNowMs();
          const f = encodeUpdate(device, { round: info.round, rank: info.rank, ratioAfter: 0, recvEpochMs, handedEpochMs, trainMs: r.totalMs, stepMs: r.stepMs, losses: r.losses }, r.lora, mats, dtype);
          const bytes = loraWireBytes(cfg.model, pruneStructure(cfg.model, 0), info.rank, cfg.training) + cfg.rounds.headerBytes;
          const buf = encodeFrame(f);
          up.send(bytes, () => ws.send(buf));
          rounds++;
          log(`device ${device}: round ${info.round} rank ${info.rank}: ${info.steps} steps in ${r.totalMs.toFixed(0)} ms, train loss ${r.losses[0].toFixed(3)} -> ${r.losses[r.losses.length - 1].toFixed(3)}`);
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
          dropped++;
          log(`device ${device}: dropped a frame (${e.code}): ${e.message}`);
        }
      }).catch((e: unknown) => reject(e instanceof Error ? e : new Error(String(e))));
    });
  });
}

/**
 * A live device process: device i of the scenario's workload (the same
 * requests as the simulator: buildTestbed(scenario).workload[i]), each system
 * of the scenario one after another, with real arrival times relative to a
 * shared start (a barrier at the cloud server per system). Writes its request
 * records (JSON lines) and per-step timings (CSV) for the orchestrator.
 */
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { RngStreams } from '../core/rng.js';
import { resolveLatency } from '../compute/resolve.js';
import { hiddenStateBytesPerToken } from '../model/catalog.js';
import type { ProtocolEnv } from '../protocol/context.js';
import type { ComputeOp } from '../protocol/ops.js';
import { SYSTEMS } from '../protocol/registry.js';
import type { RequestRecord } from '../results/types.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import { deviceLatency, simPredictor, type DeviceLatency } from '../sim/latency.js';
import { RequestState } from '../sim/request.js';
import { buildTestbed, deviceLink, topologyView, wholePlan, type Testbed } from '../sim/run.js';
import type { SimNetwork } from '../network/types.js';
import { sleepUntil, withTimeout } from './clock.js';
import { HybridCompute, smallModel } from './compute-client.js';
import type { PassRequest } from './compute.js';
import { DeviceConnection } from './device-conn.js';
import { Family, LiveProc, type LiveDeviceContext } from './driver.js';
import { LiveProcessor } from './processor.js';
import { LinkModel } from './shaper.js';
import { shapesAtServer } from './shared-net.js';
import { StepLog } from './steps.js';
import { frameTypeName } from './wire.js';
import { checkLiveModels } from './models.js';
import { DRAFTING_SYSTEMS, RealAcceptance } from './device-real.js';
import type { SpecMode } from '../train/speculative.js';

export interface DeviceRunOptions {
  scenario: Scenario;
  deviceIndex: number;
  /** host:port of the cloud server. */
  server: string;
  outDir: string;
  token?: string;
  /** Pad every compute pass to this hardware's predicted latency. */
  emulate?: string;
  maxFrameBytes?: number;
  /** Give up on a system this long after its last arrival (s). */
  systemTimeoutS?: number;
  /** Passes predicted under this (ms) run on the main thread for small models (default 2; 0 = always the worker). */
  inlineBelowMs?: number;
  /** ONNX parts to run instead of the seeded graphs (an export: hatsim export-model). */
  onnxDir?: string;
  /** Answer the drafting systems' accept ops by real speculative decoding (needs onnxDir of a trained export; device-real.ts). */
  realAcceptance?: { mode: SpecMode; temperature: number };
  log?: (line: string) => void;
}

export interface DeviceLine {
  kind: 'record' | 'unfinished' | 'info';
  system?: SystemId;
  record?: RequestRecord;
  request?: number;
  reason?: string;
  info?: Record<string, unknown>;
}

/** Which live parts a scenario's devices need. */
export function deviceNeeds(s: Scenario): { device: boolean; drafter: boolean } {
  return {
    device: s.systems.some((id) => SYSTEMS[id].deviceWork.some((w) => w !== 'drafter')),
    drafter: s.systems.includes('sd'),
  };
}

function fixedLinkNetwork(mbpsUp: number, mbpsDown: number, latencyMs: number): SimNetwork {
  return {
    send() { throw new Error('not used'); },
    stats: { sentBytes: { up: new Float64Array(1), down: new Float64Array(1) }, deliveredBytes: { up: new Float64Array(1), down: new Float64Array(1) }, messagesSent: 0, messagesDelivered: 0 },
    idleTransferMs: (_d, dir, bytes) => (bytes <= 0 ? latencyMs : (bytes * 8) / ((dir === 'up' ? mbpsUp : mbpsDown) * 1e6) * 1000 + latencyMs),
  };
}

export async function runDevice(opts: DeviceRunOptions): Promise<{ finished: number; unfinished: number }> {
  const s = opts.scenario;
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  checkLiveModels(s);
  const tb: Testbed = buildTestbed(s);
  const d = tb.devices[opts.deviceIndex];
  if (!d) throw new Error(`--device ${opts.deviceIndex}: the scenario has ${tb.devices.length} devices (0..${tb.devices.length - 1})`);
  const { link, batching } = deviceLink(tb, d);
  // Shared bottlenecks: the server shapes both directions of every device jointly (live/shared-net.ts).
  const serverShaped = shapesAtServer(tb);
  if (serverShaped) log(`device ${d.index}: the scenario has shared bottlenecks; the server shapes this device's uplink and downlink jointly with the others'`);
  if (link.trace) log(`device ${d.index}: bandwidth traces are not replayed live; shaping with the fixed rates ${link.uplinkMbps}/${link.downlinkMbps} Mbit/s`);
  mkdirSync(opts.outDir, { recursive: true });
  const recordsPath = join(opts.outDir, `device-${d.index}.jsonl`);
  writeFileSync(recordsPath, '');
  const emit = (line: DeviceLine): void => appendFileSync(recordsPath, JSON.stringify(line) + '\n');
  const steps = new StepLog(join(opts.outDir, `steps-device-${d.index}.csv`));

  const lat = tb.deviceLatency.get(d.hardware)!;
  const devLat: DeviceLatency = deviceLatency(lat.target, lat.drafter);
  let emuLat: DeviceLatency | null = null;
  if (opts.emulate) {
    const t = resolveLatency({ hardwareId: opts.emulate, model: tb.model, plan: tb.plan, calibrationDir: s.calibrationDir });
    const dr = resolveLatency({ hardwareId: opts.emulate, model: tb.drafterModel, plan: wholePlan(tb.drafterModel, tb.plan), calibrationDir: s.calibrationDir });
    emuLat = deviceLatency(t, dr);
  }
  const needs = deviceNeeds(s);
  const small = smallModel(tb.model.hiddenSize, tb.model.intermediateSize) && smallModel(tb.drafterModel.hiddenSize, tb.drafterModel.intermediateSize);
  const compute = needs.device || needs.drafter ? new HybridCompute({
    plan: { modelId: tb.model.id, inputLayers: tb.plan.inputLayers, outputLayers: tb.plan.outputLayers, middleLayers: tb.plan.middleLayers, drafterModelId: tb.drafterModel.id },
    need: { device: needs.device, drafter: needs.drafter, cloud: false }, onnxDir: opts.onnxDir,
  }, small ? (opts.inlineBelowMs ?? 2) : 0) : null;
  if (compute) await compute.init();
  const real = opts.realAcceptance ? await RealAcceptance.load(s, d.index, { onnxDir: opts.onnxDir ?? '', ...opts.realAcceptance }, opts.outDir) : null;

  let system: SystemId = s.systems[0];
  let t0 = performance.now();
  const conn = new DeviceConnection({
    url: `ws://${opts.server}`, deviceId: d.index, hiddenSize: tb.model.hiddenSize, token: opts.token ?? process.env.HATSIM_TOKEN,
    maxFrameBytes: opts.maxFrameBytes, log,
    onFrame: (dir, f, frameBytes, atMs, handedMs) => steps.row({
      system, role: `device-${d.index}`, request: f.requestId, kind: dir, label: frameTypeName(f.type), tokens: f.tokens, ctx: f.ctx,
      start_ms: handedMs - t0, end_ms: atMs - t0, real_ms: 0, target_ms: 0, sim_ms: 0, bytes: f.payload.byteLength, frame_bytes: frameBytes,
    }),
  });
  await conn.connect();
  const transit = await conn.measureTransit();
  log(`device ${d.index}: real one-way transit to the server ${transit.toFixed(3)} ms (compensated in shaping)`);
  const hb = hiddenStateBytesPerToken(tb.model);
  let finished = 0, unfinished = 0;

  const processor = new LiveProcessor();
  const runCompute = async (op: ComputeOp, req: RequestState): Promise<number> => {
    if (!compute) throw new Error(`device ${d.index}: no compute parts loaded for ${op.work}`);
    let total = 0;
    const work = async (): Promise<void> => {
      const passes: PassRequest[] = [];
      for (let i = 0; i < op.repeat; i++) passes.push({ work: op.work, tokens: op.tokens, ctx: op.ctx + i * op.tokens, logits: op.logits });
      // Without emulation the repeats (autoregressive drafting) go to the worker in one message, as a
      // real drafting loop would run; with emulation each pass is padded to its own target.
      const groups = emuLat ? passes.map((p) => [p]) : [passes];
      for (const group of groups) {
        const start = performance.now();
        const predictedMs = group.reduce((a, p) => a + devLat.passMs(op.work, p.tokens, p.ctx, p.logits), 0);
        const realMs = await compute.run(group, predictedMs);
        let target = 0;
        if (emuLat) {
          target = emuLat.passMs(op.work, group[0].tokens, group[0].ctx, group[0].logits);
          await sleepUntil(start + target);
        }
        const end = performance.now();
        total += end - start;
        steps.row({
          system, role: `device-${d.index}`, request: req.index, kind: op.background ? 'compute-bg' : 'compute', label: group.length > 1 ? `${op.label} x${group.length}` : op.label,
          tokens: group[0].tokens, ctx: group[0].ctx, start_ms: start - t0, end_ms: end - t0, real_ms: realMs.reduce((a, b) => a + b, 0), target_ms: target, sim_ms: predictedMs, bytes: 0, frame_bytes: 0,
        });
      }
    };
    await processor.submit(work, op.background);
    return total;
  };

  for (let k = 0; k < s.systems.length; k++) {
    system = s.systems[k];
    const def = SYSTEMS[system];
    await conn.ready();
    t0 = performance.now();
    const startInMs = await conn.hello(k, system);
    t0 = performance.now() + startInMs;
    const streams = new RngStreams(s.seed);
    if (serverShaped) conn.setServerShaped();
    else conn.setUplink(new LinkModel({ mbps: link.uplinkMbps, latencyMs: link.latencyMs, jitterMs: link.jitterMs }, link.jitterMs > 0 ? streams.get(`net/${d.index}/jitter/up`) : null));
    const cloudModel = tb.cloudLatency.submodel(def.cloudWork);
    const env: ProtocolEnv = {
      hiddenBytesPerToken: hb,
      tokenBytes: s.network.tokenBytes,
      policies: s.policies,
      topology: topologyView(tb, d, deviceLink(tb, d).server.index),
      predictor: simPredictor(devLat, cloudModel, def.cloudWork, batching.tokenBudget, fixedLinkNetwork(link.uplinkMbps, link.downlinkMbps, link.latencyMs), 0, s.network.headerBytes, link.latencyMs),
    };
    const protocol = def.createDevice(env);
    const ctx: LiveDeviceContext = {
      index: d.index, nowMs: () => performance.now() - t0, link: conn, acceptRng: streams.get(`accept/${d.index}`),
      headerBytes: s.network.headerBytes, hiddenBytesPerToken: hb, hiddenElemBytes: tb.model.activationBytesPerElem, tokenBytes: s.network.tokenBytes, compute: runCompute,
      ...(real && DRAFTING_SYSTEMS.includes(system) ? { real } : {}),
    };
    const closedLoop = s.workload.arrival.kind === 'closed-loop' ? s.workload.arrival.thinkTimeS : null;
    const work = tb.workload[d.index];
    const reqs = work.map((w) => new RequestState(w.index, system, d.index, d.name, w.index, w.arrivalS, w.promptTokens, w.outputTokens));
    const lastArrivalS = Math.max(0, ...reqs.map((r) => (Number.isNaN(r.arrivalS) ? 0 : r.arrivalS)));
    const deadlineMs = (lastArrivalS + (opts.systemTimeoutS ?? 300)) * 1000;
    await sleepUntil(t0);
    for (let i = 0; i < reqs.length; i++) {
      const req = reqs[i];
      if (Number.isNaN(req.arrivalS)) req.arrivalS = (performance.now() - t0) / 1000 + (closedLoop ?? 0);
      await sleepUntil(t0 + req.arrivalS * 1000);
      const remaining = deadlineMs - (performance.now() - t0);
      if (remaining <= 0) { unfinished++; emit({ kind: 'unfinished', system, request: req.index, reason: 'system deadline passed' }); continue; }
      try {
        await conn.ready(Math.min(remaining, 30_000));
        req.startS = (performance.now() - t0) / 1000;
        const fam = new Family();
        const root = new LiveProc(protocol({ index: req.index, promptTokens: req.promptTokens, outputTokens: req.outputTokens }), ctx, req, fam);
        await withTimeout(root.run().then(() => Promise.all(fam.runs)), remaining, `request ${req.index} of ${system}`);
        req.finishS = (performance.now() - t0) / 1000;
        emit({ kind: 'record', system, record: req.toRecord() });
        real?.finish(req);
        finished++;
      } catch (e) {
        const reason = e instanceof Error ? e.message : String(e);
        log(`device ${d.index}: ${system} request ${req.index} failed: ${reason}`);
        unfinished++;
        emit({ kind: 'unfinished', system, request: req.index, reason });
      } finally {
        conn.requestDone(req.id);
      }
      if (closedLoop !== null && i + 1 < reqs.length) reqs[i + 1].arrivalS = (performance.now() - t0) / 1000 + closedLoop;
    }
    conn.systemDone(k);
    emit({ kind: 'info', system, info: { reconnects: conn.reconnects, processorBusyMs: processor.busyMs } });
  }
  await conn.close();
  steps.close();
  if (compute) await compute.close();
  return { finished, unfinished };
}

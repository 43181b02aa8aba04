/**
 * Runs a scenario in the simulator: builds the testbed once (devices, their
 * latency models, the workload), then simulates each system separately on
 * the same testbed and the same requests, with fresh random streams from the
 * same seed (common random numbers: every system sees identical arrivals,
 * lengths and acceptance draws).
 */
import { Engine, Prio, type Handler } from '../core/engine.js';
import { InputError } from '../core/errors.js';
import { RngStreams } from '../core/rng.js';
import { resolveLatency, type ResolvedLatency } from '../compute/resolve.js';
import type { LatencyProvenance, LatencySource } from '../compute/types.js';
import { getModel, hiddenStateBytesPerToken, makeSplitPlan } from '../model/catalog.js';
import type { ModelSpec, SplitPlan } from '../model/types.js';
import { Network } from '../network/network.js';
import { makeRouter } from '../policy/router.js';
import type { ProtocolEnv, DeviceProtocol } from '../protocol/context.js';
import { SYSTEMS } from '../protocol/registry.js';
import { summarize } from '../results/summary.js';
import type { GpuUtilRecord, RequestRecord, SpanRecord, SummaryRecord } from '../results/types.js';
import type { DeviceGroup, Scenario, SystemId } from '../scenario/types.js';
import { generateRequests, type DeviceRequest } from '../workload/generate.js';
import { CloudCluster } from './cloud.js';
import { DeviceProcessor } from './device.js';
import { Proc, type DeviceContext } from './driver.js';
import { deviceLatency, simPredictor, type DeviceLatency } from './latency.js';
import { RequestState } from './request.js';

export interface RunOptions {
  /** Requests of device 0 whose spans are recorded for the timeline (first N). */
  timelineRequests?: number;
  /** Target number of bins of gpu_util.csv. */
  gpuUtilBins?: number;
}

export interface SystemRun {
  system: SystemId;
  requests: RequestRecord[];
  summary: SummaryRecord;
  spans: SpanRecord[];
  gpuUtil: GpuUtilRecord[];
  eventCount: number;
  simEndS: number;
  bytesSent: number;
  bytesDelivered: number;
  messagesSent: number;
  messagesDelivered: number;
}

export interface RunResult {
  scenario: Scenario;
  systems: SystemRun[];
  eventCount: number;
  wallMs: number;
  provenance: LatencyProvenance[];
  warnings: string[];
}

export interface DeviceInstance {
  index: number;
  name: string;
  group: DeviceGroup;
}

/** Everything shared by the systems of one run. */
export interface Testbed {
  scenario: Scenario;
  model: ModelSpec;
  plan: SplitPlan;
  drafterModel: ModelSpec;
  devices: DeviceInstance[];
  workload: DeviceRequest[][];
  /** Per hardware id: latency of the target model's parts; drafter model's. */
  deviceLatency: Map<string, { target: ResolvedLatency; drafter: ResolvedLatency }>;
  cloudLatency: ResolvedLatency;
  provenance: LatencyProvenance[];
  warnings: string[];
}

const SOURCE_RANK: Record<LatencySource, number> = { estimate: 0, imported: 1, measured: 2 };

export function expandDevices(s: Scenario): DeviceInstance[] {
  const out: DeviceInstance[] = [];
  for (const g of s.devices) for (let i = 0; i < g.count; i++) out.push({ index: out.length, name: `${g.name}-${i}`, group: g });
  return out;
}

export function buildTestbed(s: Scenario): Testbed {
  const model = getModel(s.model);
  const plan = makeSplitPlan(model, s.split.inputLayers, s.split.outputLayers, s.split.adapter);
  const drafterModel = getModel(s.policies.sd.drafterModel);
  const drafterPlan: SplitPlan = { inputLayers: 1, middleLayers: Math.max(1, drafterModel.numLayers - 2), outputLayers: 1, adapter: plan.adapter };
  const devices = expandDevices(s);
  if (devices.length === 0) throw new InputError('devices: the scenario has no devices; add a device group with count >= 1', 'devices');
  const warnings: string[] = [];
  const provenance: LatencyProvenance[] = [];
  const deviceLat = new Map<string, { target: ResolvedLatency; drafter: ResolvedLatency }>();
  for (const d of devices) {
    const hw = d.group.hardware;
    if (deviceLat.has(hw)) continue;
    const target = resolveLatency({ hardwareId: hw, model, plan, calibrationDir: s.calibrationDir });
    const drafter = resolveLatency({ hardwareId: hw, model: drafterModel, plan: drafterPlan, calibrationDir: s.calibrationDir });
    deviceLat.set(hw, { target, drafter });
    provenance.push(target.provenance);
    if (s.systems.includes('sd') && drafterModel.id !== model.id) provenance.push(drafter.provenance);
  }
  const cloudLatency = resolveLatency({ hardwareId: s.cloud.hardware, model, plan, calibrationDir: s.calibrationDir });
  provenance.push(cloudLatency.provenance);
  for (const p of provenance) for (const w of p.warnings) warnings.push(w);
  const workload = generateRequests(s.workload, devices.length, new RngStreams(s.seed), { baseDir: process.cwd() });
  return { scenario: s, model, plan, drafterModel, devices, workload, deviceLatency: deviceLat, cloudLatency, provenance, warnings };
}

function worstSourceOf(provs: LatencyProvenance[]): LatencySource {
  let worst: LatencySource = 'measured';
  for (const p of provs) for (const c of Object.values(p.components)) if (SOURCE_RANK[c.source] < SOURCE_RANK[worst]) worst = c.source;
  return worst;
}

/**
 * Arrivals known before the run starts (open loop; a closed loop's first
 * requests), merged over all devices and sorted by (time, device, request):
 * one pending engine event for the next of them instead of one per device,
 * which keeps the engine's heap small (it then holds only in-flight work).
 */
class ArrivalFeed implements Handler {
  private next = 0;
  constructor(private readonly engine: Engine, private readonly order: { atS: number; device: SimDevice }[]) {}

  static build(engine: Engine, devices: readonly SimDevice[]): ArrivalFeed {
    const order: { atS: number; device: SimDevice; d: number; i: number }[] = [];
    devices.forEach((dev, d) => dev.requests.forEach((r, i) => { if (!Number.isNaN(r.arrivalS)) order.push({ atS: r.arrivalS, device: dev, d, i }); }));
    order.sort((a, b) => a.atS - b.atS || a.d - b.d || a.i - b.i);
    return new ArrivalFeed(engine, order);
  }

  begin(): void { this.scheduleNext(); }

  private scheduleNext(): void {
    if (this.next < this.order.length) this.engine.schedule(this.order[this.next].atS, this, 0, Prio.arrival);
  }

  fire(): void {
    const dev = this.order[this.next++].device;
    this.scheduleNext();
    dev.arrive();
  }
}

/** One device during one system's simulation: its request queue and arrivals. */
class SimDevice implements Handler {
  private readonly waiting: RequestState[] = [];
  private current: RequestState | null = null;
  private nextArrival = 0;
  finished = 0;

  constructor(
    private readonly ctx: DeviceContext,
    readonly requests: RequestState[],
    private readonly protocol: DeviceProtocol,
    private readonly closedLoopThinkS: number | null,
  ) {}

  /** The next request arrives now (from the ArrivalFeed, or the device's own closed-loop event). */
  arrive(): void {
    this.waiting.push(this.requests[this.nextArrival++]);
    this.tryStart();
  }

  /** A closed-loop arrival this device scheduled itself. */
  fire(): void { this.arrive(); }

  private tryStart(): void {
    if (this.current !== null || this.waiting.length === 0) return;
    const req = this.waiting.shift()!;
    this.current = req;
    req.startS = this.ctx.engine.nowS;
    const proc = new Proc(this.protocol({ index: req.index, promptTokens: req.promptTokens, outputTokens: req.outputTokens }), this.ctx, req, (engine) => this.done(engine));
    proc.start();
  }

  private done(engine: Engine): void {
    const req = this.current!;
    req.finishS = engine.nowS;
    this.ctx.cloud.release(req);
    this.current = null;
    this.finished++;
    if (this.closedLoopThinkS !== null && this.nextArrival < this.requests.length) {
      const next = this.requests[this.nextArrival];
      if (Number.isNaN(next.arrivalS)) { // issued when the previous request finishes
        next.arrivalS = engine.nowS + this.closedLoopThinkS;
        engine.schedule(next.arrivalS, this, 0, Prio.arrival);
      }
    }
    this.tryStart();
  }
}

function gpuUtilRows(system: SystemId, cloud: CloudCluster, endS: number, bins: number): GpuUtilRecord[] {
  if (endS <= 0) return [];
  const raw = endS / bins;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const binS = [1, 2, 5, 10].map((m) => m * mag).find((b) => b >= raw) ?? 10 * mag;
  const nBins = Math.ceil(endS / binS);
  const rows: GpuUtilRecord[] = [];
  for (const rep of cloud.replicas) {
    const busy = new Float64Array(nBins);
    const iv = rep.busyIntervalsS;
    for (let i = 0; i < iv.length; i += 2) {
      let a = iv[i];
      const b = iv[i + 1];
      while (a < b) {
        const k = Math.min(nBins - 1, Math.floor(a / binS));
        const edge = Math.min(b, (k + 1) * binS);
        busy[k] += Math.max(0, edge - a);
        if (edge <= a) break;
        a = edge;
      }
    }
    for (let k = 0; k < nBins; k++) rows.push({ system, gpu: rep.index, time_s: k * binS, busy_fraction: Math.min(1, busy[k] / binS) });
  }
  return rows;
}

/** Simulate one system on the testbed. */
export function simulateSystem(tb: Testbed, system: SystemId, opts: RunOptions = {}): SystemRun {
  const s = tb.scenario;
  const def = SYSTEMS[system];
  const engine = new Engine(4096);
  const streams = new RngStreams(s.seed);
  const network = new Network(engine, tb.devices.map((d) => ({ link: d.group.link, via: d.group.via })), s.network.shared, (name) => streams.get(name));
  const cloudModel = tb.cloudLatency.submodel(def.cloudWork);
  const cloud = new CloudCluster(engine, s.cloud.gpus, cloudModel, s.cloud.tokenBudget, s.cloud.maxBatchSeqs, makeRouter(s.cloud.router));
  const hb = hiddenStateBytesPerToken(tb.model);
  const timelineN = opts.timelineRequests ?? 3;
  const closedLoop = s.workload.arrival.kind === 'closed-loop' ? s.workload.arrival.thinkTimeS : null;
  const simDevices: SimDevice[] = [];
  let nextRequestId = 0;
  const latencyByHw = new Map<string, DeviceLatency>();
  for (const d of tb.devices) {
    let lat = latencyByHw.get(d.group.hardware);
    if (!lat) {
      const l = tb.deviceLatency.get(d.group.hardware)!;
      lat = deviceLatency(l.target, l.drafter);
      latencyByHw.set(d.group.hardware, lat);
    }
    const devLat = lat;
    const ctx: DeviceContext = {
      engine, index: d.index, processor: new DeviceProcessor(engine), network, cloud,
      acceptRng: streams.get(`accept/${d.index}`),
      headerBytes: s.network.headerBytes,
      computeMs: (op) => devLat.computeMs(op),
    };
    const env: ProtocolEnv = {
      hiddenBytesPerToken: hb,
      tokenBytes: s.network.tokenBytes,
      policies: s.policies,
      predictor: simPredictor(devLat, cloudModel, def.cloudWork, s.cloud.tokenBudget, network, d.index, s.network.headerBytes, d.group.link.latencyMs),
    };
    const reqs = tb.workload[d.index].map((w) => {
      const r = new RequestState(nextRequestId++, system, d.index, d.name, w.index, w.arrivalS, w.promptTokens, w.outputTokens);
      if (d.index === 0 && w.index < timelineN) r.spans = [];
      return r;
    });
    const sd = new SimDevice(ctx, reqs, def.createDevice(env), closedLoop);
    simDevices.push(sd);
  }
  ArrivalFeed.build(engine, simDevices).begin();
  engine.run(s.horizonS);

  const records: RequestRecord[] = [];
  const spans: SpanRecord[] = [];
  let unfinished = 0, firstArrival = Infinity, lastToken = 0;
  for (const d of simDevices) {
    for (const r of d.requests) {
      if (!r.finished) { unfinished++; continue; }
      records.push(r.toRecord());
      if (r.arrivalS < firstArrival) firstArrival = r.arrivalS;
      if (r.lastTokenS > lastToken) lastToken = r.lastTokenS;
      if (r.spans) spans.push(...r.spans);
    }
  }
  let gpuBusyMs = 0, endS = lastToken;
  for (const rep of cloud.replicas) {
    gpuBusyMs += rep.busyMs;
    const iv = rep.busyIntervalsS;
    if (iv.length > 0) endS = Math.max(endS, iv[iv.length - 1]);
  }
  const spanS = records.length > 0 ? lastToken - firstArrival : 0;
  const summary = summarize(records, {
    system, unfinished, spanS, gpuBusyMs, gpus: s.cloud.gpus,
    latencySource: worstSourceOf(tb.provenance),
  });
  const st = network.stats;
  const sum = (a: Float64Array): number => a.reduce((x, y) => x + y, 0);
  return {
    system, requests: records, summary, spans,
    gpuUtil: gpuUtilRows(system, cloud, endS, opts.gpuUtilBins ?? 100),
    eventCount: engine.eventCount, simEndS: endS,
    bytesSent: sum(st.sentBytes.up) + sum(st.sentBytes.down),
    bytesDelivered: sum(st.deliveredBytes.up) + sum(st.deliveredBytes.down),
    messagesSent: st.messagesSent, messagesDelivered: st.messagesDelivered,
  };
}

/** Run every system of the scenario. */
export function runScenario(s: Scenario, opts: RunOptions = {}): RunResult {
  const t0 = performance.now();
  const tb = buildTestbed(s);
  const systems = s.systems.map((sys) => simulateSystem(tb, sys, opts));
  return {
    scenario: s, systems,
    eventCount: systems.reduce((a, r) => a + r.eventCount, 0),
    wallMs: performance.now() - t0,
    provenance: tb.provenance,
    warnings: tb.warnings,
  };
}

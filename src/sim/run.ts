/**
 * Runs a scenario in the simulator: builds the testbed once (devices, their
 * latency models, the workload), then simulates each system separately on
 * the same testbed and the same requests, with fresh random streams from the
 * same seed (common random numbers: every system sees identical arrivals,
 * lengths and acceptance draws).
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Engine, Prio, type Handler } from '../core/engine.js';
import { InputError } from '../core/errors.js';
import { RngStreams } from '../core/rng.js';
import { resolveLatency, type ResolvedLatency } from '../compute/resolve.js';
import type { LatencyProvenance, LatencySource } from '../compute/types.js';
import { hiddenStateBytesPerToken, makeSplitPlan } from '../model/catalog.js';
import { devicePartsModel, lookupModel } from '../model/declared.js';
import { singleShape } from '../compute/types.js';
import type { ModelSpec, SplitPlan } from '../model/types.js';
import { Network, type NetLinkSpec } from '../network/network.js';
import type { ProtocolEnv, DeviceProtocol, SystemDef, SystemTopology, TopologyView } from '../protocol/context.js';
import { SYSTEMS, wholeModelIds } from '../protocol/registry.js';
import { summarize } from '../results/summary.js';
import { MemoryRequests, SpilledRequests, type RequestPart, type RequestStore } from '../results/request-store.js';
import type { GpuUtilRecord, HopRecord, LinkRecord, NodeRecord, RequestRecord, SpanRecord, SummaryRecord, TaskRecord, TaskSummaryRecord } from '../results/types.js';
import { taskSummary } from '../results/tasks.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import { compileNetwork, type PathPair } from '../topology/paths.js';
import { Routes } from '../topology/routes.js';
import { isAToB, linkOf, type ProcessorSpec, type TopoNode, type TopologySpec } from '../topology/types.js';
import { generateRequests, type DeviceRequest } from '../workload/generate.js';
import type { CloudCluster } from './cloud.js';
import { Proc, type DeviceContext } from './driver.js';
import { SimNode, SimWorld } from './world.js';
import { HostCpu } from './host.js';
import { checkFits, deviceServerBytes, partWeightBytes, type MemoryNeed } from './memory.js';
import { deviceLatency, simPredictor, type DeviceLatency } from './latency.js';
import { RequestState } from './request.js';
import { dtoeeOutputs, prepareDtoeeRun, startDtoeeControl } from './dtoee-control.js';
import { scheduleArrivals, speedSchedules } from './environment.js';
import type { DtoeeNodeRecord, DtoeeRoundRecord, DtoeeTokenRecord } from '../results/types.js';

export interface RunOptions {
  /**
   * Stream each finished request's record to disk in this directory (the results directory)
   * instead of keeping it in memory (results/request-store.ts): the SystemRun then has no
   * `requests` but a `requestPart` file that writeRunOutputs turns into requests.csv.
   */
  spillDir?: string;
  /** Rows per read-back window of the spill (results/request-store.ts WINDOW_ROWS; tests make it small). */
  spillWindowRows?: number;
  /** Requests of device 0 whose spans are recorded for the timeline (first N). */
  timelineRequests?: number;
  /** Target number of bins of gpu_util.csv. */
  gpuUtilBins?: number;
}

export interface SystemRun {
  system: SystemId;
  /** Finished requests in row order (empty with RunOptions.spillDir: see requestPart). */
  requests: RequestRecord[];
  /** With RunOptions.spillDir: the file holding this system's requests.csv rows. */
  requestPart?: RequestPart;
  summary: SummaryRecord;
  spans: SpanRecord[];
  gpuUtil: GpuUtilRecord[];
  nodes: NodeRecord[];
  links: LinkRecord[];
  hops: HopRecord[];
  /** Systems that mark exits (dtoee, staged): one row per task, and a summary; else empty / null. */
  tasks: TaskRecord[];
  taskSummary: TaskSummaryRecord | null;
  eventCount: number;
  simEndS: number;
  bytesSent: number;
  bytesDelivered: number;
  messagesSent: number;
  messagesDelivered: number;
  /** dtoee online or monitor (policies.dtoee): per-node rows over time, and the online rounds. */
  dtoeeNodes?: DtoeeNodeRecord[];
  dtoeeRounds?: DtoeeRoundRecord[];
  /** dtoee per-token tasks (policies.dtoee.task: per-token): one row per generated token. */
  dtoeeTokens?: DtoeeTokenRecord[];
}

export interface RunResult {
  scenario: Scenario;
  systems: SystemRun[];
  eventCount: number;
  wallMs: number;
  provenance: LatencyProvenance[];
  warnings: string[];
}

/** A device node: it issues `workload[index]`. */
export interface DeviceInstance {
  /** Position among the device nodes (workload and random-stream index). */
  index: number;
  name: string;
  node: TopoNode;
  hardware: string;
}

/** Everything shared by the systems of one run. */
export interface Testbed {
  scenario: Scenario;
  model: ModelSpec;
  plan: SplitPlan;
  drafterModel: ModelSpec;
  /** The model the HAT family's device layers come from (split.deviceModel; else `model`). */
  deviceModel: ModelSpec;
  topology: TopologySpec;
  routes: Routes;
  devices: DeviceInstance[];
  workload: DeviceRequest[][];
  /**
   * Per hardware id of a device node: latency of the device layers (from deviceModel), of sd's
   * drafter, and of the whole-model slot per model id (device-only's model), resolved on demand.
   */
  deviceLatency: Map<string, { target: ResolvedLatency; drafter: ResolvedLatency; whole: Map<string, ResolvedLatency> }>;
  /** Per hardware id of any node that computes: the target model's latency. */
  nodeLatency: Map<string, ResolvedLatency>;
  /** The first server node's latency (the legacy form's cloud). */
  cloudLatency: ResolvedLatency;
  provenance: LatencyProvenance[];
  warnings: string[];
}

const SOURCE_RANK: Record<LatencySource, number> = { estimate: 0, imported: 1, measured: 2 };

/** The device nodes of a scenario, in order (legacy form: `<group>-<i>`, group by group). */
export function expandDevices(s: Scenario): DeviceInstance[] {
  const out: DeviceInstance[] = [];
  for (const n of s.topology.nodes) {
    if (n.kind !== 'device') continue;
    if (n.hardware === null) throw new InputError(`nodes: device node '${n.name}' needs a hardware id (it runs its part of the model)`, 'nodes');
    out.push({ index: out.length, name: n.name, node: n, hardware: n.hardware });
  }
  return out;
}

export function buildTestbed(s: Scenario): Testbed {
  const model = lookupModel(s.model, s.models, 'model');
  const plan = makeSplitPlan(model, s.split.inputLayers, s.split.outputLayers, s.split.adapter);
  const drafterModel = lookupModel(s.policies.sd.drafterModel, s.models, 'policies.sd.drafterModel');
  const deviceModel = s.split.deviceModel === undefined ? model : devicePartsModel(model, s.split.deviceModel, s.models, plan.inputLayers, plan.outputLayers);
  const devices = expandDevices(s);
  if (devices.length === 0) throw new InputError('devices: the scenario has no devices; add a device group with count >= 1 (or a node of kind device)', 'devices');
  const routes = new Routes(s.topology);
  const warnings: string[] = [];
  const provenance: LatencyProvenance[] = [];
  const deviceLat = new Map<string, { target: ResolvedLatency; drafter: ResolvedLatency; whole: Map<string, ResolvedLatency> }>();
  const nodeLat = new Map<string, ResolvedLatency>();
  // Whole models on the device other than sd's drafter (device-only's), by id.
  const wholeIds = wholeModelIds(s);
  for (const d of devices) {
    const hw = d.hardware;
    if (deviceLat.has(hw)) continue;
    const served = resolveLatency({ hardwareId: hw, model, plan, calibrationDir: s.calibrationDir });
    const target = deviceModel === model ? served : resolveLatency({ hardwareId: hw, model: deviceModel, plan, calibrationDir: s.calibrationDir });
    const drafter = resolveLatency({ hardwareId: hw, model: drafterModel, plan: wholePlan(drafterModel, plan), calibrationDir: s.calibrationDir });
    const whole = new Map<string, ResolvedLatency>();
    deviceLat.set(hw, { target, drafter, whole });
    nodeLat.set(hw, served);
    provenance.push(target.provenance);
    if (s.systems.includes('sd') && drafterModel.id !== model.id) provenance.push(drafter.provenance);
    // Whole models of other systems (device-only's), reported once per (hardware, model).
    const reported = new Set([model.id, deviceModel.id, ...(s.systems.includes('sd') ? [drafterModel.id] : [])]);
    for (const id of wholeIds) {
      const wm = id === drafterModel.id ? drafterModel : lookupModel(id, s.models, 'policies.deviceOnly.model');
      const lat = id === drafterModel.id ? drafter : resolveLatency({ hardwareId: hw, model: wm, plan: wholePlan(wm, plan), calibrationDir: s.calibrationDir });
      whole.set(id, lat);
      if (!reported.has(id)) { provenance.push(lat.provenance); reported.add(id); }
    }
  }
  // Nodes other than devices (servers, edge nodes): one latency model per hardware id.
  const seen = new Map<string, ResolvedLatency>();
  let cloudLatency: ResolvedLatency | null = null;
  for (const n of s.topology.nodes) {
    if (n.kind === 'device' || n.hardware === null) continue;
    let lat = seen.get(n.hardware);
    if (!lat) {
      lat = resolveLatency({ hardwareId: n.hardware, model, plan, calibrationDir: s.calibrationDir });
      seen.set(n.hardware, lat);
      if (!nodeLat.has(n.hardware)) nodeLat.set(n.hardware, lat);
      provenance.push(lat.provenance);
    }
    if (cloudLatency === null && n.processor.kind === 'batching') cloudLatency = lat;
  }
  if (cloudLatency === null) cloudLatency = seen.values().next().value ?? deviceLat.values().next().value?.target ?? null;
  if (cloudLatency === null) throw new InputError('nodes: no node computes anything (no hardware ids)', 'nodes');
  for (const p of provenance) for (const w of p.warnings) warnings.push(w);
  const workload = scheduleArrivals(s, generateRequests(s.workload, devices.length, new RngStreams(s.seed), { baseDir: process.cwd() }), devices.map((d) => d.node.index));
  return { scenario: s, model, plan, drafterModel, deviceModel, topology: s.topology, routes, devices, workload, deviceLatency: deviceLat, nodeLatency: nodeLat, cloudLatency, provenance, warnings };
}

/** The split plan a whole model on the device is resolved with (only its whole-model submodel is used). */
export function wholePlan(m: ModelSpec, plan: SplitPlan): SplitPlan {
  return { inputLayers: 1, middleLayers: Math.max(1, m.numLayers - 2), outputLayers: 1, adapter: plan.adapter };
}

/** The model in the device's whole-model slot for system `def` (sd's drafter unless the system names its own). */
export function wholeModelOf(tb: Testbed, def: SystemDef): ModelSpec {
  const id = def.wholeModel?.(tb.scenario) ?? tb.scenario.policies.sd.drafterModel;
  return id === tb.drafterModel.id ? tb.drafterModel : lookupModel(id, tb.scenario.models, 'policies.deviceOnly.model');
}

/** The latency of the device's whole-model slot for `def` on hardware `hw`. */
export function wholeLatencyOf(tb: Testbed, def: SystemDef, hw: string): ResolvedLatency {
  const l = tb.deviceLatency.get(hw)!;
  const m = wholeModelOf(tb, def);
  if (m.id === tb.drafterModel.id) return l.drafter;
  let lat = l.whole.get(m.id);
  if (!lat) { lat = resolveLatency({ hardwareId: hw, model: m, plan: wholePlan(m, tb.plan), calibrationDir: tb.scenario.calibrationDir }); l.whole.set(m.id, lat); }
  return lat;
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
 * Kept as typed arrays (a permutation of the arrivals), not one object per request.
 */
class ArrivalFeed implements Handler {
  private next = 0;
  constructor(private readonly engine: Engine, private readonly devices: readonly SimDevice[], private readonly atS: Float64Array, private readonly device: Int32Array) {}

  static build(engine: Engine, devices: readonly SimDevice[]): ArrivalFeed {
    let n = 0;
    for (const dev of devices) for (const w of dev.workload) if (!Number.isNaN(w.arrivalS)) n++;
    const t = new Float64Array(n), dv = new Int32Array(n), ix = new Int32Array(n);
    let k = 0;
    devices.forEach((dev, d) => dev.workload.forEach((w, i) => { if (!Number.isNaN(w.arrivalS)) { t[k] = w.arrivalS; dv[k] = d; ix[k] = i; k++; } }));
    // (time, device, request); entries are already in (device, request) order, so a stable sort on time would do, but keep the key explicit.
    const order = new Int32Array(n).map((_, j) => j).sort((a, b) => t[a] - t[b] || dv[a] - dv[b] || ix[a] - ix[b]);
    const atS = new Float64Array(n), device = new Int32Array(n);
    for (let j = 0; j < n; j++) { atS[j] = t[order[j]]; device[j] = dv[order[j]]; }
    return new ArrivalFeed(engine, devices, atS, device);
  }

  begin(): void { this.scheduleNext(); }

  private scheduleNext(): void {
    if (this.next < this.atS.length) this.engine.schedule(this.atS[this.next], this, 0, Prio.arrival);
  }

  fire(): void {
    const dev = this.devices[this.device[this.next++]];
    this.scheduleNext();
    dev.arrive();
  }
}

/**
 * One device during one system's simulation: its request queue and arrivals. At most
 * `concurrency` requests run at once (1: a phone's user, one request at a time; the
 * default); the rest wait on the device, in arrival order. A request's state exists
 * from its arrival until it finishes (then `onFinished` takes its record): memory
 * follows the requests in flight, not the length of the run.
 */
class SimDevice implements Handler {
  private readonly waiting: RequestState[] = [];
  private running = 0;
  private nextArrival = 0;
  /** Closed loop: the workload index whose arrival this device has scheduled (-1: none), and its time. */
  private scheduledIndex = -1;
  private scheduledAtS = NaN;
  finished = 0;

  constructor(
    private readonly ctx: DeviceContext,
    private readonly system: SystemId,
    private readonly device: DeviceInstance,
    readonly workload: readonly DeviceRequest[],
    /** Id of this device's first request (ids run device by device: the row order of requests.csv). */
    private readonly firstId: number,
    private readonly timelineN: number,
    private readonly withHops: boolean,
    private readonly protocol: DeviceProtocol,
    private readonly closedLoopThinkS: number | null,
    private readonly concurrency: number,
    private readonly onFinished: (req: RequestState) => void,
  ) {}

  /** The next request arrives now (from the ArrivalFeed, or the device's own closed-loop event). */
  arrive(): void {
    const i = this.nextArrival++;
    const w = this.workload[i], d = this.device;
    const arrivalS = Number.isNaN(w.arrivalS) && this.scheduledIndex === i ? this.scheduledAtS : w.arrivalS;
    const r = new RequestState(this.firstId + i, this.system, d.index, d.name, w.index, arrivalS, w.promptTokens, w.outputTokens);
    if (d.index === 0 && w.index < this.timelineN) r.spans = [];
    if (this.withHops) r.hops = [];
    this.waiting.push(r);
    this.tryStart();
  }

  /** A closed-loop arrival this device scheduled itself. */
  fire(): void { this.arrive(); }

  private tryStart(): void {
    while (this.running < this.concurrency && this.waiting.length > 0) {
      const req = this.waiting.shift()!;
      this.running++;
      req.startS = this.ctx.engine.nowS;
      const proc = new Proc(this.protocol({ index: req.index, promptTokens: req.promptTokens, outputTokens: req.outputTokens }), this.ctx, req, (engine) => this.done(engine, req));
      proc.start();
    }
  }

  private done(engine: Engine, req: RequestState): void {
    req.finishS = engine.nowS;
    if (this.ctx.cloud !== null) this.ctx.cloud.release(req);
    if (req.execReplicas !== null) for (const c of req.execReplicas.keys()) (c as CloudCluster).releaseExec(req);
    this.running--;
    this.finished++;
    this.onFinished(req);
    const i = this.nextArrival;
    if (this.closedLoopThinkS !== null && i < this.workload.length) {
      // Issued when the previous request finishes (once: a later finish finds it scheduled).
      if (Number.isNaN(this.workload[i].arrivalS) && this.scheduledIndex !== i) {
        this.scheduledIndex = i;
        this.scheduledAtS = engine.nowS + this.closedLoopThinkS;
        engine.schedule(this.scheduledAtS, this, 0, Prio.arrival);
      }
    }
    this.tryStart();
  }
}

function gpuUtilRows(system: SystemId, clusters: readonly CloudCluster[], endS: number, bins: number): GpuUtilRecord[] {
  if (endS <= 0) return [];
  const raw = endS / bins;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const binS = [1, 2, 5, 10].map((m) => m * mag).find((b) => b >= raw) ?? 10 * mag;
  const nBins = Math.ceil(endS / binS);
  const rows: GpuUtilRecord[] = [];
  let gpu = 0;
  for (const cloud of clusters) {
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
      for (let k = 0; k < nBins; k++) rows.push({ system, gpu, time_s: k * binS, busy_fraction: Math.min(1, busy[k] / binS) });
      gpu++;
    }
  }
  return rows;
}

/** What each device of a HAT-family system must hold (sim/memory.ts): weights, KV cache of its longest request, reserve. */
export interface DeviceMemory {
  device: DeviceInstance;
  need: MemoryNeed;
  /** What the device holds, for messages ("hat's device parts (input, adapter, output)"). */
  what: string;
  /** The model those parts come from. */
  model: ModelSpec;
}

export function deviceMemory(tb: Testbed, def: SystemDef): DeviceMemory[] {
  return def.pairs !== undefined ? [] : deviceNeeds(tb, def, placedBytes(tb, def));
}

/** The HAT family's bytes on a device and per server GPU, and the whole-model slot's model. */
function placedBytes(tb: Testbed, def: SystemDef): { whole: ModelSpec; bytes: ReturnType<typeof deviceServerBytes> } {
  const whole = wholeModelOf(tb, def);
  return { whole, bytes: deviceServerBytes(def, { device: tb.deviceModel, server: tb.model, whole }, tb.plan) };
}

const longestByTestbed = new WeakMap<Testbed, Int32Array>();

/** Per device: prompt + output tokens of its longest request (computed once per testbed). */
function longestRequestTokens(tb: Testbed): Int32Array {
  let a = longestByTestbed.get(tb);
  if (!a) {
    a = new Int32Array(tb.devices.length);
    for (const d of tb.devices) for (const r of tb.workload[d.index]) a[d.index] = Math.max(a[d.index], r.promptTokens + r.outputTokens);
    longestByTestbed.set(tb, a);
  }
  return a;
}

function deviceNeeds(tb: Testbed, def: SystemDef, placed: ReturnType<typeof placedBytes>): DeviceMemory[] {
  if (def.deviceWork.length === 0) return [];
  const { whole, bytes: b } = placed;
  const model = def.deviceWork.includes('drafter') ? whole : tb.deviceModel;
  const slot = def.wholeModel ? 'whole model' : 'drafter';
  const what = def.deviceWork.length === 1 && def.deviceWork[0] === 'drafter' ? `${def.id}'s ${slot}` : `${def.id}'s device parts (${def.deviceWork.map((w) => (w === 'drafter' ? slot : w)).join(', ')})`;
  const mem = tb.scenario.memory;
  const reserveBytes = mem.reserveGB * 1e9;
  const longest = mem.kvCache === 'max-context' ? longestRequestTokens(tb) : null;
  return tb.devices.map((d) => {
    const kvTokens = longest === null ? 0 : longest[d.index];
    return { device: d, need: { weightBytes: b.device, kvBytes: kvTokens * b.deviceKvBytesPerToken, kvTokens, reserveBytes }, what, model };
  });
}

/** Every node holds the model parts the system places on it (sim/memory.ts), or an InputError names it. */
export function checkPlacement(tb: Testbed, def: SystemDef, servers: readonly TopoNode[]): void {
  if (def.pairs === undefined) {
    const placed = placedBytes(tb, def);
    for (const m of deviceNeeds(tb, def, placed)) checkFits(m.device.node, m.need, m.what, m.model);
    if (!def.serverless) for (const srv of new Set(servers)) checkFits(srv, placed.bytes.server, `one replica of ${def.id}'s ${def.cloudWork} model (per GPU)`, tb.model);
    return;
  }
  for (const p of def.placement?.(systemTopology(tb)) ?? []) {
    const bytes = partWeightBytes(tb.model, tb.plan.adapter.kind, p.part);
    for (const i of p.nodes) checkFits(tb.topology.nodes[i], bytes, p.what, tb.model);
  }
}

/** What device `d`'s protocol sees of the topology (simulator and live runner alike). */
export function topologyView(tb: Testbed, d: DeviceInstance, server: number): TopologyView {
  const topo = tb.topology;
  const nameIndex = nameIndexOf(tb);
  const header = tb.scenario.network.headerBytes;
  return {
    // Workload statistics for policies that model rates; computed on first use (most systems never ask).
    get arrivalRatePerS(): number {
      const arr = tb.scenario.workload.arrival;
      if (arr.kind === 'poisson' || arr.kind === 'gamma') return arr.ratePerS;
      let lo = Infinity, hi = -Infinity, n = 0;
      for (const w of tb.workload[d.index]) if (!Number.isNaN(w.arrivalS)) { n++; lo = Math.min(lo, w.arrivalS); hi = Math.max(hi, w.arrivalS); }
      return n > 1 ? (n - 1) / (hi - lo || 1) : 0;
    },
    get meanPromptTokens(): number { return workloadMean(tb).prompt; },
    get meanOutputTokens(): number { return workloadMean(tb).output; },
    partMs: (node, part, tokens, ctx, logits) => {
      const hw = topo.nodes[node].hardware;
      const lat = hw === null ? undefined : tb.nodeLatency.get(hw);
      if (!lat) throw new Error(`node ${topo.nodes[node].name} has no latency model (no hardware)`);
      return lat.part(part.key, part).batchMs(singleShape(tokens, ctx), logits);
    },
    pathMs: (from, to, payloadBytes) => {
      if (from === to) return 0;
      const route = tb.routes.route(from, to);
      let capBps = Infinity, latencyMs = 0;
      for (const ld of route) {
        const l = topo.links[linkOf(ld)];
        capBps = Math.min(capBps, (isAToB(ld) ? l.aToBMbps : l.bToAMbps) * 1e6);
        latencyMs += l.latencyMs;
      }
      return ((payloadBytes + header) * 8) / capBps * 1000 + latencyMs;
    },
    nodes: topo.nodes, device: d.node.index, server, modelLayers: tb.model.numLayers,
    index: (name) => {
      const i = nameIndex.get(name);
      if (i === undefined) throw new Error(`protocol asked for node '${name}', which is not in the topology (bug)`);
      return i;
    },
    routeLatencyMs: (from, to) => tb.routes.route(from, to).reduce((a, ld) => a + topo.links[linkOf(ld)].latencyMs, 0),
  };
}
const nameIndexes = new WeakMap<Testbed, Map<string, number>>();

/** Node index by name, built once per testbed. */
function nameIndexOf(tb: Testbed): Map<string, number> {
  let m = nameIndexes.get(tb);
  if (!m) { m = new Map(tb.topology.nodes.map((n) => [n.name, n.index])); nameIndexes.set(tb, m); }
  return m;
}
const workloadMeans = new WeakMap<Testbed, { prompt: number; output: number }>();

/** Mean prompt and output tokens of the workload (policies that model rates; dtoee's per-token model). */
function workloadMean(tb: Testbed): { prompt: number; output: number } {
  let m = workloadMeans.get(tb);
  if (m === undefined) {
    let p = 0, o = 0, n = 0;
    for (const reqs of tb.workload) for (const w of reqs) { p += w.promptTokens; o += w.outputTokens; n++; }
    m = n > 0 ? { prompt: p / n, output: o / n } : { prompt: 0, output: 0 };
    workloadMeans.set(tb, m);
  }
  return m;
}

/** The topology as a system sees it before running. */
export function systemTopology(tb: Testbed): SystemTopology {
  return { nodes: tb.topology.nodes, devices: tb.devices.map((d) => d.node.index), policies: tb.scenario.policies, modelLayers: tb.model.numLayers };
}

/** A device's server node (the HAT family's cloud), checked: it must exist and batch. */
export function serverOf(tb: Testbed, d: DeviceInstance, system: SystemId): TopoNode {
  const name = d.node.server;
  const nodes = tb.topology.nodes;
  const i = name === null ? undefined : nameIndexOf(tb).get(name);
  const srv = i === undefined ? undefined : nodes[i];
  if (srv === undefined) {
    throw new InputError(`nodes: device '${d.name}' has no server; system ${system} sends its requests to a server node: set the device's server to a node with a batching processor`, 'nodes');
  }
  if (srv.processor.kind !== 'batching') {
    throw new InputError(`nodes: device '${d.name}' is served by '${srv.name}', whose processor is ${srv.processor.kind}; system ${system} needs a batching server (processor: { kind: batching, gpus: N })`, 'nodes');
  }
  if (d.node.processor.kind !== 'single') {
    throw new InputError(`nodes: device '${d.name}' has a ${d.node.processor.kind} processor; system ${system} runs its device parts on a single processor (kind: single)`, 'nodes');
  }
  return srv;
}

const deviceLinks = new WeakMap<Testbed, ReturnType<typeof compileNetwork>>();

/**
 * A device's path to its server as the network sees it (rates, latency, jitter: the
 * first-hop view the live runner shapes with), and the server's batching settings.
 */
export function deviceLink(tb: Testbed, d: DeviceInstance): { link: NetLinkSpec; server: TopoNode; batching: Extract<ProcessorSpec, { kind: 'batching' }>; path: number; shared: boolean } {
  const srv = serverOf(tb, d, 'hat');
  const c = deviceNetwork(tb);
  const p = c.lookup(d.node.index, srv.index)!;
  const dev = c.devices[p.path];
  const shared = dev.via.length > 0 || (dev.viaDirected !== undefined && (dev.viaDirected.up.length > 0 || dev.viaDirected.down.length > 0));
  return { link: dev.link, server: srv, batching: srv.processor as Extract<ProcessorSpec, { kind: 'batching' }>, path: p.path, shared };
}

/**
 * Every device's path to its server, compiled as the simulator's device-server systems compile
 * them but without host costs (the live runner pays those for real): what the live cloud server
 * shapes shared bottlenecks over (live/shared-net.ts). Path index = deviceLink(...).path.
 */
export function deviceNetwork(tb: Testbed): ReturnType<typeof compileNetwork> {
  let c = deviceLinks.get(tb);
  if (!c) {
    c = compileNetwork(tb.topology, tb.routes, tb.devices.map((x) => ({ from: x.node.index, to: serverOf(tb, x, 'hat').index, streamName: String(x.index) })));
    deviceLinks.set(tb, c);
  }
  return c;
}

/** A hidden per-system file of the streamed requests in `dir` (removed once requests.csv is written). */
function spillName(dir: string, system: SystemId, what: 'spill' | 'part'): string {
  mkdirSync(dir, { recursive: true });
  return join(dir, `.requests.${system}.${process.pid}.${what}`);
}

/** Simulate one system on the testbed. */
export function simulateSystem(tb: Testbed, system: SystemId, opts: RunOptions = {}): SystemRun {
  const s = tb.scenario;
  const def = SYSTEMS[system];
  const engine = new Engine(4096);
  const streams = new RngStreams(s.seed);
  const topo = tb.topology;
  const st = systemTopology(tb);
  def.check?.(st);
  const deviceServer = def.pairs === undefined;
  const servers = deviceServer ? tb.devices.map((d) => serverOf(tb, d, system)) : [];
  checkPlacement(tb, def, servers);
  // Network paths: a device's path to its server is named by the device index (its random
  // streams `net/<d>/...` are those of the legacy form); other pairs by their node names.
  const pairs: PathPair[] = deviceServer
    ? tb.devices.map((d, i) => ({ from: d.node.index, to: servers[i].index, streamName: String(d.index) }))
    : def.pairs!(st).map(([from, to]) => ({ from, to }));
  const compiled = compileNetwork(topo, tb.routes, pairs, true);
  const network = new Network(engine, compiled.devices, compiled.shared, (name) => streams.get(name));
  const hosts = new Map((topo.hosts ?? []).map((h) => [h.name, new HostCpu(engine, h.name, h.cores, h.dispatchMs, h.shareBatching === true, h.backgroundLoad ?? 0)]));
  const nodes = topo.nodes.map((n) => new SimNode(engine, n, n.hardware === null ? null : tb.nodeLatency.get(n.hardware) ?? null, hosts.get(n.host) ?? null));
  if (s.environment) for (const [i, f] of speedSchedules(s.environment, topo.nodes)) nodes[i].slowdown = f;
  prepareDtoeeRun(s, system, topo.nodes);
  const world = new SimWorld(engine, nodes, network, compiled, s.network.headerBytes);
  const hb = hiddenStateBytesPerToken(tb.model);
  const timelineN = opts.timelineRequests ?? 3;
  const closedLoop = s.workload.arrival.kind === 'closed-loop' ? s.workload.arrival.thinkTimeS : null;
  const simDevices: SimDevice[] = [];
  let nextRequestId = 0;
  const total = tb.workload.reduce((a, w) => a + w.length, 0);
  // Made just before the run (below), so that a set-up error leaves no spill file behind.
  let store: RequestStore = new MemoryRequests(0);
  let finishedCount = 0, firstArrival = Infinity, lastToken = 0;
  const extras: { id: number; req: RequestState }[] = [];
  const onFinished = (r: RequestState): void => {
    finishedCount++;
    store.add(r.id, r.toRecord());
    if (r.arrivalS < firstArrival) firstArrival = r.arrivalS;
    if (r.lastTokenS > lastToken) lastToken = r.lastTokenS;
    if (r.spans !== null || r.exitStage > 0 || r.hops !== null) extras.push({ id: r.id, req: r });
  };
  const latencyByHw = new Map<string, DeviceLatency>();
  for (const d of tb.devices) {
    let lat = latencyByHw.get(d.hardware);
    if (!lat) {
      const l = tb.deviceLatency.get(d.hardware)!;
      lat = deviceLatency(l.target, wholeLatencyOf(tb, def, d.hardware));
      latencyByHw.set(d.hardware, lat);
    }
    const devLat = lat;
    const srv = deviceServer ? servers[d.index] : null;
    const path = deviceServer ? compiled.lookup(d.node.index, srv!.index)!.path : -1;
    let cloud: CloudCluster | null = null;
    let cloudModel = null;
    if (srv !== null) {
      const sn = nodes[srv.index];
      cloudModel = tb.nodeLatency.get(srv.hardware!)!.submodel(def.cloudWork);
      const m = cloudModel;
      cloud = sn.clusterFor(def.cloudWork, () => m);
    }
    const devNode = nodes[d.node.index];
    const ctx: DeviceContext = {
      engine, index: path, node: d.node.index, processor: devNode.single!, network, cloud, world, stats: devNode.stats,
      acceptRng: streams.get(`accept/${d.index}`),
      seed: s.seed,
      headerBytes: s.network.headerBytes,
      computeMs: devLat.computeMs, // no `this` inside: called directly, no wrapper per op
    };
    const view = topologyView(tb, d, srv?.index ?? -1);
    const linkSpec = path >= 0 ? compiled.devices[path].link : null;
    const env: ProtocolEnv = {
      hiddenBytesPerToken: hb,
      tokenBytes: s.network.tokenBytes,
      policies: s.policies,
      topology: view,
      predictor: srv !== null && srv.processor.kind === 'batching'
        ? simPredictor(devLat, cloudModel!, def.cloudWork, srv.processor.tokenBudget, network, path, s.network.headerBytes, linkSpec!.latencyMs)
        : simPredictor(devLat, tb.cloudLatency.submodel(def.cloudWork), def.cloudWork, 2048, network, -1, s.network.headerBytes, 0),
    };
    const work = tb.workload[d.index];
    simDevices.push(new SimDevice(ctx, system, d, work, nextRequestId, timelineN, !deviceServer, def.createDevice(env), closedLoop, d.node.concurrency, onFinished));
    nextRequestId += work.length;
  }
  store = opts.spillDir === undefined
    ? new MemoryRequests(total)
    : new SpilledRequests(spillName(opts.spillDir, system, 'spill'), system, tb.devices.map((d) => d.name), total, opts.spillWindowRows);
  ArrivalFeed.build(engine, simDevices).begin();
  const control = startDtoeeControl(s, system, engine, world, () => simDevices.some((d) => d.finished < d.workload.length));
  try {
    engine.run(s.horizonS);
  } catch (e) {
    if (store instanceof SpilledRequests) store.abort();
    throw e;
  }

  // Spans, tasks and hops of the requests that have any, in request order.
  extras.sort((a, b) => a.id - b.id);
  const spans: SpanRecord[] = [];
  const hops: HopRecord[] = [];
  const tasks: TaskRecord[] = [];
  for (const { req: r } of extras) {
    if (r.spans) for (const sp of r.spans) spans.push(sp);
    if (r.exitStage > 0) {
      tasks.push({
        system, device: r.deviceName, request: r.index, exit_stage: r.exitStage, correct: r.correct,
        delay_ms: (r.lastTokenS - r.arrivalS) * 1000, nodes: r.hops ? r.hops.map((h) => topo.nodes[h.node].name).join('>') : '',
      });
    }
    if (r.hops) {
      r.hops.forEach((h, seq) => hops.push({
        system, device: r.deviceName, request: r.index, seq, node: topo.nodes[h.node].name,
        submit_ms: (h.submitS - r.arrivalS) * 1000, start_ms: (h.startS - r.arrivalS) * 1000, end_ms: (h.endS - r.arrivalS) * 1000,
        queue_ms: (h.startS - h.submitS) * 1000, compute_ms: (h.endS - h.startS) * 1000,
      }));
    }
  }
  const unfinished = nextRequestId - finishedCount;
  const clusters = nodes.map((n) => n.cluster).filter((c): c is CloudCluster => c !== null);
  let gpuBusyMs = 0, gpus = 0, endS = lastToken;
  for (const cloud of clusters) {
    gpus += cloud.replicas.length;
    for (const rep of cloud.replicas) {
      gpuBusyMs += rep.busyMs;
      const iv = rep.busyIntervalsS;
      if (iv.length > 0) endS = Math.max(endS, iv[iv.length - 1]);
    }
  }
  const spanS = finishedCount > 0 ? lastToken - firstArrival : 0;
  const totals = { system, unfinished, spanS, gpuBusyMs, gpus, latencySource: worstSourceOf(tb.provenance) };
  let records: RequestRecord[] = [];
  let summary: SummaryRecord;
  let requestPart: RequestPart | undefined;
  if (store instanceof SpilledRequests) {
    const done = store.finish(spillName(opts.spillDir!, system, 'part'), totals);
    summary = done.summary;
    requestPart = done.part;
  } else {
    records = (store as MemoryRequests).records();
    summary = summarize(records, totals);
  }
  const stt = network.stats;
  const sum = (a: Float64Array): number => a.reduce((x, y) => x + y, 0);
  return {
    system, requests: records, ...(requestPart ? { requestPart } : {}), summary, spans,
    gpuUtil: gpuUtilRows(system, clusters, endS, opts.gpuUtilBins ?? 100),
    nodes: nodeRows(system, nodes, endS),
    links: linkRows(system, topo, compiled, stt.deliveredBytes, endS),
    hops,
    tasks,
    taskSummary: tasks.length > 0 ? taskSummary(system, tasks, s.policies) : null,
    eventCount: engine.eventCount, simEndS: endS,
    bytesSent: sum(stt.sentBytes.up) + sum(stt.sentBytes.down),
    bytesDelivered: sum(stt.deliveredBytes.up) + sum(stt.deliveredBytes.down),
    messagesSent: stt.messagesSent, messagesDelivered: stt.messagesDelivered,
    ...dtoeeOutputs(s, system, topo.nodes, control),
  };
}

function nodeRows(system: SystemId, nodes: readonly SimNode[], endS: number): NodeRecord[] {
  return nodes.map((n) => {
    let jobs = n.stats.jobs, waitMs = n.stats.waitMs;
    if (n.cluster) for (const r of n.cluster.replicas) { jobs += r.jobs; waitMs += r.waitMs; }
    const busy = n.busyMs();
    return {
      system, node: n.node.name, kind: n.node.kind, hardware: n.node.hardware ?? '', host: n.node.host,
      servers: n.node.hardware === null ? 0 : n.servers, jobs, busy_ms: busy,
      utilization: endS > 0 && n.node.hardware !== null ? busy / (n.servers * endS * 1000) : 0,
      mean_wait_ms: jobs > 0 ? waitMs / jobs : 0,
    };
  });
}

function linkRows(system: SystemId, topo: TopologySpec, compiled: ReturnType<typeof compileNetwork>, delivered: { up: Float64Array; down: Float64Array }, endS: number): LinkRecord[] {
  const bytes = new Float64Array(topo.links.length * 2);
  for (const p of compiled.paths) {
    for (const ld of p.up) bytes[ld] += delivered.up[p.index];
    for (const ld of p.down) bytes[ld] += delivered.down[p.index];
  }
  const rows: LinkRecord[] = [];
  for (let ld = 0; ld < bytes.length; ld++) {
    if (compiled.crossings[ld] === 0) continue;
    const l = topo.links[linkOf(ld)], ab = isAToB(ld);
    const mbps = ab ? l.aToBMbps : l.bToAMbps;
    rows.push({
      system, link: l.name, from: topo.nodes[ab ? l.a : l.b].name, to: topo.nodes[ab ? l.b : l.a].name,
      bytes: bytes[ld], capacity_mbps: mbps,
      utilization: endS > 0 && !l.trace ? (bytes[ld] * 8) / (mbps * 1e6 * endS) : NaN,
      shared: compiled.crossings[ld] > 1 || l.sharing === 'always',
    });
  }
  return rows;
}

/** Run every system of the scenario. */
export function runScenario(s: Scenario, opts: RunOptions = {}): RunResult {
  const t0 = performance.now();
  const tb = buildTestbed(s);
  const systems: SystemRun[] = [];
  try {
    for (const sys of s.systems) systems.push(simulateSystem(tb, sys, opts));
  } catch (e) {
    // Streamed runs: drop the request files of the systems that finished (nothing half-written).
    for (const r of systems) if (r.requestPart) rmSync(r.requestPart.file, { force: true });
    throw e;
  }
  return {
    scenario: s, systems,
    eventCount: systems.reduce((a, r) => a + r.eventCount, 0),
    wallMs: performance.now() - t0,
    provenance: tb.provenance,
    warnings: tb.warnings,
  };
}

/**
 * What a protocol knows about its surroundings. The simulator and the live
 * runner each provide a `ProtocolEnv`; protocols never see either driver.
 */
import type { PolicySpec, SystemId } from '../scenario/types.js';
import type { TopoNode } from '../topology/types.js';
import type { CloudLoad, CloudWork, DeviceWork, Proto } from './ops.js';

export interface RequestInfo {
  /** Index of the request on its device. */
  index: number;
  promptTokens: number;
  outputTokens: number;
}

/**
 * Latency predictions (ms) used by policies (chunk size, adaptive draft
 * length). The simulator answers from the same latency models it simulates
 * with, without contention; the live runner from the calibration file.
 */
export interface Predictor {
  deviceMs(work: DeviceWork, tokens: number, ctx: number, logits: number): number;
  cloudMs(work: CloudWork, tokens: number, ctx: number, logits: number, load: CloudLoad | null): number;
  /** Serialisation time of a message with this payload (header included) on the device's link, idle. */
  txMs(dir: 'up' | 'down', payloadBytes: number): number;
  /** One-way propagation latency of the device's link. */
  latencyMs(dir: 'up' | 'down'): number;
}

/** What a protocol sees of the topology: node indices are what place-naming ops take. */
export interface TopologyView {
  readonly nodes: readonly TopoNode[];
  /** This device's node. */
  readonly device: number;
  /** The node that serves this device's requests (its `server`), or -1. */
  readonly server: number;
  /** Node index by name (throws for an unknown name: a system bug, the scenario was checked). */
  index(name: string): number;
  /** One-way latency of the route from one node to another (policies such as "nearest"). */
  routeLatencyMs(from: number, to: number): number;
  /** Layers of the served model. */
  readonly modelLayers: number;
  /** Predicted latency (ms) of one pass of a part on a node, idle (policies that model service rates). */
  partMs(node: number, part: import('./ops.js').PartSpec, tokens: number, ctx: number, logits: number): number;
  /** Predicted time (ms) for `payloadBytes` (header added) from one node to another on idle links. */
  pathMs(from: number, to: number, payloadBytes: number): number;
  /** Mean request arrival rate of one device (requests/s) and mean prompt length (tokens), from the workload. */
  readonly arrivalRatePerS: number;
  readonly meanPromptTokens: number;
  /** Mean output tokens per request, from the workload. */
  readonly meanOutputTokens: number;
}

/** What a system needs to know of the testbed before it runs (node pairs, checks). */
export interface SystemTopology {
  readonly nodes: readonly TopoNode[];
  /** Device node indices, in workload order (device d issues workload[d]). */
  readonly devices: readonly number[];
  readonly policies: PolicySpec;
  /** Layers of the served model (staged systems split them). */
  readonly modelLayers: number;
}

export interface ProtocolEnv {
  /** Bytes of one token's hidden state on the wire (hidden size x activation bytes). */
  hiddenBytesPerToken: number;
  /** Bytes of one raw token id on the wire. */
  tokenBytes: number;
  predictor: Predictor;
  policies: PolicySpec;
  topology: TopologyView;
}

/** One device's instance of a system: call it once per request. Holds per-device policy state. */
export type DeviceProtocol = (req: RequestInfo) => Proto;

export interface SystemDef {
  id: SystemId;
  /** What a cloud replica hosts for this system. */
  cloudWork: CloudWork;
  /** Device-side parts the system needs (for describe and the live runner). */
  deviceWork: readonly DeviceWork[];
  /** Whether the system sends raw tokens to the cloud (privacy exposure). */
  sendsRawTokens: boolean;
  createDevice(env: ProtocolEnv): DeviceProtocol;
  /**
   * Ordered node pairs the system sends messages between (each becomes a network path).
   * Default: each device and its server (the HAT family's up/down).
   */
  pairs?(t: SystemTopology): Array<[number, number]>;
  /** Checks that the topology suits the system; throws an InputError naming the field. */
  check?(t: SystemTopology): void;
  /**
   * Systems with node pairs: which model part each node holds (for the memory check,
   * sim/memory.ts). The HAT family's placement follows from deviceWork and cloudWork.
   */
  placement?(t: SystemTopology): Array<{ nodes: readonly number[]; part: import('./ops.js').PartSpec; what: string }>;
  /**
   * The model id the device's 'drafter' slot (a whole LLM on the device) holds for this
   * system; default: policies.sd.drafterModel.
   */
  /** The system issues no cloud op: no server holds anything for it (device-only). */
  serverless?: boolean;
  wholeModel?(s: { model: string; policies: import('../scenario/types.js').PolicySpec }): string;
}

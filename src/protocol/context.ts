/**
 * What a protocol knows about its surroundings. The simulator and the live
 * runner each provide a `ProtocolEnv`; protocols never see either driver.
 */
import type { PolicySpec, SystemId } from '../scenario/types.js';
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

export interface ProtocolEnv {
  /** Bytes of one token's hidden state on the wire (hidden size x activation bytes). */
  hiddenBytesPerToken: number;
  /** Bytes of one raw token id on the wire. */
  tokenBytes: number;
  predictor: Predictor;
  policies: PolicySpec;
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
}

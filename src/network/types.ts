/**
 * Network contract used by the simulator. Implementation: network/network.ts.
 *
 * Model (documented in docs/MODEL.md, "Network"):
 * - Each device has an access link with an uplink and a downlink direction.
 *   Messages of one device in one direction are sent in FIFO order, one at a
 *   time (one ordered stream, like one TCP connection): a message starts
 *   transmitting when the previous one of that device+direction has finished
 *   transmitting (not when it was delivered: the pipe holds several in flight).
 * - A transmitting message is a flow. Its rate is the max-min fair share over
 *   every constraint it crosses: its access link's current capacity (fixed, or
 *   from a bandwidth trace) and each shared bottleneck listed in the device's
 *   `via`. Rates are recomputed whenever a flow starts or ends (or a trace
 *   capacity changes); completion events made stale by a recompute are
 *   dropped with a generation counter.
 * - A message is delivered `latencyMs` (+ jitter, never reordering) after its
 *   last byte left the sender. Transfer time for one message alone on an idle
 *   link = bytes*8/bps + latency (latency paid once, after transmission).
 * - Bytes are counted per device and direction when sent and when delivered.
 */
import type { Handler } from '../core/engine.js';

export type Direction = 'up' | 'down';

export interface NetworkStats {
  /** Per device: bytes handed to the network (sent) and delivered, per direction. */
  sentBytes: { up: Float64Array; down: Float64Array };
  deliveredBytes: { up: Float64Array; down: Float64Array };
  messagesSent: number;
  messagesDelivered: number;
}

export interface SimNetwork {
  /**
   * Queue a message of `bytes` from device `device` in direction `dir`
   * (up = device to cloud). When its last byte is delivered at the receiver,
   * `onDelivered.fire(engine, tag)` is called.
   */
  send(device: number, dir: Direction, bytes: number, onDelivered: Handler, tag: number): void;
  /**
   * Send a message whose delivery needs no event, if its delivery time is known now (a
   * fixed-rate pipe) and is at most `untilS`: returns that time; else NaN and nothing sent.
   */
  settle?(device: number, dir: Direction, bytes: number, untilS: number): number;
  readonly stats: NetworkStats;
  /** Predicted time (ms) for `bytes` on an otherwise idle path of this device now: used by policies. */
  idleTransferMs(device: number, dir: Direction, bytes: number): number;
}

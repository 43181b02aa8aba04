/**
 * The seam between FedSpine's round logic and the simulator core: a clock
 * and a transport. rounds.ts only sees these two interfaces; today they are
 * backed by core/engine.ts and network/network.ts (per-device access links +
 * a shared server NIC, max-min fair). When the core moves to a topology of
 * nodes and links, only this file needs re-pointing.
 */
import { Engine, Prio, type Handler } from '../core/engine.js';
import type { RngStreams } from '../core/rng.js';
import { Network, type NetLinkSpec } from '../network/network.js';

export interface FedClock {
  readonly nowS: number;
  /** Events fired so far. */
  readonly eventCount: number;
  /** Call fn at absolute time atS (>= now). */
  at(atS: number, fn: () => void): void;
  run(untilS: number): void;
}

export interface FedTransport {
  /** Send bytes between the server and device d ('down' = server to device); fn runs on delivery. */
  send(device: number, dir: 'up' | 'down', bytes: number, fn: () => void): void;
  /** Bytes sent so far per direction, all devices. */
  sentBytes(dir: 'up' | 'down'): number;
}

class Callback implements Handler {
  constructor(private readonly fn: () => void) {}
  fire(): void { this.fn(); }
}

export interface StarNetworkSpec {
  devices: NetLinkSpec[];
  /** The server's NIC, shared max-min fairly by all devices (up = into the server). */
  server: { uplinkMbps: number; downlinkMbps: number };
}

/** A clock and a transport over the current engine and network: devices' access links + the server NIC. */
export function simSeam(spec: StarNetworkSpec, streams: RngStreams): { clock: FedClock; transport: FedTransport } {
  const engine = new Engine();
  const network = new Network(
    engine,
    spec.devices.map((link) => ({ link, via: ['server-nic'] })),
    [{ name: 'server-nic', uplinkMbps: spec.server.uplinkMbps, downlinkMbps: spec.server.downlinkMbps }],
    (name) => streams.get(name),
  );
  const clock: FedClock = {
    get nowS() { return engine.nowS; },
    get eventCount() { return engine.eventCount; },
    at(atS, fn) { engine.schedule(atS, new Callback(fn), 0, Prio.resume); },
    run(untilS) { engine.run(untilS); },
  };
  const transport: FedTransport = {
    send(device, dir, bytes, fn) { network.send(device, dir, bytes, new Callback(fn), 0); },
    sentBytes(dir) { let s = 0; for (const x of network.stats.sentBytes[dir]) s += x; return s; },
  };
  return { clock, transport };
}

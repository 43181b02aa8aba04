/**
 * The seam between FedSpine's round logic and the simulator core: a clock
 * and a transport. rounds.ts only sees these two interfaces. They are backed
 * by core/engine.ts and the topology (topology/): a star of nodes and links
 * (starTopology: device nodes, the server node, a switch `sw:server-nic`;
 * one access link per device to the server, the server NIC as a link
 * switch - server with `sharing: always`, crossed by every device's route:
 * a max-min fair shared bottleneck), compiled into network paths
 * (topology/paths.ts compileNetwork, device i <-> server, random streams
 * `net/<i>/...`), driven by network/network.ts.
 */
import { Engine, Prio, type Handler } from '../core/engine.js';
import type { RngStreams } from '../core/rng.js';
import { Network, type NetLinkSpec } from '../network/network.js';
import { compileNetwork } from '../topology/paths.js';
import { Routes } from '../topology/routes.js';
import type { TopoLink, TopoNode, TopologySpec } from '../topology/types.js';

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

export const SERVER_NIC = 'server-nic';

/** The FedSpine star as a topology: device nodes 0..N-1, the server node N, switch N+1; access link i = device i <-> server; the NIC link switch <-> server. */
export function starTopology(spec: StarNetworkSpec): TopologySpec {
  const n = spec.devices.length, server = n, sw = n + 1;
  const node = (index: number, name: string, kind: string): TopoNode => ({
    index, name, kind, hardware: null, memoryBytes: null, processor: { kind: 'single' }, host: name, group: name, server: kind === 'device' ? 'server' : null, stage: null, concurrency: 1,
  });
  const nodes: TopoNode[] = spec.devices.map((_, i) => node(i, `device-${i}`, 'device'));
  nodes.push(node(server, 'server', 'server'), node(sw, `sw:${SERVER_NIC}`, 'switch'));
  const links: TopoLink[] = spec.devices.map((l, i) => ({
    index: i, name: `device-${i}`, a: i, b: server, aToBMbps: l.uplinkMbps, bToAMbps: l.downlinkMbps, latencyMs: l.latencyMs, jitterMs: l.jitterMs, sharing: 'auto',
    ...(l.trace ? { trace: l.trace } : {}),
  }));
  links.push({ index: n, name: SERVER_NIC, a: sw, b: server, aToBMbps: spec.server.uplinkMbps, bToAMbps: spec.server.downlinkMbps, latencyMs: 0, jitterMs: 0, sharing: 'always' });
  // Each device's route: its access link and the NIC (the legacy constraint form, as scenario/topology.ts legacyTopology).
  return { nodes, links, routes: [], legacyVia: new Map(spec.devices.map((_, i) => [i, [SERVER_NIC]])) };
}

/** A clock and a transport over the engine and the star topology's compiled network. */
export function simSeam(spec: StarNetworkSpec, streams: RngStreams): { clock: FedClock; transport: FedTransport } {
  const engine = new Engine();
  const topo = starTopology(spec);
  const server = spec.devices.length;
  const compiled = compileNetwork(topo, new Routes(topo), spec.devices.map((_, i) => ({ from: i, to: server, streamName: String(i) })));
  const network = new Network(engine, compiled.devices, compiled.shared, (name) => streams.get(name));
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

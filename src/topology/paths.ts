/**
 * Compiles the topology into the network's paths (network/network.ts).
 *
 * A system declares the node pairs it sends between (SystemDef.pairs). Each unordered
 * pair {A, B} becomes one network path: its `up` direction is A -> B (the pair's first
 * orientation), its `down` B -> A, each over its own route (routes.ts). Then every link
 * direction is classified by how many path directions cross it:
 * - crossed by one path direction only (and not `sharing: always`): a per-flow cap. The
 *   path's cap in that direction is the lowest such capacity (a FIFO path has one
 *   message transmitting at a time, so a link only it uses is just a cap);
 * - crossed by several: a max-min fair shared bottleneck (network `shared` resource).
 * A direction with no private link is capped by its lowest shared capacity (a flow can
 * never exceed it, so max-min rates are unchanged).
 * Latency of a direction = sum of its links' latencies; jitter = one half-normal draw
 * per message with sigma = sqrt(sum of the links' jitter^2) [assumption: one draw per
 * message, not one per link].
 * Traces: a direction may cross at most one traced link, and that link must be private
 * to its path (the network integrates a trace per flow, not per shared link).
 */
import { InputError } from '../core/errors.js';
import type { NetSharedLinkSpec, NetworkDevice, SharedHop } from '../network/network.js';
import type { Direction } from '../network/types.js';
import { Routes } from './routes.js';
import { isAToB, linkOf, type LinkDir, type TopologySpec } from './types.js';

export interface PathPair {
  from: number;
  to: number;
  /** Random-stream name of the path (`net/<name>/...`); default `<from name>><to name>`. */
  streamName?: string;
}

export interface CompiledPath {
  index: number;
  a: number;
  b: number;
  up: LinkDir[];
  down: LinkDir[];
}

export interface CompiledNetwork {
  devices: NetworkDevice[];
  shared: NetSharedLinkSpec[];
  paths: CompiledPath[];
  /** Path index and direction for an ordered pair, or undefined when the system did not declare it. */
  lookup(from: number, to: number): { path: number; dir: Direction } | undefined;
  /** Per link direction: how many path directions cross it (0 = unused). */
  crossings: Int32Array;
}

/**
 * `hostCosts`: add declared hosts' per-message cost to each path's latency (the simulator
 * does; the live runner shapes the physical links only, the real cost happens by itself).
 */
export function compileNetwork(topo: TopologySpec, routes: Routes, pairs: readonly PathPair[], hostCosts = false): CompiledNetwork {
  const nNodes = topo.nodes.length;
  const index = new Map<number, { path: number; dir: Direction }>();
  const paths: CompiledPath[] = [];
  const names: string[] = [];
  const sharedByName = new Map<string, number>();
  if (topo.legacyVia) for (const l of topo.links) if (l.sharing === 'always') sharedByName.set(l.name, l.index);
  for (const p of pairs) {
    if (p.from === p.to) continue; // same node: no network
    if (index.has(p.from * nNodes + p.to)) continue;
    const i = paths.length;
    const legacy = topo.legacyVia;
    const up = legacy ? legacyRoute(topo, sharedByName, p.from, p.to) : routes.route(p.from, p.to, `path ${topo.nodes[p.from].name} -> ${topo.nodes[p.to].name}`);
    const down = legacy ? legacyRoute(topo, sharedByName, p.to, p.from) : routes.route(p.to, p.from, `path ${topo.nodes[p.to].name} -> ${topo.nodes[p.from].name}`);
    paths.push({ index: i, a: p.from, b: p.to, up, down });
    names.push(p.streamName ?? `${topo.nodes[p.from].name}>${topo.nodes[p.to].name}`);
    index.set(p.from * nNodes + p.to, { path: i, dir: 'up' });
    index.set(p.to * nNodes + p.from, { path: i, dir: 'down' });
  }
  const crossings = new Int32Array(topo.links.length * 2);
  for (const p of paths) {
    for (const ld of new Set(p.up)) crossings[ld]++;
    for (const ld of new Set(p.down)) crossings[ld]++;
  }
  const isShared = (ld: LinkDir): boolean => crossings[ld] > 1 || topo.links[linkOf(ld)].sharing === 'always';
  const capBps = (ld: LinkDir): number => {
    const l = topo.links[linkOf(ld)];
    return (isAToB(ld) ? l.aToBMbps : l.bToAMbps) * 1e6;
  };
  // Shared links in link order (resource indices follow it).
  const sharedLinks = new Set<number>();
  for (let ld = 0; ld < crossings.length; ld++) if (crossings[ld] > 0 && isShared(ld)) sharedLinks.add(linkOf(ld));
  const shared: NetSharedLinkSpec[] = [...sharedLinks].sort((x, y) => x - y).map((li) => {
    const l = topo.links[li];
    return { name: l.name, uplinkMbps: l.aToBMbps, downlinkMbps: l.bToAMbps };
  });

  const hostMsg = new Map((topo.hosts ?? []).map((h) => [h.name, h.messageMs]));
  const msgMs = hostMsg.size === 0 || !hostCosts ? null : topo.nodes.map((n) => hostMsg.get(n.host) ?? 0);
  const devices: NetworkDevice[] = paths.map((p, i) => {
    const dirInfo = (route: LinkDir[], what: string) => {
      let cap = Infinity, sharedCap = Infinity, latencyMs = 0, jitterSq = 0;
      let traced: LinkDir | null = null;
      const via: SharedHop[] = [];
      for (const ld of route) {
        const l = topo.links[linkOf(ld)];
        latencyMs += l.latencyMs;
        jitterSq += l.jitterMs * l.jitterMs;
        if (l.trace) {
          if (traced !== null) throw new InputError(`links '${topo.links[linkOf(traced)].name}' and '${l.name}': the ${what} crosses two links with bandwidth traces; a route may cross at most one traced link`, `links[${l.index}].trace`);
          if (isShared(ld)) throw new InputError(`links[${l.index}] '${l.name}': a link with a bandwidth trace must be crossed by one node pair only (it is crossed by ${crossings[ld]} routes); give each device its own traced access link`, `links[${l.index}].trace`);
          traced = ld;
        }
        if (isShared(ld)) {
          via.push({ name: l.name, dir: isAToB(ld) ? 'up' : 'down' });
          sharedCap = Math.min(sharedCap, capBps(ld));
        } else if (!l.trace) {
          cap = Math.min(cap, capBps(ld));
        }
      }
      // One jittered link: its own sigma (sqrt(x*x) is x, but keep it literal).
      const jittered = route.filter((ld) => topo.links[linkOf(ld)].jitterMs > 0);
      const jitterMs = jittered.length === 1 ? topo.links[linkOf(jittered[0])].jitterMs : Math.sqrt(jitterSq);
      return { cap: cap === Infinity ? sharedCap : cap, latencyMs, jitterMs, traced, via };
    };
    const label = `${topo.nodes[p.a].name} -> ${topo.nodes[p.b].name}`;
    const u = dirInfo(p.up, `route ${label}`);
    const d = dirInfo(p.down, `route ${topo.nodes[p.b].name} -> ${topo.nodes[p.a].name}`);
    // Declared hosts' per-message cost: the sender pays one to send, the receiver one to receive (sim/host.ts).
    if (msgMs !== null) {
      u.latencyMs += msgMs[p.a] + msgMs[p.b];
      d.latencyMs += msgMs[p.b] + msgMs[p.a];
    }
    let trace = undefined, traceReversed = false;
    if (u.traced !== null || d.traced !== null) {
      const tl = u.traced ?? d.traced!;
      if (u.traced !== null && d.traced !== null && linkOf(u.traced) !== linkOf(d.traced)) {
        throw new InputError(`links '${topo.links[linkOf(u.traced)].name}' and '${topo.links[linkOf(d.traced)].name}': the two directions of ${label} cross different traced links; a node pair may use one traced link`, `links[${linkOf(d.traced)}].trace`);
      }
      const l = topo.links[linkOf(tl)];
      trace = l.trace;
      // The path's up direction uses the trace's up file when it crosses the link a -> b.
      traceReversed = u.traced !== null ? !isAToB(u.traced) : isAToB(d.traced!);
    }
    const finite = (x: number) => (Number.isFinite(x) ? x : 1e12);
    const dev: NetworkDevice = {
      link: {
        uplinkMbps: finite(u.cap) / 1e6,
        downlinkMbps: finite(d.cap) / 1e6,
        latencyMs: u.latencyMs,
        jitterMs: u.jitterMs,
        ...(d.latencyMs !== u.latencyMs ? { downLatencyMs: d.latencyMs } : {}),
        ...(d.jitterMs !== u.jitterMs ? { downJitterMs: d.jitterMs } : {}),
        ...(trace ? { trace, ...(traceReversed ? { traceReversed } : {}) } : {}),
      },
      via: [],
      viaDirected: { up: u.via, down: d.via },
      streamName: names[i],
    };
    return dev;
  });
  return {
    devices, shared, paths, crossings,
    lookup: (from, to) => index.get(from * nNodes + to),
  };
}

/**
 * Legacy form: a device's route is its access link and its `via` shared links, whatever
 * their order (the old form lists constraints, not a graph). Only device <-> server pairs exist.
 */
function legacyRoute(topo: TopologySpec, sharedByName: Map<string, number>, from: number, to: number): LinkDir[] {
  const via = topo.legacyVia!;
  const dev = via.has(from) ? from : to;
  const aToB = dev === from; // access links and shared links have a = the device side
  // Legacy expansion: device node i's access link is link i (scenario/topology.ts).
  const access = topo.links[dev];
  if (!via.has(dev) || access === undefined || access.a !== dev) throw new Error(`legacy topology: no access link for node ${topo.nodes[dev].name} (bug)`);
  const out: LinkDir[] = [dev * 2 + (aToB ? 0 : 1)];
  for (const name of via.get(dev)!) out.push(sharedByName.get(name)! * 2 + (aToB ? 0 : 1));
  return out;
}

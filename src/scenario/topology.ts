/**
 * Builds the scenario's topology (topology/types.ts) from either form:
 * - the nodes/links/routes form: node groups expanded (`<name>-<i>`), links naming a group
 *   expanded to one link per member, every reference checked;
 * - today's devices + cloud + network.shared form: one device node per device (`<group>-<i>`,
 *   in order, so device indices and random streams are unchanged), one `cloud` server node,
 *   one access link per device (device -> cloud), and each shared link as a link between a
 *   switch node `sw:<name>` and the cloud with `sharing: always`; each device's route is its
 *   access link plus its `via` links (legacyVia).
 */
import { HARDWARE } from '../compute/hardware.js';
import type { TopoLink, TopoNode, TopologySpec, ProcessorSpec } from '../topology/types.js';
import type { CloudSpec, DeviceGroup, LinkTraceSpec, NetworkSpec } from './types.js';
import { didYouMean, type PathSegment } from './overrides.js';

type Add = (p: PathSegment[], message: string, withValue?: boolean) => void;

export function legacyTopology(devices: DeviceGroup[], cloud: CloudSpec, network: NetworkSpec): TopologySpec {
  const nodes: TopoNode[] = [];
  const links: TopoLink[] = [];
  const legacyVia = new Map<number, string[]>();
  const cloudIndex = devices.reduce((a, g) => a + g.count, 0);
  for (const g of devices) {
    for (let i = 0; i < g.count; i++) {
      const index = nodes.length, name = `${g.name}-${i}`;
      nodes.push(node(index, name, 'device', g.hardware, { kind: 'single' }, g.name, 'cloud', 1));
      links.push({
        index, name, a: index, b: cloudIndex, aToBMbps: g.link.uplinkMbps, bToAMbps: g.link.downlinkMbps,
        latencyMs: g.link.latencyMs, jitterMs: g.link.jitterMs, sharing: 'auto',
        ...(g.link.trace ? { trace: g.link.trace } : {}),
      });
      legacyVia.set(index, [...g.via]);
    }
  }
  nodes.push(node(cloudIndex, 'cloud', 'server', cloud.hardware,
    { kind: 'batching', gpus: cloud.gpus, tokenBudget: cloud.tokenBudget, maxBatchSeqs: cloud.maxBatchSeqs, router: cloud.router }, 'cloud', null, 1));
  for (const sl of network.shared) {
    const sw = nodes.length;
    nodes.push(node(sw, `sw:${sl.name}`, 'switch', null, { kind: 'single' }, `sw:${sl.name}`, null, 1));
    links.push({ index: links.length, name: sl.name, a: sw, b: cloudIndex, aToBMbps: sl.uplinkMbps, bToAMbps: sl.downlinkMbps, latencyMs: 0, jitterMs: 0, sharing: 'always' });
  }
  return { nodes, links, routes: [], legacyVia };
}

function node(index: number, name: string, kind: string, hardware: string | null, processor: ProcessorSpec, group: string, server: string | null, concurrency: number, extra: Partial<TopoNode> = {}): TopoNode {
  const memoryBytes = hardware !== null && HARDWARE[hardware] ? HARDWARE[hardware].memoryBytes : null;
  return { index, name, kind, hardware, memoryBytes, processor, host: name, group, server, stage: null, concurrency, ...extra };
}

export interface NodeInput {
  name: string; kind: string; count?: number; hardware?: string; memoryGB?: number;
  processor?: ProcessorSpec; host?: string; server?: string; stage?: number; concurrency?: number | 'unlimited';
}
export interface LinkInput {
  name?: string; a: string; b: string; mbps?: number; aToBMbps?: number; bToAMbps?: number;
  latencyMs: number; jitterMs: number; trace?: LinkTraceSpec; shared: boolean;
}
export interface RouteInput { from: string; to: string; links: string[] }

/** The nodes/links/routes form. Problems are reported through `add` (field paths into the file). */
export function formTopology(nodesIn: NodeInput[], linksIn: LinkInput[], routesIn: RouteInput[], add: Add): TopologySpec {
  const nodes: TopoNode[] = [];
  const groups = new Map<string, number[]>();
  const seen = new Map<string, number>();
  nodesIn.forEach((n, i) => {
    const members: number[] = [];
    const names = n.count === undefined ? [n.name] : Array.from({ length: n.count }, (_, k) => `${n.name}-${k}`);
    if (groups.has(n.name)) add(['nodes', i, 'name'], 'node names must be unique');
    for (const name of names) {
      if (seen.has(name)) { add(['nodes', i, 'name'], `expands to '${name}', which another node already has; node names must be unique`); continue; }
      const index = nodes.length;
      seen.set(name, index);
      members.push(index);
      const conc = n.concurrency === 'unlimited' ? Infinity : n.concurrency ?? 1;
      const tn = node(index, name, n.kind, n.hardware ?? null, n.processor ?? { kind: 'single' }, n.name, n.server ?? null, conc,
        { host: n.host ?? name, stage: n.stage ?? null });
      nodes.push(n.memoryGB !== undefined ? { ...tn, memoryBytes: n.memoryGB * 1e9 } : tn);
      if (n.hardware === undefined && n.processor !== undefined) add(['nodes', i, 'hardware'], `is required for a node with a processor (${n.processor.kind}): name a hardware profile (${Object.keys(HARDWARE).join(', ')}) or a calibrated hardware id`);
    }
    groups.set(n.name, members);
  });
  const allNames = [...seen.keys()];
  const ref = (p: PathSegment[], name: string): number[] | null => {
    const g = groups.get(name);
    if (g) return g;
    const i = seen.get(name);
    if (i !== undefined) return [i];
    const hint = didYouMean(name, [...groups.keys(), ...allNames]);
    add(p, `must name a node or node group${hint ? ` (did you mean "${hint}"?)` : ''}; known: ${[...groups.keys()].slice(0, 15).join(', ')}`);
    return null;
  };
  nodesIn.forEach((n, i) => {
    if (n.server === undefined) return;
    const s = ref(['nodes', i, 'server'], n.server);
    if (s && s.length !== 1) add(['nodes', i, 'server'], `names a group of ${s.length} nodes; a device's server must be one node`);
  });
  // Resolve `server` group names to the node (the check above guarantees one member).
  for (const tn of nodes) {
    if (tn.server !== null && groups.get(tn.server)?.length === 1 && !seen.has(tn.server)) (tn as { server: string | null }).server = nodes[groups.get(tn.server)![0]].name;
  }
  const links: TopoLink[] = [];
  const linkNames = new Set<string>();
  linksIn.forEach((l, i) => {
    const a = ref(['links', i, 'a'], l.a), b = ref(['links', i, 'b'], l.b);
    let up = l.aToBMbps ?? l.mbps, down = l.bToAMbps ?? l.mbps;
    if (up === undefined || down === undefined) {
      if (!l.trace) add(['links', i], 'needs a bandwidth: mbps (both directions) or aToBMbps and bToAMbps (or a trace)', false);
      up = up ?? 1; down = down ?? 1;
    }
    if (!a || !b) return;
    if (a.length > 1 && b.length > 1) { add(['links', i], `joins two node groups ('${l.a}' and '${l.b}'); at most one end may be a group (one link per member)`, false); return; }
    const base = l.name ?? `${l.a}-${l.b}`;
    const many = a.length > 1 || b.length > 1;
    const n = Math.max(a.length, b.length);
    for (let k = 0; k < n; k++) {
      const ai = a.length > 1 ? a[k] : a[0], bi = b.length > 1 ? b[k] : b[0];
      const name = many ? `${base}-${k}` : base;
      if (ai === bi) { add(['links', i, 'b'], `joins '${nodes[ai].name}' to itself; a link joins two different nodes`); continue; }
      if (linkNames.has(name)) { add(['links', i, 'name'], `link name '${name}' is used twice; give each link a unique name`, false); continue; }
      linkNames.add(name);
      links.push({
        index: links.length, name, a: ai, b: bi, aToBMbps: up, bToAMbps: down, latencyMs: l.latencyMs, jitterMs: l.jitterMs,
        sharing: l.shared ? 'always' : 'auto', ...(l.trace ? { trace: l.trace } : {}),
      });
    }
  });
  if (!nodes.some((n) => n.kind === 'device')) add(['nodes'], 'has no node of kind "device": the workload needs at least one device node to issue requests', false);
  return { nodes, links, routes: routesIn.map((r) => ({ from: r.from, to: r.to, links: [...r.links] })) };
}

export interface HostInput { name: string; cores: number; dispatchMs: number; messageMs: number; shareBatching?: boolean; backgroundLoad?: number; nodes?: string[] }

/**
 * Declared hosts: checked, and their `nodes` lists (node or group names) set those nodes'
 * host. Every declared host must end up with at least one node; a node names at most one.
 */
export function applyHosts(topo: TopologySpec, hostsIn: HostInput[], add: Add): TopologySpec {
  const names = new Set<string>();
  const setBy = new Map<number, number>();
  const nodes = [...topo.nodes];
  hostsIn.forEach((h, i) => {
    if (names.has(h.name)) add(['hosts', i, 'name'], 'host names must be unique');
    names.add(h.name);
    (h.nodes ?? []).forEach((ref, j) => {
      const members = nodes.filter((n) => n.name === ref || n.group === ref);
      if (members.length === 0) { add(['hosts', i, 'nodes', j], `names no node or node group (nodes: ${[...new Set(nodes.map((n) => n.group))].join(', ')})`); return; }
      for (const m of members) {
        const prev = setBy.get(m.index);
        if (prev !== undefined && prev !== i) { add(['hosts', i, 'nodes', j], `node '${m.name}' is already on host '${hostsIn[prev].name}'; a node sits on one host`); continue; }
        setBy.set(m.index, i);
        nodes[m.index] = { ...m, host: h.name };
      }
    });
  });
  hostsIn.forEach((h, i) => {
    if (!nodes.some((n) => n.host === h.name)) add(['hosts', i, 'name'], `no node sits on host '${h.name}': list them in hosts[${i}].nodes or give nodes host: ${h.name}`);
  });
  return { ...topo, nodes, hosts: hostsIn.map((h) => ({ name: h.name, cores: h.cores, dispatchMs: h.dispatchMs, messageMs: h.messageMs, ...(h.shareBatching ? { shareBatching: true } : {}), ...(h.backgroundLoad ? { backgroundLoad: h.backgroundLoad } : {}) })) };
}

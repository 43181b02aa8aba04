/**
 * The topology part of `hatsim describe`: nodes (grouped), links (grouped), who serves
 * whom, and the route of each node pair the systems use with its bottleneck and latency.
 */
import { SYSTEMS } from '../protocol/registry.js';
import { serverOf, systemTopology, type Testbed } from '../sim/run.js';
import { compileNetwork, type PathPair } from '../topology/paths.js';
import { isAToB, linkOf, type ProcessorSpec } from '../topology/types.js';
import { table } from './table.js';

function processorText(p: ProcessorSpec): string {
  if (p.kind === 'single') return 'single (one job at a time)';
  if (p.kind === 'workers') return `${p.workers} workers`;
  return `batching: ${p.gpus} GPU${p.gpus > 1 ? 's' : ''}, ${p.tokenBudget} tokens/step, ${p.router}`;
}

export function describeTopology(tb: Testbed): string[] {
  const topo = tb.topology;
  const out: string[] = ['Topology (nodes, links, routes):'];
  // Nodes, one row per group.
  const groups = new Map<string, number[]>();
  for (const n of topo.nodes) groups.set(n.group, [...(groups.get(n.group) ?? []), n.index]);
  out.push(table(['node(s)', 'count', 'kind', 'hardware', 'memory GB', 'processor', 'host', 'server', 'stage'],
    [...groups.values()].map((ix) => {
      const n = topo.nodes[ix[0]];
      const names = ix.length === 1 ? n.name : `${topo.nodes[ix[0]].name} .. ${topo.nodes[ix[ix.length - 1]].name}`;
      const host = ix.length === 1 ? n.host : ix.every((i) => topo.nodes[i].host === topo.nodes[i].name) ? '(own)' : n.host;
      return [names, ix.length, n.kind, n.hardware ?? '-', n.memoryBytes === null ? '-' : n.memoryBytes / 1e9, n.hardware === null ? '-' : processorText(n.processor), host, n.server ?? '-', n.stage ?? '-'];
    }), 1));
  if (topo.hosts && topo.hosts.length > 0) {
    out.push('', 'Hosts (nodes on one machine share its cores by processor sharing; per-op and per-message costs) [assumption: GPU batching steps are not shared]:');
    out.push(table(['host', 'cores', 'dispatch ms/op', 'message ms (send, receive)', 'nodes'],
      topo.hosts.map((h) => [h.name, h.cores, h.dispatchMs, h.messageMs, topo.nodes.filter((n) => n.host === h.name).map((n) => n.name).join(', ')]), 2));
  }
  // Links, grouped by (endpoint groups, parameters).
  const lrows = new Map<string, { names: string[]; row: unknown[] }>();
  for (const l of topo.links) {
    const a = topo.nodes[l.a], b = topo.nodes[l.b];
    const params = [l.aToBMbps, l.bToAMbps, l.latencyMs, l.jitterMs, l.trace ? `${l.trace.format} ${l.trace.path.split('/').pop()}` : '-', l.sharing];
    const key = JSON.stringify([a.group, b.group, params]);
    const e = lrows.get(key);
    if (e) e.names.push(l.name);
    else lrows.set(key, { names: [l.name], row: [`${a.group === a.name ? a.name : `${a.group}-*`} - ${b.group === b.name ? b.name : `${b.group}-*`}`, ...params] });
  }
  out.push('', table(['link(s)', 'count', 'a-b', 'a->b Mbit/s', 'b->a Mbit/s', 'latency ms', 'jitter ms', 'trace', 'sharing'],
    [...lrows.values()].map((e) => [e.names.length === 1 ? e.names[0] : `${e.names[0]} ..`, e.names.length, ...e.row]), 1));
  if (topo.legacyVia) out.push('(devices + cloud form: each device reaches the cloud over its access link, crossing its `via` shared links)');
  // Routes per system: the node pairs it sends between.
  const st = systemTopology(tb);
  for (const id of tb.scenario.systems) {
    const def = SYSTEMS[id];
    let pairs: PathPair[];
    try {
      pairs = def.pairs ? def.pairs(st).map(([from, to]) => ({ from, to })) : tb.devices.map((d) => ({ from: d.node.index, to: serverOf(tb, d, id).index }));
    } catch (e) {
      out.push('', `${id}: ${(e as Error).message}`);
      continue;
    }
    const c = compileNetwork(topo, tb.routes, pairs);
    const rows: unknown[][] = [];
    const seen = new Set<string>();
    for (const p of c.paths) {
      for (const [from, to, route, dir] of [[p.a, p.b, p.up, 'up'], [p.b, p.a, p.down, 'down']] as const) {
        const key = `${topo.nodes[from].group}>${topo.nodes[to].group}:${route.map((ld) => topo.links[linkOf(ld)].latencyMs).join(',')}`;
        if (seen.has(key) && rows.length > 0) continue;
        seen.add(key);
        const link = c.devices[p.index].link;
        const mbps = dir === 'up' ? link.uplinkMbps : link.downlinkMbps;
        const lat = dir === 'down' && link.downLatencyMs !== undefined ? link.downLatencyMs : link.latencyMs;
        const sharedHops = c.devices[p.index].viaDirected![dir].map((h) => h.name);
        rows.push([`${topo.nodes[from].name} -> ${topo.nodes[to].name}`,
          route.map((ld) => `${topo.links[linkOf(ld)].name}${isAToB(ld) ? '' : "'"}`).join(' + '), mbps, lat, sharedHops.join(', ') || '-']);
        if (rows.length >= 12) break;
      }
      if (rows.length >= 12) break;
    }
    out.push('', `${id}: ${c.paths.length} node pairs${c.paths.length * 2 > rows.length ? ` (first ${rows.length} distinct routes shown)` : ''}; ' = link crossed b -> a`);
    out.push(table(['route', 'links', 'cap Mbit/s', 'latency ms', 'shared bottlenecks'], rows, 1));
  }
  return out;
}

/**
 * Routes: which links a message from one node to another crosses.
 *
 * Default: the shortest path by total one-way latency; ties broken by fewer hops, then
 * by the path first reached relaxing links in their scenario order (deterministic). Device
 * nodes are endpoints: a shortest path never passes through one [assumption].
 * An explicit route (scenario `routes`) wins for its ordered pair; it must be a
 * contiguous path from `from` to `to`.
 */
import { InputError } from '../core/errors.js';
import { linkDir, type LinkDir, type TopologySpec } from './types.js';

export class Routes {
  private readonly byName = new Map<string, number>();
  private readonly linkByName = new Map<string, number>();
  /** Adjacency: per node, the link directions leaving it, in link order. */
  private readonly out: LinkDir[][];
  private readonly explicit = new Map<string, LinkDir[]>();
  private readonly cache = new Map<number, LinkDir[]>();

  constructor(private readonly topo: TopologySpec) {
    topo.nodes.forEach((n) => this.byName.set(n.name, n.index));
    topo.links.forEach((l) => this.linkByName.set(l.name, l.index));
    this.out = topo.nodes.map(() => []);
    for (const l of topo.links) {
      this.out[l.a].push(linkDir(l.index, true));
      if (l.b !== l.a) this.out[l.b].push(linkDir(l.index, false));
    }
    topo.routes.forEach((r, i) => {
      const field = `routes[${i}]`;
      const from = this.node(r.from, `${field}.from`), to = this.node(r.to, `${field}.to`);
      if (from === to) throw new InputError(`${field}: from and to are both '${r.from}'; a route joins two different nodes`, `${field}.to`);
      const key = `${from}>${to}`;
      if (this.explicit.has(key)) throw new InputError(`${field}: a second route from '${r.from}' to '${r.to}'; give each ordered pair at most one route`, field);
      if (r.links.length === 0) throw new InputError(`${field}.links: must list at least one link`, `${field}.links`);
      const path: LinkDir[] = [];
      let at = from;
      const visited = new Set<number>([from]);
      r.links.forEach((name, j) => {
        const li = this.linkByName.get(name);
        if (li === undefined) throw new InputError(`${field}.links[${j}]: '${name}' is not a link (known: ${[...this.linkByName.keys()].slice(0, 20).join(', ')})`, `${field}.links[${j}]`);
        const l = topo.links[li];
        if (l.a === at) { path.push(linkDir(li, true)); at = l.b; }
        else if (l.b === at) { path.push(linkDir(li, false)); at = l.a; }
        else {
          throw new InputError(`${field}.links[${j}]: link '${name}' joins '${topo.nodes[l.a].name}' and '${topo.nodes[l.b].name}', but the route is at '${topo.nodes[at].name}' there: a route must be a contiguous path from '${r.from}' to '${r.to}'`, `${field}.links[${j}]`);
        }
        if (visited.has(at)) throw new InputError(`${field}.links[${j}]: the route comes back to '${topo.nodes[at].name}' (a cycle); a route must visit each node once`, `${field}.links[${j}]`);
        visited.add(at);
      });
      if (at !== to) throw new InputError(`${field}.links: the route ends at '${topo.nodes[at].name}', not at '${r.to}'`, `${field}.links`);
      this.explicit.set(key, path);
    });
  }

  node(name: string, field: string): number {
    const i = this.byName.get(name);
    if (i === undefined) throw new InputError(`${field}: '${name}' is not a node (known: ${[...this.byName.keys()].slice(0, 20).join(', ')}${this.byName.size > 20 ? ', ...' : ''})`, field);
    return i;
  }

  /** Link directions from `from` to `to` (node indices); throws an InputError naming `field` when none exists. */
  route(from: number, to: number, field = 'routes'): LinkDir[] {
    const key = from * this.topo.nodes.length + to;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const r = this.explicit.get(`${from}>${to}`) ?? this.shortest(from, to, field);
    this.cache.set(key, r);
    return r;
  }

  /** True when an explicit route was given for this ordered pair. */
  isExplicit(from: number, to: number): boolean { return this.explicit.has(`${from}>${to}`); }

  private shortest(from: number, to: number, field: string): LinkDir[] {
    const n = this.topo.nodes.length, links = this.topo.links;
    if (from === to) return [];
    const dist = new Float64Array(n).fill(Infinity), hops = new Int32Array(n).fill(0x7fffffff);
    const prev = new Int32Array(n).fill(-1), done = new Uint8Array(n);
    dist[from] = 0; hops[from] = 0;
    // O(V^2) selection: topologies are small next to the requests they carry, and this is
    // called once per ordered pair a system uses (cached).
    for (;;) {
      let u = -1;
      for (let i = 0; i < n; i++) {
        if (done[i] || dist[i] === Infinity) continue;
        if (u < 0 || dist[i] < dist[u] || (dist[i] === dist[u] && hops[i] < hops[u])) u = i;
      }
      if (u < 0 || u === to) break;
      done[u] = 1;
      // [assumption] Devices are endpoints: a shortest path never passes through one (a phone
      // does not route other nodes' traffic). An explicit route may.
      if (u !== from && this.topo.nodes[u].kind === 'device') continue;
      for (const ld of this.out[u]) {
        const l = links[ld >> 1];
        const v = (ld & 1) === 0 ? l.b : l.a;
        const d = dist[u] + l.latencyMs, h = hops[u] + 1;
        if (d < dist[v] || (d === dist[v] && h < hops[v])) { dist[v] = d; hops[v] = h; prev[v] = ld; }
      }
    }
    if (dist[to] === Infinity) {
      const names = this.topo.nodes;
      throw new InputError(`${field}: no route from '${names[from].name}' to '${names[to].name}': no chain of links joins them; add a link or a route`, field);
    }
    const path: LinkDir[] = [];
    for (let v = to; v !== from;) {
      const ld = prev[v];
      path.push(ld);
      const l = links[ld >> 1];
      v = (ld & 1) === 0 ? l.a : l.b;
    }
    return path.reverse();
  }
}

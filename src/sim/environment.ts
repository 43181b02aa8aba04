/**
 * A changing environment (scenario `environment:`, docs/DTOEE.md "A changing environment"):
 * piecewise-constant schedules over simulated time, checked against the topology.
 *
 *  - `arrivals`: rate multipliers per device (node or group names; none = every device).
 *    The workload is generated as before (same seeded draws), then each device's arrival
 *    times are mapped through the inverse of its cumulative intensity
 *    Lambda(t) = integral_0^t m(s) ds: a homogeneous Poisson process at rate lambda becomes
 *    the non-homogeneous Poisson process with rate lambda m(t) (time change theorem).
 *    [assumption] Gamma and trace arrivals are time-changed the same way (a renewal process
 *    in operational time). Closed-loop arrivals have no rate and are rejected.
 *  - `nodeSpeed`: slowdown factors per node: every exec job submitted to the node while a
 *    window covers it takes `factor` times its latency model's time. [assumption] A job's
 *    duration is fixed when it is submitted (a job queued before a slowdown keeps its speed).
 *    Batching nodes are rejected (their batches are timed by the cluster, not per job).
 *
 * Windows are [fromS, toS); where several cover one instant their factors multiply.
 * Bad names are InputErrors naming the field (`environment.nodeSpeed[0].node`).
 */
import { InputError } from '../core/errors.js';
import type { EnvironmentSpec, Scenario } from '../scenario/types.js';
import type { TopoNode } from '../topology/types.js';
import type { DeviceRequest } from '../workload/generate.js';

/** A piecewise-constant factor: `values[i]` on [edges[i], edges[i+1]), 1 before edges[0] and from the last edge on. */
export class Piecewise {
  constructor(readonly edges: readonly number[], readonly values: readonly number[]) {}

  /** Windows [from, to) with factors that multiply where they overlap. */
  static of(windows: readonly { fromS: number; toS: number; factor: number }[]): Piecewise {
    const edges = [...new Set(windows.flatMap((w) => (Number.isFinite(w.toS) ? [w.fromS, w.toS] : [w.fromS])))].sort((a, b) => a - b);
    const values = edges.map((e) => windows.reduce((f, w) => (w.fromS <= e && e < w.toS ? f * w.factor : f), 1));
    return new Piecewise(edges, values);
  }

  at(tS: number): number {
    const e = this.edges;
    if (e.length === 0 || tS < e[0]) return 1;
    let lo = 0, hi = e.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (e[mid] <= tS) lo = mid; else hi = mid - 1; }
    return this.values[lo];
  }

  /**
   * The time t with integral_0^t factor = u (the factor is > 0 everywhere): maps a
   * homogeneous process's times onto the scheduled one's.
   */
  inverseIntegral(u: number): number {
    let t = 0, cum = 0, f = 1;
    for (let i = 0; i < this.edges.length; i++) {
      const seg = (this.edges[i] - t) * f;
      if (cum + seg > u) return t + (u - cum) / f;
      cum += seg; t = this.edges[i]; f = this.values[i];
    }
    return t + (u - cum) / f;
  }
}

/** Node indices a name selects: the node itself, or every member of a group. */
function select(nodes: readonly TopoNode[], name: string): TopoNode[] {
  const own = nodes.filter((n) => n.name === name);
  return own.length > 0 ? own : nodes.filter((n) => n.group === name);
}

/** Arrival-rate multiplier per device node index (only devices a window names). */
export function arrivalSchedules(env: EnvironmentSpec, nodes: readonly TopoNode[]): Map<number, Piecewise> {
  const devices = nodes.filter((n) => n.kind === 'device');
  const windows = new Map<number, { fromS: number; toS: number; factor: number }[]>();
  env.arrivals.forEach((w, i) => {
    let chosen: TopoNode[] = devices;
    if (w.devices.length > 0) {
      chosen = [];
      w.devices.forEach((name, j) => {
        const sel = select(nodes, name);
        const field = `environment.arrivals[${i}].devices[${j}]`;
        if (sel.length === 0) throw new InputError(`${field}: '${name}' names no node or node group; give a device node or device group (${[...new Set(devices.map((d) => d.group))].join(', ')})`, field);
        const bad = sel.find((n) => n.kind !== 'device');
        if (bad) throw new InputError(`${field}: '${bad.name}' is a ${bad.kind} node, not a device; arrival multipliers apply to devices`, field);
        chosen.push(...sel);
      });
    }
    for (const d of chosen) {
      const list = windows.get(d.index) ?? [];
      list.push({ fromS: w.fromS, toS: w.toS, factor: w.multiplier });
      windows.set(d.index, list);
    }
  });
  return new Map([...windows].map(([k, v]) => [k, Piecewise.of(v)]));
}

/** Slowdown factor per node index (only nodes a window names). */
export function speedSchedules(env: EnvironmentSpec, nodes: readonly TopoNode[]): Map<number, Piecewise> {
  const windows = new Map<number, { fromS: number; toS: number; factor: number }[]>();
  env.nodeSpeed.forEach((w, i) => {
    const field = `environment.nodeSpeed[${i}].node`;
    const sel = select(nodes, w.node);
    if (sel.length === 0) throw new InputError(`${field}: '${w.node}' names no node or node group`, field);
    for (const n of sel) {
      if (n.hardware === null) throw new InputError(`${field}: '${n.name}' has no hardware (it computes nothing to slow down)`, field);
      if (n.processor.kind === 'batching') throw new InputError(`${field}: '${n.name}' has a batching processor; node slowdowns apply to single and workers processors`, field);
      const list = windows.get(n.index) ?? [];
      list.push({ fromS: w.fromS, toS: w.toS ?? Infinity, factor: w.factor });
      windows.set(n.index, list);
    }
  });
  return new Map([...windows].map(([k, v]) => [k, Piecewise.of(v)]));
}

/** Checks the scenario's environment against its topology and workload (InputErrors naming the field). */
export function checkEnvironment(s: Scenario): void {
  const env = s.environment;
  if (!env) return;
  if (env.arrivals.length > 0 && s.workload.arrival.kind === 'closed-loop') {
    throw new InputError('environment.arrivals: closed-loop arrivals have no rate to scale (a request follows the previous one\'s answer); use poisson, gamma or trace arrivals, or drop the arrival schedule', 'environment.arrivals');
  }
  arrivalSchedules(env, s.topology.nodes);
  speedSchedules(env, s.topology.nodes);
}

/**
 * The workload with each scheduled device's arrival times time-changed by its multiplier
 * (a new array; devices without a schedule keep theirs). `deviceNodes[d]` is device d's node index.
 */
export function scheduleArrivals(s: Scenario, workload: DeviceRequest[][], deviceNodes: readonly number[]): DeviceRequest[][] {
  checkEnvironment(s);
  if (!s.environment || s.environment.arrivals.length === 0) return workload;
  const sched = arrivalSchedules(s.environment, s.topology.nodes);
  return workload.map((reqs, d) => {
    const f = sched.get(deviceNodes[d]);
    return f === undefined ? reqs : reqs.map((r) => (Number.isNaN(r.arrivalS) ? r : { ...r, arrivalS: f.inverseIntegral(r.arrivalS) }));
  });
}

/**
 * What a scenario's changing environment and DTO-EE control loop mean, one line each,
 * [assumption] where they go beyond the paper's abstract (describe output and run.json).
 */
export function environmentNotes(s: Scenario): string[] {
  const out: string[] = [];
  const env = s.environment;
  if (env) {
    for (const w of env.arrivals) out.push(`arrival rate x${w.multiplier} in [${w.fromS}, ${w.toS}) s for ${w.devices.length > 0 ? w.devices.join(', ') : 'every device'} (the draws time-changed; [assumption] gamma and trace arrivals too)`);
    for (const w of env.nodeSpeed) out.push(`node ${w.node} ${w.factor}x slower from ${w.fromS} s${w.toS !== undefined ? ` to ${w.toS} s` : ''} ([assumption] a job's time is fixed when it is submitted)`);
  }
  const pol = s.policies.dtoee;
  if (s.systems.includes('dtoee') && (pol.online || pol.monitor)) {
    out.push(`dtoee ${pol.online ? 'online' : 'offline, monitored'}: every ${pol.periodS} s each node measures arrivals, service time and utilisation over the last window ([assumption] tumbling window; fewer than ${pol.minJobs} jobs keep the previous service-time estimate; hop delays stay the idle model's)`);
    if (pol.online) {
      out.push(`[assumption] a round runs ${pol.roundIterations} iterations per penalty round from the current state (warm start from the offline optimum at t = 0); a node steps when every neighbour's previous message arrived, applies its values after its last step; messages travel as simulated messages (algorithm bytes + ${s.network.headerBytes}-byte transport header); a round still running at the next tick skips that tick's round${pol.oracle ? '; each round\'s measured model also solved centrally (oracle)' : ''}`);
    }
  }
  if (s.systems.includes('dtoee') && pol.task === 'per-token') {
    out.push(`dtoee per-token tasks: [assumption] the prefill and token 1 run every stage; a request keeps its prefill's nodes; each later token may exit; skipped layers' KV: ${pol.kvSkip === 'recompute' ? 'recomputed by the next token that goes deeper' : 'copied from the exit layer (state propagation, K/V projections untimed)'}; the optimiser models one decode step at the mean context`);
  }
  if (s.systems.includes('dtoee') && pol.policy === 'jsq' && pol.jsqLoad === 'reported') {
    out.push(`dtoee jsq on reported loads: [assumption] each node sends its load to its upstream neighbours every ${pol.loadPeriodS} s; a decision uses the last report (0 before the first)`);
  }
  return out;
}

/**
 * The topology: nodes, links between them, routes, and hosts. The one place that says
 * where things are; every system (HAT and its baselines, staged inference, DTO-EE,
 * FedSpine) runs on it, in the simulator and in the live runner.
 *
 * - A node has a name, a kind (device, edge, server, switch, or any word a system uses),
 *   a hardware id (latency models: data-sheet roofline or calibration file), memory, a
 *   processor model and the host (physical machine) it sits on.
 * - A link joins two nodes `a` and `b`, with a bandwidth per direction, a one-way latency,
 *   a jitter and an optional bandwidth trace (its `.up` file is a -> b).
 * - A route from one node to another is a list of links, each crossed in one direction:
 *   the shortest path by latency by default (topology/routes.ts), explicit when given.
 * - A message from A to B is one flow along its route (cut-through, like one TCP
 *   connection through switches): its rate is the max-min fair share over every link
 *   direction it crosses, its latency the sum of the links' latencies. Messages of one
 *   ordered pair (A, B) are FIFO. Compiled for the network by topology/paths.ts.
 *
 * Field names carry units. Indices are positions in `nodes` / `links`.
 */
import type { TraceSpec } from '../network/trace.js';

/** How a node runs compute jobs. */
export type ProcessorSpec =
  /** One job at a time, FIFO, with a background lane (one GPU stream on a Jetson: today's device). */
  | { kind: 'single' }
  /** k identical workers serving one FIFO queue (a multi-core box, k model replicas). */
  | { kind: 'workers'; workers: number }
  /** A continuous-batching GPU pool: `gpus` replicas, a token budget per step (today's cloud). */
  | { kind: 'batching'; gpus: number; tokenBudget: number; maxBatchSeqs: number; router: 'least-loaded' | 'round-robin' };

export const PROCESSOR_KINDS = ['single', 'workers', 'batching'] as const;

export interface TopoNode {
  readonly index: number;
  readonly name: string;
  /** device, edge, server, switch, ...: systems look nodes up by kind. */
  readonly kind: string;
  /** Hardware profile or calibrated hardware id; null for a node that computes nothing (a switch). */
  readonly hardware: string | null;
  /** Memory available to models (bytes); null = not checked. */
  readonly memoryBytes: number | null;
  readonly processor: ProcessorSpec;
  /** Physical machine the node runs on (several nodes may share one); default: the node's own name. */
  readonly host: string;
  /** Node group it was expanded from (`<group>-<i>` names), or its own name. */
  readonly group: string;
  /** Device nodes: the node that serves its requests (HAT's cloud, a staged system's first stage). */
  readonly server: string | null;
  /** Staged systems: the pipeline stage the node hosts (1-based), or null. */
  readonly stage: number | null;
  /** Device nodes: requests in flight at once (1 = one at a time, as a phone's user; Infinity = unlimited, as a camera). */
  readonly concurrency: number;
}

export interface TopoLink {
  readonly index: number;
  readonly name: string;
  readonly a: number;
  readonly b: number;
  readonly aToBMbps: number;
  readonly bToAMbps: number;
  /** One-way propagation latency, each direction. */
  readonly latencyMs: number;
  /** Std-dev of a per-message extra delay (half-normal), each direction. */
  readonly jitterMs: number;
  readonly trace?: TraceSpec;
  /**
   * 'auto': a link direction crossed by the routes of one node pair only is a per-flow cap,
   * one crossed by several is a max-min fair shared bottleneck. 'always': always shared
   * (the legacy `network.shared` links).
   */
  readonly sharing: 'auto' | 'always';
}

/** A route given in the scenario: `from` to `to` over these links, in order. */
export interface RouteSpec {
  readonly from: string;
  readonly to: string;
  readonly links: readonly string[];
}

export interface TopologySpec {
  nodes: TopoNode[];
  links: TopoLink[];
  routes: RouteSpec[];
  /**
   * Expanded from today's `devices` + `cloud` + `network.shared` form: each device's
   * route crosses exactly its access link and its `via` links, in whatever order
   * (the legacy form lists constraints, not a graph).
   */
  legacyVia?: Map<number, string[]>;
  /** Declared hosts (scenario hosts:): the machines whose cores their member nodes share; absent = none. */
  hosts?: HostSpec[];
}

/**
 * A physical machine several nodes sit on (sim/host.ts). A node's `host` names it; a
 * node whose host is not declared has its processor to itself (today's model).
 */
export interface HostSpec {
  readonly name: string;
  /** Cores shared by the member nodes' compute jobs (processor sharing) [assumption]. */
  readonly cores: number;
  /** Per compute op cost on this host (ms at full speed): wake-up, feeds, session call. */
  readonly dispatchMs: number;
  /** Per message cost (ms) each member node pays to send one and to receive one. */
  readonly messageMs: number;
  /** Member batching nodes' steps share the cores and pay dispatchMs too (a CPU server) [assumption: false = accelerator]. */
  readonly shareBatching?: boolean;
  /** Runnable jobs of other programs sharing the cores (processor sharing) [assumption]; default 0. */
  readonly backgroundLoad?: number;
}

/** One link crossed in one direction: link index * 2 + (0 for a -> b, 1 for b -> a). */
export type LinkDir = number;

export function linkDir(link: number, aToB: boolean): LinkDir { return link * 2 + (aToB ? 0 : 1); }
export function linkOf(ld: LinkDir): number { return ld >> 1; }
export function isAToB(ld: LinkDir): boolean { return (ld & 1) === 0; }

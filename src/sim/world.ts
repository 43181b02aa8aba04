/**
 * The simulated world of one system's run: every node of the topology with its processor
 * (topology/types.ts ProcessorSpec), the network compiled from the system's node pairs,
 * and per-node accounting (nodes.csv). Protocol branches (sim/driver.ts) execute
 * place-naming ops against it.
 *
 * Processors: `single` -> DeviceProcessor (FIFO + background lane), `workers` ->
 * WorkerPool (k FIFO servers), `batching` -> CloudCluster (continuous batching). A
 * batching node hosts one model part per system run (its replicas batch that part):
 * the HAT family's middle/full model, or a staged system's stage.
 */
import type { Engine } from '../core/engine.js';
import { InputError } from '../core/errors.js';
import type { ResolvedLatency } from '../compute/resolve.js';
import { singleShape, type SubmodelLatencyModel } from '../compute/types.js';
import { Network } from '../network/network.js';
import { makeRouter } from '../policy/router.js';
import type { PartSpec } from '../protocol/ops.js';
import type { CompiledNetwork } from '../topology/paths.js';
import type { TopoNode } from '../topology/types.js';
import { CloudCluster } from './cloud.js';
import { DeviceProcessor } from './device.js';
import { WorkerPool } from './workers.js';
import type { HostCpu } from './host.js';

export interface NodeStats {
  /** Jobs run (exec ops, device compute ops, cloud jobs started) and their queueing and compute time. */
  jobs: number;
  waitMs: number;
  computeMs: number;
  /** Exec ops submitted to the node (tasks that reached it; DTO-EE's measured arrival rate). */
  arrivals: number;
}

export class SimNode {
  readonly single: DeviceProcessor | null;
  readonly pool: WorkerPool | null;
  private clusterOf: CloudCluster | null = null;
  private clusterKey = '';
  readonly stats: NodeStats = { jobs: 0, waitMs: 0, computeMs: 0, arrivals: 0 };
  /** Slowdown factor over time (scenario environment.nodeSpeed; sim/environment.ts), or null. */
  slowdown: { at(tS: number): number } | null = null;

  /** `host`: the shared CPU of the host the node sits on (scenario hosts:, sim/host.ts), or null. */
  constructor(private readonly engine: Engine, readonly node: TopoNode, readonly latency: ResolvedLatency | null, readonly host: HostCpu | null = null) {
    const p = node.processor;
    this.single = p.kind === 'single' ? new DeviceProcessor(engine, host) : null;
    this.pool = p.kind === 'workers' ? new WorkerPool(engine, p.workers, host) : null;
  }

  get cluster(): CloudCluster | null { return this.clusterOf; }

  /** The batching cluster hosting `key` (created on first use; a node hosts one part per run). */
  clusterFor(key: string, model: () => SubmodelLatencyModel): CloudCluster {
    const p = this.node.processor;
    if (p.kind !== 'batching') throw new Error(`node ${this.node.name} is not a batching node (bug: callers check)`);
    if (this.clusterOf === null) {
      this.clusterOf = new CloudCluster(this.engine, p.gpus, model(), p.tokenBudget, p.maxBatchSeqs, makeRouter(p.router), this.host?.shareBatching ? this.host : null);
      this.clusterKey = key;
    } else if (this.clusterKey !== key) {
      throw new InputError(`nodes: batching node '${this.node.name}' would host both '${this.clusterKey}' and '${key}'; a batching node hosts one model part: give each stage its own node`, 'nodes');
    }
    return this.clusterOf;
  }

  /** Latency (ms) of one pass of `part` on this node's hardware. */
  partMs(part: PartSpec, tokens: number, ctx: number, logits: number): number {
    if (this.latency === null) throw new InputError(`nodes: node '${this.node.name}' has no hardware but a system runs ${part.key} on it; give it a hardware id`, 'nodes');
    const ms = this.latency.part(part.key, part).batchMs(singleShape(tokens, ctx), logits);
    return this.slowdown === null ? ms : ms * this.slowdown.at(this.engine.nowS);
  }

  partModel(part: PartSpec): SubmodelLatencyModel {
    if (this.latency === null) throw new InputError(`nodes: node '${this.node.name}' has no hardware but a system runs ${part.key} on it; give it a hardware id`, 'nodes');
    return this.latency.part(part.key, part);
  }

  /** Jobs waiting + in service (nodeLoad op). */
  get load(): number {
    if (this.single) return this.single.load;
    if (this.pool) return this.pool.load;
    return this.clusterOf ? this.clusterOf.activeLoad : 0;
  }

  busyMs(): number {
    if (this.single) return this.single.busyMs;
    if (this.pool) return this.pool.busyMs;
    let ms = 0;
    if (this.clusterOf) for (const r of this.clusterOf.replicas) ms += r.busyMs;
    return ms;
  }

  /** Parallel servers (for utilisation): 1, k workers, or GPUs. */
  get servers(): number {
    const p = this.node.processor;
    return p.kind === 'single' ? 1 : p.kind === 'workers' ? p.workers : p.gpus;
  }
}

export class SimWorld {
  constructor(
    readonly engine: Engine,
    readonly nodes: SimNode[],
    readonly network: Network,
    readonly compiled: CompiledNetwork,
    readonly headerBytes: number,
  ) {}

  /** Network path and direction for a message from `from` to `to` (declared by the system's pairs). */
  path(from: number, to: number): { path: number; dir: 'up' | 'down' } {
    const p = this.compiled.lookup(from, to);
    if (p === undefined) {
      throw new Error(`send from ${this.nodes[from].node.name} to ${this.nodes[to].node.name}: the system did not declare this node pair (SystemDef.pairs; bug)`);
    }
    return p;
  }
}

/**
 * Memory feasibility: does each node hold the model parts a system places on it?
 * Weights at the catalog's precision (fp16), plus, on a device of the HAT family
 * (one request at a time), the KV cache of the longest request it serves when
 * `memory.kvCache` is max-context (the default), plus `memory.reserveGB` kept free
 * for the OS and runtime [assumption: activations and workspace are not counted].
 * A batching node holds one replica per GPU, so the check is per GPU; servers and
 * staged nodes are checked on weights only [assumption: their KV cache is managed
 * per batch and per pass].
 */
import { InputError } from '../core/errors.js';
import { componentSize } from '../model/catalog.js';
import type { ModelSpec, SplitPlan } from '../model/types.js';
import type { PartSpec } from '../protocol/ops.js';
import type { SystemDef } from '../protocol/context.js';
import type { TopoNode } from '../topology/types.js';

export function partWeightBytes(model: ModelSpec, adapterKind: SplitPlan['adapter']['kind'], p: Omit<PartSpec, 'key'>): number {
  let b = 0;
  if (p.embedding) b += componentSize(model, 'embedding').weightBytes;
  if (p.layers > 0) b += p.layers * componentSize(model, 'decoderLayer').weightBytes;
  if (p.adapter) b += componentSize(model, 'adapter', adapterKind).weightBytes;
  if (p.lmHead) b += componentSize(model, 'lmHead').weightBytes;
  return b;
}

/** The models a HAT-family system's parts come from: device layers, the server's, the device's whole-model slot. */
export interface PlacedModels {
  /** The device's input/output layers and adapter (split.deviceModel, default the served model). */
  device: ModelSpec;
  /** The server's middle or full model (the served model). */
  server: ModelSpec;
  /** The device's whole-model slot ('drafter' work: sd's drafter, device-only's model). */
  whole: ModelSpec;
}

/**
 * Weights the HAT family keeps on a device (its deviceWork) and on each GPU of its server
 * (its cloudWork; 0 for a serverless system), and the device's KV cache bytes per token of
 * context (every device-resident attention layer keeps one).
 */
export function deviceServerBytes(def: SystemDef, m: PlacedModels, plan: SplitPlan): { device: number; server: number; deviceKvBytesPerToken: number } {
  const w = new Set(def.deviceWork);
  const input = w.has('input') || w.has('slm'), output = w.has('output') || w.has('slm'), adapter = w.has('adapter') || w.has('slm');
  const k = plan.adapter.kind;
  const deviceLayers = (input ? plan.inputLayers : 0) + (output ? plan.outputLayers : 0);
  let device = partWeightBytes(m.device, k, { embedding: input, layers: deviceLayers, adapter, lmHead: output });
  let kv = deviceLayers * componentSize(m.device, 'decoderLayer').kvBytesPerToken + (adapter ? componentSize(m.device, 'adapter', k).kvBytesPerToken : 0);
  if (w.has('drafter')) {
    device += partWeightBytes(m.whole, k, { embedding: true, layers: m.whole.numLayers, adapter: false, lmHead: true });
    kv += m.whole.numLayers * componentSize(m.whole, 'decoderLayer').kvBytesPerToken;
  }
  const server = def.serverless ? 0 : def.cloudWork === 'full'
    ? partWeightBytes(m.server, k, { embedding: true, layers: m.server.numLayers, adapter: false, lmHead: true })
    : partWeightBytes(m.server, k, { embedding: false, layers: plan.middleLayers, adapter: false, lmHead: false });
  return { device, server, deviceKvBytesPerToken: kv };
}

/** What a node must hold: weights, and optionally a KV cache of `kvTokens` tokens at `kvBytesPerToken`. */
export interface MemoryNeed {
  weightBytes: number;
  kvBytes?: number;
  kvTokens?: number;
  /** Kept free on the node (memory.reserveGB). */
  reserveBytes?: number;
}

/** All a node must hold: weights + KV cache + reserve. */
export function totalBytes(n: MemoryNeed): number {
  return n.weightBytes + (n.kvBytes ?? 0) + (n.reserveBytes ?? 0);
}

/** Throw an InputError naming the node and the model when `need` exceeds its memory. */
export function checkFits(node: TopoNode, need: number | MemoryNeed, what: string, model: ModelSpec): void {
  const n: MemoryNeed = typeof need === 'number' ? { weightBytes: need } : need;
  const total = totalBytes(n);
  if (node.memoryBytes === null || total <= node.memoryBytes) return;
  const gb = (x: number) => (x / 1e9).toFixed(2);
  const parts = [`${gb(n.weightBytes)} GB of weights`];
  if (n.kvBytes) parts.push(`${gb(n.kvBytes)} GB of KV cache for its longest request, ${n.kvTokens} tokens`);
  if (n.reserveBytes) parts.push(`${gb(n.reserveBytes)} GB reserved (memory.reserveGB)`);
  throw new InputError(
    `nodes: '${node.name}' (${node.hardware ?? 'no hardware'}, ${gb(node.memoryBytes)} GB) cannot hold ${what} of ${model.id} ` +
      `(${parts.join(' + ')} = ${gb(total)} GB): give it more memory (memoryGB), a larger board, a smaller or pruned model (models:), fewer layers` +
      (n.kvBytes ? ', or shorter requests (memory.kvCache: none counts weights only)' : ''),
    'nodes',
  );
}

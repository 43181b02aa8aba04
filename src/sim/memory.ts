/**
 * Memory feasibility: does each node hold the model parts a system places on it?
 * [assumption] Weights only (fp16 as the catalog says); KV cache and activations are
 * not counted, so a part that passes may still run out of memory at long contexts.
 * A batching node holds one replica per GPU, so the check is per GPU.
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

/** Weights the HAT family keeps on a device (its deviceWork) and on each GPU of its server (its cloudWork). */
export function deviceServerBytes(def: SystemDef, model: ModelSpec, plan: SplitPlan, drafter: ModelSpec): { device: number; server: number } {
  const w = new Set(def.deviceWork);
  const input = w.has('input') || w.has('slm'), output = w.has('output') || w.has('slm'), adapter = w.has('adapter') || w.has('slm');
  const k = plan.adapter.kind;
  let device = partWeightBytes(model, k, { embedding: input, layers: (input ? plan.inputLayers : 0) + (output ? plan.outputLayers : 0), adapter, lmHead: output });
  if (w.has('drafter')) device += partWeightBytes(drafter, k, { embedding: true, layers: drafter.numLayers, adapter: false, lmHead: true });
  const server = def.cloudWork === 'full'
    ? partWeightBytes(model, k, { embedding: true, layers: model.numLayers, adapter: false, lmHead: true })
    : partWeightBytes(model, k, { embedding: false, layers: plan.middleLayers, adapter: false, lmHead: false });
  return { device, server };
}

/** Throw an InputError naming the node when `bytes` of `what` exceed its memory. */
export function checkFits(node: TopoNode, bytes: number, what: string, model: ModelSpec): void {
  if (node.memoryBytes === null || bytes <= node.memoryBytes) return;
  const gb = (x: number) => (x / 1e9).toFixed(2);
  throw new InputError(
    `nodes: '${node.name}' (${node.hardware ?? 'no hardware'}, ${gb(node.memoryBytes)} GB) cannot hold ${what} of ${model.id} ` +
      `(${gb(bytes)} GB of weights): give it more memory (memoryGB), a larger board, a smaller or pruned model, or fewer layers`,
    'nodes',
  );
}

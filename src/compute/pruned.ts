/** Roofline latency of a pruned model (model/pruning.ts): the sum over its kept layers at their own FFN widths. */
import type { PruningSpec } from '../model/pruning.js';
import type { ModelSpec } from '../model/types.js';
import type { HardwareProfile } from './hardware.js';
import { rooflineComponent } from './roofline.js';
import type { BatchShape } from './types.js';

/** One forward pass of the whole (pruned) model over a batch: embedding + layers + LM head. */
export function prunedFullModelMs(model: ModelSpec, p: PruningSpec | null, hw: HardwareProfile, shape: BatchShape): number {
  const widths = p ? p.ffnWidths : new Array<number>(model.numLayers).fill(model.intermediateSize);
  let ms = rooflineComponent(model, 'embedding', 'attention-block', hw).batchMs(shape) + rooflineComponent(model, 'lmHead', 'attention-block', hw).batchMs(shape);
  for (const f of widths) ms += rooflineComponent({ ...model, intermediateSize: f }, 'decoderLayer', 'attention-block', hw).batchMs(shape);
  return ms;
}

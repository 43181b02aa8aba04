/**
 * Submodel latency = composition of component latency models (see the
 * composition rules in model/types.ts):
 *   input   = embedding + inputLayers x decoderLayer
 *   adapter = adapter
 *   output  = outputLayers x decoderLayer + lmHead (only when logitsTokens > 0)
 *   middle  = middleLayers x decoderLayer
 *   full, drafter = embedding + numLayers x decoderLayer + lmHead
 */
import type { ComponentId, ModelSpec, SplitPlan, SubmodelId } from '../model/types.js';
import type { BatchShape, ComponentLatencyModel, LatencySource, SubmodelLatencyModel } from './types.js';

const SOURCE_RANK: Record<LatencySource, number> = { estimate: 0, imported: 1, measured: 2 };

/** The least trustworthy of the given sources (estimate < imported < measured). */
export function worstSource(sources: readonly LatencySource[]): LatencySource {
  let worst: LatencySource = 'measured';
  for (const s of sources) if (SOURCE_RANK[s] < SOURCE_RANK[worst]) worst = s;
  return worst;
}

export interface Composition {
  embedding: boolean;
  layers: number;
  adapter: boolean;
  lmHead: boolean;
}

export function submodelComposition(submodel: SubmodelId, plan: SplitPlan, model: ModelSpec): Composition {
  switch (submodel) {
    case 'input':
      return { embedding: true, layers: plan.inputLayers, adapter: false, lmHead: false };
    case 'adapter':
      return { embedding: false, layers: 0, adapter: true, lmHead: false };
    case 'output':
      return { embedding: false, layers: plan.outputLayers, adapter: false, lmHead: true };
    case 'middle':
      return { embedding: false, layers: plan.middleLayers, adapter: false, lmHead: false };
    case 'full':
    case 'drafter':
      return { embedding: true, layers: model.numLayers, adapter: false, lmHead: true };
    default: {
      const never: never = submodel;
      throw new Error(`unknown submodel ${String(never)}`);
    }
  }
}

/** Components a submodel uses (the LM head counted as used when the submodel has one). */
export function submodelComponents(submodel: SubmodelId, plan: SplitPlan, model: ModelSpec): ComponentId[] {
  return compositionComponents(submodelComposition(submodel, plan, model));
}

export function composeSubmodel(
  submodel: SubmodelId,
  plan: SplitPlan,
  model: ModelSpec,
  components: Record<ComponentId, ComponentLatencyModel>,
): SubmodelLatencyModel {
  return composeParts(submodel, submodelComposition(submodel, plan, model), components);
}

/** Components a composition uses. */
export function compositionComponents(c: Composition): ComponentId[] {
  const out: ComponentId[] = [];
  if (c.embedding) out.push('embedding');
  if (c.layers > 0) out.push('decoderLayer');
  if (c.adapter) out.push('adapter');
  if (c.lmHead) out.push('lmHead');
  return out;
}

/**
 * Latency of any composition of components (a pipeline stage of a staged system, an exit
 * head): embedding? + layers x decoderLayer + adapter? + lmHead (when logits are asked).
 * `submodel` labels it.
 */
export function composeParts(
  submodel: SubmodelId,
  c: Composition,
  components: Record<ComponentId, ComponentLatencyModel>,
): SubmodelLatencyModel {
  const used = compositionComponents(c);
  const source = worstSource(used.map((id) => components[id].source));
  const embedding = c.embedding ? components.embedding : null;
  const layer = c.layers > 0 ? components.decoderLayer : null;
  const layers = c.layers;
  const adapter = c.adapter ? components.adapter : null;
  const lmHead = c.lmHead ? components.lmHead : null;
  // Reused scratch shape for the LM head so batchMs does not allocate.
  const headShape: BatchShape = { seqs: 1, tokens: 0, tokCtx: 0, ctx: 0, tokSq: 0 };
  return {
    submodel,
    source,
    batchMs(shape: BatchShape, logitsTokens: number): number {
      let ms = 0;
      if (embedding !== null) ms += embedding.batchMs(shape);
      if (layer !== null) ms += layers * layer.batchMs(shape);
      if (adapter !== null) ms += adapter.batchMs(shape);
      if (lmHead !== null && logitsTokens > 0) {
        headShape.seqs = shape.seqs;
        headShape.tokens = logitsTokens;
        headShape.tokSq = logitsTokens * logitsTokens;
        ms += lmHead.batchMs(headShape);
      }
      return ms;
    },
  };
}

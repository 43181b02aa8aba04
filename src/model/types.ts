/** Architecture of a decoder-only LLM (LLaMA family) and how it is cut. */

export interface ModelSpec {
  /** Catalog id, e.g. "llama2-7b". Used in calibration paths. */
  id: string;
  name: string;
  numLayers: number;
  hiddenSize: number;
  intermediateSize: number;
  numHeads: number;
  numKvHeads: number;
  vocabSize: number;
  /** Bytes per weight element (2 = fp16). */
  weightBytesPerElem: number;
  /** Bytes per activation / KV element (2 = fp16). */
  activationBytesPerElem: number;
  /** Maximum context length. */
  maxContext: number;
}

/**
 * A split plan: how many decoder layers go to the device's input submodel,
 * the cloud's middle submodel and the device's output submodel.
 * inputLayers + middleLayers + outputLayers === model.numLayers.
 */
export interface SplitPlan {
  inputLayers: number;
  middleLayers: number;
  outputLayers: number;
  /** Adapter joining input and output submodels on the device (drafting SLM). */
  adapter: AdapterSpec;
}

export interface AdapterSpec {
  /** "attention-block": one attention block + norm (self-speculative style); "mlp": 2-layer MLP; "decoder-layer": one full decoder layer. */
  kind: 'attention-block' | 'mlp' | 'decoder-layer';
}

/**
 * The smallest units a latency model is defined for. Submodels are composed
 * from them (see compute/submodel.ts):
 *   input  = embedding + inputLayers x decoderLayer
 *   adapter = adapter
 *   middle = middleLayers x decoderLayer
 *   output = outputLayers x decoderLayer + lmHead
 *   full   = embedding + numLayers x decoderLayer + lmHead
 */
export type ComponentId = 'embedding' | 'decoderLayer' | 'adapter' | 'lmHead';
export const COMPONENT_IDS: readonly ComponentId[] = ['embedding', 'decoderLayer', 'adapter', 'lmHead'];

/** Static sizes of one component, per the catalog. */
export interface ComponentSize {
  params: number;
  weightBytes: number;
  /** Forward FLOPs per new token, excluding attention over the context. */
  flopsPerToken: number;
  /** Attention FLOPs per (new token x context token) pair. */
  attnFlopsPerTokenCtx: number;
  /** KV-cache bytes per token held by this component (0 for embedding / head). */
  kvBytesPerToken: number;
}

/** What runs where, in the protocol's vocabulary. */
export type SubmodelId =
  | 'input'    // device: embedding + input layers
  | 'adapter'  // device: drafting adapter
  | 'output'   // device: output layers + final norm + LM head
  | 'middle'   // cloud: middle layers
  | 'full'     // cloud (cloud, sd baselines): the whole LLM
  | 'drafter'; // device (sd baseline): an independent small LLM, whole

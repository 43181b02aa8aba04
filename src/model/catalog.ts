/**
 * Model catalog: architecture dimensions of the LLMs the simulator knows,
 * static per-component sizes (params, bytes, FLOPs, KV bytes) and split plans.
 */
import { InputError } from '../core/errors.js';
import type { AdapterSpec, ComponentId, ComponentSize, ModelSpec, SplitPlan } from './types.js';

export type AdapterKind = AdapterSpec['kind'];
export const ADAPTER_KINDS: readonly AdapterKind[] = ['attention-block', 'mlp', 'decoder-layer'];

export const MODELS: Record<string, ModelSpec> = {
  // LLaMA-2-7B (same dimensions as Vicuna-7B).
  'llama2-7b': {
    id: 'llama2-7b',
    name: 'LLaMA-2-7B',
    numLayers: 32,
    hiddenSize: 4096,
    intermediateSize: 11008,
    numHeads: 32,
    numKvHeads: 32,
    vocabSize: 32000,
    weightBytesPerElem: 2,
    activationBytesPerElem: 2,
    maxContext: 4096,
  },
  'llama2-13b': {
    id: 'llama2-13b',
    name: 'LLaMA-2-13B',
    numLayers: 40,
    hiddenSize: 5120,
    intermediateSize: 13824,
    numHeads: 40,
    numKvHeads: 40,
    vocabSize: 32000,
    weightBytesPerElem: 2,
    activationBytesPerElem: 2,
    maxContext: 4096,
  },
  'tinyllama-1.1b': {
    id: 'tinyllama-1.1b',
    name: 'TinyLlama-1.1B',
    numLayers: 22,
    hiddenSize: 2048,
    intermediateSize: 5632,
    numHeads: 32,
    numKvHeads: 4,
    vocabSize: 32000,
    weightBytesPerElem: 2,
    activationBytesPerElem: 2,
    maxContext: 2048,
  },
  // A tiny LLaMA-shaped model for fast tests and CI calibration runs.
  'tiny-test': {
    id: 'tiny-test',
    name: 'tiny-test (4 layers, hidden 256)',
    numLayers: 4,
    hiddenSize: 256,
    intermediateSize: 688,
    numHeads: 8,
    numKvHeads: 4,
    vocabSize: 1024,
    weightBytesPerElem: 2,
    activationBytesPerElem: 2,
    maxContext: 4096,
  },
  // FedSpine's RoBERTa-class model: RoBERTa-base's dimensions (12 layers,
  // hidden 768, 12 heads, FFN 3072, vocabulary 50265, 512 positions) in the
  // catalog's LLaMA-shaped layout [assumption]: the catalog knows gated FFNs
  // only (3 FFN matrices where RoBERTa has 2), so its FFN FLOPs and bytes are
  // 1.5x RoBERTa's; the id says "sized", not "roberta-base".
  'roberta-base-sized': {
    id: 'roberta-base-sized',
    name: 'RoBERTa-base-sized (LLaMA-shaped layers)',
    numLayers: 12,
    hiddenSize: 768,
    intermediateSize: 3072,
    numHeads: 12,
    numKvHeads: 12,
    vocabSize: 50265,
    weightBytesPerElem: 2,
    activationBytesPerElem: 2,
    maxContext: 512,
  },
  // A small LLaMA-family model trained in this project on the Brown Corpus
  // (src/train/, weights in models/brown-small/): real logits for quality paths.
  'brown-small': {
    id: 'brown-small',
    name: 'brown-small (trained here: 4 layers, hidden 128)',
    numLayers: 4,
    hiddenSize: 128,
    intermediateSize: 352,
    numHeads: 4,
    numKvHeads: 2,
    vocabSize: 1024,
    weightBytesPerElem: 4,
    activationBytesPerElem: 4,
    maxContext: 512,
  },
};

export function getModel(id: string): ModelSpec {
  const model = Object.prototype.hasOwnProperty.call(MODELS, id) ? MODELS[id] : undefined;
  if (!model) {
    throw new InputError(
      `unknown model id "${id}"; known models: ${Object.keys(MODELS).join(', ')}`,
      'model',
    );
  }
  return model;
}

export function headDim(model: ModelSpec): number {
  return model.hiddenSize / model.numHeads;
}

/** Width of the K (or V) projection output: numKvHeads * headDim. */
function kvDim(model: ModelSpec): number {
  return model.numKvHeads * headDim(model);
}

/** Parameters of q, k, v, o projections (no biases in the LLaMA family). */
function attentionProjParams(model: ModelSpec): number {
  const h = model.hiddenSize;
  return h * (h + 2 * kvDim(model) + h);
}

/** Parameters of the gated MLP (gate, up, down). */
function mlpParams(model: ModelSpec): number {
  return 3 * model.hiddenSize * model.intermediateSize;
}

/**
 * Elementwise FLOPs per token (small next to the matmuls; counted so that
 * tiny models are not all-zero): RMSNorm ~4h per norm, residual add h,
 * RoPE ~3 per rotated element of q and k, SiLU*up ~4 per intermediate element.
 */
function normFlops(model: ModelSpec): number {
  return 4 * model.hiddenSize;
}
function attentionElementwiseFlops(model: ModelSpec): number {
  return normFlops(model) + model.hiddenSize + 3 * (model.hiddenSize + kvDim(model));
}
function mlpElementwiseFlops(model: ModelSpec): number {
  return normFlops(model) + model.hiddenSize + 4 * model.intermediateSize;
}

function attentionBlockSize(model: ModelSpec): ComponentSize {
  const h = model.hiddenSize;
  const matmulParams = attentionProjParams(model);
  const params = matmulParams + h; // + input RMSNorm weight
  return {
    params,
    weightBytes: params * model.weightBytesPerElem,
    flopsPerToken: 2 * matmulParams + attentionElementwiseFlops(model),
    // QK^T and AV: 2 FLOPs per multiply-add, 2 matmuls, numHeads*headDim wide.
    attnFlopsPerTokenCtx: 4 * model.numHeads * headDim(model),
    kvBytesPerToken: 2 * kvDim(model) * model.activationBytesPerElem,
  };
}

function decoderLayerSize(model: ModelSpec): ComponentSize {
  const h = model.hiddenSize;
  const matmulParams = attentionProjParams(model) + mlpParams(model);
  const params = matmulParams + 2 * h; // + two RMSNorm weights
  return {
    params,
    weightBytes: params * model.weightBytesPerElem,
    flopsPerToken: 2 * matmulParams + attentionElementwiseFlops(model) + mlpElementwiseFlops(model),
    attnFlopsPerTokenCtx: 4 * model.numHeads * headDim(model),
    kvBytesPerToken: 2 * kvDim(model) * model.activationBytesPerElem,
  };
}

/**
 * Static size of one component. `weightBytes` is the whole component's
 * weights; for the embedding, a forward pass only touches `tokens` rows
 * (the roofline accounts for that).
 */
export function componentSize(
  model: ModelSpec,
  component: ComponentId,
  adapterKind: AdapterKind = 'attention-block',
): ComponentSize {
  const h = model.hiddenSize;
  switch (component) {
    case 'embedding': {
      const params = model.vocabSize * h;
      return {
        params,
        weightBytes: params * model.weightBytesPerElem,
        flopsPerToken: 0, // a gather
        attnFlopsPerTokenCtx: 0,
        kvBytesPerToken: 0,
      };
    }
    case 'decoderLayer':
      return decoderLayerSize(model);
    case 'lmHead': {
      const matmulParams = model.vocabSize * h;
      const params = matmulParams + h; // + final RMSNorm
      return {
        params,
        weightBytes: params * model.weightBytesPerElem,
        flopsPerToken: 2 * matmulParams + normFlops(model),
        attnFlopsPerTokenCtx: 0,
        kvBytesPerToken: 0,
      };
    }
    case 'adapter':
      switch (adapterKind) {
        case 'attention-block':
          return attentionBlockSize(model);
        case 'decoder-layer':
          return decoderLayerSize(model);
        case 'mlp': {
          const matmulParams = 2 * h * h;
          const params = matmulParams + h;
          return {
            params,
            weightBytes: params * model.weightBytesPerElem,
            flopsPerToken: 2 * matmulParams + normFlops(model) + 4 * h,
            attnFlopsPerTokenCtx: 0,
            kvBytesPerToken: 0,
          };
        }
        default: {
          const never: never = adapterKind;
          throw new InputError(
            `unknown adapter kind "${String(never)}"; allowed: ${ADAPTER_KINDS.join(', ')}`,
            'split.adapter',
          );
        }
      }
    default: {
      const never: never = component;
      throw new Error(`unknown component ${String(never)}`);
    }
  }
}

/** Total parameters of the whole LLM (embedding + layers + final norm + LM head), untied head. */
export function totalParams(model: ModelSpec): number {
  return (
    componentSize(model, 'embedding').params +
    model.numLayers * componentSize(model, 'decoderLayer').params +
    componentSize(model, 'lmHead').params
  );
}

/** Bytes of one token's hidden state crossing the network (7B fp16: 8192). */
export function hiddenStateBytesPerToken(model: ModelSpec): number {
  return model.hiddenSize * model.activationBytesPerElem;
}

function checkLayerCount(value: number, field: string, max: number, model: ModelSpec): void {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new InputError(
      `${field} = ${String(value)} is invalid for model ${model.id} (${model.numLayers} layers): ` +
        `must be an integer in [1, ${max}] so that input, middle and output submodels each get >= 1 layer`,
      field,
    );
  }
}

/**
 * Build a split plan: inputLayers on the device's input submodel, outputLayers
 * on its output submodel, the rest (>= 1) in the cloud's middle submodel.
 */
export function makeSplitPlan(
  model: ModelSpec,
  inputLayers: number,
  outputLayers: number,
  adapterKind: AdapterKind,
): SplitPlan {
  const maxDeviceLayers = model.numLayers - 2;
  checkLayerCount(inputLayers, 'split.inputLayers', maxDeviceLayers, model);
  checkLayerCount(outputLayers, 'split.outputLayers', maxDeviceLayers, model);
  const middleLayers = model.numLayers - inputLayers - outputLayers;
  if (middleLayers < 1) {
    throw new InputError(
      `split.inputLayers + split.outputLayers = ${inputLayers + outputLayers} leaves ${middleLayers} middle layers ` +
        `for model ${model.id} (${model.numLayers} layers): allowed sum is at most ${model.numLayers - 1}`,
      'split.outputLayers',
    );
  }
  if (!ADAPTER_KINDS.includes(adapterKind)) {
    throw new InputError(
      `split.adapter = "${String(adapterKind)}" is invalid; allowed: ${ADAPTER_KINDS.join(', ')}`,
      'split.adapter',
    );
  }
  return { inputLayers, middleLayers, outputLayers, adapter: { kind: adapterKind } };
}

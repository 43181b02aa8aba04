/**
 * Roofline latency estimate of one component from data-sheet hardware
 * figures: fixed overhead + max(compute time, memory time). Always labelled
 * source 'estimate'; calibration files win over it.
 */
import { componentSize, type AdapterKind } from '../model/catalog.js';
import type { ComponentId, ModelSpec } from '../model/types.js';
import type { HardwareProfile } from './hardware.js';
import type { BatchShape, ComponentLatencyModel } from './types.js';

/** The FLOPs and bytes moved by one forward pass of a component over a batch. */
export interface RooflineWork {
  flops: number;
  bytes: number;
}

/**
 * Work of one pass (for tests and reports; the latency model below computes
 * the same thing without allocating).
 *   flops = flopsPerToken*tokens + attnFlopsPerTokenCtx*(tokCtx + tokSq/2)
 *   bytes = weights (embedding: only the rows gathered)
 *         + KV read  kvBytesPerToken*(ctx + tokens)
 *         + KV write kvBytesPerToken*tokens
 *         + activations in/out 2*tokens*hidden*actBytes (lmHead: + logits out)
 */
export function rooflineWork(
  model: ModelSpec,
  component: ComponentId,
  adapterKind: AdapterKind,
  shape: BatchShape,
): RooflineWork {
  const c = makeCoefficients(model, component, adapterKind);
  return {
    flops: c.flopsPerToken * shape.tokens + c.attnFlopsPerTokenCtx * (shape.tokCtx + shape.tokSq / 2),
    bytes: c.fixedBytes + c.bytesPerToken * shape.tokens + c.bytesPerCtx * shape.ctx,
  };
}

interface Coefficients {
  flopsPerToken: number;
  attnFlopsPerTokenCtx: number;
  fixedBytes: number;
  bytesPerToken: number;
  bytesPerCtx: number;
}

function makeCoefficients(model: ModelSpec, component: ComponentId, adapterKind: AdapterKind): Coefficients {
  const size = componentSize(model, component, adapterKind);
  const hiddenActBytes = model.hiddenSize * model.activationBytesPerElem;
  if (component === 'embedding') {
    // Gather: read `tokens` rows of the table, write `tokens` hidden states.
    return {
      flopsPerToken: size.flopsPerToken,
      attnFlopsPerTokenCtx: 0,
      fixedBytes: 0,
      bytesPerToken: model.hiddenSize * model.weightBytesPerElem + hiddenActBytes,
      bytesPerCtx: 0,
    };
  }
  const logitsBytesPerToken = component === 'lmHead' ? model.vocabSize * model.activationBytesPerElem : 0;
  return {
    flopsPerToken: size.flopsPerToken,
    attnFlopsPerTokenCtx: size.attnFlopsPerTokenCtx,
    fixedBytes: size.weightBytes,
    // KV read of the new tokens' own keys/values + KV write + activations in/out (+ logits).
    bytesPerToken: 2 * size.kvBytesPerToken + 2 * hiddenActBytes + logitsBytesPerToken,
    bytesPerCtx: size.kvBytesPerToken,
  };
}

export function rooflineComponent(
  model: ModelSpec,
  component: ComponentId,
  adapterKind: AdapterKind,
  hw: HardwareProfile,
): ComponentLatencyModel {
  const c = makeCoefficients(model, component, adapterKind);
  const msPerFlop = 1000 / (hw.peakFlops * hw.computeEfficiency);
  const msPerByte = 1000 / (hw.memBandwidthBps * hw.memoryEfficiency);
  const overheadMs = hw.overheadMsPerCall;
  const { flopsPerToken, attnFlopsPerTokenCtx, fixedBytes, bytesPerToken, bytesPerCtx } = c;
  return {
    component,
    source: 'estimate',
    origin: `roofline(${hw.id})`,
    batchMs(shape: BatchShape): number {
      const flops = flopsPerToken * shape.tokens + attnFlopsPerTokenCtx * (shape.tokCtx + shape.tokSq * 0.5);
      const bytes = fixedBytes + bytesPerToken * shape.tokens + bytesPerCtx * shape.ctx;
      const computeMs = flops * msPerFlop;
      const memoryMs = bytes * msPerByte;
      return overheadMs + (computeMs > memoryMs ? computeMs : memoryMs);
    },
  };
}

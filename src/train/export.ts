/**
 * Export trained weights into the project's ONNX graphs (calibrate/graph.ts,
 * fused variant), one folder in the `--onnx-dir` contract:
 *   embedding.onnx, decoderLayer.onnx (= layer 0, what calibration and the
 *   live runner time), decoderLayer.x2.onnx and decoderLayer.x<L>.onnx (the
 *   first 2 and all layers, for the layer-scaling check and a whole-model pass), layer.<i>.onnx (each trained
 *   layer alone), adapter.onnx (when adapter weights are given), lmHead.onnx;
 *   each with its `<file>.data` external weights.
 */
import { mkdirSync } from 'node:fs';
import { buildPartGraph, type GraphVariant, type PartId, type WeightProvider } from '../calibrate/graph.js';
import type { ModelSpec } from '../model/types.js';
import { kvDimOf } from './model.js';

function need(values: Map<string, Float32Array>, name: string): Float32Array {
  const v = values.get(name);
  if (!v) throw new Error(`export: trained weight ${name} is missing`);
  return v;
}

/** Packed [q | k | v] columns of a [H, H + 2 kvDim] matrix from [H,H], [H,kv], [H,kv]. */
export function packQkv(q: Float32Array, k: Float32Array, v: Float32Array, h: number, kv: number): Float32Array {
  const w = h + 2 * kv;
  const out = new Float32Array(h * w);
  for (let r = 0; r < h; r++) {
    out.set(q.subarray(r * h, r * h + h), r * w);
    out.set(k.subarray(r * kv, r * kv + kv), r * w + h);
    out.set(v.subarray(r * kv, r * kv + kv), r * w + h + kv);
  }
  return out;
}

/**
 * Map a graph initialiser name to the trained tensor: `l<li>.` is decoder layer
 * `offset + li` (or the adapter), `attn.qkv` is packed from q, k, v.
 */
export function provider(m: ModelSpec, values: Map<string, Float32Array>, target: { layerOffset: number } | 'adapter'): WeightProvider {
  return (name) => {
    const lm = /^l(\d+)\.(.*)$/.exec(name);
    if (lm) {
      const prefix = target === 'adapter' ? 'adapter.' : `layers.${target.layerOffset + Number(lm[1])}.`;
      const rest = lm[2];
      if (rest === 'attn.qkv.weight') {
        return packQkv(need(values, `${prefix}attn.q.weight`), need(values, `${prefix}attn.k.weight`), need(values, `${prefix}attn.v.weight`), m.hiddenSize, kvDimOf(m));
      }
      return need(values, `${prefix}${rest}`);
    }
    return need(values, name);
  };
}

export interface ExportedParts { dir: string; files: Record<string, string> }

export function exportOnnx(m: ModelSpec, values: Map<string, Float32Array>, dir: string, variant: GraphVariant = 'fused'): ExportedParts {
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {};
  const build = (key: string, part: PartId, w: WeightProvider, layers = 1): void => {
    files[key] = buildPartGraph({ model: m, part, layers, variant, dir, name: key, weights: w }).path;
  };
  build('embedding', 'embedding', provider(m, values, { layerOffset: 0 }));
  build('decoderLayer', 'decoderLayer', provider(m, values, { layerOffset: 0 }));
  // stacks of the first 2 and of all layers: calibration's layer-scaling check opens x2 and x4
  for (const k of new Set([2, m.numLayers])) if (k > 1 && k <= m.numLayers) build(`decoderLayer.x${k}`, 'decoderLayer', provider(m, values, { layerOffset: 0 }), k);
  for (let i = 0; i < m.numLayers; i++) build(`layer.${i}`, 'decoderLayer', provider(m, values, { layerOffset: i }));
  if (values.has('adapter.attn.q.weight')) build('adapter', 'adapter', provider(m, values, 'adapter'));
  build('lmHead', 'lmHead', provider(m, values, { layerOffset: 0 }));
  return { dir, files };
}

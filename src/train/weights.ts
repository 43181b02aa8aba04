/**
 * Weights on disk: `<name>.bin` (raw little-endian float32 tensors, one after
 * another) and `<name>.json` (index: model dims, tensor names, shapes and
 * offsets, SHA-256 of the .bin). Reading checks everything against the catalog
 * model and names the file and field of the first mismatch (InputError, exit 2).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';
import type { ParamShape } from './model.js';

export const WEIGHTS_FORMAT = 'hatsim-weights/1';

export interface TensorEntry { name: string; dims: number[]; offsetBytes: number; bytes: number }

export interface WeightsIndex {
  format: typeof WEIGHTS_FORMAT;
  model: string;
  dims: Pick<ModelSpec, 'numLayers' | 'hiddenSize' | 'intermediateSize' | 'numHeads' | 'numKvHeads' | 'vocabSize'>;
  bin: string;
  totalBytes: number;
  sha256: string;
  tensors: TensorEntry[];
}

export function dimsOfModel(m: ModelSpec): WeightsIndex['dims'] {
  return { numLayers: m.numLayers, hiddenSize: m.hiddenSize, intermediateSize: m.intermediateSize, numHeads: m.numHeads, numKvHeads: m.numKvHeads, vocabSize: m.vocabSize };
}

/** Write `<base>.bin` then `<base>.json` (a reader that sees the index also sees its data). */
export function saveWeights(base: string, m: ModelSpec, values: Map<string, Float32Array>, shapes: readonly ParamShape[]): WeightsIndex {
  const tensors: TensorEntry[] = [];
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const s of shapes) {
    const v = values.get(s.name);
    if (!v) throw new Error(`saveWeights: no tensor ${s.name}`);
    parts.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    tensors.push({ name: s.name, dims: s.dims, offsetBytes: off, bytes: v.byteLength });
    off += v.byteLength;
  }
  const bin = Buffer.concat(parts);
  const idx: WeightsIndex = {
    format: WEIGHTS_FORMAT, model: m.id, dims: dimsOfModel(m), bin: `${basename(base)}.bin`, totalBytes: bin.length,
    sha256: createHash('sha256').update(bin).digest('hex'), tensors,
  };
  writeFileAtomic(`${base}.bin`, bin);
  writeFileAtomic(`${base}.json`, JSON.stringify(idx) + '\n');
  return idx;
}

/**
 * Read weights and check them against the catalog model and the expected
 * shapes: format, model id, every dim, each tensor's name/shape/size, the
 * .bin's length and SHA-256.
 */
export function loadWeights(base: string, m: ModelSpec, shapes: readonly ParamShape[]): Map<string, Float32Array> {
  const jf = `${base}.json`;
  if (!existsSync(jf)) throw new InputError(`${jf}: weights index not found`, 'weights');
  let idx: WeightsIndex;
  try {
    idx = JSON.parse(readFileSync(jf, 'utf8')) as WeightsIndex;
  } catch (e) {
    throw new InputError(`${jf}: not valid JSON (${(e as Error).message}): the file is corrupt or truncated`, 'weights');
  }
  if (idx.format !== WEIGHTS_FORMAT) throw new InputError(`${jf}: field "format" is ${JSON.stringify(idx.format)}, expected "${WEIGHTS_FORMAT}"`, 'format');
  if (idx.model !== m.id) throw new InputError(`${jf}: field "model" is ${JSON.stringify(idx.model)}, expected "${m.id}"`, 'model');
  const want = dimsOfModel(m);
  for (const k of Object.keys(want) as (keyof WeightsIndex['dims'])[]) {
    const got = idx.dims?.[k];
    if (got !== want[k]) throw new InputError(`${jf}: field "dims.${k}" is ${String(got)} but catalog model ${m.id} has ${want[k]}: the checkpoint does not match the catalog dims`, `dims.${k}`);
  }
  const binPath = join(dirname(jf), String(idx.bin));
  if (!existsSync(binPath)) throw new InputError(`${binPath}: weights data not found (field "bin" of ${jf})`, 'bin');
  const bin = readFileSync(binPath);
  if (bin.length !== idx.totalBytes) throw new InputError(`${binPath}: ${bin.length} bytes, field "totalBytes" of ${jf} says ${idx.totalBytes}: the file is truncated or corrupt`, 'totalBytes');
  const sha = createHash('sha256').update(bin).digest('hex');
  if (sha !== idx.sha256) throw new InputError(`${binPath}: SHA-256 ${sha} does not match field "sha256" of ${jf}: the file is corrupt`, 'sha256');
  const byName = new Map((idx.tensors ?? []).map((t) => [t.name, t]));
  const out = new Map<string, Float32Array>();
  for (const s of shapes) {
    const t = byName.get(s.name);
    if (!t) throw new InputError(`${jf}: field "tensors" has no tensor "${s.name}" (model ${m.id} needs it)`, 'tensors');
    const n = s.dims.reduce((a, b) => a * b, 1);
    if (JSON.stringify(t.dims) !== JSON.stringify(s.dims) || t.bytes !== n * 4)
      throw new InputError(`${jf}: tensor "${s.name}" has dims ${JSON.stringify(t.dims)} (${t.bytes} bytes), expected ${JSON.stringify(s.dims)} for model ${m.id}`, `tensors.${s.name}`);
    if (t.offsetBytes + t.bytes > bin.length || t.offsetBytes % 4 !== 0) throw new InputError(`${jf}: tensor "${s.name}" lies outside ${binPath}`, `tensors.${s.name}`);
    const copy = new Float32Array(n);
    new Uint8Array(copy.buffer).set(bin.subarray(t.offsetBytes, t.offsetBytes + t.bytes));
    out.set(s.name, copy);
  }
  return out;
}

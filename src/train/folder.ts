/**
 * A trained model folder (models/<id>/): manifest.json, tokenizer.json,
 * weights.{json,bin}, optionally adapter.{json,bin}. Loading checks the
 * manifest's model id, the tokenizer's hash against the manifest and the
 * weights against the catalog dims; errors name the file and field.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../core/errors.js';
import { getModel } from '../model/catalog.js';
import type { ModelSpec } from '../model/types.js';
import { adapterShapes, baseShapes } from './model.js';
import { MANIFEST_FORMAT, type Manifest } from './pipeline.js';
import { Tokenizer } from './tokenizer.js';
import { loadWeights } from './weights.js';

export interface ModelFolder { dir: string; model: ModelSpec; manifest: Manifest; tokenizer: Tokenizer; values: Map<string, Float32Array>; hasAdapter: boolean }

export function readManifest(dir: string): Manifest {
  const f = join(dir, 'manifest.json');
  if (!existsSync(f)) throw new InputError(`${f}: not found (a model folder needs manifest.json; run hatsim train)`, 'model-dir');
  let man: Manifest;
  try {
    man = JSON.parse(readFileSync(f, 'utf8')) as Manifest;
  } catch (e) {
    throw new InputError(`${f}: not valid JSON (${(e as Error).message})`, 'manifest');
  }
  if (man.format !== MANIFEST_FORMAT) throw new InputError(`${f}: field "format" is ${JSON.stringify(man.format)}, expected "${MANIFEST_FORMAT}"`, 'format');
  return man;
}

export function loadModelFolder(dir: string, opts: { adapter?: boolean } = {}): ModelFolder {
  const man = readManifest(dir);
  const model = getModel(man.model);
  const tokFile = join(dir, man.tokenizer?.file ?? 'tokenizer.json');
  const tokenizer = Tokenizer.load(tokFile);
  if (tokenizer.sha256 !== man.tokenizer.sha256)
    throw new InputError(`${tokFile}: tokenizer sha256 ${tokenizer.sha256} differs from field "tokenizer.sha256" of ${join(dir, 'manifest.json')} (${man.tokenizer.sha256}): tokenizer mismatch`, 'tokenizer.sha256');
  if (tokenizer.vocabSize !== model.vocabSize)
    throw new InputError(`${tokFile}: field "vocabSize" is ${tokenizer.vocabSize}, catalog model ${model.id} has ${model.vocabSize}: tokenizer mismatch`, 'vocabSize');
  const values = loadWeights(join(dir, 'weights'), model, baseShapes(model));
  const hasAdapter = existsSync(join(dir, 'adapter.json'));
  if (opts.adapter) {
    if (!hasAdapter) throw new InputError(`${join(dir, 'adapter.json')}: not found (train the adapter: hatsim train --part adapter)`, 'adapter');
    for (const [k, v] of loadWeights(join(dir, 'adapter'), model, adapterShapes(model))) values.set(k, v);
  }
  return { dir, model, manifest: man, tokenizer, values, hasAdapter };
}

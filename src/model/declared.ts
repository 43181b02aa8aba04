/**
 * Models a scenario declares (its `models:` list): a pruned version of a catalog
 * model, described by `hatsim prune`'s pruning.json or inline (layers kept, FFN width
 * per kept layer; model/pruning.ts). A declared model stands wherever a model id is
 * asked for in that scenario (the served model, HAT's device layers, sd's drafter,
 * device-only's model, DTO-EE's stages); it is the pruning's equivalent ModelSpec, so
 * sizes, FLOPs, memory and roofline latency follow from the pruning description, and a
 * calibration file under its own id (calibration/<hw>/<id>/model.json) wins as usual.
 */
import { InputError } from '../core/errors.js';
import { getModel, MODELS } from './catalog.js';
import { checkPruning, prunedModelSpec, type PruningSpec } from './pruning.js';
import type { ModelSpec } from './types.js';

export interface DeclaredModel {
  /** The id the scenario uses (also the calibration files' model id). */
  id: string;
  /** Catalog id of the unpruned model. */
  base: string;
  pruning: PruningSpec;
  /** Where the description came from: a pruning.json path, or 'inline'. */
  source: string;
}

/** A declared model's ModelSpec, checked against its base (InputError naming `where`). */
export function declaredSpec(d: DeclaredModel, where = 'models'): ModelSpec {
  const base = getModel(d.base);
  checkPruning(base, d.pruning, `${where}.pruning`);
  return prunedModelSpec(base, d.pruning, d.id);
}

/** Every id a scenario may name: the catalog's and the scenario's own. */
export function knownModelIds(declared: readonly DeclaredModel[]): string[] {
  return [...Object.keys(MODELS), ...declared.map((d) => d.id)];
}

/** The model `id` names in a scenario: a declared one first, else the catalog's. */
export function lookupModel(id: string, declared: readonly DeclaredModel[], field = 'model'): ModelSpec {
  const d = declared.find((m) => m.id === id);
  if (d) return declaredSpec(d);
  if (Object.prototype.hasOwnProperty.call(MODELS, id)) return MODELS[id];
  throw new InputError(`${field}: unknown model id "${id}"; known models: ${knownModelIds(declared).join(', ')} (declare a pruned model under models:)`, field);
}

/** The pruning description of `id` when it is a declared model, else null. */
export function pruningOfModel(id: string, declared: readonly DeclaredModel[]): PruningSpec | null {
  return declared.find((m) => m.id === id)?.pruning ?? null;
}

/**
 * The model HAT-family devices run their input and output layers from (`split.deviceModel`):
 * a model with the target's hidden-state interface (hidden size, heads, vocabulary). For a
 * pruned model these are its first `inputLayers` and last `outputLayers` kept layers at their
 * own FFN widths [assumption: the server's middle layers stay the target's, unpruned]; the
 * returned spec's FFN width is the mean over exactly those layers, so sizes, FLOPs, KV bytes
 * and roofline latency of the device parts are the per-layer sums.
 */
export function devicePartsModel(target: ModelSpec, id: string, declared: readonly DeclaredModel[], inputLayers: number, outputLayers: number, field = 'split.deviceModel'): ModelSpec {
  const m = lookupModel(id, declared, field);
  const same: (keyof ModelSpec)[] = ['hiddenSize', 'numHeads', 'numKvHeads', 'vocabSize'];
  for (const k of same) {
    if (m[k] !== target[k]) {
      throw new InputError(`${field}: ${id} has ${String(k)} ${String(m[k])} but the served model ${target.id} has ${String(target[k])}; the device's layers must produce the hidden states the server's layers take (prune ${target.id} itself, or serve ${id}'s base)`, field);
    }
  }
  if (inputLayers + outputLayers > m.numLayers) {
    throw new InputError(`${field}: ${id} keeps ${m.numLayers} layers, fewer than split.inputLayers + split.outputLayers = ${inputLayers + outputLayers}`, field);
  }
  const p = pruningOfModel(id, declared);
  if (p === null) return m;
  const K = p.ffnWidths.length;
  const widths = [...p.ffnWidths.slice(0, inputLayers), ...p.ffnWidths.slice(K - outputLayers)];
  const mean = widths.reduce((a, b) => a + b, 0) / widths.length;
  return { ...m, intermediateSize: mean, name: `${m.name}; device layers' mean FFN ${mean.toFixed(1)}` };
}

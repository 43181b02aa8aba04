/** The live FedSpine runner's options and what it supports (checked before any process starts). */
import { InputError } from '../core/errors.js';
import type { FedConfig, LiveFedOptions } from '../fedspine/rounds.js';
import path from 'node:path';

/** The scenario's `live` block, or its defaults (model folder models/brown-small beside the scenarios directory). */
export function liveOptions(cfg: FedConfig): LiveFedOptions {
  return cfg.live ?? { modelDir: path.resolve('models/brown-small'), categories: null, evalWindows: 8, lr: 2e-3, alphaOverRank: 2, maxShardDocs: null, aggregation: { weighting: 'data', normalize: 'all' } };
}

/** Refuse what the live runner does not do (yet), naming the field. */
export function checkLiveFedScenario(cfg: FedConfig): void {
  if (cfg.space.ratioMax !== 0) throw new InputError(`space.ratioMax = ${cfg.space.ratioMax}: the live runner trains unpruned models only; set space.ratioMin and space.ratioMax to 0 (pruning live is not built)`, 'space.ratioMax');
  if (cfg.availability.kind !== 'always') throw new InputError(`availability.kind = ${cfg.availability.kind}: the live runner runs every device every round; use {kind: always}`, 'availability');
  if (cfg.rounds.deadlineS !== null) throw new InputError('rounds.deadlineS: the live runner runs synchronous rounds only; remove the deadline', 'rounds.deadlineS');
  for (const d of cfg.devices) if (d.link.trace) throw new InputError(`device ${d.name}: link.trace: bandwidth traces are not shaped live; give fixed rates`, 'devices.link.trace');
}

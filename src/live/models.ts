/**
 * What the live runner can run: it builds its ONNX graphs from catalog dimensions
 * (calibrate/graph.ts), one target model and one whole model on the device per
 * process. Declared (pruned) models and a device-only model other than sd's
 * drafter run in the simulator only; this says so with the field to change.
 */
import { InputError } from '../core/errors.js';
import { wholeModelIds } from '../protocol/registry.js';
import type { Scenario } from '../scenario/types.js';

export function checkLiveModels(s: Scenario): void {
  const declared = new Set(s.models.map((m) => m.id));
  const uses: [string, string | undefined][] = [
    ['model', s.model],
    ['split.deviceModel', s.split.deviceModel],
    ['policies.sd.drafterModel', s.systems.includes('sd') ? s.policies.sd.drafterModel : undefined],
  ];
  const wholeIds = wholeModelIds(s);
  for (const m of wholeIds) uses.push(['policies.deviceOnly.model', m]);
  for (const [field, id] of uses) {
    if (id !== undefined && declared.has(id)) {
      throw new InputError(`${field}: ${id} is a declared (pruned) model; the live runner builds its ONNX graphs from catalog models only, so run it in the simulator (hatsim run) or name a catalog model here`, field);
    }
  }
  if (s.split.deviceModel !== undefined && s.split.deviceModel !== s.model) {
    throw new InputError(`split.deviceModel: the live runner runs the device's layers from the served model (${s.model}); drop split.deviceModel for live runs`, 'split.deviceModel');
  }
  const drafter = s.policies.sd.drafterModel;
  for (const id of wholeIds) {
    if (id !== drafter) {
      throw new InputError(`policies.deviceOnly.model: the live runner holds one whole model per device (policies.sd.drafterModel = ${drafter}); set policies.deviceOnly.model to ${drafter} (or the drafter to ${id}) for a live run`, 'policies.deviceOnly.model');
    }
  }
}

/**
 * Pick a latency model per component for one (hardware, model) pair:
 * the calibration file's component when present (measured / imported),
 * else the data-sheet roofline estimate. Then compose submodels on demand.
 */
import { InputError } from '../core/errors.js';
import { COMPONENT_IDS, type ComponentId, type ModelSpec, type SplitPlan, type SubmodelId } from '../model/types.js';
import { calibratedComponent, calibrationPath, findCalibration, loadCalibration, type CalibrationFile } from './calibration.js';
import { HARDWARE, hasHardware } from './hardware.js';
import { rooflineComponent } from './roofline.js';
import { composeParts, composeSubmodel, compositionComponents, submodelComponents, type Composition } from './submodel.js';
import type { ComponentLatencyModel, LatencyProvenance, SubmodelLatencyModel } from './types.js';

export interface ResolveOptions {
  hardwareId: string;
  model: ModelSpec;
  plan: SplitPlan;
  calibrationDir: string;
  /**
   * Components that must be resolvable (default: all). A component outside
   * this list that has neither calibration nor a data-sheet profile only
   * fails when a submodel using it is requested.
   */
  required?: readonly ComponentId[];
}

export interface ResolvedLatency {
  submodel(id: SubmodelId): SubmodelLatencyModel;
  /** Any composition of the model's components (a stage of a staged system); cached by `key`. */
  part(key: string, c: Composition): SubmodelLatencyModel;
  provenance: LatencyProvenance;
}

export function resolveLatency(opts: ResolveOptions): ResolvedLatency {
  const { hardwareId, model, plan, calibrationDir } = opts;
  const required = opts.required ?? COMPONENT_IDS;
  const lookedAt = calibrationPath(calibrationDir, hardwareId, model.id);
  const filePath = findCalibration(calibrationDir, hardwareId, model.id);
  const file: CalibrationFile | null =
    filePath === null ? null : loadCalibration(filePath, { hardwareId, modelId: model.id });
  const hwKnown = hasHardware(hardwareId);
  const warnings: string[] = [];

  const unresolvable = (component: ComponentId): InputError =>
    new InputError(
      `no latency model for component "${component}" of model ${model.id} on hardware "${hardwareId}": ` +
        (file === null
          ? `no calibration file at ${lookedAt}`
          : `calibration file ${lookedAt} has no "${component}" component`) +
        `, and "${hardwareId}" is not a data-sheet hardware id (known: ${Object.keys(HARDWARE).join(', ')}); ` +
        `calibrate it (hatsim calibrate) or use a known hardware id`,
      'hardware',
    );

  const models = {} as Record<ComponentId, ComponentLatencyModel>;
  const missing = new Set<ComponentId>();
  const components = {} as LatencyProvenance['components'];
  for (const id of COMPONENT_IDS) {
    let m: ComponentLatencyModel | null = null;
    if (file !== null && filePath !== null && file.components[id] !== undefined) {
      m = calibratedComponent(file, id, filePath);
    } else if (hwKnown) {
      m = rooflineComponent(model, id, plan.adapter.kind, HARDWARE[hardwareId]);
      if (file !== null) {
        warnings.push(
          `calibration file ${filePath ?? lookedAt} has no "${id}" component; ` +
            `using the data-sheet roofline estimate for ${hardwareId}`,
        );
      }
    } else if (required.includes(id)) {
      throw unresolvable(id);
    }
    if (m === null) {
      missing.add(id);
      warnings.push(`no latency model for "${id}" on ${hardwareId} (${model.id}); submodels using it are unavailable`);
      components[id] = { source: 'estimate', origin: 'unavailable' };
    } else {
      models[id] = m;
      components[id] = { source: m.source, origin: m.origin };
    }
  }

  const provenance: LatencyProvenance = { hardwareId, modelId: model.id, components, warnings };
  const cache = new Map<SubmodelId, SubmodelLatencyModel>();
  const parts = new Map<string, SubmodelLatencyModel>();
  return {
    provenance,
    part(key: string, c: Composition): SubmodelLatencyModel {
      const cached = parts.get(key);
      if (cached !== undefined) return cached;
      for (const id of compositionComponents(c)) if (missing.has(id)) throw unresolvable(id);
      const built = composeParts('middle', c, models);
      parts.set(key, built);
      return built;
    },
    submodel(id: SubmodelId): SubmodelLatencyModel {
      const cached = cache.get(id);
      if (cached !== undefined) return cached;
      for (const c of submodelComponents(id, plan, model)) if (missing.has(c)) throw unresolvable(c);
      const built = composeSubmodel(id, plan, model, models);
      cache.set(id, built);
      return built;
    },
  };
}

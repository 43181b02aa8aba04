/** The registry of systems: one entry per protocol. Add a system here and in scenario/types.ts SYSTEM_IDS. */
import type { PolicySpec, SystemId } from '../scenario/types.js';
import type { SystemDef } from './context.js';
import { cloudOnly } from './systems/cloud.js';
import { hat, hatNoChunk } from './systems/hat.js';
import { sd } from './systems/sd.js';
import { staged } from './systems/staged.js';
import { dtoee } from './systems/dtoee.js';
import { ushape } from './systems/ushape.js';
import { deviceOnly } from './systems/device-only.js';

export const SYSTEMS: Record<SystemId, SystemDef> = {
  cloud: cloudOnly,
  ushape,
  sd,
  'hat-nochunk': hatNoChunk,
  hat,
  staged,
  dtoee,
  'device-only': deviceOnly,
};

/** The models the listed systems put in the device's whole-model slot themselves (device-only's), by id. */
export function wholeModelIds(s: { model: string; systems: readonly SystemId[]; policies: PolicySpec }): Set<string> {
  const ids = new Set<string>();
  for (const id of s.systems) {
    const own = SYSTEMS[id].wholeModel;
    if (own !== undefined) ids.add(own(s));
  }
  return ids;
}

/** The registry of systems: one entry per protocol. Add a system here and in scenario/types.ts SYSTEM_IDS. */
import type { SystemId } from '../scenario/types.js';
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

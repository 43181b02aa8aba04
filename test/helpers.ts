/** Shared test helpers: build scenarios in code on top of the shipped defaults. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseScenarioObject } from '../src/scenario/load.js';
import type { Scenario } from '../src/scenario/types.js';

export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SCENARIOS = join(REPO, 'scenarios');

type Obj = Record<string, unknown>;

function merge(a: Obj, b: Obj): Obj {
  const out: Obj = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const av = out[k];
    const bothObjects = v && typeof v === 'object' && !Array.isArray(v) && av && typeof av === 'object' && !Array.isArray(av);
    // A tagged union member (`kind`) is replaced whole when the kind changes.
    const sameKind = bothObjects && ((v as Obj).kind === undefined || (v as Obj).kind === (av as Obj).kind);
    out[k] = bothObjects && sameKind ? merge(av as Obj, v as Obj) : v;
  }
  return out;
}

/** One device (AGX Orin), one A6000, LLaMA-2-7B, no jitter, no shared links: a clean closed-form setting. */
export function scenario(over: Obj = {}): Scenario {
  const base: Obj = {
    name: 'test',
    seed: 7,
    model: 'llama2-7b',
    devices: [{ name: 'dev', count: 1, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 40, downlinkMbps: 80, latencyMs: 20, jitterMs: 0 } }],
    cloud: { hardware: 'a6000', gpus: 1 },
    workload: {
      arrival: { kind: 'poisson', ratePerS: 0.001 },
      promptTokens: { kind: 'fixed', tokens: 256 },
      outputTokens: { kind: 'fixed', tokens: 32 },
      requestsPerDevice: 5,
    },
  };
  return parseScenarioObject(merge(base, over), 'test scenario', { baseDir: SCENARIOS });
}

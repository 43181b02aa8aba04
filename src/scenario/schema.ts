/**
 * zod (v4) schema of a scenario file: types, ranges, defaults. Every field
 * carries a human-readable "what is allowed" message so validation errors say
 * e.g. `devices[1].link.uplinkMbps: must be a number > 0 (got -5)`.
 * Objects are strict: unknown keys are errors with a "did you mean" hint.
 * The schema's output is close to `Scenario` (src/scenario/types.ts); load.ts
 * resolves relative paths and the derived defaults (name, calibrationDir).
 */
import { z } from 'zod';
import { HAT_SYSTEMS, SYSTEM_IDS } from './types.js';
import { didYouMean } from './overrides.js';
import { PROCESSOR_KINDS } from '../topology/types.js';

// --- field builders with "what is allowed" messages -----------------------

interface NumRange { gt?: number; gte?: number; lt?: number; lte?: number }

function describeNumber(int: boolean, r: NumRange): string {
  const what = int ? 'an integer' : 'a number';
  const lo = r.gt !== undefined ? { v: r.gt, open: true } : r.gte !== undefined ? { v: r.gte, open: false } : undefined;
  const hi = r.lt !== undefined ? { v: r.lt, open: true } : r.lte !== undefined ? { v: r.lte, open: false } : undefined;
  if (lo && hi) return `must be ${what} in ${lo.open ? '(' : '['}${lo.v}, ${hi.v}${hi.open ? ')' : ']'}`;
  if (lo) return `must be ${what} ${lo.open ? '>' : '>='} ${lo.v}`;
  if (hi) return `must be ${what} ${hi.open ? '<' : '<='} ${hi.v}`;
  return `must be ${what}`;
}

function withRange<T extends z.ZodNumber | z.ZodInt>(base: T, r: NumRange, error: string): T {
  let s = base;
  if (r.gt !== undefined) s = s.gt(r.gt, { error }) as T;
  if (r.gte !== undefined) s = s.gte(r.gte, { error }) as T;
  if (r.lt !== undefined) s = s.lt(r.lt, { error }) as T;
  if (r.lte !== undefined) s = s.lte(r.lte, { error }) as T;
  return s;
}

/** A finite number within a range. */
export function num(r: NumRange = {}): z.ZodNumber {
  const error = describeNumber(false, r);
  return withRange(z.number({ error }), r, error);
}

/** A (safe) integer within a range. */
export function int(r: NumRange = {}): z.ZodInt {
  const error = describeNumber(true, r);
  return withRange(z.int({ error }), r, error);
}

export function str(): z.ZodString {
  return z.string({ error: 'must be a non-empty string' }).min(1, { error: 'must be a non-empty string' });
}

export function bool(): z.ZodBoolean {
  return z.boolean({ error: 'must be true or false' });
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T) {
  return z.enum(values, { error: `must be one of: ${values.join(', ')}` });
}

export function list<T extends z.ZodType>(el: T) {
  return z.array(el, { error: 'must be a list' });
}

/** A strict mapping; unknown keys produce "unknown key ... (did you mean ...?)". */
export function obj<S extends z.ZodRawShape>(shape: S) {
  const allowed = Object.keys(shape);
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        const parts = iss.keys.map((k) => {
          const hint = didYouMean(k, allowed);
          return `"${k}"${hint ? ` (did you mean "${hint}"?)` : ''}`;
        });
        return `unknown key${parts.length > 1 ? 's' : ''} ${parts.join(', ')}; allowed keys: ${allowed.join(', ')}`;
      }
      return `must be a mapping (key: value) with keys: ${allowed.join(', ')}`;
    },
  });
}

/** A union discriminated by `kind`, with a clear message for an unknown or missing kind. */
function byKind<const T extends readonly [z.ZodObject, ...z.ZodObject[]]>(kinds: readonly string[], options: T) {
  return z.discriminatedUnion('kind', options, {
    error: (iss) => iss.code === 'invalid_union'
      ? `must be one of: ${kinds.join(', ')}`
      : `must be a mapping with a "kind" (one of: ${kinds.join(', ')})`,
  });
}

// --- sections ---------------------------------------------------------------

export const ARRIVAL_KINDS = ['poisson', 'gamma', 'closed-loop', 'trace'] as const;
export const LENGTH_KINDS = ['fixed', 'uniform', 'lognormal', 'trace'] as const;
export const DRAFT_KINDS = ['fixed', 'adaptive'] as const;
export const CHUNK_KINDS = ['none', 'fixed', 'dynamic'] as const;
export const ADAPTER_KINDS = ['attention-block', 'mlp', 'decoder-layer'] as const;
export const ROUTERS = ['least-loaded', 'round-robin'] as const;
export const STAGE_ROUTING_KINDS = ['fixed', 'uniform', 'shortest-queue', 'nearest'] as const;
const SYSTEMS = SYSTEM_IDS as unknown as readonly [SystemIdLiteral, ...SystemIdLiteral[]];
type SystemIdLiteral = (typeof SYSTEM_IDS)[number];

export const DEFAULT_LOGNORMAL_MIN_TOKENS = 1;
export const DEFAULT_LOGNORMAL_MAX_TOKENS = 4096;

const minMaxError = { error: 'minTokens must be <= maxTokens', path: ['maxTokens'] };

export const LinkTraceSchema = obj({
  format: oneOf(['csv', 'mahimahi']),
  path: str(),
  offsetS: num({ gte: 0 }).default(0),
  randomOffset: bool().default(false),
});

export const LinkSchema = obj({
  uplinkMbps: num({ gt: 0 }),
  downlinkMbps: num({ gt: 0 }),
  latencyMs: num({ gte: 0 }),
  jitterMs: num({ gte: 0 }).default(0),
  trace: LinkTraceSchema.optional(),
});

export const DeviceGroupSchema = obj({
  name: str(),
  count: int({ gte: 1 }),
  hardware: str(),
  link: LinkSchema,
  via: list(str()).default(() => []),
});

export const SharedLinkSchema = obj({
  name: str(),
  uplinkMbps: num({ gt: 0 }),
  downlinkMbps: num({ gt: 0 }),
});

export const NetworkSchema = obj({
  shared: list(SharedLinkSchema).default(() => []),
  headerBytes: int({ gte: 0 }).default(64),
  tokenBytes: int({ gte: 1 }).default(4),
});

export const CloudSchema = obj({
  hardware: str(),
  gpus: int({ gte: 1 }).default(1),
  tokenBudget: int({ gte: 1 }).default(2048),
  maxBatchSeqs: int({ gte: 1 }).default(256),
  router: oneOf(ROUTERS).default('least-loaded'),
});

export const ArrivalSchema = byKind(ARRIVAL_KINDS, [
  obj({ kind: z.literal('poisson'), ratePerS: num({ gt: 0 }) }),
  obj({ kind: z.literal('gamma'), ratePerS: num({ gt: 0 }), cv: num({ gt: 0 }) }),
  obj({ kind: z.literal('closed-loop'), thinkTimeS: num({ gte: 0 }) }),
  obj({ kind: z.literal('trace'), path: str(), timeScale: num({ gt: 0 }).default(1) }),
]);

export const LengthSchema = byKind(LENGTH_KINDS, [
  obj({ kind: z.literal('fixed'), tokens: int({ gte: 1 }) }),
  obj({ kind: z.literal('uniform'), minTokens: int({ gte: 1 }), maxTokens: int({ gte: 1 }) })
    .refine((v) => v.minTokens <= v.maxTokens, minMaxError),
  obj({
    kind: z.literal('lognormal'),
    meanTokens: num({ gt: 0 }),
    cv: num({ gte: 0 }),
    minTokens: int({ gte: 1 }).default(DEFAULT_LOGNORMAL_MIN_TOKENS),
    maxTokens: int({ gte: 1 }).default(DEFAULT_LOGNORMAL_MAX_TOKENS),
  }).refine((v) => v.minTokens <= v.maxTokens, minMaxError),
  obj({ kind: z.literal('trace') }),
]);

export const WorkloadSchema = obj({
  arrival: ArrivalSchema,
  promptTokens: LengthSchema,
  outputTokens: LengthSchema,
  requestsPerDevice: int({ gte: 1 }),
  tracePath: str().optional(),
});

export const DraftSchema = byKind(DRAFT_KINDS, [
  obj({ kind: z.literal('fixed'), gamma: int({ gte: 1 }) }),
  obj({
    kind: z.literal('adaptive'),
    minGamma: int({ gte: 1 }).default(1),
    maxGamma: int({ gte: 1 }).default(8),
    initialGamma: int({ gte: 1 }).default(4),
    emaWeight: num({ gt: 0, lte: 1 }).default(0.3),
  }).refine((v) => v.minGamma <= v.initialGamma && v.initialGamma <= v.maxGamma, {
    error: 'must satisfy minGamma <= initialGamma <= maxGamma', path: ['initialGamma'],
  }),
]);

export const ChunkSchema = byKind(CHUNK_KINDS, [
  obj({ kind: z.literal('none') }),
  obj({ kind: z.literal('fixed'), tokens: int({ gte: 1 }) }),
  obj({ kind: z.literal('dynamic'), minTokens: int({ gte: 1 }).default(32), maxTokens: int({ gte: 1 }).default(1024) })
    .refine((v) => v.minTokens <= v.maxTokens, minMaxError),
]);

const acceptance = () => num({ gte: 0, lte: 1 }).default(0.7);
/** A measured acceptance file replacing the i.i.d. rate (docs/ACCEPTANCE.md). */
const acceptanceFile = () => obj({ path: str(), mode: oneOf(['greedy', 'sampled', 'none']).default('greedy') });
const defaultDraft = () => ({ kind: 'fixed' as const, gamma: 4 });

export const PoliciesSchema = obj({
  hat: obj({
    acceptance: acceptance(),
    acceptanceFile: acceptanceFile().optional(),
    draft: DraftSchema.default(defaultDraft),
    chunk: ChunkSchema.default(() => ({ kind: 'dynamic' as const, minTokens: 32, maxTokens: 1024 })),
    parallelDrafting: bool().default(false),
    /** The model the acceptance figures were measured for; checked against split.deviceModel (or model). */
    acceptanceModel: str().optional(),
  }).prefault({}),
  sd: obj({
    acceptance: acceptance(),
    acceptanceFile: acceptanceFile().optional(),
    draft: DraftSchema.default(defaultDraft),
    drafterModel: str().default('tinyllama-1.1b'),
    /** The model the acceptance figures were measured for; checked against drafterModel. */
    acceptanceModel: str().optional(),
  }).prefault({}),
  deviceOnly: obj({
    /** The whole model on the device (catalog or declared id); default: the scenario's model. */
    model: str().optional(),
  }).prefault({}),
  ushape: obj({
    chunk: ChunkSchema.default(() => ({ kind: 'none' as const })),
  }).prefault({}),
  staged: obj({
    stageLayers: list(int({ gte: 1 })).default(() => []),
    routing: byKind(STAGE_ROUTING_KINDS, [
      obj({ kind: z.literal('fixed'), fractions: z.record(z.string(), z.record(z.string(), num({ gte: 0, lte: 1 }))) }),
      obj({ kind: z.literal('uniform') }),
      obj({ kind: z.literal('shortest-queue') }),
      obj({ kind: z.literal('nearest') }),
    ]).default(() => ({ kind: 'uniform' as const })),
  }).prefault({}),
  dtoee: obj({
    policy: oneOf(['dtoee', 'centralised', 'random', 'nearest', 'jsq', 'routing-opt', 'threshold-opt', 'no-exit']).default('dtoee'),
    profilePath: str().optional(),
    beta: num({ gte: 0 }).default(0),
    sojourn: oneOf(['md1', 'mm1']).default('md1'),
    fixedThreshold: num({ gte: 0, lte: 1 }).default(0.8),
    /** The model the exit profile was measured for; checked against the scenario's model. */
    profileModel: str().optional(),
    online: bool().default(false),
    monitor: bool().default(false),
    periodS: num({ gt: 0 }).default(30),
    roundIterations: int({ gte: 1 }).default(10),
    minJobs: int({ gte: 1 }).default(5),
    oracle: bool().default(false),
    task: oneOf(['pass', 'per-token']).default('pass'),
    kvSkip: oneOf(['recompute', 'copy']).default('recompute'),
    jsqLoad: oneOf(['instant', 'reported']).default('instant'),
    loadPeriodS: num({ gt: 0 }).default(1),
  }).prefault({}),
});

export const SplitSchema = obj({
  inputLayers: int({ gte: 1 }).default(2),
  outputLayers: int({ gte: 1 }).default(2),
  adapter: oneOf(ADAPTER_KINDS).default('attention-block'),
  /** HAT family: the device's input/output layers come from this model (e.g. a pruned one); default: the served model. */
  deviceModel: str().optional(),
});

/** A model the scenario declares: a pruned version of a catalog model (model/declared.ts, docs/PRUNING.md). */
export const DeclaredModelSchema = obj({
  id: str(),
  base: str(),
  /** hatsim prune's pruning.json (path), or the description inline. */
  pruning: z.union([
    str(),
    obj({ layersKept: list(int({ gte: 0 })), ffnWidths: list(int({ gte: 1 })) }),
  ], { error: 'must be the path of a pruning.json, or { layersKept: [...], ffnWidths: [...] }' }),
});

/** A host: the machine some nodes share (topology/types.ts HostSpec, sim/host.ts). */
export const HostSchema = obj({
  name: str(),
  cores: int({ gte: 1 }),
  dispatchMs: num({ gte: 0 }).default(0),
  messageMs: num({ gte: 0 }).default(0),
  /** The member batching (cloud) nodes' steps also run on these cores and pay dispatchMs (a CPU server process); default false: on an accelerator. */
  shareBatching: bool().default(false),
  /** Runnable jobs of other programs on the host (processor sharing: n own jobs run at min(1, cores / (n + backgroundLoad))) [assumption]; a live fit measures it. */
  backgroundLoad: num({ gte: 0 }).default(0),
  /** Nodes (or node groups) on this host; nodes may also name it with their own `host`. */
  nodes: list(str()).optional(),
});

/** Memory feasibility (sim/memory.ts). */
export const MemorySchema = obj({
  /** Count the KV cache of the longest request each device serves (max-context) or weights only (none). */
  kvCache: oneOf(['max-context', 'none']).default('max-context'),
  /** Memory kept free on every device node for the OS, runtime and activations [assumption]. */
  reserveGB: num({ gte: 0 }).default(0),
});

// --- topology form (nodes / links / routes): topology/types.ts -------------

export const ProcessorSchema = byKind(PROCESSOR_KINDS, [
  obj({ kind: z.literal('single') }),
  obj({ kind: z.literal('workers'), workers: int({ gte: 1 }) }),
  obj({
    kind: z.literal('batching'),
    gpus: int({ gte: 1 }).default(1),
    tokenBudget: int({ gte: 1 }).default(2048),
    maxBatchSeqs: int({ gte: 1 }).default(256),
    router: oneOf(ROUTERS).default('least-loaded'),
  }),
]);

export const NodeSchema = obj({
  name: str(),
  kind: str(),
  /** Expands to `<name>-0 .. <name>-(count-1)`; links naming the group get one link per member. */
  count: int({ gte: 1 }).optional(),
  hardware: str().optional(),
  /** Memory for models; default: the hardware profile's. */
  memoryGB: num({ gt: 0 }).optional(),
  processor: ProcessorSchema.optional(),
  host: str().optional(),
  server: str().optional(),
  stage: int({ gte: 1 }).optional(),
  concurrency: z.union([int({ gte: 1 }), z.literal('unlimited')], { error: 'must be an integer >= 1 or "unlimited"' }).optional(),
});

export const TopoLinkSchema = obj({
  name: str().optional(),
  a: str(),
  b: str(),
  /** Both directions; or give aToBMbps and bToAMbps. */
  mbps: num({ gt: 0 }).optional(),
  aToBMbps: num({ gt: 0 }).optional(),
  bToAMbps: num({ gt: 0 }).optional(),
  latencyMs: num({ gte: 0 }),
  jitterMs: num({ gte: 0 }).default(0),
  trace: LinkTraceSchema.optional(),
  /** Always a max-min fair shared bottleneck, even when one node pair crosses it. */
  shared: bool().default(false),
});

export const RouteSchema = obj({
  from: str(),
  to: str(),
  links: list(str()),
});

/** A changing environment (sim/environment.ts): windows [fromS, toS) whose factors multiply where they overlap. */
export const EnvironmentSchema = obj({
  arrivals: list(obj({
    fromS: num({ gte: 0 }),
    toS: num({ gt: 0 }),
    multiplier: num({ gt: 0 }),
    devices: list(str()).default(() => []),
  }).refine((w) => w.fromS < w.toS, { error: 'must satisfy fromS < toS', path: ['toS'] })).default(() => []),
  nodeSpeed: list(obj({
    node: str(),
    fromS: num({ gte: 0 }),
    toS: num({ gt: 0 }).optional(),
    factor: num({ gt: 0 }),
  }).refine((w) => w.toS === undefined || w.fromS < w.toS, { error: 'must satisfy fromS < toS', path: ['toS'] })).default(() => []),
});

/** The whole scenario file. `name` and `calibrationDir` get file-derived defaults in load.ts. */
export const ScenarioSchema = obj({
  name: str().optional(),
  description: z.string({ error: 'must be a string' }).default(''),
  seed: int({ gte: 0 }).default(1),
  model: str(),
  models: list(DeclaredModelSchema).default(() => []),
  split: SplitSchema.prefault({}),
  systems: list(oneOf(SYSTEMS))
    .min(1, { error: 'must list at least one system' })
    .refine((s) => new Set(s).size === s.length, { error: 'must not list a system twice' })
    .default(() => [...HAT_SYSTEMS]),
  devices: list(DeviceGroupSchema).min(1, { error: 'must list at least one device group' }).optional(),
  cloud: CloudSchema.optional(),
  nodes: list(NodeSchema).min(1, { error: 'must list at least one node' }).optional(),
  links: list(TopoLinkSchema).optional(),
  routes: list(RouteSchema).optional(),
  network: NetworkSchema.prefault({}),
  workload: WorkloadSchema,
  policies: PoliciesSchema.prefault({}),
  calibrationDir: str().optional(),
  horizonS: num({ gt: 0 }).default(86400),
  memory: MemorySchema.prefault({}),
  hosts: list(HostSchema).optional(),
  environment: EnvironmentSchema.optional(),
});

export type ScenarioInput = z.input<typeof ScenarioSchema>;
export type ScenarioParsed = z.output<typeof ScenarioSchema>;

/** JSON Schema (draft 2020-12) of a scenario file, for editors. */
export function scenarioJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(ScenarioSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>;
}

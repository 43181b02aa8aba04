/**
 * FedSpine scenario files: YAML with top-level `kind: fedspine`, their own
 * zod schema (the field builders and error format of scenario/schema.ts and
 * scenario/load.ts), `--set` overrides, and the resolution into a FedConfig.
 * Every default below is an [assumption] unless REFERENCE §1 gives it.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isNode, type Document } from 'yaml';
import { z } from 'zod';
import { InputError } from '../core/errors.js';
import { RngStreams } from '../core/rng.js';
import { lookupModel } from '../model/declared.js';
import { hasHardware, getHardware } from '../compute/hardware.js';
import { DeclaredModelSchema, int, list, num, obj, oneOf, str, LinkSchema } from '../scenario/schema.js';
import { ScenarioError, declaredModels, type ScenarioIssue } from '../scenario/load.js';
import { applyOverrides, formatPath, type PathSegment } from '../scenario/overrides.js';
import { LORA_TARGETS } from './cost.js';
import { DEFAULT_REWARD_WEIGHTS, DEFAULT_SUCB } from './bandit.js';
import { DEFAULT_LEARNING, LearningSchema, loadLearning, parseLearning } from './learning.js';
import { METHOD_IDS } from './policies.js';
import type { FedConfig, FedDevice } from './rounds.js';

const GIB = 1024 ** 3;

const DataSchema = z.discriminatedUnion('kind', [
  obj({ kind: z.literal('fixed'), samples: int({ gte: 1 }) }),
  obj({ kind: z.literal('lognormal'), mean: num({ gt: 0 }), cv: num({ gte: 0 }) }),
], { error: 'must be a mapping with a "kind" (one of: fixed, lognormal)' });

const DeviceSchema = obj({
  name: str(),
  count: int({ gte: 1 }),
  hardware: str(),
  /** Memory in GiB; default the hardware profile's. */
  memoryGiB: num({ gt: 0 }).optional(),
  link: LinkSchema,
  data: DataSchema.default({ kind: 'fixed', samples: 1000 }),
});

const AvailabilitySchema = z.discriminatedUnion('kind', [
  obj({ kind: z.literal('always') }),
  obj({ kind: z.literal('markov'), meanOnlineS: num({ gt: 0 }), meanOfflineS: num({ gt: 0 }) }),
  obj({ kind: z.literal('trace'), file: str() }),
], { error: 'must be a mapping with a "kind" (one of: always, markov, trace)' });

const LearningFieldSchema = obj({
  file: str().optional(),
  ...Object.fromEntries(Object.entries(LearningSchema.shape).map(([k, v]) => [k, v.optional()])),
});

export const FedSpineSchema = obj({
  kind: z.literal('fedspine', { error: 'must be "fedspine"' }),
  name: str().optional(),
  seed: int({ gte: 0 }).default(1),
  model: str(),
  /** Pruned models to train from (scenario/schema.ts DeclaredModelSchema); `model` may name one. */
  models: list(DeclaredModelSchema).default(() => []),
  calibrationDir: str().optional(),
  methods: list(oneOf(METHOD_IDS)).min(1, { error: `must list at least one of: ${METHOD_IDS.join(', ')}` }).default([...METHOD_IDS]),
  training: obj({
    batch: int({ gte: 1 }).default(8),
    seqLen: int({ gte: 1 }).default(128),
    logits: oneOf(['all', 'last']).default('all'),
    loraTargets: list(oneOf(LORA_TARGETS)).min(1, { error: 'must list at least one adapted matrix' }).default(['q', 'v']),
    frozenStepFactor: num({ gt: 0 }).default(2),
    loraStepFactor: num({ gte: 0 }).default(3),
    loraBytesPerParam: num({ gt: 0 }).default(16),
    wireBytesPerElem: z.union([z.literal(2), z.literal(4)], { error: 'must be 2 (fp16) or 4 (fp32)' }).default(2),
    reservedGiB: num({ gte: 0 }).default(1),
  }).prefault({}),
  rounds: obj({
    max: int({ gte: 1 }).default(100),
    horizonS: num({ gt: 0 }).default(30 * 86400),
    localSteps: int({ gte: 1 }).default(20),
    targetLoss: num({ gt: 0 }),
    deadlineS: num({ gt: 0 }).nullable().default(null),
    minParticipants: int({ gte: 1 }).default(1),
    aggregationS: num({ gte: 0 }).default(0),
    idleRetryS: num({ gt: 0 }).default(60),
    configBytes: int({ gte: 0 }).default(64),
    headerBytes: int({ gte: 0 }).default(64),
  }),
  pruning: obj({
    stepsBetween: int({ gte: 1 }).default(20),
    maxStep: num({ gt: 0, lte: 1 }).default(0.1),
    overheadMs: num({ gte: 0 }).default(0),
  }).prefault({}),
  space: obj({
    ratioMin: num({ gte: 0, lt: 1 }).default(0),
    ratioMax: num({ gte: 0, lt: 1 }).default(0.6),
    ratioStep: num({ gt: 0, lt: 1 }).default(0.05),
    rankMin: int({ gte: 1 }).default(2),
    rankMax: int({ gte: 1, lte: 1024 }).default(32),
  }).prefault({}),
  bandit: obj({
    exploration: num({ gte: 0 }).default(DEFAULT_SUCB.exploration),
    smoothness: num({ gte: 0 }).default(DEFAULT_SUCB.smoothness),
    splitVisits: int({ gte: 1 }).default(DEFAULT_SUCB.splitVisits),
    maxDepth: int({ gte: 0 }).default(DEFAULT_SUCB.maxDepth),
    feasibilityTries: int({ gte: 0 }).default(DEFAULT_SUCB.feasibilityTries),
    weights: obj({
      loss: num({ gte: 0 }).default(DEFAULT_REWARD_WEIGHTS.loss),
      pruning: num({ gte: 0 }).default(DEFAULT_REWARD_WEIGHTS.pruning),
      importance: num({ gte: 0 }).default(DEFAULT_REWARD_WEIGHTS.importance),
      time: num({ gte: 0 }).default(DEFAULT_REWARD_WEIGHTS.time),
    }).prefault({}),
    targetRatio: num({ gte: 0, lt: 1 }).optional(),
    importanceExponent: num({ gt: 0 }).default(2),
  }).prefault({}),
  baselines: obj({
    uniformRank: int({ gte: 1 }).default(8),
    fixedRatio: num({ gte: 0, lt: 1 }).default(0.3),
  }).prefault({}),
  learning: LearningFieldSchema.prefault({}),
  heterogeneity: num({ gte: 0, lte: 1 }).default(0.5),
  availability: AvailabilitySchema.default({ kind: 'always' }),
  server: obj({ uplinkMbps: num({ gt: 0 }), downlinkMbps: num({ gt: 0 }) }),
  devices: list(DeviceSchema).min(1, { error: 'must list at least one device group' }),
  /** The live runner's options (`hatsim live fedspine`); absent: defaults below. */
  live: obj({
    modelDir: str().default('../models/brown-small'),
    categories: list(str()).min(1).optional(),
    evalWindows: int({ gte: 1 }).default(8),
    lr: num({ gt: 0 }).default(2e-3),
    alphaOverRank: num({ gt: 0 }).default(2),
    maxShardDocs: int({ gte: 1 }).optional(),
    aggregation: obj({ weighting: oneOf(['data', 'norm']).default('data'), normalize: oneOf(['all', 'holders']).default('all') }).prefault({}),
  }).optional(),
});

export type FedSpineParsed = z.output<typeof FedSpineSchema>;

/** True when the file is YAML whose top-level `kind` is `fedspine` (unreadable or other files: false). */
export function isFedSpineFile(file: string): boolean {
  try {
    const doc = parseDocument(readFileSync(file, 'utf8'));
    const js: unknown = doc.toJS();
    return typeof js === 'object' && js !== null && (js as Record<string, unknown>).kind === 'fedspine';
  } catch {
    return false;
  }
}

function lineAt(doc: Document, lc: LineCounter, p: readonly PathSegment[]): number | undefined {
  for (let n = p.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(p.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

function valueAt(raw: unknown, p: readonly PathSegment[]): unknown {
  let v: unknown = raw;
  for (const s of p) { if (v === null || typeof v !== 'object') return undefined; v = (v as Record<string | number, unknown>)[s]; }
  return v;
}

export interface LoadedFedSpine {
  config: FedConfig;
  parsed: FedSpineParsed;
  source: string;
}

/** Load, override, validate and resolve a FedSpine scenario. Throws InputError (naming the field) on any problem. */
export function loadFedSpineScenario(file: string, overrides: readonly string[] = []): LoadedFedSpine {
  let text: string;
  try { text = readFileSync(file, 'utf8'); } catch { throw new InputError(`scenario file not found or unreadable: ${file}`); }
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ScenarioError(file, doc.errors.map((e) => ({ field: '(yaml)', line: e.linePos?.[0]?.line, message: `YAML syntax error: ${e.message.split('\n')[0]}` })));
  }
  const raw = doc.toJS() as Record<string, unknown>;
  if (overrides.length > 0) {
    try { applyOverrides(raw, overrides, FedSpineSchema); } catch (e) { if (e instanceof InputError) throw new InputError(`${file}: ${e.message}`, e.field); throw e; }
  }
  return resolveFedSpine(raw, file, path.dirname(path.resolve(file)), (p) => (overrides.length > 0 ? undefined : lineAt(doc, lc, p)));
}

/** Validate a parsed object (from YAML or tests) and resolve it into a FedConfig. */
export function resolveFedSpine(raw: unknown, source: string, baseDir: string, lineOf?: (p: readonly PathSegment[]) => number | undefined): LoadedFedSpine {
  const issues: ScenarioIssue[] = [];
  const add = (p: readonly PathSegment[], message: string): void => {
    const v = valueAt(raw, p);
    issues.push({ field: formatPath(p) || '(root)', message: v === undefined ? `missing required field (${message})` : `${message} (got ${JSON.stringify(v)})`, line: lineOf?.(p) });
  };
  const r = FedSpineSchema.safeParse(raw);
  if (!r.success) {
    for (const iss of r.error.issues) add(iss.path.filter((s): s is string | number => typeof s !== 'symbol'), iss.message);
    throw new ScenarioError(source, issues);
  }
  const s = r.data;
  // Cross-field checks.
  if (s.space.ratioMin > s.space.ratioMax) add(['space', 'ratioMax'], `must be >= space.ratioMin (${s.space.ratioMin})`);
  if (s.space.rankMin > s.space.rankMax) add(['space', 'rankMax'], `must be >= space.rankMin (${s.space.rankMin})`);
  if (s.baselines.uniformRank < s.space.rankMin || s.baselines.uniformRank > s.space.rankMax) add(['baselines', 'uniformRank'], `must be a rank in [space.rankMin, space.rankMax] = [${s.space.rankMin}, ${s.space.rankMax}]`);
  if (s.baselines.fixedRatio < s.space.ratioMin || s.baselines.fixedRatio > s.space.ratioMax) add(['baselines', 'fixedRatio'], `must be a ratio in [space.ratioMin, space.ratioMax] = [${s.space.ratioMin}, ${s.space.ratioMax}]`);
  const declared = declaredModels(s, (p, rel) => {
    const abs = path.isAbsolute(rel) ? rel : path.join(baseDir, rel);
    if (!existsSync(abs)) add(p, `file not found: ${abs} (relative paths are resolved against ${baseDir})`);
    return abs;
  }, add);
  let model;
  try { model = lookupModel(s.model, declared); } catch (e) { add(['model'], (e as Error).message.replace(/^model: /, '')); }
  s.devices.forEach((g, i) => {
    if (!hasHardware(g.hardware) && g.memoryGiB === undefined) add(['devices', i, 'hardware'], `"${g.hardware}" is not a data-sheet hardware id; use a known one or give memoryGiB with a calibration file`);
  });
  if (new Set(s.devices.map((g) => g.name)).size !== s.devices.length) add(['devices'], 'device group names must be unique');
  if (issues.length > 0 || model === undefined) throw new ScenarioError(source, issues);

  const resolvePath = (p: string) => (path.isAbsolute(p) ? p : path.join(baseDir, p));
  const { file: learningFile, ...learningOver } = s.learning as { file?: string } & Record<string, number | undefined>;
  const baseLearning = learningFile !== undefined ? loadLearning(resolvePath(learningFile)) : DEFAULT_LEARNING;
  const learning = parseLearning({ ...baseLearning, ...Object.fromEntries(Object.entries(learningOver).filter(([, v]) => v !== undefined)) }, `${source}: learning`);

  const streams = new RngStreams(s.seed);
  const devices: FedDevice[] = [];
  for (const g of s.devices) {
    for (let k = 0; k < g.count; k++) {
      const d = devices.length;
      const rng = streams.get(`fedspine/data/${d}`);
      const dataSize = g.data.kind === 'fixed' ? g.data.samples : Math.max(1, Math.round(rng.lognormalMeanCv(g.data.mean, g.data.cv)));
      const link = { ...g.link, trace: g.link.trace ? { ...g.link.trace, path: resolvePath(g.link.trace.path) } : undefined };
      devices.push({
        name: `${g.name}-${k}`, group: g.name, hardwareId: g.hardware,
        memoryBytes: g.memoryGiB !== undefined ? g.memoryGiB * GIB : getHardware(g.hardware).memoryBytes,
        link, dataSize,
      });
    }
  }
  const availability = s.availability.kind === 'trace' ? { kind: 'trace' as const, file: resolvePath(s.availability.file) } : s.availability;
  const config: FedConfig = {
    name: s.name ?? path.basename(source).replace(/\.ya?ml$/i, ''),
    seed: s.seed,
    model,
    calibrationDir: resolvePath(s.calibrationDir ?? '../calibration'),
    training: {
      batch: s.training.batch, seqLen: s.training.seqLen, logits: s.training.logits, loraTargets: s.training.loraTargets,
      frozenStepFactor: s.training.frozenStepFactor, loraStepFactor: s.training.loraStepFactor, loraBytesPerParam: s.training.loraBytesPerParam,
      wireBytesPerElem: s.training.wireBytesPerElem, reservedBytes: s.training.reservedGiB * GIB,
    },
    devices,
    server: s.server,
    rounds: s.rounds,
    pruning: s.pruning,
    space: s.space,
    sucb: { exploration: s.bandit.exploration, smoothness: s.bandit.smoothness, splitVisits: s.bandit.splitVisits, maxDepth: s.bandit.maxDepth, feasibilityTries: s.bandit.feasibilityTries },
    reward: { ...s.bandit.weights, targetRatio: s.bandit.targetRatio ?? s.space.ratioMax, importanceExponent: s.bandit.importanceExponent },
    baselines: s.baselines,
    learning,
    heterogeneity: s.heterogeneity,
    availability,
    methods: s.methods,
  };
  if (s.live !== undefined) {
    config.live = {
      modelDir: resolvePath(s.live.modelDir), categories: s.live.categories ?? null, evalWindows: s.live.evalWindows,
      lr: s.live.lr, alphaOverRank: s.live.alphaOverRank, maxShardDocs: s.live.maxShardDocs ?? null, aggregation: s.live.aggregation,
    };
  }
  return { config, parsed: s, source };
}

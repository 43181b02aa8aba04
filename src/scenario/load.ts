/**
 * Scenario loading: YAML file -> `--set` overrides -> schema validation and
 * defaults -> cross-field checks -> relative paths resolved -> `Scenario`.
 *
 * All problems found are reported together in one `ScenarioError` (an
 * `InputError`): each line names the file (and line, when known), the field
 * path, what is wrong, and the offending value.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { LineCounter, parseDocument, isMap, isNode, type Document } from 'yaml';
import { InputError } from '../core/errors.js';
import type { DeviceGroup, Scenario } from './types.js';
import { ScenarioSchema, type ScenarioParsed } from './schema.js';
import { applyOverrides, didYouMean, formatPath, type PathSegment } from './overrides.js';
import { applyHosts, formTopology, legacyTopology } from './topology.js';
import type { TopologySpec } from '../topology/types.js';
import { MODELS } from '../model/catalog.js';
import { devicePartsModel, knownModelIds, lookupModel, type DeclaredModel } from '../model/declared.js';
import { checkPruning, pruningFromJson } from '../model/pruning.js';

export { scenarioJsonSchema } from './schema.js';

export interface ScenarioIssue {
  /** Field path, e.g. `devices[1].link.uplinkMbps` ("(root)" for the whole file). */
  field: string;
  message: string;
  /** 1-based line in the scenario file, when known. */
  line?: number;
}

/** `field` of YAML syntax errors (not a field path). */
export const YAML_FIELD = '(yaml)';

/** A scenario failed to parse or validate; `issues` lists every problem found. */
export class ScenarioError extends InputError {
  constructor(readonly source: string, readonly issues: ScenarioIssue[]) {
    super(ScenarioError.render(source, issues), issues[0]?.field);
    this.name = 'ScenarioError';
  }

  static render(source: string, issues: ScenarioIssue[]): string {
    const lines = issues.map((i) => `${source}${i.line !== undefined ? `:${i.line}` : ''}: ${i.field === YAML_FIELD ? '' : `${i.field}: `}${i.message}`);
    if (lines.length === 1) return `invalid scenario ${lines[0]}`;
    return `invalid scenario ${source} (${lines.length} errors):\n  - ${lines.join('\n  - ')}`;
  }
}

export interface ParseOptions {
  /** Directory relative paths are resolved against (default: the current directory). */
  baseDir?: string;
  /** `--set path=value` overrides, applied before validation. */
  overrides?: readonly string[];
  /** Check that referenced trace files exist (default true). */
  checkFiles?: boolean;
  /** Scenario name when the file has none (default: source label's base name). */
  defaultName?: string;
}

/** Load, override, validate and resolve a scenario file. Throws `InputError` on any problem. */
export function loadScenario(file: string, overrides: string[] = []): Scenario {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new InputError(code === 'ENOENT' ? `scenario file not found: ${file}` : `cannot read scenario file ${file}: ${String(err)}`);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const issues = doc.errors.map((e) => ({
      field: YAML_FIELD,
      line: e.linePos?.[0]?.line,
      message: `YAML syntax error${e.linePos ? ` at line ${e.linePos[0].line}, column ${e.linePos[0].col}` : ''}: ${e.message.split('\n')[0].replace(/ at line \d+, column \d+:?$/, '')}`,
    }));
    throw new ScenarioError(file, issues);
  }
  const raw: unknown = doc.toJS();
  return parseScenarioInternal(raw, file, {
    baseDir: path.dirname(path.resolve(file)),
    overrides,
    checkFiles: true,
    defaultName: path.basename(file).replace(/\.ya?ml$/i, ''),
  }, (p) => lineOf(doc, lineCounter, p));
}

/** Validate an already-parsed scenario object (e.g. from JSON). `sourceLabel` names it in errors. */
export function parseScenarioObject(obj: unknown, sourceLabel: string, opts: ParseOptions = {}): Scenario {
  return parseScenarioInternal(obj, sourceLabel, opts);
}

function parseScenarioInternal(
  input: unknown,
  source: string,
  opts: ParseOptions,
  lineAt?: (p: readonly PathSegment[]) => number | undefined,
): Scenario {
  const baseDir = opts.baseDir ?? process.cwd();
  if (input === null || input === undefined) {
    throw new ScenarioError(source, [{ field: '(root)', message: 'is empty: expected a mapping with at least model, devices, cloud and workload' }]);
  }
  if (typeof input !== 'object' || Array.isArray(input)) {
    throw new ScenarioError(source, [{ field: '(root)', message: `must be a mapping (key: value), got ${describeValue(input)}` }]);
  }
  // Work on a copy: overrides must not leak into the caller's object.
  const raw = structuredClone(input) as Record<string, unknown>;
  const overridden = new Set<string>();
  if (opts.overrides && opts.overrides.length > 0) {
    try {
      for (const ov of applyOverrides(raw, opts.overrides, ScenarioSchema)) overridden.add(formatPath(ov.path));
    } catch (err) {
      if (err instanceof InputError) throw new InputError(`${source}: ${err.message}`, err.field);
      throw err;
    }
  }
  const fromOverride = (p: readonly PathSegment[]): boolean => {
    for (let i = p.length; i >= 1; i--) if (overridden.has(formatPath(p.slice(0, i)))) return true;
    return false;
  };

  const issues: ScenarioIssue[] = [];
  const add = (p: readonly PathSegment[], message: string, withValue = true): void => {
    const value = getAt(raw, p);
    let msg = message;
    if (withValue) {
      msg = value === undefined ? `missing required field (${message})` : `${message} (got ${describeValue(value)})`;
    }
    if (fromOverride(p)) msg += ' [from --set]';
    issues.push({ field: formatPath(p), message: msg, line: fromOverride(p) ? undefined : lineAt?.(p) });
  };

  const result = ScenarioSchema.safeParse(raw);
  if (!result.success) {
    for (const iss of result.error.issues) {
      const p = iss.path.filter((s): s is string | number => typeof s !== 'symbol');
      if (iss.code === 'unrecognized_keys') {
        // Point at the first unknown key so the line number is the key's own line.
        add([...p, iss.keys[0]], iss.message, false);
        issues[issues.length - 1].field = formatPath(p);
      } else {
        add(p, iss.message);
      }
    }
  }
  crossChecks(raw, add);
  if (issues.length > 0 || !result.success) throw new ScenarioError(source, issues);

  const scenario = resolve(result.data, baseDir, opts, add);
  if (issues.length > 0) throw new ScenarioError(source, issues);
  return scenario;
}

/** Checks that span several fields; run on the raw object so they are reported even when other fields are invalid. */
function crossChecks(raw: Record<string, unknown>, add: (p: PathSegment[], message: string, withValue?: boolean) => void): void {
  const network = asRecord(raw.network);
  const sharedRaw = network?.shared;
  const shared: unknown[] = Array.isArray(sharedRaw) ? sharedRaw : [];
  const sharedNames: string[] = [];
  shared.forEach((s, i) => {
    const name = asRecord(s)?.name;
    if (typeof name !== 'string') return;
    if (sharedNames.includes(name)) add(['network', 'shared', i, 'name'], 'shared link names must be unique');
    sharedNames.push(name);
  });
  const devices = Array.isArray(raw.devices) ? raw.devices : [];
  const groupNames: string[] = [];
  devices.forEach((g, i) => {
    const group = asRecord(g);
    if (!group) return;
    if (typeof group.name === 'string') {
      if (groupNames.includes(group.name)) add(['devices', i, 'name'], 'device group names must be unique');
      groupNames.push(group.name);
    }
    if (!Array.isArray(group.via)) return;
    group.via.forEach((v, j) => {
      if (typeof v !== 'string' || sharedNames.includes(v)) return;
      const hint = didYouMean(v, sharedNames);
      const known = sharedNames.length > 0 ? `defined: ${sharedNames.join(', ')}` : 'network.shared is empty';
      add(['devices', i, 'via', j], `must name a shared link in network.shared${hint ? ` (did you mean "${hint}"?)` : ''}; ${known}`);
    });
  });
  const workload = asRecord(raw.workload);
  if (workload) {
    const arrivalKind = asRecord(workload.arrival)?.kind;
    for (const key of ['promptTokens', 'outputTokens'] as const) {
      if (asRecord(workload[key])?.kind === 'trace' && arrivalKind !== 'trace' && workload.tracePath === undefined) {
        add(['workload', 'tracePath'], `is required when workload.${key}.kind is trace and the arrivals are not a trace (a CSV with num_prefill_tokens,num_decode_tokens)`, false);
        break;
      }
    }
  }
}

function resolve(
  s: ScenarioParsed,
  baseDir: string,
  opts: ParseOptions,
  add: (p: PathSegment[], message: string, withValue?: boolean) => void,
): Scenario {
  const checkFiles = opts.checkFiles ?? true;
  const file = (p: PathSegment[], rel: string, exts: string[] = ['']): string => {
    const abs = path.resolve(baseDir, rel);
    if (checkFiles && !exts.every((e) => existsSync(abs + e))) {
      add(p, `file not found: ${abs}${exts[0] ? `{${exts.join(',')}}` : ''} (relative paths are resolved against ${baseDir})`);
    }
    return abs;
  };

  const devices: DeviceGroup[] | undefined = s.devices?.map((g, i) => {
    const { trace, ...link } = g.link;
    return {
      ...g,
      via: [...g.via],
      link: trace
        ? {
          ...link,
          trace: {
            ...trace,
            path: file(['devices', i, 'link', 'trace', 'path'], trace.path, trace.format === 'mahimahi' ? ['.up', '.down'] : ['']),
          },
        }
        : link,
    };
  });

  const arrival = s.workload.arrival.kind === 'trace'
    ? { ...s.workload.arrival, path: file(['workload', 'arrival', 'path'], s.workload.arrival.path) }
    : s.workload.arrival;
  let tracePath: string | undefined;
  if (s.workload.tracePath !== undefined) tracePath = file(['workload', 'tracePath'], s.workload.tracePath);
  else if (arrival.kind === 'trace' && (s.workload.promptTokens.kind === 'trace' || s.workload.outputTokens.kind === 'trace')) tracePath = arrival.path;

  const net = { ...s.network, shared: s.network.shared.map((x) => ({ ...x })) };
  let topology: TopologySpec;
  if (s.nodes !== undefined) {
    if (devices !== undefined || s.cloud !== undefined) add(['devices'], 'cannot be combined with nodes: describe the testbed either with devices + cloud + network.shared, or with nodes + links', false);
    if (net.shared.length > 0) add(['network', 'shared'], 'is for the devices + cloud form; with nodes + links, mark a link `shared: true` instead', false);
    const links = (s.links ?? []).map((l, i) => (l.trace
      ? { ...l, trace: { ...l.trace, path: file(['links', i, 'trace', 'path'], l.trace.path, l.trace.format === 'mahimahi' ? ['.up', '.down'] : ['']) } }
      : l));
    topology = formTopology(s.nodes, links, s.routes ?? [], add);
  } else {
    if (devices === undefined) add(['devices'], 'missing: describe the testbed with devices + cloud (+ network.shared), or with nodes + links', false);
    if (s.cloud === undefined) add(['cloud'], 'missing: the devices + cloud form needs a cloud section (hardware, gpus)', false);
    if (s.links !== undefined || s.routes !== undefined) add([s.links !== undefined ? 'links' : 'routes'], 'needs nodes: links and routes belong to the nodes + links form', false);
    topology = devices && s.cloud ? legacyTopology(devices, s.cloud, net) : { nodes: [], links: [], routes: [] };
  }

  if (s.hosts !== undefined) topology = applyHosts(topology, s.hosts, add);

  /** The per-position conditional acceptance of a measured acceptance file (docs/ACCEPTANCE.md), checked. */
  const acceptanceRates = (spec: { path: string; mode: 'greedy' | 'sampled' | 'none' } | undefined, sys: 'hat' | 'sd'): number[] | null => {
    if (spec === undefined || spec.mode === 'none') return null;
    const field: PathSegment[] = ['policies', sys, 'acceptanceFile', 'path'];
    const abs = file(field, spec.path);
    if (!existsSync(abs)) return null;
    let j: unknown;
    try { j = JSON.parse(readFileSync(abs, 'utf8')); } catch (e) {
      add(field, `is not a JSON acceptance file (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, false);
      return null;
    }
    const o = asRecord(j);
    if (o?.format !== 'hatsim-acceptance/1') { add(field, `${abs}: format must be "hatsim-acceptance/1" (docs/ACCEPTANCE.md)`, false); return null; }
    const positions = asRecord(o[spec.mode])?.positions;
    if (!Array.isArray(positions) || positions.length === 0) { add(field, `${abs}: has no ${spec.mode}.positions table`, false); return null; }
    const rates: number[] = [];
    for (const [i, p] of positions.entries()) {
      const r = asRecord(p)?.rate;
      if (typeof r !== 'number' || !(r >= 0 && r <= 1) || asRecord(p)?.position !== i + 1) {
        add(field, `${abs}: ${spec.mode}.positions[${i}] must be { position: ${i + 1}, rate in [0, 1] } (got ${describeValue(p)})`, false);
        return null;
      }
      rates.push(r);
    }
    return rates;
  };

  const models = declaredModels(s, file, add);

  const scenario: Scenario = {
    name: s.name ?? opts.defaultName ?? 'scenario',
    description: s.description,
    seed: s.seed,
    model: s.model,
    models,
    split: { ...s.split },
    systems: [...s.systems],
    topology,
    ...(devices ? { devices } : {}),
    ...(s.cloud ? { cloud: { ...s.cloud } } : {}),
    network: net,
    workload: {
      arrival,
      promptTokens: s.workload.promptTokens,
      outputTokens: s.workload.outputTokens,
      requestsPerDevice: s.workload.requestsPerDevice,
      ...(tracePath !== undefined ? { tracePath } : {}),
    },
    policies: {
      ...s.policies,
      hat: { ...s.policies.hat, acceptanceRates: acceptanceRates(s.policies.hat.acceptanceFile, 'hat') },
      sd: { ...s.policies.sd, acceptanceRates: acceptanceRates(s.policies.sd.acceptanceFile, 'sd') },
      dtoee: s.policies.dtoee.profilePath === undefined ? s.policies.dtoee
        : { ...s.policies.dtoee, profilePath: file(['policies', 'dtoee', 'profilePath'], s.policies.dtoee.profilePath) },
    },
    calibrationDir: path.resolve(baseDir, s.calibrationDir ?? '../calibration'),
    horizonS: s.horizonS,
    memory: { ...s.memory },
    ...(s.environment ? { environment: s.environment } : {}),
  };
  modelReferences(scenario, add);
  return scenario;
}

/** The scenario's `models:` (pruned versions of catalog models), each checked against its base (also used by FedSpine scenarios). */
export function declaredModels(
  s: { models: ScenarioParsed['models'] },
  file: (p: PathSegment[], rel: string) => string,
  add: (p: PathSegment[], message: string, withValue?: boolean) => void,
): DeclaredModel[] {
  const out: DeclaredModel[] = [];
  s.models.forEach((m, i) => {
    const at = (k: string): PathSegment[] => ['models', i, k];
    if (Object.prototype.hasOwnProperty.call(MODELS, m.id)) { add(at('id'), `is a catalog model id; give the pruned model its own id (e.g. ${m.id}-pruned)`); return; }
    if (out.some((o) => o.id === m.id)) { add(at('id'), 'declared model ids must be unique'); return; }
    if (!Object.prototype.hasOwnProperty.call(MODELS, m.base)) {
      add(at('base'), `must be a catalog model id (known: ${Object.keys(MODELS).join(', ')})`);
      return;
    }
    const base = MODELS[m.base];
    try {
      if (typeof m.pruning === 'string') {
        const abs = file(at('pruning'), m.pruning);
        if (!existsSync(abs)) return;
        let json: unknown;
        try { json = JSON.parse(readFileSync(abs, 'utf8')); } catch (e) {
          add(at('pruning'), `is not a JSON pruning description (${e instanceof Error ? e.message.split('\n')[0] : String(e)})`, false);
          return;
        }
        out.push({ id: m.id, base: m.base, pruning: pruningFromJson(base, json, `models[${i}].pruning (${abs})`), source: abs });
      } else {
        const pruning = checkPruning(base, { layersKept: [...m.pruning.layersKept], ffnWidths: [...m.pruning.ffnWidths] }, `models[${i}].pruning`);
        out.push({ id: m.id, base: m.base, pruning, source: 'inline' });
      }
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      add(at('pruning'), e.message, false);
    }
  });
  return out;
}

/** Every model id the scenario names resolves (catalog or declared), and measured inputs name the model they belong to. */
function modelReferences(sc: Scenario, add: (p: PathSegment[], message: string, withValue?: boolean) => void): void {
  const known = knownModelIds(sc.models);
  const ref = (p: PathSegment[], id: string | undefined): boolean => {
    if (id === undefined || known.includes(id)) return true;
    const hint = didYouMean(id, known);
    add(p, `unknown model id "${id}"${hint ? ` (did you mean "${hint}"?)` : ''}; known models: ${known.join(', ')} (declare a pruned model under models:)`, false);
    return false;
  };
  const okModel = ref(['model'], sc.model);
  ref(['policies', 'sd', 'drafterModel'], sc.policies.sd.drafterModel);
  ref(['policies', 'deviceOnly', 'model'], sc.policies.deviceOnly.model);
  if (ref(['split', 'deviceModel'], sc.split.deviceModel) && okModel && sc.split.deviceModel !== undefined) {
    try {
      devicePartsModel(lookupModel(sc.model, sc.models), sc.split.deviceModel, sc.models, sc.split.inputLayers, sc.split.outputLayers);
    } catch (e) {
      if (!(e instanceof InputError)) throw e;
      add(['split', 'deviceModel'], e.message.replace(/^split\.deviceModel: /, ''), false);
    }
  }
  const belongs = (p: PathSegment[], claimed: string | undefined, actual: string, what: string): void => {
    if (claimed === undefined || !ref(p, claimed) || claimed === actual) return;
    add(p, `says the ${what} were measured for ${claimed}, but this scenario runs ${actual} there; measure them for ${actual} (or run ${claimed})`, false);
  };
  belongs(['policies', 'hat', 'acceptanceModel'], sc.policies.hat.acceptanceModel, sc.split.deviceModel ?? sc.model, "HAT acceptance figures (its device's drafting layers)");
  belongs(['policies', 'sd', 'acceptanceModel'], sc.policies.sd.acceptanceModel, sc.policies.sd.drafterModel, "sd acceptance figures (its drafter)");
  belongs(['policies', 'dtoee', 'profileModel'], sc.policies.dtoee.profileModel, sc.model, 'exit profile figures (its stages)');
}

// --- helpers ----------------------------------------------------------------

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function getAt(root: unknown, p: readonly PathSegment[]): unknown {
  let node: unknown = root;
  for (const seg of p) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string | number, unknown>)[seg];
  }
  return node;
}

function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (empty value)';
  let s: string;
  try { s = JSON.stringify(v) ?? String(v); } catch { s = String(v); }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

/** 1-based line of the node at `p` (or of the nearest existing parent); for a missing key, its parent's line. */
function lineOf(doc: Document, lc: LineCounter, p: readonly PathSegment[]): number | undefined {
  for (let n = p.length; n >= 0; n--) {
    const prefix = p.slice(0, n);
    // Prefer the key's own position inside its parent mapping.
    if (n > 0) {
      const parent = prefix.length === 1 ? doc.contents : doc.getIn(prefix.slice(0, -1), true);
      if (isMap(parent)) {
        const last = prefix[prefix.length - 1];
        const pair = parent.items.find((it) => isNode(it.key) && (it.key as { value?: unknown }).value === last);
        if (pair && isNode(pair.key) && pair.key.range) return lc.linePos(pair.key.range[0]).line;
      }
    }
    const node = n === 0 ? doc.contents : doc.getIn(prefix, true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}

import { describe, expect, it } from 'vitest';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/core/errors.js';
import { RngStreams } from '../src/core/rng.js';
import { HAT_SYSTEMS as SYSTEM_IDS } from '../src/scenario/types.js';
import { loadScenario, parseScenarioObject, scenarioJsonSchema, ScenarioError } from '../src/scenario/load.js';
import { didYouMean, parseOverride } from '../src/scenario/overrides.js';
import { generateRequests } from '../src/workload/index.js';
import { isFedSpineFile } from '../src/fedspine/scenario.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const scenariosDir = path.join(repo, 'scenarios');
const fixtures = path.join(here, 'fixtures', 'scenarios');
const sharedData = path.resolve(repo, '..', 'shared', 'data');
const hasShared = existsSync(path.join(sharedData, 'traces', 'splitwise_conv.csv'));

function fx(name: string): string {
  return path.join(fixtures, name);
}

/** The InputError message thrown by fn (fails the test if nothing is thrown). */
function errorOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}

const minimalObject = () => ({
  model: 'llama2-7b',
  devices: [{ name: 'dev', count: 1, hardware: 'jetson-xavier-nx', link: { uplinkMbps: 10, downlinkMbps: 20, latencyMs: 5 } }],
  cloud: { hardware: 'a6000' },
  workload: {
    arrival: { kind: 'poisson', ratePerS: 1 },
    promptTokens: { kind: 'fixed', tokens: 10 },
    outputTokens: { kind: 'fixed', tokens: 5 },
    requestsPerDevice: 2,
  },
});

describe('shipped scenarios', () => {
  // kind: fedspine files have their own schema (test/fedspine-scenario.test.ts).
  const files = readdirSync(scenariosDir).filter((f) => f.endsWith('.yaml') && !isFedSpineFile(path.join(scenariosDir, f)));

  it('include the documented set', () => {
    for (const f of ['hat-testbed.yaml', 'sweep-bandwidth.yaml', 'sweep-devices.yaml', 'sweep-prompt.yaml', 'sweep-chunk.yaml', 'splitwise-conv.yaml', 'tiny-local.yaml']) {
      expect(files).toContain(f);
    }
  });

  for (const f of files) {
    const needsShared = f === 'splitwise-conv.yaml';
    it.skipIf(needsShared && !hasShared)(`${f} loads and generates a workload`, () => {
      const s = loadScenario(path.join(scenariosDir, f));
      expect(s.name).toBe(f.replace(/\.yaml$/, ''));
      expect(s.calibrationDir).toBe(path.join(repo, 'calibration'));
      const deviceCount = s.topology.nodes.filter((n) => n.kind === 'device').length;
      const reqs = generateRequests(s.workload, deviceCount, new RngStreams(s.seed), { baseDir: scenariosDir });
      expect(reqs.length).toBe(deviceCount);
      for (const r of reqs.flat()) {
        expect(Number.isInteger(r.promptTokens) && r.promptTokens >= 1).toBe(true);
        expect(Number.isInteger(r.outputTokens) && r.outputTokens >= 1).toBe(true);
      }
    });
  }

  it('each sweep file documents a --grid command whose path and values are valid', () => {
    for (const f of files.filter((x) => x.startsWith('sweep-'))) {
      const text = readFileSync(path.join(scenariosDir, f), 'utf8');
      const m = /hatsim sweep scenarios\/(\S+) --grid (\S+)=(\S+)/.exec(text);
      expect(m, f).not.toBeNull();
      const [, file, gridPath, values] = m as RegExpExecArray;
      expect(file).toBe(f);
      for (const v of values.split(',')) {
        const s = loadScenario(path.join(scenariosDir, f), [`${gridPath}=${v}`]);
        expect(s.name).toBe(f.replace(/\.yaml$/, ''));
      }
    }
  });

  it('hat-testbed models the published testbed', () => {
    const s = loadScenario(path.join(scenariosDir, 'hat-testbed.yaml'));
    expect(s.devices.reduce((n, g) => n + g.count, 0)).toBe(30);
    expect(s.cloud).toMatchObject({ hardware: 'a6000', gpus: 8 });
    expect(s.model).toBe('llama2-7b');
    expect(s.split).toMatchObject({ inputLayers: 2, outputLayers: 2 });
    expect(s.systems).toEqual([...SYSTEM_IDS]);
    expect(s.policies.hat.acceptance).toBe(0.7);
    expect(s.policies.sd.acceptance).toBe(0.7);
  });

  it.skipIf(!hasShared)('splitwise-conv resolves the trace path to ../shared', () => {
    const s = loadScenario(path.join(scenariosDir, 'splitwise-conv.yaml'));
    expect(s.workload.arrival).toMatchObject({ kind: 'trace', path: path.join(sharedData, 'traces', 'splitwise_conv.csv') });
    expect(s.workload.tracePath).toBe(path.join(sharedData, 'traces', 'splitwise_conv.csv'));
  });
});

describe('defaults', () => {
  it('fills every optional field', () => {
    const s = loadScenario(fx('minimal.yaml'));
    expect(s.name).toBe('minimal');
    expect(s.description).toBe('');
    expect(s.seed).toBe(1);
    expect(s.systems).toEqual(['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat']);
    expect(s.split).toEqual({ inputLayers: 2, outputLayers: 2, adapter: 'attention-block' });
    expect(s.network).toEqual({ shared: [], headerBytes: 64, tokenBytes: 4 });
    expect(s.devices![0].link.jitterMs).toBe(0);
    expect(s.devices![0].via).toEqual([]);
    expect(s.devices![0].link.trace).toBeUndefined();
    expect(s.cloud).toEqual({ hardware: 'a40', gpus: 1, tokenBudget: 2048, maxBatchSeqs: 256, router: 'least-loaded' });
    expect(s.horizonS).toBe(86400);
    expect(s.policies).toEqual({
      hat: { acceptance: 0.7, acceptanceRates: null, draft: { kind: 'fixed', gamma: 4 }, chunk: { kind: 'dynamic', minTokens: 32, maxTokens: 1024 }, parallelDrafting: false },
      sd: { acceptance: 0.7, acceptanceRates: null, draft: { kind: 'fixed', gamma: 4 }, drafterModel: 'tinyllama-1.1b' },
      ushape: { chunk: { kind: 'none' } },
      staged: { stageLayers: [], routing: { kind: 'uniform' } },
      dtoee: { policy: 'dtoee', beta: 0, sojourn: 'md1', fixedThreshold: 0.8, online: false, monitor: false, periodS: 30, roundIterations: 10, minJobs: 5, oracle: false, task: 'pass', kvSkip: 'recompute', jsqLoad: 'instant', loadPeriodS: 1 },
      deviceOnly: {},
    });
    expect(s.models).toEqual([]);
    expect(s.memory).toEqual({ kvCache: 'max-context', reserveGB: 0 });
    expect(s.workload.outputTokens).toEqual({ kind: 'lognormal', meanTokens: 50, cv: 0.3, minTokens: 1, maxTokens: 4096 });
    expect(s.calibrationDir).toBe(path.resolve(fixtures, '..', 'calibration'));
  });

  it('resolves relative paths against the scenario file', () => {
    const s = loadScenario(fx('trace-lengths.yaml'));
    expect(s.workload.tracePath).toBe(path.resolve(fixtures, '../traces/lengths-only.csv'));
    expect(s.calibrationDir).toBe(path.resolve(fixtures, '../calib'));
  });

  it('parseScenarioObject validates plain objects and does not mutate them', () => {
    const obj = minimalObject();
    const s = parseScenarioObject(obj, 'inline', { overrides: ['seed=9'], defaultName: 'x' });
    expect(s.seed).toBe(9);
    expect(s.name).toBe('x');
    expect((obj as Record<string, unknown>).seed).toBeUndefined();
  });

  it('exports a JSON schema', () => {
    const js = scenarioJsonSchema();
    expect(js.type).toBe('object');
    expect(Object.keys(js.properties as object)).toContain('devices');
  });
});

describe('--set overrides', () => {
  it('set scalars by dotted path with array index (also [i] syntax)', () => {
    const s = loadScenario(fx('minimal.yaml'), ['devices.0.link.uplinkMbps=7.5', 'devices[0].count=4', 'seed=3', 'cloud.router=round-robin']);
    expect(s.devices![0].link.uplinkMbps).toBe(7.5);
    expect(s.devices![0].count).toBe(4);
    expect(s.seed).toBe(3);
    expect(s.cloud.router).toBe('round-robin');
  });

  it('parse lists and mappings as YAML flow collections', () => {
    const s = loadScenario(fx('minimal.yaml'), ['systems=[hat,cloud]', 'policies.hat.chunk={kind: fixed, tokens: 128}']);
    expect(s.systems).toEqual(['hat', 'cloud']);
    expect(s.policies.hat.chunk).toEqual({ kind: 'fixed', tokens: 128 });
    expect(parseOverride('name="10"').value).toBe('10');
    expect(parseOverride('a.b=true').value).toBe(true);
  });

  it('can create optional sections and append to lists', () => {
    const s = loadScenario(fx('minimal.yaml'), [
      'network.shared.0={name: ap, uplinkMbps: 50, downlinkMbps: 50}',
      'devices.0.via=[ap]',
      'devices.0.link.trace={format: csv, path: ../traces/tiny.csv}',
    ]);
    expect(s.network.shared).toEqual([{ name: 'ap', uplinkMbps: 50, downlinkMbps: 50 }]);
    expect(s.devices![0].via).toEqual(['ap']);
    expect(s.devices![0].link.trace).toEqual({ format: 'csv', path: path.resolve(fixtures, '../traces/tiny.csv'), offsetS: 0, randomOffset: false });
  });

  it('reject paths that do not exist in the schema, naming them', () => {
    const msg = errorOf(() => loadScenario(fx('minimal.yaml'), ['devices.0.lnk.uplinkMbps=10']));
    expect(msg).toContain('devices[0].lnk.uplinkMbps');
    expect(msg).toContain('did you mean "link"');
    expect(errorOf(() => loadScenario(fx('minimal.yaml'), ['cloud.gpu=2']))).toMatch(/cloud has no field "gpu" \(did you mean "gpus"\?\)/);
    expect(errorOf(() => loadScenario(fx('minimal.yaml'), ['devices.5.count=2']))).toMatch(/index 5 is out of range/);
    expect(errorOf(() => loadScenario(fx('minimal.yaml'), ['seed']))).toMatch(/expected path=value/);
  });

  it('values set by --set are validated and marked', () => {
    const msg = errorOf(() => loadScenario(fx('minimal.yaml'), ['devices.0.link.uplinkMbps=-1']));
    expect(msg).toContain('devices[0].link.uplinkMbps: must be a number > 0 (got -1) [from --set]');
  });
});

describe('validation errors', () => {
  const check = (mutate: (o: Record<string, unknown>) => void): string => {
    const o = minimalObject() as unknown as Record<string, unknown>;
    mutate(o);
    return errorOf(() => parseScenarioObject(o, 'test.yaml'));
  };
  type Dev = Record<string, unknown> & { link: Record<string, unknown> };
  type Obj = { devices: Dev[]; cloud: Record<string, unknown>; workload: Record<string, unknown> };

  it('wrong type', () => {
    const msg = check((o) => { (o as unknown as Obj).devices[0].link.uplinkMbps = 'fast'; });
    expect(msg).toContain('test.yaml');
    expect(msg).toContain('devices[0].link.uplinkMbps: must be a number > 0 (got "fast")');
  });

  it('out of range', () => {
    expect(check((o) => { (o as unknown as Obj).cloud.gpus = 0; })).toContain('cloud.gpus: must be an integer >= 1 (got 0)');
    expect(check((o) => { o.policies = { hat: { acceptance: 1.5 } }; })).toContain('policies.hat.acceptance: must be a number in [0, 1] (got 1.5)');
    expect(check((o) => { (o as unknown as Obj).workload.promptTokens = { kind: 'uniform', minTokens: 9, maxTokens: 3 }; }))
      .toContain('workload.promptTokens.maxTokens: minTokens must be <= maxTokens');
  });

  it('unknown enum value', () => {
    expect(check((o) => { (o as unknown as Obj).workload.arrival = { kind: 'poison', ratePerS: 1 }; }))
      .toContain('workload.arrival.kind: must be one of: poisson, gamma, closed-loop, trace (got "poison")');
    expect(check((o) => { o.systems = ['hat', 'vllm']; })).toContain('systems[1]: must be one of: cloud, ushape, sd, hat-nochunk, hat, staged, dtoee, device-only (got "vllm")');
  });

  it('unknown key, with a suggestion', () => {
    const msg = check((o) => { o.sead = 4; });
    expect(msg).toContain('unknown key "sead" (did you mean "seed"?)');
    expect(check((o) => { (o as unknown as Obj).cloud.tokenBudjet = 1; })).toMatch(/cloud: unknown key "tokenBudjet" \(did you mean "tokenBudget"\?\)/);
  });

  it('missing required field', () => {
    expect(check((o) => { delete o.model; })).toContain('model: missing required field (must be a non-empty string)');
    expect(check((o) => { delete (o as unknown as Obj).workload.arrival; })).toContain('workload.arrival: missing required field');
  });

  it('via naming an unknown shared link', () => {
    const msg = check((o) => {
      o.network = { shared: [{ name: 'server-nic', uplinkMbps: 1000, downlinkMbps: 1000 }] };
      (o as unknown as Obj).devices[0].via = ['server-nc'];
    });
    expect(msg).toContain('devices[0].via[0]: must name a shared link in network.shared (did you mean "server-nic"?)');
    expect(check((o) => { (o as unknown as Obj).devices[0].via = ['ap']; })).toContain('network.shared is empty');
  });

  it('trace lengths without a trace file', () => {
    expect(check((o) => { (o as unknown as Obj).workload.promptTokens = { kind: 'trace' }; })).toContain('workload.tracePath: is required');
  });

  it('missing trace file', () => {
    expect(check((o) => { (o as unknown as Obj).workload.arrival = { kind: 'trace', path: 'no/such.csv' }; })).toMatch(/workload\.arrival\.path: file not found/);
  });

  it('YAML syntax error with a line number', () => {
    const msg = errorOf(() => loadScenario(fx('syntax-error.yaml')));
    expect(msg).toContain('syntax-error.yaml:4');
    expect(msg).toMatch(/YAML syntax error at line 4, column \d+/);
  });

  it('missing scenario file', () => {
    expect(errorOf(() => loadScenario(fx('nope.yaml')))).toContain('scenario file not found');
  });

  it('several errors at once, with file and line', () => {
    let err: unknown;
    try { loadScenario(fx('many-errors.yaml')); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(ScenarioError);
    const e = err as ScenarioError;
    expect(e.issues.length).toBe(7);
    const fields = e.issues.map((i) => i.field);
    expect(fields).toEqual(expect.arrayContaining([
      'seed', 'devices[0].count', 'devices[1].link.uplinkMbps', 'devices[1].link.latencyMs',
      'devices[1].link', 'workload.arrival.kind', 'devices[0].via[0]',
    ]));
    expect(e.message).toContain('many-errors.yaml (7 errors)');
    expect(e.message).toContain('many-errors.yaml:12: devices[1].link.uplinkMbps: must be a number > 0 (got -5)');
    expect(e.message).toContain('did you mean "latencyMs"');
  });
});

describe('did you mean', () => {
  it('suggests close names only', () => {
    expect(didYouMean('uplinkMbs', ['uplinkMbps', 'downlinkMbps'])).toBe('uplinkMbps');
    expect(didYouMean('HORIZONS', ['horizonS'])).toBe('horizonS');
    expect(didYouMean('banana', ['seed', 'model'])).toBeUndefined();
  });
});

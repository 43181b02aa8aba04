import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { getModel, makeSplitPlan } from '../src/model/catalog.js';
import type { ComponentId } from '../src/model/types.js';
import {
  calibratedComponent,
  evalPieces,
  findCalibration,
  loadCalibration,
  validateCalibration,
  type LinearPiece,
} from '../src/compute/calibration.js';
import { HARDWARE, getHardware } from '../src/compute/hardware.js';
import { resolveLatency } from '../src/compute/resolve.js';
import { rooflineComponent, rooflineWork } from '../src/compute/roofline.js';
import { composeSubmodel } from '../src/compute/submodel.js';
import { singleShape, type BatchShape, type ComponentLatencyModel, type LatencySource } from '../src/compute/types.js';

const here = dirname(fileURLToPath(import.meta.url));
const FIXTURES = join(here, 'fixtures', 'calibration');
const VALID_FILE = join(FIXTURES, 'a6000', 'llama2-7b', 'model.json');

const tmpRoot = mkdtempSync(join(tmpdir(), 'hatsim-compute-test-'));
afterAll(() => rmSync(tmpRoot, { recursive: true, force: true }));
let tmpCounter = 0;

function catchInputError(fn: () => unknown): InputError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InputError) return err;
    throw err;
  }
  throw new Error('expected an InputError, nothing was thrown');
}

function expectInputError(fn: () => unknown, ...fragments: string[]): InputError {
  const err = catchInputError(fn);
  for (const f of fragments) expect(err.message).toContain(f);
  return err;
}

describe('hardware profiles', () => {
  it('has the data-sheet devices with REFERENCE §3 figures', () => {
    expect(Object.keys(HARDWARE).sort()).toEqual(
      ['a40', 'a6000', 'jetson-agx-orin-32gb', 'jetson-agx-orin-64gb', 'jetson-orin-nx-16gb', 'jetson-xavier-nx', 'jetson-tx2', 'jetson-agx-xavier-32gb'].sort(),
    );
    expect(getHardware('a6000').memBandwidthBps).toBe(768e9);
    expect(getHardware('a6000').peakFlops).toBeCloseTo(154.8e12, -9);
    expect(getHardware('jetson-agx-orin-64gb').memBandwidthBps).toBe(204.8e9);
    expect(getHardware('jetson-orin-nx-16gb').memBandwidthBps).toBe(102.4e9);
    for (const hw of Object.values(HARDWARE)) {
      expect(hw.source).toBe('data sheet');
      expect(hw.computeEfficiency).toBeGreaterThan(0);
      expect(hw.computeEfficiency).toBeLessThanOrEqual(1);
      expect(hw.memoryEfficiency).toBeGreaterThan(0);
      expect(hw.memoryEfficiency).toBeLessThanOrEqual(1);
    }
  });

  it('unknown hardware names the id and the known ones', () => {
    expectInputError(() => getHardware('h100'), 'h100', 'a6000', 'jetson-agx-orin-64gb');
  });
});

describe('roofline', () => {
  const m7 = getModel('llama2-7b');
  const a6000 = getHardware('a6000');
  const layer = rooflineComponent(m7, 'decoderLayer', 'attention-block', a6000);

  it('is labelled an estimate with its hardware', () => {
    expect(layer.source).toBe('estimate');
    expect(layer.origin).toBe('roofline(a6000)');
    expect(layer.component).toBe('decoderLayer');
  });

  it('7B single-token decode layer on A6000 ~ 404MB / (768GB/s * effM) + overhead (memory-bound)', () => {
    const expectedMs = 404e6 / (768e9 * a6000.memoryEfficiency) * 1000 + a6000.overheadMsPerCall;
    const ms = layer.batchMs(singleShape(1, 0));
    // band: the weights are 404.8 MB plus a few KB of activations and KV
    expect(ms).toBeGreaterThan(expectedMs * 0.99);
    expect(ms).toBeLessThan(expectedMs * 1.02);
    const work = rooflineWork(m7, 'decoderLayer', 'attention-block', singleShape(1, 0));
    const computeMs = (work.flops / (a6000.peakFlops * a6000.computeEfficiency)) * 1000;
    const memoryMs = (work.bytes / (a6000.memBandwidthBps * a6000.memoryEfficiency)) * 1000;
    expect(memoryMs).toBeGreaterThan(10 * computeMs);
    // whole 7B model decode step is ~ 13.5 GB / (768 GB/s * eff) ≈ 23 ms
    const wholeMs = 32 * ms;
    expect(wholeMs).toBeGreaterThan(20);
    expect(wholeMs).toBeLessThan(27);
  });

  it('7B layer with 2048 new tokens on A6000 is compute-bound', () => {
    const shape = singleShape(2048, 0);
    const work = rooflineWork(m7, 'decoderLayer', 'attention-block', shape);
    const computeMs = (work.flops / (a6000.peakFlops * a6000.computeEfficiency)) * 1000;
    const memoryMs = (work.bytes / (a6000.memBandwidthBps * a6000.memoryEfficiency)) * 1000;
    expect(computeMs).toBeGreaterThan(memoryMs);
    expect(layer.batchMs(shape)).toBeCloseTo(computeMs + a6000.overheadMsPerCall, 9);
  });

  it('is monotonic in tokens and in context', () => {
    for (const hwId of Object.keys(HARDWARE)) {
      const hw = getHardware(hwId);
      for (const component of ['embedding', 'decoderLayer', 'adapter', 'lmHead'] as ComponentId[]) {
        const c = rooflineComponent(m7, component, 'attention-block', hw);
        let prev = 0;
        for (const tokens of [1, 2, 4, 16, 64, 256, 1024, 4096]) {
          const ms = c.batchMs(singleShape(tokens, 512));
          expect(ms).toBeGreaterThanOrEqual(prev);
          prev = ms;
        }
        prev = 0;
        for (const ctx of [0, 1, 64, 512, 2048, 4096]) {
          const ms = c.batchMs(singleShape(64, ctx));
          expect(ms).toBeGreaterThanOrEqual(prev);
          prev = ms;
        }
      }
    }
    // context matters for a layer (KV read / attention FLOPs), strictly
    expect(layer.batchMs(singleShape(1, 4096))).toBeGreaterThan(layer.batchMs(singleShape(1, 0)));
    expect(layer.batchMs(singleShape(1024, 4096))).toBeGreaterThan(layer.batchMs(singleShape(1024, 0)));
  });

  it('embedding reads only the gathered rows; slower hardware is slower', () => {
    const emb = rooflineComponent(m7, 'embedding', 'attention-block', a6000);
    const fullTableMs = (32000 * 4096 * 2) / (768e9 * a6000.memoryEfficiency) * 1000;
    expect(emb.batchMs(singleShape(1, 0)) - a6000.overheadMsPerCall).toBeLessThan(fullTableMs / 1000);
    const orin = rooflineComponent(m7, 'decoderLayer', 'attention-block', getHardware('jetson-agx-orin-64gb'));
    const xavier = rooflineComponent(m7, 'decoderLayer', 'attention-block', getHardware('jetson-xavier-nx'));
    expect(orin.batchMs(singleShape(1, 0))).toBeGreaterThan(layer.batchMs(singleShape(1, 0)));
    expect(xavier.batchMs(singleShape(1, 0))).toBeGreaterThan(orin.batchMs(singleShape(1, 0)));
  });
});

describe('calibration files', () => {
  const validText = readFileSync(VALID_FILE, 'utf8');
  const validObj = (): Record<string, unknown> => JSON.parse(validText) as Record<string, unknown>;

  function writeTmp(content: string, rel = 'model.json'): string {
    const dir = join(tmpRoot, `case-${tmpCounter++}`);
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content);
    return path;
  }
  const DELETE = Symbol('delete');
  /** Write a copy of the valid fixture with the value at `path` replaced (or deleted). */
  function badFile(path: (string | number)[], value: unknown): string {
    const o = validObj();
    let cur = o as Record<string | number, unknown>;
    for (const key of path.slice(0, -1)) cur = cur[key] as Record<string | number, unknown>;
    const last = path[path.length - 1];
    if (value === DELETE) delete cur[last];
    else cur[last] = value;
    return writeTmp(JSON.stringify(o));
  }
  const validPieces = (): LinearPiece[] =>
    (validObj() as { components: { decoderLayer: { pieces: LinearPiece[] } } }).components.decoderLayer.pieces;

  it('loads the valid fixture', () => {
    const file = loadCalibration(VALID_FILE, { hardwareId: 'a6000', modelId: 'llama2-7b' });
    expect(file.hardwareId).toBe('a6000');
    expect(file.components.decoderLayer?.pieces).toHaveLength(2);
    expect(file.components.decoderLayer?.source).toBe('measured');
    expect(file.components.embedding?.source).toBe('imported');
    expect(file.components.embedding?.pieces[0].c4MsPerSeq).toBeUndefined();
    expect(file.components.adapter).toBeUndefined();
    expect(file.layerScaling?.[0]).toEqual({ layers: 2, deviationPct: 3.1 });
  });

  it('findCalibration returns the path when the file exists, else null', () => {
    expect(findCalibration(FIXTURES, 'a6000', 'llama2-7b')).toBe(VALID_FILE);
    expect(findCalibration(FIXTURES, 'a40', 'llama2-7b')).toBeNull();
    expect(findCalibration(join(tmpRoot, 'nope'), 'a6000', 'llama2-7b')).toBeNull();
  });

  it('missing field', () => {
    const path = badFile(['latencyUnit'], DELETE);
    const err = expectInputError(() => loadCalibration(path), path, 'latencyUnit', 'missing', '"ms"');
    expect(err.field).toBe('latencyUnit');
    const p2 = badFile(['components', 'decoderLayer', 'pieces', 0, 'c1MsPerToken'], DELETE);
    expectInputError(() => loadCalibration(p2), p2, 'components.decoderLayer.pieces[0].c1MsPerToken', 'missing');
  });

  it('latencyUnit not "ms"', () => {
    const path = badFile(['latencyUnit'], 's');
    expectInputError(() => loadCalibration(path), path, 'latencyUnit = "s"', '"ms"');
  });

  it('negative coefficient', () => {
    const path = badFile(['components', 'decoderLayer', 'pieces', 1, 'c2MsPerTokenCtx'], -0.001);
    expectInputError(
      () => loadCalibration(path),
      path,
      'components.decoderLayer.pieces[1].c2MsPerTokenCtx = -0.001',
      '>= 0',
    );
  });

  it('non-finite coefficient (1e999 in JSON, Infinity / NaN in memory)', () => {
    const path = writeTmp(validText.replace('"c0Ms": 0.7', '"c0Ms": 1e999'));
    expectInputError(() => loadCalibration(path), path, 'components.decoderLayer.pieces[0].c0Ms = Infinity', 'finite');
    const o = validObj() as { components: { embedding: { pieces: LinearPiece[] } } };
    o.components.embedding.pieces[0].c1MsPerToken = Number.NaN;
    expectInputError(() => validateCalibration(o, 'mem.json'), 'mem.json', 'components.embedding.pieces[0].c1MsPerToken = NaN');
  });

  it('pieces not ordered by maxTokens', () => {
    const path = badFile(
      ['components', 'decoderLayer', 'pieces'],
      [{ ...validPieces()[0], maxTokens: 8 }, { ...validPieces()[0], maxTokens: 4 }, validPieces()[1]],
    );
    expectInputError(() => loadCalibration(path), path, 'components.decoderLayer.pieces[1].maxTokens = 4', '> 8');
    const p2 = badFile(['components', 'decoderLayer', 'pieces', 0, 'maxTokens'], null);
    expectInputError(() => loadCalibration(p2), p2, 'components.decoderLayer.pieces[0].maxTokens = null');
  });

  it('last piece maxTokens not null', () => {
    const path = badFile(['components', 'decoderLayer', 'pieces', 1, 'maxTokens'], 64);
    expectInputError(() => loadCalibration(path), path, 'components.decoderLayer.pieces[1].maxTokens = 64', 'null');
  });

  it('hardwareId / modelId not matching the expected one', () => {
    expectInputError(
      () => loadCalibration(VALID_FILE, { hardwareId: 'a40' }),
      VALID_FILE,
      'hardwareId = "a6000"',
      '"a40"',
    );
    expectInputError(
      () => loadCalibration(VALID_FILE, { modelId: 'llama2-13b' }),
      VALID_FILE,
      'modelId = "llama2-7b"',
      '"llama2-13b"',
    );
  });

  it('wrong format or version', () => {
    const p1 = badFile(['format'], 'vidur');
    expectInputError(() => loadCalibration(p1), p1, 'format = "vidur"', '"hatsim-calibration"');
    const p2 = badFile(['version'], 2);
    expectInputError(() => loadCalibration(p2), p2, 'version = 2', 'expected 1');
  });

  it('invalid JSON and unreadable files', () => {
    const path = writeTmp(validText.slice(0, 200));
    expectInputError(() => loadCalibration(path), path, 'not valid JSON');
    const missing = join(tmpRoot, 'does-not-exist.json');
    expectInputError(() => loadCalibration(missing), missing, 'cannot read');
  });

  it('unknown component, bad source, empty pieces', () => {
    const p1 = badFile(['components', 'decoderlayer'], { source: 'measured', pieces: validPieces() });
    expectInputError(() => loadCalibration(p1), p1, 'components.decoderlayer', 'lmHead');
    const p2 = badFile(['components', 'embedding', 'source'], 'estimate');
    expectInputError(() => loadCalibration(p2), p2, 'components.embedding.source = "estimate"', '"measured" or "imported"');
    const p3 = badFile(['components', 'embedding', 'pieces'], []);
    expectInputError(() => loadCalibration(p3), p3, 'components.embedding.pieces = []', 'non-empty');
  });

  it('evalPieces: hand-computed values, piece selection by maxTokens', () => {
    const pieces: LinearPiece[] = [
      { maxTokens: 8, c0Ms: 9.1, c1MsPerToken: 0.4, c2MsPerTokenCtx: 0.00001, c3MsPerCtx: 0.001, c4MsPerSeq: 0.2, c5MsPerTokenSq: 0.001 },
      { maxTokens: null, c0Ms: 7.0, c1MsPerToken: 0.62, c2MsPerTokenCtx: 0.00002, c3MsPerCtx: 0.001 },
    ];
    // tokens 8 <= 8: first piece. 9.1 + 0.4*8 + 1e-5*1000 + 0.001*300 + 0.2*(2-1) + 0.001*40 = 12.85
    const a: BatchShape = { seqs: 2, tokens: 8, tokCtx: 1000, ctx: 300, tokSq: 40 };
    expect(evalPieces(pieces, a)).toBeCloseTo(12.85, 10);
    // tokens 9: second piece, c4 and c5 omitted = 0. 7 + 0.62*9 + 2e-5*900 + 0.001*100 = 12.698
    const b: BatchShape = { seqs: 3, tokens: 9, tokCtx: 900, ctx: 100, tokSq: 81 };
    expect(evalPieces(pieces, b)).toBeCloseTo(12.698, 10);
  });

  it('calibratedComponent matches evalPieces and carries source and origin', () => {
    const file = loadCalibration(VALID_FILE);
    const layer = calibratedComponent(file, 'decoderLayer', VALID_FILE);
    expect(layer.source).toBe('measured');
    expect(layer.origin).toBe(VALID_FILE);
    const pieces = file.components.decoderLayer?.pieces ?? [];
    for (const shape of [singleShape(1, 0), singleShape(8, 100), singleShape(9, 100), singleShape(512, 2048)]) {
      expect(layer.batchMs(shape)).toBeCloseTo(evalPieces(pieces, shape), 12);
    }
    // 0.7 + 0.01*1 = 0.71
    expect(layer.batchMs(singleShape(1, 0))).toBeCloseTo(0.71, 12);
    // the optional tokSq coefficient (c5) in the compiled model too
    const withC5 = structuredClone(file);
    for (const piece of withC5.components.decoderLayer?.pieces ?? []) piece.c5MsPerTokenSq = 0.003;
    const layerC5 = calibratedComponent(withC5, 'decoderLayer', VALID_FILE);
    for (const shape of [singleShape(1, 0), singleShape(9, 100), singleShape(512, 2048)]) {
      expect(layerC5.batchMs(shape)).toBeCloseTo(layer.batchMs(shape) + 0.003 * shape.tokSq, 9);
      expect(layerC5.batchMs(shape)).toBeCloseTo(evalPieces(withC5.components.decoderLayer?.pieces ?? [], shape), 12);
    }
    expect(calibratedComponent(file, 'embedding', VALID_FILE).source).toBe('imported');
    expect(() => calibratedComponent(file, 'adapter', VALID_FILE)).toThrow(InputError);
  });
});

describe('composeSubmodel', () => {
  const m7 = getModel('llama2-7b');
  const plan = makeSplitPlan(m7, 2, 2, 'attention-block');
  const headShapes: BatchShape[] = [];
  function fake(component: ComponentId, source: LatencySource, f: (s: BatchShape) => number): ComponentLatencyModel {
    return { component, source, origin: `fake-${component}`, batchMs: f };
  }
  const components: Record<ComponentId, ComponentLatencyModel> = {
    embedding: fake('embedding', 'imported', () => 0.5),
    decoderLayer: fake('decoderLayer', 'measured', (s) => 1 + s.tokens),
    adapter: fake('adapter', 'measured', (s) => 3 + s.ctx),
    lmHead: fake('lmHead', 'estimate', (s) => {
      headShapes.push({ ...s });
      return 10 * s.tokens;
    }),
  };
  const shape = singleShape(4, 100);

  it('middle of 28 layers = 28 x layer', () => {
    const mid = composeSubmodel('middle', plan, m7, components);
    expect(mid.submodel).toBe('middle');
    expect(mid.batchMs(shape, 0)).toBe(28 * 5);
    expect(mid.batchMs(shape, 4)).toBe(28 * 5); // no LM head in the middle
    expect(mid.source).toBe('measured');
  });

  it('input = embedding + inputLayers x layer; adapter = adapter', () => {
    const input = composeSubmodel('input', plan, m7, components);
    expect(input.batchMs(shape, 0)).toBe(0.5 + 2 * 5);
    expect(input.source).toBe('imported');
    const adapter = composeSubmodel('adapter', plan, m7, components);
    expect(adapter.batchMs(shape, 1)).toBe(103);
    expect(adapter.source).toBe('measured');
  });

  it('output = outputLayers x layer + lmHead only when logitsTokens > 0, with the logits shape', () => {
    const output = composeSubmodel('output', plan, m7, components);
    expect(output.source).toBe('estimate');
    headShapes.length = 0;
    expect(output.batchMs(shape, 0)).toBe(2 * 5);
    expect(headShapes).toHaveLength(0);
    expect(output.batchMs({ seqs: 2, tokens: 10, tokCtx: 500, ctx: 100, tokSq: 50 }, 3)).toBe(2 * 11 + 30);
    expect(headShapes).toEqual([{ seqs: 2, tokens: 3, tokCtx: 0, ctx: 0, tokSq: 9 }]);
  });

  it('full and drafter = embedding + numLayers x layer + lmHead', () => {
    for (const id of ['full', 'drafter'] as const) {
      const full = composeSubmodel(id, plan, m7, components);
      expect(full.batchMs(shape, 1)).toBe(0.5 + 32 * 5 + 10);
      expect(full.source).toBe('estimate');
    }
  });
});

describe('resolveLatency', () => {
  const m7 = getModel('llama2-7b');
  const plan = makeSplitPlan(m7, 2, 2, 'attention-block');

  it('prefers the calibration file and falls back to the roofline with a warning', () => {
    const r = resolveLatency({ hardwareId: 'a6000', model: m7, plan, calibrationDir: FIXTURES });
    expect(r.provenance.hardwareId).toBe('a6000');
    expect(r.provenance.modelId).toBe('llama2-7b');
    expect(r.provenance.components.decoderLayer).toEqual({ source: 'measured', origin: VALID_FILE });
    expect(r.provenance.components.embedding).toEqual({ source: 'imported', origin: VALID_FILE });
    expect(r.provenance.components.adapter).toEqual({ source: 'estimate', origin: 'roofline(a6000)' });
    expect(r.provenance.components.lmHead).toEqual({ source: 'estimate', origin: 'roofline(a6000)' });
    expect(r.provenance.warnings).toHaveLength(2);
    expect(r.provenance.warnings.join('\n')).toContain('"adapter"');
    expect(r.provenance.warnings.join('\n')).toContain('"lmHead"');

    const middle = r.submodel('middle');
    expect(middle.source).toBe('measured');
    // decode step of 1 token: 0.7 + 0.01 per layer (first piece), x 28
    expect(middle.batchMs(singleShape(1, 0), 0)).toBeCloseTo(28 * 0.71, 10);
    expect(r.submodel('input').source).toBe('imported');
    expect(r.submodel('output').source).toBe('estimate');
    expect(r.submodel('middle')).toBe(middle); // cached
  });

  it('uses estimates without warnings when no calibration file exists', () => {
    const r = resolveLatency({ hardwareId: 'a40', model: m7, plan, calibrationDir: FIXTURES });
    expect(r.provenance.warnings).toEqual([]);
    for (const c of ['embedding', 'decoderLayer', 'adapter', 'lmHead'] as ComponentId[]) {
      expect(r.provenance.components[c]).toEqual({ source: 'estimate', origin: 'roofline(a40)' });
    }
    const layer = rooflineComponent(m7, 'decoderLayer', 'attention-block', getHardware('a40'));
    expect(r.submodel('middle').batchMs(singleShape(1, 10), 0)).toBeCloseTo(28 * layer.batchMs(singleShape(1, 10)), 10);
  });

  it('unknown hardware without calibration is an InputError naming hardware, model, path and known ids', () => {
    expectInputError(
      () => resolveLatency({ hardwareId: 'mystery-gpu', model: m7, plan, calibrationDir: FIXTURES }),
      'mystery-gpu',
      'llama2-7b',
      join(FIXTURES, 'mystery-gpu', 'llama2-7b', 'model.json'),
      'a6000',
      'jetson-agx-orin-64gb',
    );
  });

  it('unknown hardware with partial calibration: error for a missing component unless not required', () => {
    const tiny = getModel('tiny-test');
    const tplan = makeSplitPlan(tiny, 1, 1, 'attention-block');
    expectInputError(
      () => resolveLatency({ hardwareId: 'this-cpu', model: tiny, plan: tplan, calibrationDir: FIXTURES }),
      'this-cpu',
      'tiny-test',
      '"lmHead"',
      join(FIXTURES, 'this-cpu', 'tiny-test', 'model.json'),
    );
    const r = resolveLatency({
      hardwareId: 'this-cpu',
      model: tiny,
      plan: tplan,
      calibrationDir: FIXTURES,
      required: ['embedding', 'decoderLayer', 'adapter'],
    });
    expect(r.submodel('input').source).toBe('measured');
    expect(r.submodel('input').batchMs(singleShape(1, 0), 0)).toBeCloseTo(0.051 + 0.42, 10);
    expectInputError(() => r.submodel('output'), 'lmHead', 'this-cpu');
  });

  it('a calibration file whose hardwareId does not match its folder is rejected', () => {
    const dir = join(tmpRoot, 'calib-mismatch');
    mkdirSync(join(dir, 'a40', 'llama2-7b'), { recursive: true });
    writeFileSync(join(dir, 'a40', 'llama2-7b', 'model.json'), readFileSync(VALID_FILE, 'utf8'));
    expectInputError(
      () => resolveLatency({ hardwareId: 'a40', model: m7, plan, calibrationDir: dir }),
      'hardwareId = "a6000"',
      '"a40"',
    );
  });
});

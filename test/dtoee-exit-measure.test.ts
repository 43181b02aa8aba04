/**
 * Measuring an exit profile from ONNX exit heads. The tiny seeded model's
 * numbers are meaningless: the code path and the format are what is checked;
 * a hand-made identity head checks the numbers.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPartGraph } from '../src/calibrate/graph.js';
import { Rng } from '../src/core/rng.js';
import { InputError } from '../src/core/errors.js';
import { FEATURES_FORMAT, measureExitProfile, profileCurves, readExitFeatures } from '../src/dtoee/exit-measure.js';
import { readProfile } from '../src/dtoee/profile.js';
import { getModel } from '../src/model/catalog.js';
import { REPO } from './helpers.js';

const { onnx } = onnxProto;
const root = mkdtempSync(join(tmpdir(), 'dtoee-exit-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** An ONNX head logits = scale * hidden (input [B, C], identity weights). */
function identityHead(path: string, C: number, scale: number): void {
  const w = new Float32Array(C * C);
  for (let i = 0; i < C; i++) w[i * C + i] = scale;
  const vi = (name: string) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'batch' }, { dimValue: C }] } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8, producerName: 'test', opsetImport: [{ domain: '', version: 17 }],
    graph: {
      name: 'head', node: [{ opType: 'MatMul', input: ['h', 'W'], output: ['logits'] }],
      initializer: [{ name: 'W', dims: [C, C], dataType: onnx.TensorProto.DataType.FLOAT, rawData: new Uint8Array(w.buffer) }],
      input: [vi('h')], output: [vi('logits')],
    },
  });
  writeFileSync(path, onnx.ModelProto.encode(model).finish());
}

function writeF32(path: string, v: Float32Array): void { writeFileSync(path, Buffer.from(v.buffer, v.byteOffset, v.byteLength)); }
function writeI32(path: string, v: Int32Array): void { writeFileSync(path, Buffer.from(v.buffer, v.byteOffset, v.byteLength)); }

function softmax(row: number[]): number[] {
  const m = Math.max(...row), e = row.map((v) => Math.exp(v - m)), s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
}

describe('exit-profile measurement: numbers on a hand-made identity head', () => {
  const dir = join(root, 'identity');
  const C = 4, N = 7;
  const rows = [[3, 0, 0, 0], [1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0.5, 0], [0, 0, 0, 4], [2, 2, 2, 2], [0, 1, 3, 0]];
  const labels = [0, 1, 0, 2, 3, 0, 1];
  it('max-softmax and margin confidences, exit shares and accuracies match a recount by hand', async () => {
    mkdirSync(dir, { recursive: true });
    identityHead(join(dir, 'exit-1.onnx'), C, 1);
    identityHead(join(dir, 'final.onnx'), C, 2);
    writeF32(join(dir, 'stage-1.f32'), Float32Array.from(rows.flat()));
    writeF32(join(dir, 'final.f32'), Float32Array.from(rows.flat()));
    writeI32(join(dir, 'labels.i32'), Int32Array.from(labels));
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({
      format: FEATURES_FORMAT, model: 'tiny-test', samples: N, hiddenSize: C, labels: 'labels.i32',
      stages: [{ layers: [0, 2], hidden: 'stage-1.f32', head: 'exit-1.onnx' }, { layers: [2, 4], hidden: 'final.f32', head: 'final.onnx' }],
    }));
    const f = readExitFeatures(dir);
    for (const kind of ['max-softmax', 'margin'] as const) {
      const p = await measureExitProfile(f, { confidence: kind, gridStep: 0.1, batch: 3 });
      const conf = rows.map((r) => { const s = softmax(r).sort((a, b) => b - a); return kind === 'margin' ? s[0] - s[1] : s[0]; });
      // argmax picks the first maximum: row [2,2,2,2] -> class 0 (label 0: correct); [1,1,0,0] -> 0 (label 1: wrong).
      const correct = rows.map((r, i) => r.indexOf(Math.max(...r)) === labels[i]);
      p.thresholds.forEach((tau, k) => {
        const ex = conf.map((c) => tau === 0 || c >= tau);
        const n = ex.filter(Boolean).length;
        expect(p.stages[0].exitProb[k]).toBeCloseTo(n / N, 12);
        if (n > 0) expect(p.stages[0].exitAccuracy[k]).toBeCloseTo(ex.filter((e, i) => e && correct[i]).length / n, 12);
      });
      expect(p.finalAccuracy).toBeCloseTo(correct.filter(Boolean).length / N, 12);
      expect(p.source).toBe('measured');
      expect(p.confidence).toBe(kind);
      expect(p.finalLayers).toEqual([2, 4]);
    }
  });

  it('a label outside the head\'s classes is an InputError naming labels', async () => {
    const d = join(root, 'badlabel');
    cpSync(dir, d, { recursive: true });
    writeI32(join(d, 'labels.i32'), Int32Array.from([0, 1, 0, 2, 9, 0, 1]));
    await expect(measureExitProfile(readExitFeatures(d))).rejects.toThrow(/labels.*\[4\] is 9.*4 classes/);
  });

  it('where no sample reaches a threshold the last defined accuracy carries forward', () => {
    const c = profileCurves([0.2, 0.9, 0.5], [0, 1, 0], [0, 0.5, 0.95, 1]);
    expect(c.exitProb).toEqual([1, 2 / 3, 0, 0]);
    expect(c.exitAccuracy).toEqual([1 / 3, 0.5, 0.5, 0.5]);
  });

  it('bad features: wrong file sizes, a missing head, a layer gap are InputErrors naming the field', () => {
    const field = (mut: (m: Record<string, unknown>) => void): string | undefined => {
      const d = join(root, `bad-${Math.random().toString(36).slice(2)}`);
      cpSync(dir, d, { recursive: true });
      const m = JSON.parse(readFileSync(join(d, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      mut(m);
      writeFileSync(join(d, 'manifest.json'), JSON.stringify(m));
      try { readExitFeatures(d); } catch (e) { if (e instanceof InputError) return e.field; throw e; }
      return 'no error';
    };
    expect(field((m) => { m.samples = 8; })).toBe('labels');
    expect(field((m) => { m.hiddenSize = 5; })).toBe('stages[0].hidden');
    expect(field((m) => { (m.stages as Record<string, unknown>[])[1].head = 'nope.onnx'; })).toBe('stages[1].head');
    expect(field((m) => { (m.stages as Record<string, unknown>[])[1].layers = [3, 4]; })).toBe('stages[1].layers');
    expect(field((m) => { m.format = 'x'; })).toBe('format');
  });
});

const CLI = join(REPO, 'dist/src/cli/main.js');

describe.skipIf(!existsSync(CLI))('hatsim exit-profile on a tiny seeded ONNX model (graph.ts LM heads)', () => {
  const dir = join(root, 'tiny');
  const model = getModel('tiny-test');
  const H = model.hiddenSize, N = 40, S = 3;

  it('writes a valid measured profile; margin works; bad input exits 2 naming the field and writes nothing', () => {
    const rng = new Rng(3, 'test/exit-features');
    const stages = [];
    for (let s = 0; s < S; s++) {
      const g = buildPartGraph({ model, part: 'lmHead', dir: join(dir, `head-${s + 1}`), seed: 100 + s });
      const hidden = new Float32Array(N * H).map(() => rng.normal());
      mkdirSync(dir, { recursive: true });
      writeF32(join(dir, `stage-${s + 1}.f32`), hidden);
      stages.push({ layers: [s, s + 1], hidden: `stage-${s + 1}.f32`, head: g.path.slice(dir.length + 1) });
    }
    writeI32(join(dir, 'labels.i32'), new Int32Array(N).map(() => rng.int(model.vocabSize)));
    writeFileSync(join(dir, 'manifest.json'), JSON.stringify({ format: FEATURES_FORMAT, model: 'tiny-test', samples: N, hiddenSize: H, labels: 'labels.i32', notes: 'seeded random', stages }));
    const out = join(root, 'tiny-profile.json');
    const r = spawnSync(process.execPath, [CLI, 'exit-profile', dir, '--out', out, '--batch', '16'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/exit profile of tiny-test from 40 samples/);
    const p = readProfile(out, S);
    expect(p.source).toBe('measured');
    expect(p.stages.map((s) => s.layers)).toEqual([[0, 1], [1, 2]]);
    expect(p.notes).toMatch(/seeded random/);
    const m = spawnSync(process.execPath, [CLI, 'exit-profile', dir, '--out', join(root, 'margin.json'), '--confidence', 'margin', '--quiet'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(m.status).toBe(0);
    expect(readProfile(join(root, 'margin.json'), S).confidence).toBe('margin');
    // Bad input: exit 2, the field named, no stack, nothing written.
    writeI32(join(dir, 'labels.i32'), new Int32Array(N - 1));
    const badOut = join(root, 'bad.json');
    const b = spawnSync(process.execPath, [CLI, 'exit-profile', dir, '--out', badOut], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/labels/);
    expect(b.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expect(existsSync(badOut)).toBe(false);
    const c = spawnSync(process.execPath, [CLI, 'exit-profile', dir, '--out', badOut, '--confidence', 'entropy'], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(c.status).toBe(2);
    expect(c.stderr).toMatch(/confidence/);
  });
});

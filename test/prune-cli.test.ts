/**
 * `hatsim prune` end to end (built CLI in dist/), and the --onnx-dir contract
 * on graphs written by calibrate/graph.ts (fused: packed QKV + GroupQueryAttention).
 * Bad input: exit 2, one clear message, no stack trace, nothing written.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { buildPartGraph } from '../src/calibrate/graph.js';
import { getModel } from '../src/model/catalog.js';
import { embed, layerForward } from '../src/prune/forward.js';
import { OnnxDirSource } from '../src/prune/onnx.js';
import { archOf } from '../src/prune/weights.js';
import { REPO } from './helpers.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const hatsim = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/);
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-prune-cli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const small = ['--model', 'tiny-test', '--sequences', '2', '--seq-len', '32', '--held-out', '1', '--quiet'];

function expectRefused(r: ReturnType<typeof hatsim>, pattern: RegExp, out: string): void {
  expect(r.status, r.stderr).toBe(2);
  expect(r.stderr).toMatch(pattern);
  noStack(r.stderr);
  expect(existsSync(out)).toBe(false);
  expect(readdirSync(tmp).filter((f) => f.startsWith('.') && f.endsWith('.tmp'))).toEqual([]);
}

/** graph.ts parts renamed to the --onnx-dir contract (fused decoder of 2 layers). */
function graphDir(name: string, variant: 'fused' | 'standard'): string {
  const dir = join(tmp, name);
  const m = getModel('tiny-test');
  for (const [part, file, layers] of [['embedding', 'embedding', 1], ['decoderLayer', 'decoder', 2], ['lmHead', 'lmHead', 1]] as const) {
    const g = buildPartGraph({ model: m, part, layers, variant, dir: join(dir, 'build'), seed: 3 });
    const proto = onnxProto.onnx.ModelProto.decode(readFileSync(g.path));
    for (const t of proto.graph?.initializer ?? []) for (const e of t.externalData ?? []) if (e.key === 'location') e.value = `${file}.onnx.data`;
    writeFileSync(join(dir, `${file}.onnx`), onnxProto.onnx.ModelProto.encode(proto).finish());
    renameSync(`${g.path}.data`, join(dir, `${file}.onnx.data`));
  }
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  return dir;
}

describe.skipIf(!existsSync(CLI))('hatsim prune CLI', () => {
  it('prunes tiny-test (seeded) and prunes its own output again through --onnx-dir', () => {
    const out = join(tmp, 'ok');
    const r = hatsim('prune', ...small, '--ratio', '0.3', '--method', 'comp', '--out', out);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/comp ratio 0.3 \(achieved 0\.3\d*\): layers kept 3\/4/);
    const pj = JSON.parse(readFileSync(join(out, 'pruning.json'), 'utf8'));
    expect(pj.layersKept).toHaveLength(3);
    expect(pj.ffnWidths.every((f: number) => f <= 688)).toBe(true);
    const again = hatsim('prune', ...small, '--onnx-dir', join(out, 'model'), '--ratio', '0.1', '--method', 'magnitude', '--out', join(tmp, 'again'));
    expect(again.status, again.stderr).toBe(0);
    const pj2 = JSON.parse(readFileSync(join(tmp, 'again', 'pruning.json'), 'utf8'));
    expect(pj2.numLayersBefore).toBe(3);
  });

  it('--replot re-draws a finished grid from its points\' report.json (front.svg included) without pruning; an empty grid and a bad --front-hardware are refused', () => {
    const grid = join(tmp, 'grid');
    const r = hatsim('prune', ...small, '--ratio', '0.3', '--method', 'comp', '--out', join(grid, 'comp-r0.3'));
    expect(r.status, r.stderr).toBe(0);
    const before = readFileSync(join(grid, 'comp-r0.3', 'pruning.json'));
    const re = hatsim('prune', ...small, '--ratio', '0.3', '--method', 'comp,magnitude', '--out', grid, '--plot', '--replot', '--front-hardware', 'jetson-tx2');
    expect(re.status, re.stderr).toBe(0);
    expect(re.stdout).toMatch(/skipped grid points \(no report\.json\): magnitude@0\.3/);
    expect(readFileSync(join(grid, 'summary.csv'), 'utf8').trim().split('\n')).toHaveLength(2);
    const front = JSON.parse(readFileSync(join(grid, 'front.vl.json'), 'utf8')) as { data: { values: { label: string; device: string }[] } };
    expect(front.data.values.map((v) => `${v.device}|${v.label}`)).toEqual(['jetson-tx2 (roofline estimate)|unpruned', 'jetson-tx2 (roofline estimate)|comp 0.3']);
    expect(existsSync(join(grid, 'magnitude-r0.3'))).toBe(false);
    expect(readFileSync(join(grid, 'comp-r0.3', 'pruning.json')).equals(before)).toBe(true);
    const empty = hatsim('prune', ...small, '--ratio', '0.1,0.2', '--method', 'comp', '--out', join(tmp, 'no-grid'), '--replot');
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(/--replot: no grid point .* has a report\.json/);
    const bad = hatsim('prune', ...small, '--ratio', '0.1,0.2', '--method', 'comp', '--out', join(tmp, 'bad-front'), '--plot', '--front-hardware', 'jetson-z80');
    expectRefused(bad, /--front-hardware "jetson-z80" is not a data-sheet hardware id/, join(tmp, 'bad-front'));
  });

  it.each(['1.5', '0', '-0.2', '1'])('--ratio %s is refused (exit 2, nothing written)', (ratio) => {
    const out = join(tmp, `bad-ratio-${ratio}`);
    expectRefused(hatsim('prune', ...small, '--ratio', ratio, '--out', out), /--ratio .* outside \(0, 1\)/, out);
  });

  it('calibration data too short for the least squares is refused', () => {
    const out = join(tmp, 'short');
    expectRefused(hatsim('prune', '--model', 'tiny-test', '--held-out', '1', '--sequences', '1', '--seq-len', '8', '--ratio', '0.2', '--out', out), /calibration data too short for the least squares: 8 calibration tokens, need at least 64/, out);
    const tok = join(tmp, 'few.txt');
    writeFileSync(tok, '1 2 3 4 5\n');
    expectRefused(hatsim('prune', ...small, '--tokens', tok, '--ratio', '0.2', '--out', out), /calibration data too short/, out);
  });

  it('a graph that is not LLaMA-shaped is refused, saying what was expected', () => {
    const dir = graphDir('notllama', 'standard');
    copyFileSync(join(dir, 'lmHead.onnx'), join(dir, 'decoder.onnx'));
    copyFileSync(join(dir, 'lmHead.onnx.data'), join(dir, 'lmHead2.data'));
    const out = join(tmp, 'nl-out');
    expectRefused(hatsim('prune', ...small, '--onnx-dir', dir, '--ratio', '0.2', '--out', out), /not LLaMA-shaped: expected a decoder graph with input hidden_states/, out);
  });

  it('missing initializers are refused, naming the initializer', () => {
    const dir = graphDir('missing', 'standard');
    const path = join(dir, 'decoder.onnx');
    const proto = onnxProto.onnx.ModelProto.decode(readFileSync(path));
    proto.graph!.initializer = (proto.graph?.initializer ?? []).filter((t) => t.name !== 'l1.mlp.down.weight');
    writeFileSync(path, onnxProto.onnx.ModelProto.encode(proto).finish());
    const out = join(tmp, 'mi-out');
    expectRefused(hatsim('prune', ...small, '--onnx-dir', dir, '--ratio', '0.2', '--out', out), /initializer l1\.mlp\.down\.weight is missing/, out);
    rmSync(join(dir, 'lmHead.onnx'));
    expectRefused(hatsim('prune', ...small, '--onnx-dir', dir, '--ratio', '0.2', '--out', out), /lmHead\.onnx is missing/, out);
  });

  it('unknown method and a ratio too high for neurons only are refused', () => {
    const out = join(tmp, 'bad-m');
    expectRefused(hatsim('prune', ...small, '--method', 'slicegpt', '--ratio', '0.2', '--out', out), /--method "slicegpt" is unknown; allowed: comp, comp-notune, magnitude, random, layers/, out);
    expectRefused(hatsim('prune', ...small, '--method', 'magnitude', '--ratio', '0.95', '--out', out), /more than --max-neuron-fraction/, out);
  });
});

describe('--onnx-dir reads graph.ts exports', () => {
  it('an FFN stored in the Hugging Face [out, in] layout is recognised by its shape and transposed back', () => {
    const dir = graphDir('hf', 'standard');
    const m = getModel('tiny-test');
    const before = new OnnxDirSource(dir, archOf(m)).layer(1);
    const path = join(dir, 'decoder.onnx');
    const proto = onnxProto.onnx.ModelProto.decode(readFileSync(path));
    const data = readFileSync(join(dir, 'decoder.onnx.data'));
    for (const t of proto.graph?.initializer ?? []) {
      if (!['l1.mlp.gate.weight', 'l1.mlp.up.weight', 'l1.mlp.down.weight'].includes(t.name ?? '')) continue;
      const [r, c] = (t.dims ?? []).map(Number);
      const off = Number(t.externalData?.find((e) => e.key === 'offset')?.value);
      const a = new Float32Array(data.buffer.slice(data.byteOffset + off, data.byteOffset + off + r * c * 4));
      const tr = new Float32Array(r * c);
      for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) tr[j * r + i] = a[i * c + j];
      Buffer.from(tr.buffer).copy(data, off);
      t.dims = [c, r];
    }
    writeFileSync(join(dir, 'decoder.onnx.data'), data);
    writeFileSync(path, onnxProto.onnx.ModelProto.encode(proto).finish());
    const after = new OnnxDirSource(dir, archOf(m)).layer(1);
    expect(after.ffn).toBe(688);
    expect(Buffer.from(after.gate.buffer).equals(Buffer.from(before.gate.buffer))).toBe(true);
    expect(Buffer.from(after.up.buffer).equals(Buffer.from(before.up.buffer))).toBe(true);
    expect(Buffer.from(after.down.buffer).equals(Buffer.from(before.down.buffer))).toBe(true);
  });

  it('fused graph.ts layers (packed QKV, GroupQueryAttention) read back and match ONNX Runtime', async () => {
    const dir = graphDir('fused', 'fused');
    const m = getModel('tiny-test');
    const src = new OnnxDirSource(dir, archOf(m));
    expect(src.numLayers).toBe(2);
    expect(src.ffnWidths()).toEqual([688, 688]);
    const S = 10;
    const ids = Int32Array.from({ length: S }, (_, i) => (i * 37) % m.vocabSize);
    const x0 = embed(ids, src.embedding(), m.hiddenSize);
    for (let i = 0; i < x0.length; i++) x0[i] *= 50; // graph.ts weights are ~0.02: scale up so attention is not uniform
    let x = x0.slice();
    for (let l = 0; l < 2; l++) x = layerForward(x, { seqs: 1, seqLen: S }, src.layer(l), src.dims);
    const session = await ort.InferenceSession.create(join(dir, 'decoder.onnx'));
    const kvh = m.numKvHeads, hd = m.hiddenSize / m.numHeads;
    const feeds: Record<string, ort.Tensor> = {
      hidden_states: new ort.Tensor('float32', x0, [1, S, m.hiddenSize]),
      seqlens_k: new ort.Tensor('int32', Int32Array.of(S - 1), [1]),
      total_sequence_length: new ort.Tensor('int32', Int32Array.of(S), []),
    };
    for (let l = 0; l < 2; l++) {
      feeds[`past_key_values.${l}.key`] = new ort.Tensor('float32', new Float32Array(0), [1, kvh, 0, hd]);
      feeds[`past_key_values.${l}.value`] = new ort.Tensor('float32', new Float32Array(0), [1, kvh, 0, hd]);
    }
    const y = (await session.run(feeds)).hidden_states_out.data as Float32Array;
    let maxErr = 0, maxRef = 0;
    for (let i = 0; i < y.length; i++) { maxErr = Math.max(maxErr, Math.abs(y[i] - x[i])); maxRef = Math.max(maxRef, Math.abs(x[i])); }
    expect(maxErr / maxRef).toBeLessThan(1e-4);
  });
});

/**
 * Reading a LLaMA-shaped model's weights from ONNX files, and writing a
 * (pruned) model back as plain-op ONNX (no custom ops) with calibrate/graph.ts's
 * "standard" graph and IO names, weights as external data.
 *
 * Input contract (docs/PRUNING.md): a folder with
 *   embedding.onnx  initializer embed_tokens.weight [V, H]
 *   decoder.onnx    per layer i = 0..N-1: l<i>.input_norm.weight [H],
 *                   l<i>.attn.q.weight [H,H], l<i>.attn.k.weight / v [H, kvH*D]
 *                   (or packed l<i>.attn.qkv.weight [H, H + 2 kvH*D]),
 *                   l<i>.attn.o.weight [H,H], l<i>.post_norm.weight [H],
 *                   l<i>.mlp.gate.weight / up [H,F], l<i>.mlp.down.weight [F,H]
 *                   (HF's [out,in] layout, i.e. gate/up [F,H], down [H,F], is detected and transposed);
 *   lmHead.onnx     final_norm.weight [H], lm_head.weight [H, V]
 * These are the names graph.ts writes (a `hatsim calibrate` model renamed, or this command's output).
 */
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import onnxProto from 'onnx-proto';
import { InputError } from '../core/errors.js';
import { GraphBuilder, IO, WeightSource, decoderLayer, externalFp32Initializer, rmsNorm, rotaryCaches, valueInfo, type Dims } from '../calibrate/graph.js';
import { transpose } from './linalg.js';
import type { ArchDims, LayerWeights, ModelSource } from './weights.js';

const { onnx } = onnxProto;
type Tensor = onnxProto.onnx.ITensorProto;
const F32 = onnx.TensorProto.DataType.FLOAT;
const I64 = onnx.TensorProto.DataType.INT64;

export const PART_FILES = { embedding: 'embedding.onnx', decoder: 'decoder.onnx', lmHead: 'lmHead.onnx' } as const;

/** One decoded ONNX file: its initializers by name, read lazily from raw or external data. */
export class OnnxFile {
  readonly inits = new Map<string, Tensor>();
  readonly inputs: string[];
  readonly outputs: string[];
  readonly ops: Set<string>;
  constructor(readonly path: string) {
    if (!existsSync(path)) throw new InputError(`--onnx-dir: ${path} is missing (expected ${Object.values(PART_FILES).join(', ')}; see docs/PRUNING.md)`, 'onnx-dir');
    let m: onnxProto.onnx.ModelProto;
    try {
      m = onnx.ModelProto.decode(readFileSync(path));
    } catch (e) {
      throw new InputError(`${path} is not an ONNX model (${e instanceof Error ? e.message : String(e)})`, 'onnx-dir');
    }
    const g = m.graph;
    if (!g) throw new InputError(`${path} has no graph`, 'onnx-dir');
    for (const t of g.initializer ?? []) if (t.name) this.inits.set(t.name, t);
    this.inputs = (g.input ?? []).map((v) => v.name ?? '');
    this.outputs = (g.output ?? []).map((v) => v.name ?? '');
    this.ops = new Set((g.node ?? []).map((n) => n.opType ?? ''));
  }

  shape(name: string): number[] | undefined {
    const t = this.inits.get(name);
    return t ? (t.dims ?? []).map((d) => Number(d)) : undefined;
  }

  /** Float32 data of an initializer, checked against the expected element count. */
  read(name: string): Float32Array {
    const t = this.inits.get(name);
    if (!t) throw new InputError(`${this.path}: initializer ${name} is missing (see docs/PRUNING.md for the expected names)`, 'onnx-dir');
    if (t.dataType !== F32) throw new InputError(`${this.path}: initializer ${name} must be float32 (data type ${String(t.dataType)})`, 'onnx-dir');
    const count = (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1);
    const out = new Float32Array(count);
    if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
      const kv = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
      const file = join(dirname(this.path), kv.get('location') ?? '');
      const offset = Number(kv.get('offset') ?? '0');
      if (!existsSync(file)) throw new InputError(`${this.path}: external data file ${file} of ${name} is missing`, 'onnx-dir');
      const fd = openSync(file, 'r');
      try {
        if (fstatSync(fd).size < offset + count * 4) throw new InputError(`${this.path}: external data of ${name} is truncated in ${file}`, 'onnx-dir');
        readSync(fd, new Uint8Array(out.buffer), 0, count * 4, offset);
      } finally {
        closeSync(fd);
      }
    } else if (t.rawData && t.rawData.length > 0) {
      if (t.rawData.length !== count * 4) throw new InputError(`${this.path}: ${name} has ${t.rawData.length} bytes, expected ${count * 4}`, 'onnx-dir');
      new Uint8Array(out.buffer).set(t.rawData);
    } else if (t.floatData && t.floatData.length === count) {
      out.set(t.floatData);
    } else {
      throw new InputError(`${this.path}: initializer ${name} has no data`, 'onnx-dir');
    }
    return out;
  }
}

function expectShape(f: OnnxFile, name: string, want: number[][], what: string): number[] {
  const s = f.shape(name);
  if (!s) throw new InputError(`${f.path}: initializer ${name} is missing; a LLaMA-shaped ${what} needs it (see docs/PRUNING.md)`, 'onnx-dir');
  if (!want.some((w) => w.length === s.length && w.every((d, i) => d < 0 || d === s[i]))) {
    throw new InputError(`${f.path}: ${name} has shape [${s.join(',')}], expected ${want.map((w) => `[${w.map((d) => (d < 0 ? '?' : d)).join(',')}]`).join(' or ')} (${what})`, 'onnx-dir');
  }
  return s;
}

/** A model in an --onnx-dir folder; head counts come from the catalog model given with it. */
export class OnnxDirSource implements ModelSource {
  readonly numLayers: number;
  readonly description: string;
  private readonly dec: OnnxFile;
  private readonly emb: OnnxFile;
  private readonly head: OnnxFile;
  private readonly widths: number[];
  private readonly packed: boolean;

  constructor(readonly dir: string, readonly dims: ArchDims) {
    this.dec = new OnnxFile(join(dir, PART_FILES.decoder));
    this.emb = new OnnxFile(join(dir, PART_FILES.embedding));
    this.head = new OnnxFile(join(dir, PART_FILES.lmHead));
    this.description = `ONNX model in ${dir}`;
    const h = dims.hidden;
    const kv = dims.kvHeads * dims.headDim;
    if (!this.dec.inputs.includes(IO.hidden) || !this.dec.outputs.includes(IO.hiddenOut)) {
      throw new InputError(
        `${this.dec.path} is not LLaMA-shaped: expected a decoder graph with input ${IO.hidden} [B,S,${h}] and output ${IO.hiddenOut} ` +
          `(found inputs ${this.dec.inputs.join(', ') || 'none'}; outputs ${this.dec.outputs.join(', ') || 'none'})`,
        'onnx-dir',
      );
    }
    let n = 0;
    while (this.dec.inits.has(`l${n}.attn.o.weight`)) n++;
    if (n === 0) {
      const found = [...this.dec.inits.keys()].slice(0, 6).join(', ');
      throw new InputError(
        `${this.dec.path} is not LLaMA-shaped: expected initializers l0.attn.o.weight, l0.mlp.gate.weight, ... for layers l0..l<N-1> ` +
          `(graph.ts naming, see docs/PRUNING.md); found ${found || 'no initializers'}`,
        'onnx-dir',
      );
    }
    this.numLayers = n;
    this.packed = this.dec.inits.has('l0.attn.qkv.weight');
    this.widths = [];
    for (let i = 0; i < n; i++) {
      const p = `l${i}.`;
      expectShape(this.dec, `${p}input_norm.weight`, [[h]], `layer ${i} input RMSNorm`);
      expectShape(this.dec, `${p}post_norm.weight`, [[h]], `layer ${i} post-attention RMSNorm`);
      if (this.packed) expectShape(this.dec, `${p}attn.qkv.weight`, [[h, h + 2 * kv]], `layer ${i} packed QKV, hidden ${h}, kv width ${kv}`);
      else {
        expectShape(this.dec, `${p}attn.q.weight`, [[h, h]], `layer ${i} q projection`);
        expectShape(this.dec, `${p}attn.k.weight`, [[h, kv]], `layer ${i} k projection, kv width ${kv}`);
        expectShape(this.dec, `${p}attn.v.weight`, [[h, kv]], `layer ${i} v projection, kv width ${kv}`);
      }
      expectShape(this.dec, `${p}attn.o.weight`, [[h, h]], `layer ${i} o projection`);
      const g = expectShape(this.dec, `${p}mlp.gate.weight`, [[h, -1], [-1, h]], `layer ${i} FFN gate`);
      const f = g[0] === h && g[1] !== h ? g[1] : g[0] === h ? g[1] : g[0];
      expectShape(this.dec, `${p}mlp.up.weight`, [[h, f], [f, h]], `layer ${i} FFN up, width ${f}`);
      expectShape(this.dec, `${p}mlp.down.weight`, [[f, h], [h, f]], `layer ${i} FFN down, width ${f}`);
      this.widths.push(f);
    }
    expectShape(this.emb, 'embed_tokens.weight', [[dims.vocab, h]], `embedding, vocab ${dims.vocab}`);
    expectShape(this.head, 'final_norm.weight', [[h]], 'final RMSNorm');
    expectShape(this.head, 'lm_head.weight', [[h, dims.vocab], [dims.vocab, h]], `LM head, vocab ${dims.vocab}`);
  }

  ffnWidths(): number[] {
    return [...this.widths];
  }

  /** Read [rows, cols] in the MatMul layout, transposing an HF [cols, rows] tensor. */
  private matrix(f: OnnxFile, name: string, rows: number, cols: number): Float32Array {
    const s = f.shape(name) ?? [];
    const a = f.read(name);
    return s[0] === rows && s[1] === cols ? a : transpose(a, s[0], s[1]);
  }

  layer(i: number): LayerWeights {
    const d = this.dims;
    const h = d.hidden;
    const kv = d.kvHeads * d.headDim;
    const f = this.widths[i];
    const p = `l${i}.`;
    let q: Float32Array, k: Float32Array, v: Float32Array;
    if (this.packed) {
      const qkv = this.dec.read(`${p}attn.qkv.weight`);
      const w = h + 2 * kv;
      q = new Float32Array(h * h);
      k = new Float32Array(h * kv);
      v = new Float32Array(h * kv);
      for (let r = 0; r < h; r++) {
        q.set(qkv.subarray(r * w, r * w + h), r * h);
        k.set(qkv.subarray(r * w + h, r * w + h + kv), r * kv);
        v.set(qkv.subarray(r * w + h + kv, r * w + w), r * kv);
      }
    } else {
      q = this.dec.read(`${p}attn.q.weight`);
      k = this.dec.read(`${p}attn.k.weight`);
      v = this.dec.read(`${p}attn.v.weight`);
    }
    return {
      inputNorm: this.dec.read(`${p}input_norm.weight`),
      q,
      k,
      v,
      o: this.dec.read(`${p}attn.o.weight`),
      postNorm: this.dec.read(`${p}post_norm.weight`),
      gate: this.matrix(this.dec, `${p}mlp.gate.weight`, h, f),
      up: this.matrix(this.dec, `${p}mlp.up.weight`, h, f),
      down: this.matrix(this.dec, `${p}mlp.down.weight`, f, h),
      ffn: f,
    };
  }
  embedding(): Float32Array {
    return this.emb.read('embed_tokens.weight');
  }
  finalNorm(): Float32Array {
    return this.head.read('final_norm.weight');
  }
  lmHead(): Float32Array {
    return this.matrix(this.head, 'lm_head.weight', this.dims.hidden, this.dims.vocab);
  }
}

/** A graph builder whose "random" weights are the given tensors, streamed to an external-data file. */
class GivenBuilder extends GraphBuilder {
  given = new Map<string, Float32Array>();
  private offset = 0;
  constructor(private readonly out: number, private readonly dataName: string) {
    super(out, dataName, new WeightSource(1, 16));
  }
  override randomWeight(name: string, dims: number[], constant?: number): string {
    const count = dims.reduce((a, b) => a * b, 1);
    const w = this.given.get(name);
    if (!w && constant === undefined) throw new Error(`no weight given for ${name}`);
    const data = w ?? new Float32Array(count).fill(constant ?? 0);
    if (data.length !== count) throw new Error(`weight ${name}: ${data.length} values for shape [${dims.join(',')}]`);
    writeSync(this.out, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.inits.push(externalFp32Initializer(name, dims, this.dataName, this.offset, count * 4));
    this.offset += count * 4;
    this.weightBytes += count * 4;
    return name;
  }
}

function graphDims(d: ArchDims, maxPos: number, ffn: number): Dims {
  return { h: d.hidden, heads: d.heads, kvHeads: d.kvHeads, headDim: d.headDim, inter: ffn, vocab: d.vocab, maxPos };
}

function encode(path: string, name: string, g: GraphBuilder): void {
  const modelProto = onnx.ModelProto.create({
    irVersion: 10,
    producerName: 'hatsim-prune',
    opsetImport: [{ domain: '', version: 17 }],
    graph: { name, node: g.nodes, initializer: g.inits, input: g.inputs, output: g.outputs },
  });
  writeFileSync(path, onnx.ModelProto.encode(modelProto).finish());
}

/**
 * Streams a decoder stack to `<dir>/<file>` layer by layer (each layer's
 * weights are written as soon as it is added, so memory holds one layer).
 * Plain ONNX ops only (opset 17): graph.ts's "standard" decoder layer.
 */
export class DecoderWriter {
  private readonly fd: number;
  private readonly g: GivenBuilder;
  private readonly caches: { cos: string; sin: string };
  private x: string = IO.hidden;
  private count = 0;
  private done = false;
  constructor(readonly dir: string, readonly file: string, readonly dims: ArchDims, readonly maxPos: number) {
    mkdirSync(dir, { recursive: true });
    this.fd = openSync(join(dir, `${file}.data`), 'w');
    this.g = new GivenBuilder(this.fd, `${file}.data`);
    this.g.inputs.push(valueInfo(IO.hidden, F32, ['batch', 'seq', dims.hidden]));
    const rc = rotaryCaches(maxPos, dims.headDim);
    this.caches = { cos: this.g.floatConst('cos_cache', [maxPos, dims.headDim / 2], rc.cos), sin: this.g.floatConst('sin_cache', [maxPos, dims.headDim / 2], rc.sin) };
  }
  add(w: LayerWeights): void {
    const li = this.count++;
    const d = this.dims;
    const kv = d.kvHeads * d.headDim;
    const p = `l${li}.`;
    const given = this.g.given;
    given.clear();
    given.set(`${p}input_norm.weight`, w.inputNorm);
    given.set(`${p}attn.q.weight`, w.q);
    given.set(`${p}attn.k.weight`, w.k);
    given.set(`${p}attn.v.weight`, w.v);
    given.set(`${p}attn.o.weight`, w.o);
    given.set(`${p}post_norm.weight`, w.postNorm);
    given.set(`${p}mlp.gate.weight`, w.gate);
    given.set(`${p}mlp.up.weight`, w.up);
    given.set(`${p}mlp.down.weight`, w.down);
    if (w.q.length !== d.hidden * d.hidden || w.k.length !== d.hidden * kv) throw new Error('layer weights do not match the model dims');
    this.x = decoderLayer(this.g, graphDims(d, this.maxPos, w.ffn), 'standard', this.x, li, this.caches);
    given.clear();
  }
  get layers(): number {
    return this.count;
  }
  finish(): string {
    if (this.done) throw new Error('finish() called twice');
    this.done = true;
    closeSync(this.fd);
    this.g.node('Identity', [this.x], [IO.hiddenOut]);
    this.g.outputs.push(valueInfo(IO.hiddenOut, F32, ['batch', 'seq', this.dims.hidden]));
    const path = join(this.dir, this.file);
    encode(path, this.file.replace(/\.onnx$/, ''), this.g);
    return path;
  }
  abort(): void {
    if (!this.done) closeSync(this.fd);
    this.done = true;
  }
}

/** embedding.onnx (Gather) and lmHead.onnx (RMSNorm + MatMul), plain ops. */
export function writeEmbeddingAndHead(dir: string, d: ArchDims, table: Float32Array, finalNorm: Float32Array, head: Float32Array): void {
  mkdirSync(dir, { recursive: true });
  {
    const fd = openSync(join(dir, `${PART_FILES.embedding}.data`), 'w');
    try {
      const g = new GivenBuilder(fd, `${PART_FILES.embedding}.data`);
      g.given.set('embed_tokens.weight', table);
      g.inputs.push(valueInfo(IO.inputIds, I64, ['batch', 'seq']));
      g.node('Gather', [g.randomWeight('embed_tokens.weight', [d.vocab, d.hidden]), IO.inputIds], [IO.hiddenOut], { axis: 0 });
      g.outputs.push(valueInfo(IO.hiddenOut, F32, ['batch', 'seq', d.hidden]));
      encode(join(dir, PART_FILES.embedding), 'embedding', g);
    } finally {
      closeSync(fd);
    }
  }
  const fd = openSync(join(dir, `${PART_FILES.lmHead}.data`), 'w');
  try {
    const g = new GivenBuilder(fd, `${PART_FILES.lmHead}.data`);
    g.given.set('final_norm.weight', finalNorm);
    g.given.set('lm_head.weight', head);
    g.inputs.push(valueInfo(IO.hidden, F32, ['batch', 'seq', d.hidden]));
    const n = rmsNorm(g, 'standard', IO.hidden, g.randomWeight('final_norm.weight', [d.hidden]));
    g.node('MatMul', [n, g.randomWeight('lm_head.weight', [d.hidden, d.vocab])], [IO.logits]);
    g.outputs.push(valueInfo(IO.logits, F32, ['batch', 'seq', d.vocab]));
    encode(join(dir, PART_FILES.lmHead), 'lmHead', g);
  } finally {
    closeSync(fd);
  }
}

/**
 * Real ONNX compute for the live runner. Parts are the calibration graphs
 * (calibrate/graph.ts, seeded weights) or the user's exports with the same
 * IO contract (docs/LIVE.md). One decoder-layer graph is run L times for L
 * layers (calibration's layer-scaling check: within about 10 %); past KV
 * tensors of length ctx are views of one preallocated buffer (their values do
 * not matter for timing); only the primary output is fetched.
 *
 * Pass composition (same as compute/submodel.ts):
 *   input   = embedding + inputLayers x layer
 *   adapter = adapter
 *   output  = outputLayers x layer + lmHead over `logits` positions (when > 0)
 *   slm     = input + adapter + output
 *   drafter = drafter model's embedding + numLayers x layer + lmHead
 *   middle  = middleLayers x layer;   full = embedding + numLayers x layer + lmHead
 *
 * onnxruntime-node runs a session synchronously on the calling thread, so the
 * live processes run this module in a worker thread (compute-worker.ts): the
 * main thread's event loop (sockets, link shaping) is never blocked by compute.
 */
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { buildPartGraph, type PartId } from '../calibrate/graph.js';
import type { Session } from '../calibrate/measure.js';
import { getModel } from '../model/catalog.js';
import type { ModelSpec } from '../model/types.js';

export interface PartsPlan {
  modelId: string;
  inputLayers: number;
  outputLayers: number;
  middleLayers: number;
  drafterModelId: string;
}

/** What a process needs: device parts, cloud middle, cloud full, drafter. */
export interface PartsNeed {
  device: boolean;
  drafter: boolean;
  cloud: boolean;
}

export interface ComputeConfig {
  plan: PartsPlan;
  need: PartsNeed;
  /** Graph cache directory root (default $TMPDIR/hatsim-onnx). Graphs go to <root>/<model>/. */
  cacheDir?: string;
  /** A folder with the user's own exports named <part>.onnx (embedding, decoderLayer, adapter, lmHead). */
  onnxDir?: string;
  threads?: number;
}

export function defaultCacheDir(): string {
  return join(os.tmpdir(), 'hatsim-onnx');
}

/** Build (once) the calibration graphs of a model into the cache; concurrent builders are safe (temp dir + rename). */
export function ensureGraphs(model: ModelSpec, parts: readonly PartId[], cacheRoot = defaultCacheDir()): Record<string, string> {
  const dir = join(cacheRoot, model.id);
  mkdirSync(dir, { recursive: true });
  const out: Record<string, string> = {};
  for (const part of parts) {
    const name = `${model.id}.${part}.fused.onnx`;
    const path = join(dir, name);
    if (!existsSync(path) || !existsSync(`${path}.data`)) {
      const tmp = join(dir, `.build-${process.pid}-${part}-${Date.now()}`);
      try {
        const built = buildPartGraph({ model, part, dir: tmp });
        // data first, then the model: a reader that sees the .onnx also sees its data
        renameSync(`${built.path}.data`, `${path}.data`);
        renameSync(built.path, path);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    }
    out[part] = path;
  }
  return out;
}

function partPaths(model: ModelSpec, parts: readonly PartId[], cfg: ComputeConfig): Record<string, string> {
  if (cfg.onnxDir) {
    const files = new Set(readdirSync(cfg.onnxDir));
    const out: Record<string, string> = {};
    for (const p of parts) {
      if (!files.has(`${p}.onnx`)) throw new Error(`--onnx-dir ${cfg.onnxDir}: missing ${p}.onnx (expected embedding.onnx, decoderLayer.onnx, adapter.onnx, lmHead.onnx)`);
      out[p] = join(cfg.onnxDir, `${p}.onnx`);
    }
    return out;
  }
  return ensureGraphs(model, parts, cfg.cacheDir);
}

/** Sessions of one model and helpers to run one pass of each part. */
class ModelRunner {
  private readonly sessions = new Map<PartId, Session>();
  private kv = new Float32Array(0);
  private readonly headDim: number;
  private hiddenBuf = new Float32Array(0);

  constructor(readonly model: ModelSpec) {
    this.headDim = model.hiddenSize / model.numHeads;
  }

  async load(paths: Record<string, string>, threads: number): Promise<void> {
    for (const [part, path] of Object.entries(paths)) {
      // Live shapes change at every call (growing context, varying chunks): no memory-pattern
      // planning and no arena, which measured ~15 % faster for new shapes on this machine.
      this.sessions.set(part as PartId, await ort.InferenceSession.create(path, {
        executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential',
        graphOptimizationLevel: 'all', enableMemPattern: false, enableCpuMemArena: false,
      }));
    }
  }

  private session(part: PartId): Session {
    const s = this.sessions.get(part);
    if (!s) throw new Error(`live compute: part ${part} of ${this.model.id} is not loaded`);
    return s;
  }

  private kvTensor(ctx: number): ort.Tensor {
    const n = this.model.numKvHeads * ctx * this.headDim;
    if (this.kv.length < n) this.kv = new Float32Array(Math.max(n, this.kv.length * 2)).fill(0.01);
    return new ort.Tensor('float32', this.kv.subarray(0, n), [1, this.model.numKvHeads, ctx, this.headDim]);
  }

  private hidden(tokens: number): Float32Array {
    const n = tokens * this.model.hiddenSize;
    if (this.hiddenBuf.length < n) this.hiddenBuf = new Float32Array(n).fill(0.05);
    return this.hiddenBuf.subarray(0, n);
  }

  async embed(tokens: number): Promise<Float32Array> {
    const ids = new BigInt64Array(tokens);
    for (let i = 0; i < tokens; i++) ids[i] = BigInt((i * 7919) % this.model.vocabSize);
    const s = this.session('embedding');
    const r = await s.run({ input_ids: new ort.Tensor('int64', ids, [1, tokens]) }, ['hidden_states_out']);
    return r.hidden_states_out.data as Float32Array;
  }

  /** One attention-bearing pass (decoderLayer or adapter) over `tokens` new positions after `ctx` past ones. */
  async attn(part: 'decoderLayer' | 'adapter', tokens: number, ctx: number, x: Float32Array | null): Promise<Float32Array> {
    const s = this.session(part);
    const H = this.model.hiddenSize;
    const feeds: Record<string, ort.Tensor> = {};
    const input = x && x.length === tokens * H ? x : this.hidden(tokens);
    for (const name of s.inputNames) {
      if (name === 'hidden_states') feeds[name] = new ort.Tensor('float32', input, [1, tokens, H]);
      else if (name.startsWith('past_key_values.') || name.startsWith('past_')) feeds[name] = this.kvTensor(ctx);
      else if (name === 'seqlens_k') feeds[name] = new ort.Tensor('int32', Int32Array.of(ctx + tokens - 1), [1]);
      else if (name === 'total_sequence_length') feeds[name] = new ort.Tensor('int32', Int32Array.of(ctx + tokens), []);
      else if (name === 'attention_mask') feeds[name] = new ort.Tensor('int64', new BigInt64Array(ctx + tokens).fill(1n), [1, ctx + tokens]);
      else if (name === 'position_ids') {
        const pos = new BigInt64Array(tokens);
        for (let i = 0; i < tokens; i++) pos[i] = BigInt(ctx + i);
        feeds[name] = new ort.Tensor('int64', pos, [1, tokens]);
      } else throw new Error(`live compute: ONNX input "${name}" of ${part} is not understood (see docs/LIVE.md, ONNX contract)`);
    }
    const r = await s.run(feeds, ['hidden_states_out']);
    return r.hidden_states_out.data as Float32Array;
  }

  async head(positions: number, x: Float32Array | null): Promise<void> {
    if (positions <= 0) return;
    const H = this.model.hiddenSize;
    const input = x && x.length >= positions * H ? x.subarray(x.length - positions * H) : this.hidden(positions);
    await this.session('lmHead').run({ hidden_states: new ort.Tensor('float32', input, [1, positions, H]) }, ['logits']);
  }

  async layers(n: number, tokens: number, ctx: number, x: Float32Array | null): Promise<Float32Array | null> {
    let h = x;
    for (let i = 0; i < n; i++) h = await this.attn('decoderLayer', tokens, ctx, h);
    return h;
  }
}

export type PassWork = 'input' | 'adapter' | 'output' | 'slm' | 'drafter' | 'middle' | 'full' | 'part';

export interface PassRequest {
  work: PassWork;
  tokens: number;
  ctx: number;
  logits: number;
  /** work 'part' (topology runner): embedding? + layers x decoder layer + LM head? over the pass. */
  part?: { embedding: boolean; layers: number; lmHead: boolean };
}

/** Everything a process runs; created once per process (inside the compute worker). */
export class LiveCompute {
  private target: ModelRunner | null = null;
  private drafter: ModelRunner | null = null;

  constructor(private readonly cfg: ComputeConfig) {}

  async init(): Promise<void> {
    const { plan, need } = this.cfg;
    const threads = this.cfg.threads ?? 1;
    const model = getModel(plan.modelId);
    const parts = new Set<PartId>();
    if (need.device) { parts.add('embedding'); parts.add('decoderLayer'); parts.add('adapter'); parts.add('lmHead'); }
    if (need.cloud) { parts.add('embedding'); parts.add('decoderLayer'); parts.add('lmHead'); }
    if (parts.size > 0) {
      this.target = new ModelRunner(model);
      await this.target.load(partPaths(model, [...parts], this.cfg), threads);
    }
    if (need.drafter) {
      const dm = getModel(plan.drafterModelId);
      if (this.target && dm.id === model.id && parts.has('embedding') && parts.has('lmHead')) this.drafter = this.target;
      else {
        this.drafter = new ModelRunner(dm);
        await this.drafter.load(partPaths(dm, ['embedding', 'decoderLayer', 'lmHead'], { ...this.cfg, onnxDir: undefined }), threads);
      }
    }
    // Warm up every path once (first runs allocate).
    for (const w of ['input', 'adapter', 'output', 'drafter', 'middle', 'full'] as const) {
      if ((w === 'drafter' && !this.drafter) || ((w === 'middle' || w === 'full') && !need.cloud) || (['input', 'adapter', 'output'].includes(w) && !need.device)) continue;
      await this.pass({ work: w, tokens: 4, ctx: 8, logits: 1 });
      await this.pass({ work: w, tokens: 1, ctx: 8, logits: 1 });
    }
  }

  /** Run one pass; returns its wall time in ms. */
  async pass(p: PassRequest): Promise<number> {
    const t0 = performance.now();
    const plan = this.cfg.plan;
    const { tokens: n, ctx, logits } = p;
    switch (p.work) {
      case 'input': { const m = this.need(this.target); await m.layers(plan.inputLayers, n, ctx, await m.embed(n)); break; }
      case 'adapter': { await this.need(this.target).attn('adapter', n, ctx, null); break; }
      case 'output': { const m = this.need(this.target); await m.head(logits, await m.layers(plan.outputLayers, n, ctx, null)); break; }
      case 'slm': {
        const m = this.need(this.target);
        const h = await m.layers(plan.inputLayers, n, ctx, await m.embed(n));
        const a = await m.attn('adapter', n, ctx, h);
        await m.head(logits, await m.layers(plan.outputLayers, n, ctx, a));
        break;
      }
      case 'drafter': { const m = this.need(this.drafter); await m.head(logits, await m.layers(m.model.numLayers, n, ctx, await m.embed(n))); break; }
      case 'middle': { await this.need(this.target).layers(plan.middleLayers, n, ctx, null); break; }
      case 'full': { const m = this.need(this.target); await m.head(logits, await m.layers(m.model.numLayers, n, ctx, await m.embed(n))); break; }
      case 'part': {
        const m = this.need(this.target), q = p.part!;
        const h = await m.layers(q.layers, n, ctx, q.embedding ? await m.embed(n) : null);
        if (q.lmHead) await m.head(logits, h);
        break;
      }
    }
    return performance.now() - t0;
  }

  private need(m: ModelRunner | null): ModelRunner {
    if (!m) throw new Error('live compute: the parts for this work were not loaded in this process');
    return m;
  }
}

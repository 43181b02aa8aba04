/**
 * Speculative decoding with real weights, on the ONNX parts of an export
 * (export.ts): the SLM (embedding + input layers + adapter + output layers +
 * LM head, i.e. HAT's drafter) drafts, the full model (embedding + every
 * layer + LM head) verifies. Used by the live runner's `--real-acceptance`
 * (live/device-real.ts) and by tests; no TensorFlow.js.
 *
 * One round with g drafts from the committed context c:
 *   drafts   d_i from the SLM given c + d_1..d_{i-1}  (greedy: argmax; sampled: d_i ~ q_i = softmax(slm / T))
 *   verify   the full model's next-token logits p_1..p_{g+1} after c, c+d_1, ..., c+d_1..d_g, in one pass
 *   greedy   accepted k = longest prefix with d_i = argmax p_i; the next token is argmax p_{k+1}
 *            (the correction, or the bonus when k = g). This reproduces the full model's greedy
 *            decode exactly (up to float ties).
 *   sampled  standard speculative sampling (Leviathan et al. 2023, Chen et al. 2023): d_i is accepted
 *            with probability min(1, p_i(d_i) / q_i(d_i)) (one seeded uniform each), up to the first
 *            rejection; at a rejection the next token is drawn from norm(max(0, p_i - q_i)), after g
 *            acceptances from p_{g+1}. The output is distributed as sampling the full model at T.
 * The round commits the k accepted drafts and the next token (truncated to the tokens still wanted).
 *
 * KV caches: one per stack (full, SLM), each holding the tokens it was last fed; a round keeps the
 * longest prefix of the cache that matches the new context (rolled back by slicing) and feeds the rest.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { InputError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import type { ModelSpec } from '../model/types.js';
import { softmax } from './sampling.js';

export const EXPORT_FORMAT = 'hatsim-export/1';

/** export.json of an export of a trained model folder (written by commands.ts exportFolder). */
export interface ExportInfo {
  format: typeof EXPORT_FORMAT;
  model: string;
  source: 'trained';
  weightsSha256: string;
  tokenizer: { file: string; sha256: string };
  adapter: { sha256: string; inputLayers: number; outputLayers: number } | null;
}

/** Read and check `<dir>/export.json`; errors say what the folder is missing. */
export function readExportInfo(dir: string, flag = 'onnx-dir'): ExportInfo {
  const f = join(dir, 'export.json');
  if (!existsSync(dir)) throw new InputError(`--${flag} ${dir}: no such directory`, flag);
  if (!existsSync(f)) {
    throw new InputError(`--${flag} ${dir}: no export.json, so these are not the exported weights of a trained model (seeded random weights predict nothing); export one with: hatsim export-model --dir models/brown-small --out DIR`, flag);
  }
  let info: ExportInfo;
  try {
    info = JSON.parse(readFileSync(f, 'utf8')) as ExportInfo;
  } catch (e) {
    throw new InputError(`${f}: not valid JSON (${(e as Error).message})`, flag);
  }
  if (info.format !== EXPORT_FORMAT) throw new InputError(`${f}: field "format" is ${JSON.stringify(info.format)}, expected "${EXPORT_FORMAT}"`, 'format');
  if (info.source !== 'trained') throw new InputError(`${f}: field "source" is ${JSON.stringify(info.source)}; real acceptance needs trained weights`, 'source');
  return info;
}

type Session = ort.InferenceSession;

async function open(dir: string, name: string): Promise<Session> {
  const f = join(dir, `${name}.onnx`);
  if (!existsSync(f)) throw new InputError(`${f}: exported part missing (hatsim export-model writes it)`, 'onnx-dir');
  return ort.InferenceSession.create(f, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 });
}

/** A chain embedding -> attention parts (each with its KV cache) -> LM head. */
class KvStack {
  private kv: { k: ort.Tensor; v: ort.Tensor }[] = [];
  /** The tokens whose keys and values are in the cache, in order. */
  private fed: number[] = [];
  private readonly headDim: number;

  constructor(private readonly m: ModelSpec, private readonly embed: Session, private readonly attn: Session[], private readonly head: Session) {
    this.headDim = m.hiddenSize / m.numHeads;
    this.kv = attn.map(() => ({ k: this.emptyKv(), v: this.emptyKv() }));
  }

  private emptyKv(): ort.Tensor {
    return new ort.Tensor('float32', new Float32Array(0), [1, this.m.numKvHeads, 0, this.headDim]);
  }

  /** Keep the first n cached positions. */
  private truncate(n: number): void {
    if (n >= this.fed.length) return;
    const H = this.m.numKvHeads, D = this.headDim, P = this.fed.length;
    const cut = (t: ort.Tensor): ort.Tensor => {
      const src = t.data as Float32Array, out = new Float32Array(H * n * D);
      for (let h = 0; h < H; h++) out.set(src.subarray(h * P * D, h * P * D + n * D), h * n * D);
      return new ort.Tensor('float32', out, [1, H, n, D]);
    };
    this.kv = this.kv.map((e) => ({ k: cut(e.k), v: cut(e.v) }));
    this.fed = this.fed.slice(0, n);
  }

  /**
   * Next-token logits after each of the last `rows` tokens of `context` (rows >= 1): reuses the
   * cached prefix that matches, rolls back the rest, feeds the missing tokens in one pass.
   */
  async logits(context: readonly number[], rows: number): Promise<Float32Array[]> {
    let common = 0;
    while (common < this.fed.length && common < context.length && this.fed[common] === context[common]) common++;
    const keep = Math.min(common, context.length - rows);
    this.truncate(keep);
    const ids = context.slice(keep);
    const n = ids.length, H = this.m.hiddenSize, past = keep;
    const e = await this.embed.run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((x) => BigInt(x))), [1, n]) });
    let h = e.hidden_states_out;
    for (let i = 0; i < this.attn.length; i++) {
      const r = await this.attn[i].run({
        hidden_states: new ort.Tensor('float32', h.data as Float32Array, [1, n, H]),
        'past_key_values.0.key': this.kv[i].k,
        'past_key_values.0.value': this.kv[i].v,
        seqlens_k: new ort.Tensor('int32', Int32Array.of(past + n - 1), [1]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(past + n), []),
      });
      this.kv[i] = { k: r['present.0.key'], v: r['present.0.value'] };
      h = r.hidden_states_out;
    }
    this.fed = context.slice();
    const hd = h.data as Float32Array;
    const last = hd.subarray((n - rows) * H);
    const out = await this.head.run({ hidden_states: new ort.Tensor('float32', last.slice(), [1, rows, H]) });
    const lg = out.logits.data as Float32Array, V = this.m.vocabSize;
    return Array.from({ length: rows }, (_, j) => lg.slice(j * V, (j + 1) * V));
  }
}

function argmax(l: Float32Array): number {
  let best = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[best]) best = i;
  return best;
}

/** Index drawn from a probability vector with one uniform. */
function draw(p: Float64Array, u: number): number {
  let acc = 0;
  for (let i = 0; i < p.length; i++) { acc += p[i]; if (u < acc) return i; }
  for (let i = p.length - 1; i >= 0; i--) if (p[i] > 0) return i;
  return p.length - 1;
}

export type SpecMode = 'greedy' | 'sampled';

export interface SpecOptions { mode: SpecMode; temperature: number }

/** The loaded parts of one export (sessions are shared by every request). */
export class SpeculativeModel {
  private constructor(
    readonly m: ModelSpec,
    readonly info: ExportInfo,
    private readonly parts: { embed: Session; layers: Session[]; adapter: Session; head: Session },
  ) {}

  /** Load `dir` (an export with export.json and adapter.onnx) for catalog model `m`. */
  static async load(dir: string, m: ModelSpec): Promise<SpeculativeModel> {
    const info = readExportInfo(dir);
    if (info.model !== m.id) throw new InputError(`${join(dir, 'export.json')}: model ${info.model}, but the scenario's model is ${m.id}; export ${m.id} or set model: ${info.model}`, 'model');
    if (!info.adapter) throw new InputError(`${join(dir, 'export.json')}: the export has no HAT adapter (field "adapter" is null), so there is no SLM to draft with; train it (hatsim train --part adapter) and export again`, 'adapter');
    const layers: Session[] = [];
    for (let i = 0; i < m.numLayers; i++) layers.push(await open(dir, `layer.${i}`));
    return new SpeculativeModel(m, info, { embed: await open(dir, 'embedding'), layers, adapter: await open(dir, 'adapter'), head: await open(dir, 'lmHead') });
  }

  get split(): { inputLayers: number; outputLayers: number } {
    return { inputLayers: this.info.adapter!.inputLayers, outputLayers: this.info.adapter!.outputLayers };
  }

  fullStack(): KvStack {
    return new KvStack(this.m, this.parts.embed, this.parts.layers, this.parts.head);
  }

  slmStack(): KvStack {
    const { inputLayers, outputLayers } = this.split, L = this.m.numLayers;
    return new KvStack(this.m, this.parts.embed, [...this.parts.layers.slice(0, inputLayers), this.parts.adapter, ...this.parts.layers.slice(L - outputLayers)], this.parts.head);
  }

  /** One request: `prompt` ids, at most `outputTokens` generated; `rng` draws the sampled mode's choices. */
  request(prompt: readonly number[], outputTokens: number, o: SpecOptions, rng: Rng | null): SpecRequest {
    if (o.mode === 'sampled' && (!rng || !(o.temperature > 0))) throw new Error('sampled speculative decoding needs a seeded generator and a temperature > 0');
    return new SpecRequest(this, prompt, outputTokens, o, rng);
  }
}

export interface SpecRound { drafted: number; accepted: number; drafts: number[]; committed: number[] }

export class SpecRequest {
  readonly context: number[];
  readonly generated: number[] = [];
  readonly rounds: SpecRound[] = [];
  /** Per draft position i (0-based): rounds that reached it (all earlier drafts accepted) and that accepted it. */
  readonly reached: number[] = [];
  readonly acceptedAt: number[] = [];
  /** Wall time spent in the ONNX sessions and the accept logic (ms). */
  engineMs = 0;
  private readonly full: KvStack;
  private readonly slm: KvStack;
  /** The previous round accepted every draft: the SLM's next draft may be checked against its bonus token (parallel drafting). */
  private extraCheck: { context: number[]; bonus: number } | null = null;

  constructor(readonly model: SpeculativeModel, readonly prompt: readonly number[], readonly outputTokens: number, readonly o: SpecOptions, private readonly rng: Rng | null) {
    this.context = [...prompt];
    this.full = model.fullStack();
    this.slm = model.slmStack();
  }

  private scaled(l: Float32Array): Float64Array {
    return softmax(this.o.temperature === 1 ? l : l.map((x) => x / this.o.temperature));
  }

  private pick(l: Float32Array): number {
    return this.o.mode === 'greedy' ? argmax(l) : draw(this.scaled(l), this.rng!.uniform());
  }

  private count(i: number, ok: boolean): void {
    while (this.reached.length <= i) { this.reached.push(0); this.acceptedAt.push(0); }
    this.reached[i]++;
    if (ok) this.acceptedAt[i]++;
  }

  private commit(ids: number[]): number[] {
    const room = this.outputTokens - this.generated.length;
    const c = ids.slice(0, Math.max(0, room));
    this.generated.push(...c);
    this.context.push(...c);
    return c;
  }

  /** The first token (after the prompt's prefill): the full model's choice. */
  async first(): Promise<number> {
    if (this.generated.length > 0) return this.generated[0];
    const t0 = performance.now();
    const [l] = await this.full.logits(this.context, 1);
    this.commit([this.pick(l)]);
    this.engineMs += performance.now() - t0;
    return this.generated[0];
  }

  /** One verification round of `g` drafts; returns the accepted count k (0..g). */
  async round(g: number): Promise<number> {
    await this.first();
    const t0 = performance.now();
    const base = this.context.slice();
    const drafts: number[] = [], q: Float64Array[] = [];
    for (let i = 0; i < g; i++) {
      const [l] = await this.slm.logits([...base, ...drafts], 1);
      if (this.o.mode === 'sampled') q.push(this.scaled(l));
      drafts.push(this.o.mode === 'greedy' ? argmax(l) : draw(q[i], this.rng!.uniform()));
    }
    const p = await this.full.logits([...base, ...drafts], g + 1);
    let k = 0, next = -1;
    for (; k < g; k++) {
      let ok: boolean;
      if (this.o.mode === 'greedy') ok = argmax(p[k]) === drafts[k];
      else {
        const pp = this.scaled(p[k]), x = drafts[k];
        ok = this.rng!.uniform() < Math.min(1, pp[x] / q[k][x]);
        if (!ok) {
          const res = new Float64Array(pp.length);
          let s = 0;
          for (let v = 0; v < pp.length; v++) { res[v] = Math.max(0, pp[v] - q[k][v]); s += res[v]; }
          if (s > 0) for (let v = 0; v < res.length; v++) res[v] /= s;
          next = s > 0 ? draw(res, this.rng!.uniform()) : draw(pp, this.rng!.uniform());
        }
      }
      this.count(k, ok);
      if (!ok) break;
    }
    if (next < 0) next = k < g ? argmax(p[k]) : this.pick(p[g]);
    const committed = this.commit([...drafts.slice(0, k), next]);
    this.extraCheck = k === g ? { context: [...base, ...drafts], bonus: next } : null;
    this.rounds.push({ drafted: g, accepted: k, drafts, committed });
    this.engineMs += performance.now() - t0;
    return k;
  }

  /**
   * Parallel drafting: after a round that accepted all g drafts, does the SLM's next draft (given the
   * g drafts) equal the round's bonus token? (1 = the drafts made ahead are reused.) Counted as
   * draft position g + 1 of that round.
   */
  async extra(): Promise<number> {
    const x = this.extraCheck;
    this.extraCheck = null;
    if (!x) return 0;
    const t0 = performance.now();
    const [l] = await this.slm.logits(x.context, 1);
    const ok = this.pick(l) === x.bonus;
    this.count(this.rounds[this.rounds.length - 1].drafted, ok);
    this.engineMs += performance.now() - t0;
    return ok ? 1 : 0;
  }
}

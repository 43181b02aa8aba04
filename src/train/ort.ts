/**
 * Run an exported model folder (export.ts) in ONNX Runtime with a KV cache:
 * embedding -> layer.<i> (each with its own past/present KV) -> lmHead.
 * Used to check the export against the TensorFlow.js forward pass and to
 * generate from the ONNX parts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { InputError } from '../core/errors.js';
import type { ModelSpec } from '../model/types.js';

export class OnnxLm {
  private sessions = new Map<string, ort.InferenceSession>();
  private kv: { k: ort.Tensor; v: ort.Tensor }[] = [];
  /** Tokens already in the KV cache. */
  past = 0;

  private constructor(readonly m: ModelSpec, readonly dir: string) {}

  static async load(m: ModelSpec, dir: string, withAdapter = false): Promise<OnnxLm> {
    const lm = new OnnxLm(m, dir);
    const names = ['embedding', 'lmHead', ...Array.from({ length: m.numLayers }, (_, i) => `layer.${i}`), ...(withAdapter ? ['adapter'] : [])];
    for (const n of names) {
      const f = join(dir, `${n}.onnx`);
      if (!existsSync(f)) throw new InputError(`${f}: exported part missing (run hatsim train or export first)`, 'onnx-dir');
      lm.sessions.set(n, await ort.InferenceSession.create(f, { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 }));
    }
    lm.reset();
    return lm;
  }

  reset(): void {
    const d = this.m.hiddenSize / this.m.numHeads;
    const empty = (): ort.Tensor => new ort.Tensor('float32', new Float32Array(0), [1, this.m.numKvHeads, 0, d]);
    this.kv = Array.from({ length: this.m.numLayers }, () => ({ k: empty(), v: empty() }));
    this.past = 0;
  }

  private s(n: string): ort.InferenceSession {
    return this.sessions.get(n)!;
  }

  /** Feed new tokens; returns logits [tokens, vocab] (row-major). */
  async step(ids: readonly number[]): Promise<Float32Array> {
    const n = ids.length, H = this.m.hiddenSize;
    const e = await this.s('embedding').run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map((x) => BigInt(x))), [1, n]) });
    let h = e.hidden_states_out;
    for (let i = 0; i < this.m.numLayers; i++) {
      const r = await this.s(`layer.${i}`).run({
        hidden_states: new ort.Tensor('float32', h.data as Float32Array, [1, n, H]),
        'past_key_values.0.key': this.kv[i].k,
        'past_key_values.0.value': this.kv[i].v,
        seqlens_k: new ort.Tensor('int32', Int32Array.of(this.past + n - 1), [1]),
        total_sequence_length: new ort.Tensor('int32', Int32Array.of(this.past + n), []),
      });
      this.kv[i] = { k: r['present.0.key'], v: r['present.0.value'] };
      h = r.hidden_states_out;
    }
    this.past += n;
    const out = await this.s('lmHead').run({ hidden_states: new ort.Tensor('float32', h.data as Float32Array, [1, n, H]) });
    return out.logits.data as Float32Array;
  }
}

/** Token streams of the corpus splits and seeded training windows. */
import { Rng } from '../core/rng.js';
import { loadBrown, splitBrown, type BrownDoc, type CorpusSplits } from './corpus.js';
import type { Tokenizer } from './tokenizer.js';

/** Documents encoded and joined, each followed by the end-of-text id. */
export function encodeDocs(tok: Tokenizer, docs: readonly BrownDoc[]): Int32Array {
  const parts: number[][] = docs.map((d) => [...tok.encode(d.text), tok.eosId]);
  const out = new Int32Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

export interface TokenData { splits: CorpusSplits; train: Int32Array; validation: Int32Array; test: Int32Array }

export function tokenData(tok: Tokenizer, splits: CorpusSplits = splitBrown(loadBrown())): TokenData {
  return { splits, train: encodeDocs(tok, splits.train), validation: encodeDocs(tok, splits.validation), test: encodeDocs(tok, splits.test) };
}

/**
 * Batch `step` of a run: `batch` windows of seq+1 tokens at offsets drawn
 * from the stream named by (seed, "train/batch/<step>"): a resumed run draws
 * the same batches without saving generator state.
 */
export function trainBatch(stream: Int32Array, seed: number, step: number, batch: number, seq: number, name = 'train/batch'): { x: Int32Array; y: Int32Array } {
  const r = new Rng(seed, `${name}/${step}`);
  const x = new Int32Array(batch * seq), y = new Int32Array(batch * seq);
  const span = stream.length - seq - 1;
  if (span <= 0) throw new Error(`token stream of ${stream.length} is shorter than a window of ${seq + 1}`);
  for (let b = 0; b < batch; b++) {
    const o = r.int(span + 1);
    x.set(stream.subarray(o, o + seq), b * seq);
    y.set(stream.subarray(o + 1, o + seq + 1), b * seq);
  }
  return { x, y };
}

/** Non-overlapping evaluation windows (seq inputs + seq targets); at most `max` (evenly spaced), all when max is 0. */
export function evalWindows(stream: Int32Array, seq: number, max = 0): { x: Int32Array; y: Int32Array }[] {
  const n = Math.floor((stream.length - 1) / seq);
  const pick = max > 0 && max < n ? Array.from({ length: max }, (_, i) => Math.floor((i * n) / max)) : Array.from({ length: n }, (_, i) => i);
  return pick.map((w) => ({ x: stream.slice(w * seq, w * seq + seq), y: stream.slice(w * seq + 1, w * seq + seq + 1) }));
}

/** Perplexity of the trained model and of a unigram model, and sampling. */
import { tf } from './tf.js';
import { disposeCtx, forward, makeCtx, type Params } from './model.js';
import type { ModelSpec } from '../model/types.js';
import { evalWindows } from './data.js';
import { evalLoss } from './train.js';

/** Unigram with add-one smoothing fitted on `train`; cross-entropy (nats/token) on the targets of `windows`. */
export function unigramLoss(train: Int32Array, vocab: number, windows: { y: Int32Array }[]): number {
  const counts = new Float64Array(vocab).fill(1);
  for (const t of train) counts[t] += 1;
  const total = train.length + vocab;
  let s = 0, n = 0;
  for (const w of windows) for (const t of w.y) { s -= Math.log(counts[t] / total); n++; }
  return s / n;
}

export interface PerplexityReport { windows: number; seq: number; tokens: number; modelLoss: number; modelPerplexity: number; unigramLoss: number; unigramPerplexity: number }

/** Test perplexity on `maxWindows` evenly spaced non-overlapping windows of `seq` tokens (each token sees its window's earlier tokens). */
export function perplexity(m: ModelSpec, p: Params, train: Int32Array, test: Int32Array, seq: number, maxWindows: number): PerplexityReport {
  const win = evalWindows(test, seq, maxWindows);
  const c = makeCtx(m, seq);
  const loss = evalLoss(c, (ids) => forward(p, c, ids), win);
  disposeCtx(c);
  const uni = unigramLoss(train, m.vocabSize, win);
  return { windows: win.length, seq, tokens: win.length * seq, modelLoss: loss, modelPerplexity: Math.exp(loss), unigramLoss: uni, unigramPerplexity: Math.exp(uni) };
}

export { sampleToken, softmax } from './sampling.js';

/** Next-token logits [V] of the last position of each row: ids [B][S] (same S). */
export function lastLogits(m: ModelSpec, logitsFn: (ids: tf.Tensor2D) => tf.Tensor2D, rows: number[][]): Float32Array[] {
  const b = rows.length, s = rows[0].length;
  const flat = tf.tidy(() => {
    const l = logitsFn(tf.tensor2d(rows.flat(), [b, s], 'int32')).reshape([b, s, m.vocabSize]);
    return l.slice([0, s - 1, 0], [b, 1, m.vocabSize]).dataSync() as Float32Array;
  });
  return Array.from({ length: b }, (_, i) => flat.slice(i * m.vocabSize, (i + 1) * m.vocabSize));
}

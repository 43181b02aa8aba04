/** Pruning decisions from LoRA gradients: Taylor scores, smoothing, monotone top-k, masks consistent with the cost model. */
import { describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import { ImportanceTracker, columnScores, decideLayer, groupSums, keepTop, pruneMasks, rowScores } from '../src/fedspine/prune.js';
import { pruneStructure } from '../src/fedspine/cost.js';
import { aggregateLora } from '../src/fedspine/aggregate.js';
import type { ModelSpec } from '../src/model/types.js';

// A small GQA model: 4 heads of dim 2 in 2 KV groups, FFN 4.
const mini: ModelSpec = { id: 'mini', name: 'mini', numLayers: 2, hiddenSize: 8, intermediateSize: 4, numHeads: 4, numKvHeads: 2, vocabSize: 16, weightBytesPerElem: 2, activationBytesPerElem: 2, maxContext: 64 };

describe('importance from LoRA gradients', () => {
  it('row and column Taylor scores (hand computed)', () => {
    // B 2x2: rows [1 -2], [3 0]; grad [0.5 1], [-1 4] -> row scores |0.5|+|-2| = 2.5, |-3|+0 = 3
    expect(Array.from(rowScores(Float32Array.from([0.5, 1, -1, 4]), Float32Array.from([1, -2, 3, 0]), 2, 2))).toEqual([2.5, 3]);
    // A 2x3 (rank 2): columns sum over rank of |g a|
    const a = Float32Array.from([1, 2, 3, 4, 5, 6]), g = Float32Array.from([1, 0, -1, 0.5, 1, 0]);
    expect(Array.from(columnScores(g, a, 2, 3))).toEqual([1 + 2, 0 + 5, 3 + 0]);
    expect(Array.from(groupSums([1, 2, 3, 4, 5, 6], 2))).toEqual([3, 7, 11]);
  });
  it('smooths scores by an exponential moving average', () => {
    const t = new ImportanceTracker(1, 2, 0.5);
    t.observe(0, [4, 0]);
    t.observe(0, [0, 4]);
    expect(Array.from(t.scores(0))).toEqual([2, 2]);
    t.observe(0, [0, 4]);
    expect(Array.from(t.scores(0))).toEqual([1, 3]);
  });
  it('keeps the top units; pruned units stay pruned as the ratio grows; ties keep the lower index', () => {
    expect(Array.from(keepTop([5, 1, 3, 3], 2))).toEqual([1, 0, 1, 0]);
    const before = Uint8Array.from([0, 1, 1, 1]); // unit 0 pruned earlier
    expect(Array.from(keepTop([9, 1, 3, 2], 2, before.map((x) => 1 - x)))).toEqual([0, 0, 1, 1]);
  });
});

describe('pruning decisions and masks', () => {
  it('keep counts equal the cost model\'s, whole KV groups; masks cover the pruned rows and columns', () => {
    const m = decideLayer(mini, 0.5, [1, 7], [4, 1, 3, 2]);
    const keep = pruneStructure(mini, 0.5).layers[0];
    expect(m.kvGroups.reduce((s, x) => s + x, 0)).toBe(keep.kvHeads);
    expect(m.ffn.reduce((s, x) => s + x, 0)).toBe(keep.ffn);
    expect(Array.from(m.kvGroups)).toEqual([0, 1]);
    expect(Array.from(m.ffn)).toEqual([1, 0, 1, 0]);
    // q: 2 query heads x dim 2 per KV group; k/v: dim 2 per group; down: the FFN channels.
    expect(Array.from(pruneMasks(mini, m, 'q').outMask!)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(Array.from(pruneMasks(mini, m, 'v').outMask!)).toEqual([0, 0, 1, 1]);
    expect(Array.from(pruneMasks(mini, m, 'o').inMask!)).toEqual([0, 0, 0, 0, 1, 1, 1, 1]);
    expect(Array.from(pruneMasks(mini, m, 'down').inMask!)).toEqual([1, 0, 1, 0]);
  });
  it('a later, higher ratio never brings back a pruned unit; a lower ratio may', () => {
    const first = decideLayer(mini, 0.25, [1, 7], [4, 1, 3, 2]); // FFN keeps 3: channels 0, 2, 3
    expect(Array.from(first.ffn)).toEqual([1, 0, 1, 1]);
    const second = decideLayer(mini, 0.5, [1, 7], [0, 9, 3, 2], first); // channel 1 scores high now but stays out
    expect(Array.from(second.ffn)).toEqual([0, 0, 1, 1]);
    const back = decideLayer(mini, 0, [1, 7], [0, 9, 3, 2], second);
    expect(Array.from(back.ffn)).toEqual([1, 1, 1, 1]);
  });
  it('masks plug into aggregation: a pruned row is not held by that device', () => {
    const m = decideLayer(mini, 0.5, [1, 7], [4, 1, 3, 2]);
    const { outMask } = pruneMasks(mini, m, 'v'); // 4 rows, first two pruned
    const f = (b: number[]) => ({ rank: 1, dIn: 1, dOut: 4, a: Float32Array.from([1]), b: Float32Array.from(b) });
    const g = aggregateLora([{ factors: f([0, 0, 2, 2]), dataSize: 1, outMask }, { factors: f([4, 4, 4, 4]), dataSize: 1 }], 1, { weighting: 'data', normalize: 'holders' });
    expect(Array.from(g.b)).toEqual([4, 4, 3, 3]);
  });
  it('works at catalog scale (RoBERTa-base-sized: 12 heads, 3072 channels)', () => {
    const rb = getModel('roberta-base-sized');
    const m = decideLayer(rb, 0.3, Array.from({ length: 12 }, (_, i) => i), Array.from({ length: 3072 }, (_, i) => (i * 7919) % 3072));
    expect(m.kvGroups.reduce((s, x) => s + x, 0)).toBe(pruneStructure(rb, 0.3).layers[0].kvHeads);
    expect(pruneMasks(rb, m, 'q').outMask!.length).toBe(768);
  });
});

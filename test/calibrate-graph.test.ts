import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import { buildPartGraph, IO, partWeightBytes, type GraphVariant } from '../src/calibrate/graph.js';
import { createSession, makeFeeds } from '../src/calibrate/measure.js';

const dir = mkdtempSync(join(os.tmpdir(), 'hatsim-graph-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const model = getModel('tiny-test');
const H = model.hiddenSize;
const D = H / model.numHeads;

describe.each<GraphVariant>(['fused', 'standard'])('ONNX graphs (%s ops) at tiny-test dims', (variant) => {
  it('embedding maps input_ids [B,S] to hidden states [B,S,H]', async () => {
    const g = buildPartGraph({ model, part: 'embedding', dir, variant });
    const s = await createSession(g.path, { ep: 'cpu', threads: 1 });
    const out = await s.run(makeFeeds(s, model, { tokensPerSeq: 5, ctxPerSeq: 0, seqs: 2 }));
    expect(out[IO.hiddenOut].dims).toEqual([2, 5, H]);
    expect(g.weightBytes).toBe(partWeightBytes(model, 'embedding'));
  });

  it('lmHead gives logits [B,S,V]', async () => {
    const g = buildPartGraph({ model, part: 'lmHead', dir, variant });
    const s = await createSession(g.path, { ep: 'cpu', threads: 1 });
    const out = await s.run(makeFeeds(s, model, { tokensPerSeq: 3, ctxPerSeq: 0, seqs: 1 }));
    expect(out[IO.logits].dims).toEqual([1, 3, model.vocabSize]);
    expect(Number.isFinite(out[IO.logits].data[0] as number)).toBe(true);
  });

  it.each([1, 2])('decoder layer x%i: shapes right and the KV cache grows step by step', async (layers) => {
    const g = buildPartGraph({ model, part: 'decoderLayer', layers, dir, variant });
    expect(g.weightBytes).toBe(partWeightBytes(model, 'decoderLayer', layers));
    const s = await createSession(g.path, { ep: 'cpu', threads: 1 });
    // prefill 7 tokens, then decode 1 token twice, feeding present back as past
    let feeds = makeFeeds(s, model, { tokensPerSeq: 7, ctxPerSeq: 0, seqs: 1 });
    let past = 0;
    for (const n of [7, 1, 1]) {
      if (past > 0) {
        const next = makeFeeds(s, model, { tokensPerSeq: n, ctxPerSeq: past, seqs: 1 });
        for (let i = 0; i < layers; i++) {
          next[IO.pastKey(i)] = feeds[IO.pastKey(i)];
          next[IO.pastValue(i)] = feeds[IO.pastValue(i)];
        }
        feeds = next;
      }
      const out = await s.run(feeds);
      expect(out[IO.hiddenOut].dims).toEqual([1, n, H]);
      for (let i = 0; i < layers; i++) {
        expect(out[IO.presentKey(i)].dims).toEqual([1, model.numKvHeads, past + n, D]);
        expect(out[IO.presentValue(i)].dims).toEqual([1, model.numKvHeads, past + n, D]);
        feeds[IO.pastKey(i)] = out[IO.presentKey(i)] as ort.Tensor;
        feeds[IO.pastValue(i)] = out[IO.presentValue(i)] as ort.Tensor;
      }
      const data = out[IO.hiddenOut].data as Float32Array;
      expect(data.every((x) => Number.isFinite(x))).toBe(true);
      past += n;
    }
  });

  it('decoder layer runs a decode batch of several sequences', async () => {
    const g = buildPartGraph({ model, part: 'decoderLayer', dir, variant });
    const s = await createSession(g.path, { ep: 'cpu', threads: 1 });
    const out = await s.run(makeFeeds(s, model, { tokensPerSeq: 1, ctxPerSeq: 33, seqs: 4 }));
    expect(out[IO.hiddenOut].dims).toEqual([4, 1, H]);
    expect(out[IO.presentKey(0)].dims).toEqual([4, model.numKvHeads, 34, D]);
  });

  it('adapter (attention block + norm) keeps a KV cache', async () => {
    const g = buildPartGraph({ model, part: 'adapter', dir, variant });
    const s = await createSession(g.path, { ep: 'cpu', threads: 1 });
    const out = await s.run(makeFeeds(s, model, { tokensPerSeq: 4, ctxPerSeq: 10, seqs: 1 }));
    expect(out[IO.hiddenOut].dims).toEqual([1, 4, H]);
    expect(out[IO.presentValue(0)].dims).toEqual([1, model.numKvHeads, 14, D]);
  });
});

describe('causal attention', () => {
  it('a token\'s output does not depend on later tokens (fused and standard)', async () => {
    for (const variant of ['fused', 'standard'] as const) {
      const g = buildPartGraph({ model, part: 'decoderLayer', dir, variant });
      const s = await createSession(g.path, { ep: 'cpu', threads: 1 });
      const a = makeFeeds(s, model, { tokensPerSeq: 6, ctxPerSeq: 0, seqs: 1 });
      const b = makeFeeds(s, model, { tokensPerSeq: 6, ctxPerSeq: 0, seqs: 1 });
      const hb = b[IO.hidden].data as Float32Array;
      for (let i = 5 * H; i < 6 * H; i++) hb[i] += 1; // change only the last token
      const oa = (await s.run(a))[IO.hiddenOut].data as Float32Array;
      const ob = (await s.run(b))[IO.hiddenOut].data as Float32Array;
      for (let i = 0; i < 5 * H; i++) expect(ob[i]).toBeCloseTo(oa[i], 5);
      let diff = 0;
      for (let i = 5 * H; i < 6 * H; i++) diff += Math.abs(ob[i] - oa[i]);
      expect(diff).toBeGreaterThan(0);
    }
  });
});

import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import {
  MODELS,
  componentSize,
  getModel,
  hiddenStateBytesPerToken,
  makeSplitPlan,
  totalParams,
} from '../src/model/catalog.js';

function expectInputError(fn: () => unknown, ...fragments: string[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(InputError);
  const message = (caught as InputError).message;
  for (const f of fragments) expect(message).toContain(f);
}

describe('model catalog', () => {
  it('has the required models with consistent dims', () => {
    for (const id of ['llama2-7b', 'llama2-13b', 'tinyllama-1.1b', 'tiny-test', 'roberta-base-sized', 'brown-small']) {
      const m = getModel(id);
      expect(m.id).toBe(id);
      expect(m.hiddenSize % m.numHeads).toBe(0);
      expect(m.numHeads % m.numKvHeads).toBe(0);
    }
    expect(Object.keys(MODELS)).toHaveLength(6);
  });

  it('unknown model id names the id and the known ones', () => {
    expectInputError(() => getModel('gpt-5'), 'gpt-5', 'llama2-7b', 'tinyllama-1.1b', 'tiny-test');
  });

  it('a LLaMA-2-7B decoder layer has ~202M params, 404 MB fp16', () => {
    const s = componentSize(getModel('llama2-7b'), 'decoderLayer');
    expect(s.params).toBeGreaterThan(202e6 * 0.99);
    expect(s.params).toBeLessThan(202e6 * 1.01);
    expect(s.params).toBe(4 * 4096 * 4096 + 3 * 4096 * 11008 + 2 * 4096);
    expect(s.weightBytes).toBe(2 * s.params);
    expect(s.weightBytes / 1e6).toBeCloseTo(404.8, 0);
    // matmul FLOPs dominate: ~2 FLOPs per parameter
    expect(s.flopsPerToken / (2 * s.params)).toBeGreaterThan(1);
    expect(s.flopsPerToken / (2 * s.params)).toBeLessThan(1.01);
    expect(s.attnFlopsPerTokenCtx).toBe(4 * 4096);
    expect(s.kvBytesPerToken).toBe(2 * 4096 * 2);
  });

  it('GQA shrinks k/v projections and KV cache (TinyLlama)', () => {
    const m = getModel('tinyllama-1.1b');
    const s = componentSize(m, 'decoderLayer');
    const headDim = 2048 / 32;
    expect(s.params).toBe(2048 * (2048 + 2 * 4 * headDim + 2048) + 3 * 2048 * 5632 + 2 * 2048);
    expect(s.kvBytesPerToken).toBe(2 * 4 * headDim * 2);
    expect(s.attnFlopsPerTokenCtx).toBe(4 * 32 * headDim);
  });

  it('TinyLlama totals ~1.1B params, 7B ~6.74B, 13B ~13.0B', () => {
    expect(Math.abs(totalParams(getModel('tinyllama-1.1b')) / 1.1e9 - 1)).toBeLessThan(0.05);
    expect(Math.abs(totalParams(getModel('llama2-7b')) / 6.74e9 - 1)).toBeLessThan(0.01);
    expect(Math.abs(totalParams(getModel('llama2-13b')) / 13.0e9 - 1)).toBeLessThan(0.02);
  });

  it('embedding is a gather (no FLOPs), lmHead is a vocab x hidden matmul + norm', () => {
    const m = getModel('llama2-7b');
    const emb = componentSize(m, 'embedding');
    expect(emb.params).toBe(32000 * 4096);
    expect(emb.flopsPerToken).toBe(0);
    expect(emb.kvBytesPerToken).toBe(0);
    const head = componentSize(m, 'lmHead');
    expect(head.params).toBe(32000 * 4096 + 4096);
    expect(head.flopsPerToken).toBeGreaterThanOrEqual(2 * 32000 * 4096);
    expect(head.kvBytesPerToken).toBe(0);
  });

  it('adapter kinds', () => {
    const m = getModel('llama2-7b');
    const layer = componentSize(m, 'decoderLayer');
    const attn = componentSize(m, 'adapter', 'attention-block');
    expect(attn.params).toBe(4 * 4096 * 4096 + 4096);
    expect(attn.kvBytesPerToken).toBe(layer.kvBytesPerToken);
    expect(attn.attnFlopsPerTokenCtx).toBe(layer.attnFlopsPerTokenCtx);
    const mlp = componentSize(m, 'adapter', 'mlp');
    expect(mlp.params).toBe(2 * 4096 * 4096 + 4096);
    expect(mlp.kvBytesPerToken).toBe(0);
    expect(mlp.attnFlopsPerTokenCtx).toBe(0);
    expect(componentSize(m, 'adapter', 'decoder-layer')).toEqual(layer);
  });

  it('hidden-state payload: 7B fp16 = 8192 bytes per token', () => {
    expect(hiddenStateBytesPerToken(getModel('llama2-7b'))).toBe(8192);
    expect(hiddenStateBytesPerToken(getModel('tinyllama-1.1b'))).toBe(4096);
  });
});

describe('split plans', () => {
  const m7 = getModel('llama2-7b');

  it('default HAT split: 2 + 28 + 2', () => {
    expect(makeSplitPlan(m7, 2, 2, 'attention-block')).toEqual({
      inputLayers: 2,
      middleLayers: 28,
      outputLayers: 2,
      adapter: { kind: 'attention-block' },
    });
    expect(makeSplitPlan(m7, 1, 30, 'mlp').middleLayers).toBe(1);
  });

  it('rejects zero, negative, fractional and too large counts with field and range', () => {
    expectInputError(() => makeSplitPlan(m7, 0, 2, 'mlp'), 'inputLayers', '0', '[1, 30]');
    expectInputError(() => makeSplitPlan(m7, 2, -1, 'mlp'), 'outputLayers', '-1', '[1, 30]');
    expectInputError(() => makeSplitPlan(m7, 1.5, 2, 'mlp'), 'inputLayers', '1.5');
    expectInputError(() => makeSplitPlan(m7, 31, 2, 'mlp'), 'inputLayers', '31');
  });

  it('rejects a split leaving no middle layer', () => {
    expectInputError(() => makeSplitPlan(m7, 16, 16, 'mlp'), 'middle', 'at most 31');
    const tiny = getModel('tiny-test');
    expectInputError(() => makeSplitPlan(tiny, 2, 2, 'mlp'), 'middle', 'at most 3');
    expect(makeSplitPlan(tiny, 1, 2, 'mlp').middleLayers).toBe(1);
  });

  it('rejects an unknown adapter kind', () => {
    expectInputError(
      () => makeSplitPlan(m7, 2, 2, 'transformer' as unknown as 'mlp'),
      'split.adapter',
      'transformer',
      'attention-block',
    );
  });
});

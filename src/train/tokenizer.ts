/**
 * A project-owned byte-level BPE tokenizer (GPT-2 style, without the byte
 * remapping): text is UTF-8 bytes, pre-split into words (an optional leading
 * space + letters, digits, other symbols, or whitespace runs), and merges are
 * learned over word types by count. Ids 0..255 are the bytes, then one id per
 * merge in rank order, then the end-of-text id last. Training is
 * deterministic: the most frequent pair wins, ties go to the smallest
 * (left id, right id). Saved as JSON with a SHA-256 of its content.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';

export const TOKENIZER_FORMAT = 'hatsim-bpe/1';
const PRETOKEN = / ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+/g;

export interface TokenizerJson {
  format: typeof TOKENIZER_FORMAT;
  vocabSize: number;
  /** Merges in rank order: [left id, right id]; merge r makes id 256 + r. */
  merges: [number, number][];
  eosId: number;
  /** SHA-256 of JSON.stringify({vocabSize, merges, eosId}). */
  sha256: string;
}

function contentHash(vocabSize: number, merges: [number, number][], eosId: number): string {
  return createHash('sha256').update(JSON.stringify({ vocabSize, merges, eosId })).digest('hex');
}

export class Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number;
  readonly sha256: string;
  private readonly rank = new Map<number, number>(); // key left*65536+right -> rank
  private readonly bytesOf: Uint8Array[] = [];
  private readonly cache = new Map<string, number[]>();

  constructor(readonly merges: [number, number][], vocabSize: number) {
    this.vocabSize = vocabSize;
    this.eosId = vocabSize - 1;
    if (256 + merges.length + 1 !== vocabSize) throw new Error(`tokenizer: ${merges.length} merges do not make vocabSize ${vocabSize}`);
    for (let b = 0; b < 256; b++) this.bytesOf.push(Uint8Array.of(b));
    merges.forEach(([l, r], i) => {
      this.rank.set(l * 65536 + r, i);
      const a = this.bytesOf[l], c = this.bytesOf[r];
      const m = new Uint8Array(a.length + c.length);
      m.set(a); m.set(c, a.length);
      this.bytesOf.push(m);
    });
    this.bytesOf.push(new Uint8Array(0)); // eos decodes to nothing
    this.sha256 = contentHash(vocabSize, merges, this.eosId);
  }

  /** Train on texts: `vocabSize - 257` merges. */
  static train(texts: readonly string[], vocabSize: number): Tokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize < 258 || vocabSize > 65536) throw new InputError(`vocabSize ${vocabSize}: give an integer in [258, 65536]`, 'vocabSize');
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of t.match(PRETOKEN) ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
    const keys = [...counts.keys()].sort();
    const words: number[][] = keys.map((k) => [...Buffer.from(k, 'utf8')]);
    const freq = keys.map((k) => counts.get(k)!);
    const merges: [number, number][] = [];
    const nMerges = vocabSize - 257;
    for (let m = 0; m < nMerges; m++) {
      const pc = new Map<number, number>();
      for (let wi = 0; wi < words.length; wi++) {
        const w = words[wi], f = freq[wi];
        for (let i = 0; i + 1 < w.length; i++) {
          const key = w[i] * 65536 + w[i + 1];
          pc.set(key, (pc.get(key) ?? 0) + f);
        }
      }
      let best = -1, bestCount = 0;
      for (const [key, c] of pc) if (c > bestCount || (c === bestCount && key < best)) { best = key; bestCount = c; }
      if (best < 0) break;
      const l = Math.floor(best / 65536), r = best % 65536, id = 256 + m;
      merges.push([l, r]);
      for (const w of words) {
        for (let i = 0; i + 1 < w.length; i++) if (w[i] === l && w[i + 1] === r) w.splice(i, 2, id);
      }
    }
    if (merges.length !== nMerges) throw new InputError(`tokenizer: the texts allow only ${merges.length} merges, vocabSize ${vocabSize} needs ${nMerges}`, 'vocabSize');
    return new Tokenizer(merges, vocabSize);
  }

  private encodeWord(w: string): number[] {
    const hit = this.cache.get(w);
    if (hit) return hit;
    const ids = [...Buffer.from(w, 'utf8')];
    for (;;) {
      let bestRank = Infinity, at = -1;
      for (let i = 0; i + 1 < ids.length; i++) {
        const r = this.rank.get(ids[i] * 65536 + ids[i + 1]);
        if (r !== undefined && r < bestRank) { bestRank = r; at = i; }
      }
      if (at < 0) break;
      ids.splice(at, 2, 256 + bestRank);
    }
    this.cache.set(w, ids);
    return ids;
  }

  encode(text: string): number[] {
    const out: number[] = [];
    for (const w of text.match(PRETOKEN) ?? []) for (const id of this.encodeWord(w)) out.push(id);
    return out;
  }

  decode(ids: readonly number[]): string {
    const parts: Uint8Array[] = [];
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new InputError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`, 'tokens');
      parts.push(this.bytesOf[id]);
    }
    return Buffer.concat(parts).toString('utf8');
  }

  toJson(): TokenizerJson {
    return { format: TOKENIZER_FORMAT, vocabSize: this.vocabSize, merges: this.merges, eosId: this.eosId, sha256: this.sha256 };
  }

  save(path: string): void {
    writeFileAtomic(path, JSON.stringify(this.toJson()) + '\n');
  }

  static load(path: string): Tokenizer {
    let j: Partial<TokenizerJson>;
    try {
      j = JSON.parse(readFileSync(path, 'utf8')) as Partial<TokenizerJson>;
    } catch (e) {
      throw new InputError(`${path}: not a readable tokenizer JSON (${(e as Error).message})`, 'tokenizer');
    }
    if (j.format !== TOKENIZER_FORMAT) throw new InputError(`${path}: field "format" is ${JSON.stringify(j.format)}, expected "${TOKENIZER_FORMAT}"`, 'format');
    if (!Number.isInteger(j.vocabSize)) throw new InputError(`${path}: field "vocabSize" must be an integer`, 'vocabSize');
    if (!Array.isArray(j.merges) || !j.merges.every((m, i) => Array.isArray(m) && m.length === 2 && m.every((x) => Number.isInteger(x) && x >= 0 && x < 256 + i)))
      throw new InputError(`${path}: field "merges" must be [left, right] id pairs, each below 256 + its rank`, 'merges');
    let t: Tokenizer;
    try {
      t = new Tokenizer(j.merges, j.vocabSize!);
    } catch (e) {
      throw new InputError(`${path}: field "vocabSize": ${(e as Error).message}`, 'vocabSize');
    }
    if (j.eosId !== t.eosId) throw new InputError(`${path}: field "eosId" is ${String(j.eosId)}, expected ${t.eosId} (vocabSize - 1)`, 'eosId');
    if (j.sha256 !== t.sha256) throw new InputError(`${path}: field "sha256" does not match the content (${t.sha256}): the file was edited or is corrupt`, 'sha256');
    return t;
  }
}

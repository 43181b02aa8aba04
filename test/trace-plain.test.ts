/**
 * The trace reader's direct split (workload/trace.ts plainRaw, issue 15: a million-row trace
 * through csv-parse took ~900 MB) gives the same header, cells and line numbers as csv-parse
 * on every trace file shipped with the tests and on hand-made edge cases, and declines
 * (null: csv-parse reads it) whatever it does not handle.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parsedRaw, plainRaw } from '../src/workload/trace.js';
import { REPO } from './helpers.js';

const DIR = join(REPO, 'test', 'fixtures', 'traces');
/** The project's real traces (Splitwise and others), when ../shared is there. */
const SHARED = join(REPO, '..', 'shared', 'data', 'traces');

describe('trace reader: direct split equals csv-parse', () => {
  const cases: [string, string][] = readdirSync(DIR).filter((f) => f.endsWith('.csv')).map((f) => [f, readFileSync(join(DIR, f), 'utf8')]);
  if (existsSync(SHARED)) for (const f of readdirSync(SHARED).filter((x) => x.endsWith('.csv'))) cases.push([`shared/${f}`, readFileSync(join(SHARED, f), 'utf8')]);
  cases.push(
    ['CRLF, blank lines, spaces around cells', 'arrived_at, num_prefill_tokens ,num_decode_tokens\r\n\r\n0.5, 12 ,3\r\n\r\n1.25,7,  9\r\n'],
    ['no trailing newline', 'arrived_at,num_prefill_tokens,num_decode_tokens\n0,1,1\n2,3,4'],
    ['extra column', 'x,arrived_at,num_prefill_tokens,num_decode_tokens\na,0,5,6\nb,1,7,8\n'],
  );
  for (const [name, text] of cases) {
    it(name, () => {
      const plain = plainRaw(text);
      let parsed: ReturnType<typeof parsedRaw> | Error;
      try { parsed = parsedRaw(name, text); } catch (e) { parsed = e as Error; }
      if (plain === null) return; // declined: csv-parse decides (and reports errors)
      expect(parsed).not.toBeInstanceOf(Error);
      expect(plain).toEqual(parsed);
    });
  }

  it('declines quotes, a byte-order mark, whitespace-only lines and ragged rows', () => {
    expect(plainRaw('a,b\n"1",2\n')).toBeNull();
    expect(plainRaw('\ufeffa,b\n1,2\n')).toBeNull();
    expect(plainRaw('a,b\n  \n1,2\n')).toBeNull();
    expect(plainRaw('a,b\n1,2,3\n')).toBeNull();
    expect(plainRaw('\n\n')).toBeNull();
  });

  it('splits the common case (numbers and commas) itself', () => {
    const r = plainRaw('arrived_at,num_prefill_tokens,num_decode_tokens\n0,5,6\n\n1.5,7,8\n');
    expect(r).toEqual({ header: ['arrived_at', 'num_prefill_tokens', 'num_decode_tokens'], width: 3, cells: ['0', '5', '6', '1.5', '7', '8'], lines: Int32Array.from([2, 4]) });
  });
});

/** core/csv.ts: the one reader of the CSVs the project writes, and its bad-input errors. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readCsvRecords, readCsvTable } from '../src/core/csv.js';
import { InputError } from '../src/core/errors.js';

const dir = mkdtempSync(join(os.tmpdir(), 'hatsim-csv-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function err(f: () => unknown): InputError {
  try { f(); } catch (e) { if (e instanceof InputError) return e; throw e; }
  throw new Error('no error');
}

describe('readCsvTable / readCsvRecords', () => {
  it('reads the header in order and rows keyed by column', () => {
    const f = join(dir, 'ok.csv');
    writeFileSync(f, 'b, a\n1,x\n\n2,"y,z"\n');
    const t = readCsvTable(f, { needed: ['a', 'b'] });
    expect(t.columns).toEqual(['b', 'a']);
    expect(t.rows).toEqual([{ b: '1', a: 'x' }, { b: '2', a: 'y,z' }]);
    expect(readCsvRecords(f)).toEqual(t.rows);
  });

  it('names the file, the prefix and what was expected in every error', () => {
    const missing = err(() => readCsvRecords(join(dir, 'nope.csv'), { prefix: '--from-live: ', expected: 'a validate folder', field: 'from-live' }));
    expect(missing.message).toBe(`--from-live: ${join(dir, 'nope.csv')} not found: expected a validate folder`);
    expect(missing.field).toBe('from-live');
    const bad = join(dir, 'bad.csv');
    writeFileSync(bad, 'a,b\n1,2,3\n');
    expect(err(() => readCsvRecords(bad)).message).toMatch(/bad\.csv: not a valid CSV file \(.+\)/);
    const empty = join(dir, 'empty.csv');
    writeFileSync(empty, '');
    expect(err(() => readCsvRecords(empty)).message).toMatch(/empty\.csv: empty file, expected a header row/);
    const cols = join(dir, 'cols.csv');
    writeFileSync(cols, 'a\n1\n');
    const e = err(() => readCsvRecords(cols, { needed: ['a', 'b', 'c'], expected: 'rounds.csv' }));
    expect(e.message).toMatch(/cols\.csv: missing columns 'b', 'c' \(found: a\); expected rounds\.csv/);
    expect(e.field).toBe('b');
  });
});

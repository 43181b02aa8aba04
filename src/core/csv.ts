/**
 * Reading CSV files the project wrote (results, live logs, calibration samples, profiles), with
 * the bad-input errors every reader owes its user: file not found, not a CSV, missing columns,
 * each an InputError naming the file (and the column), never a stack trace.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import { InputError } from './errors.js';

/** A parsed CSV: header in file order plus rows keyed by column name (raw strings). */
export interface CsvTable {
  file: string;
  columns: string[];
  rows: Record<string, string>[];
}

export interface CsvReadOptions {
  /** Put before the file name in every message (e.g. "--from-live: "). */
  prefix?: string;
  /** What the file should be, appended to "not found" and "missing column" messages. */
  expected?: string;
  /** Columns that must be present. */
  needed?: readonly string[];
  /** The field an error names (InputError.field): default the missing column, else none. */
  field?: string;
}

/** Read `file` as a CSV with a header row; throws InputError on a missing file, a bad CSV or a missing column. */
export function readCsvTable(file: string, opts: CsvReadOptions = {}): CsvTable {
  const pre = opts.prefix ?? '';
  const tail = opts.expected ? `: expected ${opts.expected}` : '';
  if (!existsSync(file)) throw new InputError(`${pre}${file} not found${tail}`, opts.field);
  let records: string[][];
  try {
    records = parse(readFileSync(file, 'utf8'), { skip_empty_lines: true, relax_column_count: false }) as string[][];
  } catch (err) {
    throw new InputError(`${pre}${file}: not a valid CSV file (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`, opts.field);
  }
  if (records.length === 0) throw new InputError(`${pre}${file}: empty file, expected a header row${tail}`, opts.field);
  const columns = records[0].map((c) => c.trim());
  const rows = records.slice(1).map((rec) => {
    const row: Record<string, string> = {};
    columns.forEach((c, i) => (row[c] = rec[i] ?? ''));
    return row;
  });
  const table = { file, columns, rows };
  if (opts.needed) requireColumns(table, opts.needed, opts);
  return table;
}

/** The rows of `file` keyed by column name (readCsvTable without the header). */
export function readCsvRecords(file: string, opts: CsvReadOptions = {}): Record<string, string>[] {
  return readCsvTable(file, opts).rows;
}

/** Throws an InputError naming the file and every missing column. */
export function requireColumns(table: CsvTable, needed: readonly string[], opts: CsvReadOptions = {}): void {
  const have = new Set(table.columns);
  const missing = needed.filter((c) => !have.has(c));
  if (missing.length > 0) {
    throw new InputError(
      `${opts.prefix ?? ''}${table.file}: missing column${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')} ` +
        `(found: ${table.columns.join(', ')})${opts.expected ? `; expected ${opts.expected}` : ''}`,
      opts.field ?? missing[0],
    );
  }
}

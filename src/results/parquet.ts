/**
 * Columnar copies of the CSV results (issue 15): requests.parquet, summary.parquet
 * and a sweep's sweep.parquet, with Apache Arrow types, for pandas, polars and DuckDB.
 *
 * Each Parquet file is made from the CSV file beside it (the CSV stays the source of
 * truth and the default), so both hold the same rows and columns in the same order.
 * Column types (docs/OUTPUTS.md):
 *  - text columns by name (system, device, point, latency_source, ...): Utf8;
 *  - count columns by name (request, prompt_tokens, bytes_up, gpu, requests, ...): Int64,
 *    or Float64 if a value in the file is not an integer;
 *  - any other column: Float64 when every non-empty cell is a number (`inf`/`-inf`
 *    included), else Utf8;
 *  - an empty cell is null.
 * Written atomically (temp file + rename), ZSTD-compressed, row groups of at most 64 Ki rows.
 * The bytes depend only on the CSV text, so equal CSVs give equal Parquet files.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import type * as ArrowModule from 'apache-arrow';
import type { Table, Vector } from 'apache-arrow';
import type * as ParquetModule from 'parquet-wasm';
import { writeFileAtomic } from '../core/atomic.js';
import { VERSION } from './write.js';

/** Columns that hold text whatever their cells look like. */
const TEXT_COLUMNS = new Set(['system', 'device', 'point', 'latency_source', 'kind', 'label']);
/** Columns that hold counts (tokens, bytes, indices). */
const INT_COLUMNS = new Set([
  'request', 'prompt_tokens', 'output_tokens', 'bytes_up', 'bytes_down', 'raw_token_bytes_up', 'hidden_bytes_up',
  'hidden_bytes_down', 'rounds', 'drafted_tokens', 'accepted_tokens', 'chunk_tokens', 'gpu', 'requests', 'unfinished',
]);

const ROW_GROUP_ROWS = 65_536;

// Arrow and the Parquet WebAssembly module load on first use (both ship CommonJS builds), so that
// importing this module costs nothing for runs without Parquet output and callers stay synchronous.
const require = createRequire(import.meta.url);
let arrowModule: typeof ArrowModule | undefined;
let parquetModule: typeof ParquetModule | undefined;
const arrow = (): typeof ArrowModule => (arrowModule ??= require('apache-arrow') as typeof ArrowModule);
const parquet = (): typeof ParquetModule => (parquetModule ??= require('parquet-wasm') as typeof ParquetModule);

/** A CSV cell as a number, or undefined if it is not one (`inf`, `-inf` are). */
function numberOf(cell: string): number | undefined {
  if (cell === 'inf') return Infinity;
  if (cell === '-inf') return -Infinity;
  if (cell.trim() === '') return undefined;
  const x = Number(cell);
  return Number.isNaN(x) ? undefined : x;
}

function columnVector(name: string, cells: readonly string[]): Vector {
  const { Float64, Int64, Utf8, vectorFromArray } = arrow();
  if (!TEXT_COLUMNS.has(name)) {
    const nums = cells.map((c) => (c === '' ? null : numberOf(c)));
    if (nums.every((x) => x !== undefined)) {
      const values = nums as (number | null)[];
      if (INT_COLUMNS.has(name) && values.every((x) => x === null || Number.isSafeInteger(x))) {
        return vectorFromArray(values.map((x) => (x === null ? null : BigInt(x))), new Int64());
      }
      return vectorFromArray(values, new Float64());
    }
  }
  return vectorFromArray(cells.map((c) => (c === '' ? null : c)), new Utf8());
}

/** An Arrow table of a CSV text (header line first), typed as described above. */
export function csvToArrow(csvText: string): Table {
  const rows = parse(csvText, { relax_column_count: false, skip_empty_lines: true }) as string[][];
  if (rows.length === 0) throw new Error('csvToArrow: no header line');
  const [header, ...body] = rows;
  const columns: Record<string, Vector> = {};
  header.forEach((name, k) => { columns[name] = columnVector(name, body.map((r) => r[k])); });
  return new (arrow().Table)(columns);
}

/** Parquet bytes of an Arrow table (ZSTD, fixed row-group size). */
export function arrowToParquet(table: Table): Uint8Array {
  const { Compression, Table: WasmTable, WriterPropertiesBuilder, writeParquet } = parquet();
  const { tableToIPC } = arrow();
  const wasmTable = WasmTable.fromIPCStream(tableToIPC(table, 'stream'));
  const props = new WriterPropertiesBuilder()
    .setCompression(Compression.ZSTD)
    .setMaxRowGroupSize(ROW_GROUP_ROWS)
    .setCreatedBy(`hatsim ${VERSION}`) // not the writer library's version: same CSV, same bytes
    .build();
  return writeParquet(wasmTable, props);
}

/** Writes `<parquetPath>` (atomically) with the rows of the CSV file `csvPath`. */
export function csvFileToParquet(csvPath: string, parquetPath: string): void {
  writeFileAtomic(parquetPath, arrowToParquet(csvToArrow(readFileSync(csvPath, 'utf8'))));
}

/** The Parquet files of a results directory, made from its CSVs. */
export const RUN_PARQUET_TABLES = ['requests', 'summary'] as const;

/** Writes requests.parquet and summary.parquet of a results directory from its CSV files. */
export function writeRunParquet(dir: string): void {
  for (const t of RUN_PARQUET_TABLES) csvFileToParquet(join(dir, `${t}.csv`), join(dir, `${t}.parquet`));
}

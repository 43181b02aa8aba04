/**
 * Columnar results (issue 15): Parquet copies of requests, summary and sweep tables with Arrow
 * types, queried with DuckDB and checked against the CSVs; sweep results byte-identical across
 * --jobs values and shardings (every file of every point, the Parquet files included).
 * CLI cases spawn the built dist/src/cli/main.js (`npm test` builds first).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arrowToParquet, csvToArrow } from '../src/results/parquet.js';
import { REPO } from './helpers.js';
import { listFiles, pointFiles } from './support/tree.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const GRID = ['--grid', 'devices.0.link.uplinkMbps=10,40', '--grid', 'workload.promptTokens.tokens=32,128'];
const T = 120_000;

function hatsim(...args: string[]): string {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: T });
  if (r.status !== 0) throw new Error(`hatsim ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stdout;
}
const sweep = (out: string, ...extra: string[]): string =>
  hatsim('sweep', 'scenarios/tiny-local.yaml', ...GRID, '--seed', '7', '--out', out, '--quiet', ...extra);

const csvRows = (path: string): Record<string, string>[] => parse(readFileSync(path, 'utf8'), { columns: true }) as Record<string, string>[];

describe('csvToArrow: Arrow types from the output contract', () => {
  it('text by name, counts as Int64, other numbers as Float64, empty cells null, inf kept', () => {
    const t = csvToArrow('system,request,ttft_ms,gpu,acceptance_rate,note\nhat,0,1.5,2,,a\ncloud,1,inf,-1,0.25,"b,c"\n');
    const types = Object.fromEntries(t.schema.fields.map((f) => [f.name, String(f.type)]));
    expect(types).toEqual({ system: 'Utf8', request: 'Int64', ttft_ms: 'Float64', gpu: 'Int64', acceptance_rate: 'Float64', note: 'Utf8' });
    expect(t.numRows).toBe(2);
    const row1 = t.get(1)!.toJSON();
    expect(row1).toEqual({ system: 'cloud', request: 1n, ttft_ms: Infinity, gpu: -1n, acceptance_rate: 0.25, note: 'b,c' });
    expect(t.get(0)!.toJSON().acceptance_rate).toBeNull();
  });

  it('a count column with a fraction falls back to Float64; a mixed column to Utf8', () => {
    const t = csvToArrow('bytes_up,x\n10,1\n2.5,two\n');
    expect(t.schema.fields.map((f) => String(f.type))).toEqual(['Float64', 'Utf8']);
  });

  it('the same CSV gives the same Parquet bytes', () => {
    const text = 'system,request,ttft_ms\nhat,0,1.25\nhat,1,2.5\n';
    expect(Buffer.from(arrowToParquet(csvToArrow(text)))).toEqual(Buffer.from(arrowToParquet(csvToArrow(text))));
  });
});

describe.skipIf(!existsSync(CLI))('Parquet sweeps: DuckDB over the files, determinism across --jobs and shards', () => {
  let tmp: string;
  let con: DuckDBConnection;
  const dir = (name: string): string => join(tmp, name);
  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'hatsim-parquet-'));
    sweep(dir('jobs1'), '--jobs', '1', '--parquet');
    con = await (await DuckDBInstance.create(':memory:')).connect();
  }, T);
  afterAll(() => { con?.closeSync(); rmSync(tmp, { recursive: true, force: true }); });

  it('writes sweep.parquet and each point\'s requests.parquet and summary.parquet, no temp files; CSVs unchanged in form', () => {
    const files = listFiles(dir('jobs1'));
    expect(files).toContain('sweep.parquet');
    expect(files.filter((f) => f.endsWith('/requests.parquet'))).toHaveLength(4);
    expect(files.filter((f) => f.endsWith('/summary.parquet'))).toHaveLength(4);
    expect(files.filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(files).toContain('sweep.csv');
  });

  it('a DuckDB query over the points\' requests.parquet gives the answer computed from their requests.csv', async () => {
    const glob = join(dir('jobs1'), 'points', '*', 'requests.parquet');
    const r = await con.runAndReadAll(
      `SELECT system, count(*)::INTEGER AS n, sum(output_tokens)::BIGINT AS tokens, avg(ttft_ms) AS ttft, max(e2e_ms) AS e2e_max
       FROM read_parquet('${glob}') GROUP BY system ORDER BY system`);
    const got = r.getRowObjects();
    const rows = listFiles(dir('jobs1')).filter((f) => f.endsWith('/requests.csv')).flatMap((f) => csvRows(join(dir('jobs1'), f)));
    const systems = [...new Set(rows.map((x) => x.system))].sort();
    expect(got.map((g) => g.system)).toEqual(systems);
    expect(systems).toHaveLength(5);
    for (const g of got) {
      const mine = rows.filter((x) => x.system === g.system);
      expect(g.n).toBe(mine.length);
      expect(g.tokens).toBe(BigInt(mine.reduce((a, x) => a + Number(x.output_tokens), 0)));
      expect(g.ttft as number).toBeCloseTo(mine.reduce((a, x) => a + Number(x.ttft_ms), 0) / mine.length, 9);
      expect(g.e2e_max).toBe(Math.max(...mine.map((x) => Number(x.e2e_ms))));
    }
  });

  it('sweep.parquet has the rows, order and values of sweep.csv, with typed columns', async () => {
    const file = join(dir('jobs1'), 'sweep.parquet');
    const types = Object.fromEntries((await con.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRowObjects()
      .map((x) => [x.column_name as string, x.column_type as string]));
    expect(types).toMatchObject({ point: 'VARCHAR', system: 'VARCHAR', requests: 'BIGINT', ttft_p99_ms: 'DOUBLE', 'devices.0.link.uplinkMbps': 'DOUBLE' });
    const csv = csvRows(join(dir('jobs1'), 'sweep.csv'));
    const pq = (await con.runAndReadAll(`SELECT point, system, "workload.promptTokens.tokens" AS tokens, ttft_p99_ms, acceptance_rate FROM read_parquet('${file}')`)).getRowObjects();
    expect(pq).toHaveLength(csv.length);
    pq.forEach((row, i) => {
      expect(row.point).toBe(csv[i].point);
      expect(row.system).toBe(csv[i].system);
      expect(row.tokens).toBe(Number(csv[i]['workload.promptTokens.tokens']));
      expect(row.ttft_p99_ms).toBe(Number(csv[i].ttft_p99_ms));
      expect(row.acceptance_rate).toBe(csv[i].acceptance_rate === '' ? null : Number(csv[i].acceptance_rate));
    });
    // The documented cross-file query: best system per point by mean TTFT.
    const best = (await con.runAndReadAll(`SELECT point, arg_min(system, ttft_mean_ms) AS best FROM read_parquet('${file}') GROUP BY point ORDER BY point`)).getRowObjects();
    expect(best).toHaveLength(4);
    for (const b of best) {
      const mine = csv.filter((x) => x.point === b.point);
      expect(b.best).toBe(mine.reduce((a, x) => (Number(x.ttft_mean_ms) < Number(a.ttft_mean_ms) ? x : a)).system);
    }
  });

  it('every file of every point (Parquet included) and sweep.csv/sweep.parquet are identical with --jobs 2 and with 3 shards merged', () => {
    sweep(dir('jobs2'), '--jobs', '2', '--parquet');
    const root = dir('sharded');
    for (const s of ['1/3', '2/3', '3/3']) sweep(root, '--shard', s, '--jobs', '1', '--parquet');
    hatsim('merge', root, '--out', dir('merged'), '--quiet');
    const base = pointFiles(dir('jobs1'));
    expect(base.size).toBe(4 * 9); // 4 points x (6 CSVs: requests, summary, timeline, gpu_util, nodes, links + run.json + 2 Parquet files)
    for (const other of ['jobs2', 'merged']) {
      expect(pointFiles(dir(other))).toEqual(base);
      for (const f of ['sweep.csv', 'sweep.parquet']) expect(readFileSync(join(dir(other), f))).toEqual(readFileSync(join(dir('jobs1'), f)));
    }
  }, T);

  it('hatsim run --parquet writes requests.parquet and summary.parquet next to the CSVs; without it, none', () => {
    hatsim('run', 'scenarios/tiny-local.yaml', '--out', dir('run-pq'), '--quiet', '--parquet');
    hatsim('run', 'scenarios/tiny-local.yaml', '--out', dir('run-csv'), '--quiet');
    expect(listFiles(dir('run-pq')).filter((f) => f.endsWith('.parquet'))).toEqual(['requests.parquet', 'summary.parquet']);
    expect(listFiles(dir('run-csv')).filter((f) => f.endsWith('.parquet'))).toEqual([]);
    expect(readFileSync(join(dir('run-pq'), 'requests.csv'))).toEqual(readFileSync(join(dir('run-csv'), 'requests.csv')));
  });
});

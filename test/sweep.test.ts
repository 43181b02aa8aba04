/**
 * Sweeps: grid expansion, the built CLI (`hatsim sweep`, `hatsim merge`) on
 * scenarios/tiny-local.yaml with small grids, resume, sharding + merge, and
 * determinism (same seed, --jobs 1 vs 2). CLI tests spawn dist/src/cli/main.js:
 * run `npm run build` first (`npm test` does).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/core/errors.js';
import { expandGrid, parseGrid, parseShard, splitValues, inShard } from '../src/sweep/grid.js';
import { mergeSweeps, runSweep } from '../src/sweep/index.js';
import { SUMMARY_COLUMNS } from '../src/results/types.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');
const scenario = 'scenarios/tiny-local.yaml';
const GRID = ['--grid', 'devices.0.link.uplinkMbps=10,40', '--grid', 'workload.promptTokens.tokens=32,128'];
const SYSTEMS = 5; // tiny-local runs all five systems
const T = 60_000;

let tmp: string;
const dir = (name: string): string => path.join(tmp, name);

function hatsim(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function sweep(out: string, ...extra: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = hatsim('sweep', scenario, ...GRID, '--seed', '7', '--out', out, ...extra);
  if (r.code !== 0) throw new Error(`hatsim sweep failed (${r.code}): ${r.stderr}`);
  return r;
}

const read = (p: string): string => readFileSync(p, 'utf8');

beforeAll(() => {
  if (!existsSync(cli) || !existsSync(path.join(repo, 'dist', 'src', 'sweep', 'worker.js'))) {
    throw new Error('dist/ is missing: run `npm run build` before the sweep tests (npm test does)');
  }
  tmp = mkdtempSync(path.join(tmpdir(), 'hatsim-sweep-'));
  sweep(dir('base'), '--jobs', '1');
  return () => rmSync(tmp, { recursive: true, force: true });
}, T);

describe('grid expansion', () => {
  it('expands the cartesian product with the first axis outermost and readable, stable ids', () => {
    const axes = parseGrid(['devices[0].link.uplinkMbps=10,20', 'cloud.gpus=1,2,4']);
    expect(axes.map((a) => a.path)).toEqual(['devices.0.link.uplinkMbps', 'cloud.gpus']);
    const pts = expandGrid(axes);
    expect(pts.map((p) => p.texts)).toEqual([['10', '1'], ['10', '2'], ['10', '4'], ['20', '1'], ['20', '2'], ['20', '4']]);
    expect(pts.map((p) => p.id)).toEqual([
      'p000_uplinkMbps-10_gpus-1', 'p001_uplinkMbps-10_gpus-2', 'p002_uplinkMbps-10_gpus-4',
      'p003_uplinkMbps-20_gpus-1', 'p004_uplinkMbps-20_gpus-2', 'p005_uplinkMbps-20_gpus-4',
    ]);
    expect(pts[4].values).toEqual([20, 2]);
    expect(pts[4].overrides).toEqual(['devices.0.link.uplinkMbps=20', 'cloud.gpus=2']);
    expect(expandGrid(parseGrid(['devices[0].link.uplinkMbps=10,20', 'cloud.gpus=1,2,4'])).map((p) => p.id)).toEqual(pts.map((p) => p.id));
  });

  it('disambiguates labels, sanitises values, keeps flow collections whole', () => {
    expect(splitValues('[hat, cloud],{kind: fixed, tokens: 64},"a,b",3')).toEqual(['[hat, cloud]', '{kind: fixed, tokens: 64}', '"a,b"', '3']);
    const pts = expandGrid(parseGrid(['devices.0.count=1', 'devices.1.count=2', 'systems=[hat, cloud]']));
    expect(pts[0].id).toBe('p000_0.count-1_1.count-2_systems-hat_cloud');
    expect(pts[0].values[2]).toEqual(['hat', 'cloud']);
  });

  it('rejects unknown paths, duplicates and bad shards with InputErrors', () => {
    expect(() => parseGrid(['devices.0.link.uplinkMbs=1,2'])).toThrow(/uplinkMbs.*did you mean "uplinkMbps"/);
    expect(() => parseGrid(['cloud.gpus=1,1'])).toThrow(InputError);
    expect(() => parseGrid(['cloud.gpus=1', 'cloud.gpus=2'])).toThrow(/given twice/);
    expect(() => parseGrid(['cloud.gpus='])).toThrow(InputError);
    for (const bad of ['0/2', '3/2', '1-2', 'x', '1/0']) expect(() => parseShard(bad)).toThrow(InputError);
    expect(parseShard('2/4')).toEqual({ index: 2, count: 4 });
    // Shards partition the points.
    const owners = Array.from({ length: 10 }, (_, i) => [1, 2, 3].filter((s) => inShard(i, { index: s, count: 3 })));
    expect(owners.every((o) => o.length === 1)).toBe(true);
  });
});

describe('hatsim sweep', () => {
  it('a 2x2 sweep writes 4 point directories and sweep.csv with 4 x systems rows and grid columns', () => {
    const out = dir('base');
    const ids = readdirSync(path.join(out, 'points')).sort();
    expect(ids).toEqual(['p000_uplinkMbps-10_tokens-32', 'p001_uplinkMbps-10_tokens-128', 'p002_uplinkMbps-40_tokens-32', 'p003_uplinkMbps-40_tokens-128']);
    for (const id of ids) {
      for (const f of ['requests.csv', 'summary.csv', 'timeline.csv', 'gpu_util.csv', 'run.json']) expect(existsSync(path.join(out, 'points', id, f))).toBe(true);
    }
    const lines = read(path.join(out, 'sweep.csv')).trimEnd().split('\n');
    expect(lines[0]).toBe(['point', 'devices.0.link.uplinkMbps', 'workload.promptTokens.tokens', ...SUMMARY_COLUMNS].join(','));
    expect(lines.length - 1).toBe(4 * SYSTEMS);
    expect(lines[1].startsWith('p000_uplinkMbps-10_tokens-32,10,32,cloud,')).toBe(true);
    expect(lines[lines.length - 1].startsWith('p003_uplinkMbps-40_tokens-128,40,128,hat,')).toBe(true);
    const run = JSON.parse(read(path.join(out, 'points', ids[1], 'run.json'))) as { seed: number; sweep: { grid: Record<string, unknown> } };
    expect(run.sweep.grid).toEqual({ 'devices.0.link.uplinkMbps': 10, 'workload.promptTokens.tokens': 128 });
    expect(run.seed).toBe(7);
    const manifest = JSON.parse(read(path.join(out, 'sweep.json'))) as { scenario: string; shard: unknown; baseOverrides: string[]; totalPoints: number };
    expect(manifest).toMatchObject({ scenario, shard: null, baseOverrides: ['seed=7'], totalPoints: 4 });
  });

  it('resumes: only a deleted point is recomputed; changed settings are refused', () => {
    const out = dir('resume');
    sweep(out, '--jobs', '1');
    const victim = 'p002_uplinkMbps-40_tokens-32';
    const keep = path.join(out, 'points', 'p000_uplinkMbps-10_tokens-32', 'run.json');
    const mtime = statSync(keep).mtimeMs;
    rmSync(path.join(out, 'points', victim), { recursive: true });
    const r = sweep(out, '--jobs', '1');
    const doneLines = r.stderr.split('\n').filter((l) => / done in /.test(l));
    expect(doneLines).toHaveLength(1);
    expect(doneLines[0]).toContain(victim);
    expect(r.stderr).toContain('3 already finished');
    expect(statSync(keep).mtimeMs).toBe(mtime);
    expect(read(path.join(out, 'sweep.csv'))).toBe(read(path.join(dir('base'), 'sweep.csv')));

    const changed = hatsim('sweep', scenario, ...GRID, '--seed', '7', '--out', out, '--set', 'cloud.gpus=2');
    expect(changed.code).toBe(2);
    expect(changed.stderr).toMatch(/different sweep.*cloud\.gpus=2.*new --out/s);
  }, T);

  it('same seed gives an identical sweep.csv; --jobs 2 gives the same sweep.csv as --jobs 1', () => {
    sweep(dir('again'), '--jobs', '1');
    sweep(dir('jobs2'), '--jobs', '2');
    const base = read(path.join(dir('base'), 'sweep.csv'));
    expect(read(path.join(dir('again'), 'sweep.csv'))).toBe(base);
    expect(read(path.join(dir('jobs2'), 'sweep.csv'))).toBe(base);
    const other = hatsim('sweep', scenario, ...GRID, '--seed', '8', '--out', dir('seed8'), '--jobs', '1');
    expect(other.code).toBe(0);
    expect(read(path.join(dir('seed8'), 'sweep.csv'))).not.toBe(base);
  }, T);

  it('shards 1/2 and 2/2 merged equal the unsharded sweep.csv byte for byte', () => {
    const root = dir('sharded');
    sweep(root, '--shard', '1/2', '--jobs', '1');
    // Merging one shard alone: missing points are reported, exit 2.
    const partial = hatsim('merge', path.join(root, 'shard-1-of-2'), '--out', dir('partial'));
    expect(partial.code).toBe(2);
    expect(partial.stderr).toMatch(/2 of 4 points are missing.*p001_uplinkMbps-10_tokens-128.*--allow-missing/s);
    sweep(root, '--shard', '2/2', '--jobs', '1');
    expect(readdirSync(path.join(root, 'shard-1-of-2', 'points')).sort()).toEqual(['p000_uplinkMbps-10_tokens-32', 'p002_uplinkMbps-40_tokens-32']);
    const merged = hatsim('merge', path.join(root, 'shard-1-of-2'), path.join(root, 'shard-2-of-2'), '--out', dir('merged'));
    expect(merged.code).toBe(0);
    expect(read(path.join(dir('merged'), 'sweep.csv'))).toBe(read(path.join(dir('base'), 'sweep.csv')));
    expect(readdirSync(path.join(dir('merged'), 'points'))).toHaveLength(4);
    // The default layout: merge into the shards' parent, and again (idempotent).
    for (let k = 0; k < 2; k++) expect(hatsim('merge', root, '--out', root).code).toBe(0);
    expect(read(path.join(root, 'sweep.csv'))).toBe(read(path.join(dir('base'), 'sweep.csv')));
    // A shard of another sweep is refused.
    const other = dir('other-grid');
    expect(hatsim('sweep', scenario, '--grid', 'cloud.gpus=1', '--out', other, '--jobs', '1').code).toBe(0);
    const bad = hatsim('merge', path.join(root, 'shard-1-of-2'), other, '--out', dir('mixed'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not from the same sweep/);
  }, T);

  it('an unknown grid path or a bad value exits 2 naming it, with no stack trace and nothing run', () => {
    const r = hatsim('sweep', scenario, '--grid', 'devices.0.link.uplinkMbs=10,20', '--out', dir('bad'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('devices.0.link.uplinkMbs');
    expect(r.stderr).toContain('uplinkMbps');
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(dir('bad'))).toBe(false);
    const v = hatsim('sweep', scenario, '--grid', 'cloud.gpus=1,0', '--out', dir('bad'));
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/cloud\.gpus=0.*cloud\.gpus/);
    expect(existsSync(dir('bad'))).toBe(false);
    const s = hatsim('sweep', scenario, '--grid', 'cloud.gpus=1', '--shard', '3/2', '--out', dir('bad'));
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/--shard 3\/2/);
  }, T);
});

describe('library API', () => {
  it('runSweep (inline) and mergeSweeps reproduce the CLI sweep', async () => {
    const grid = ['devices.0.link.uplinkMbps=10,40', 'workload.promptTokens.tokens=32,128'];
    const a = await runSweep({ scenario: path.join(repo, scenario), grid, seed: 7, out: dir('lib-1'), jobs: 1, shard: '1/2' });
    const b = await runSweep({ scenario: path.join(repo, scenario), grid, seed: 7, out: dir('lib-2'), jobs: 1, shard: { index: 2, count: 2 } });
    expect([a.ran, b.ran, a.interrupted]).toEqual([2, 2, false]);
    expect(a.points.map((p) => p.status)).toEqual(['ran', 'ran']);
    const m = mergeSweeps([a.out, b.out], dir('lib-merged'));
    expect(m.missing).toEqual([]);
    expect(read(m.sweepCsv)).toBe(read(path.join(dir('base'), 'sweep.csv')));
    const again = await runSweep({ scenario: path.join(repo, scenario), grid, seed: 7, out: dir('lib-merged'), jobs: 1 });
    expect([again.ran, again.skipped]).toEqual([0, 4]);
  }, T);
});

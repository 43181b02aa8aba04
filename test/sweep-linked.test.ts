/**
 * Linked grid axes (`--grid 'name:path1+path2=v1,v2'`, docs/SWEEPS.md): one axis that sets
 * several scenario fields at once, for sweeps over fields of the nodes/links topology form
 * that come in groups (every backhaul link's bandwidth, every stage's node count).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { InputError } from '../src/core/errors.js';
import { axisOverrides, axisSpec, expandGrid, parseGrid, parseGridArg } from '../src/sweep/grid.js';
import { runSweep } from '../src/sweep/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(path.join(tmpdir(), 'hatsim-linked-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const thrown = (f: () => unknown): InputError => {
  try { f(); } catch (e) { if (e instanceof InputError) return e; throw e; }
  throw new Error('expected an InputError');
};

describe('linked grid axes', () => {
  it('a named axis of three paths: a scalar on every path, a full list one per path, a shorter list repeated', () => {
    const a = parseGridArg('bw:links.0.mbps+links.1.mbps+links.2.mbps=10,[1,2,3],[7]');
    expect(a).toEqual({ path: 'bw', values: ['10', '[1,2,3]', '[7]'], paths: ['links.0.mbps', 'links.1.mbps', 'links.2.mbps'] });
    expect(axisOverrides(a, '10')).toEqual(['links.0.mbps=10', 'links.1.mbps=10', 'links.2.mbps=10']);
    expect(axisOverrides(a, '[1,2,3]')).toEqual(['links.0.mbps=1', 'links.1.mbps=2', 'links.2.mbps=3']);
    expect(axisOverrides(a, '[7]')).toEqual(['links.0.mbps=7', 'links.1.mbps=7', 'links.2.mbps=7']);
    const six = parseGridArg('nodes.0.hardware+nodes.1.hardware+nodes.2.hardware+nodes.3.hardware+nodes.4.hardware+nodes.5.hardware=[a, b]');
    expect(six.path).toBe(six.paths!.join('+')); // unnamed: the paths joined by +
    expect(axisOverrides(six, '[a, b]').map((o) => o.split('=')[1])).toEqual(['"a"', '"b"', '"a"', '"b"', '"a"', '"b"']);
  });

  it('points carry every path of a linked axis, the grid value under the axis name, ids labelled by the name', () => {
    const axes = parseGrid(['n:nodes.1.count+nodes.2.count=1,2', 'seed=5,6']);
    const pts = expandGrid(axes);
    expect(pts.map((p) => p.id)).toEqual(['p000_n-1_seed-5', 'p001_n-1_seed-6', 'p002_n-2_seed-5', 'p003_n-2_seed-6']);
    expect(pts[2].overrides).toEqual(['nodes.1.count=2', 'nodes.2.count=2', 'seed=5']);
    expect(pts[2].values).toEqual([2, 5]);
    // axisSpec is the text parseGridArg reads back (the library API passes axes as objects).
    for (const a of axes) expect(parseGridArg(axisSpec(a))).toEqual(a);
  });

  it('rejects a list whose length does not divide the path count, an unknown path, a name on one path, a path in two axes', () => {
    expect(thrown(() => parseGridArg('bw:links.0.mbps+links.1.mbps+links.2.mbps=10,[1,2]')).message).toMatch(/the list has 2 entries but the axis links 3 paths/);
    const unknown = thrown(() => parseGridArg('links.0.mbps+links.1.mbsp=10'));
    expect(unknown.message).toMatch(/unknown path links\.1\.mbsp.*did you mean "mbps"/);
    expect(thrown(() => parseGridArg('bw:links.0.mbps=10')).message).toMatch(/linked axis of two or more paths/);
    expect(thrown(() => parseGridArg('links.0.mbps+links.0.mbps=10')).message).toMatch(/listed twice/);
    expect(thrown(() => parseGrid(['bw:links.0.mbps+links.1.mbps=10', 'links.1.mbps=20'])).message).toMatch(/path links\.1\.mbps is given twice/);
  });

  it('a sweep over a linked axis sets every linked field of the nodes/links form in each point', async () => {
    const r = await runSweep({
      scenario: path.join(repo, 'scenarios/dtoee-sweep-city.yaml'),
      grid: [
        'k:nodes.1.count+nodes.2.count+nodes.3.count+nodes.4.count+nodes.5.count+nodes.6.count+nodes.7.count+nodes.8.count+nodes.9.count=1,3',
        'bw:links.6.mbps+links.7.mbps+links.8.mbps+links.9.mbps+links.10.mbps+links.11.mbps+links.12.mbps+links.13.mbps+links.14.mbps+links.15.mbps=50',
      ],
      overrides: ['workload.requestsPerDevice=1'], out: path.join(tmp, 'sw'), jobs: 1,
    });
    expect(r.ran).toBe(2);
    const header = readFileSync(r.sweepCsv, 'utf8').split('\n')[0];
    expect(header.startsWith('point,k,bw,system,')).toBe(true);
    for (const [i, k] of [[0, 1], [1, 3]]) {
      const nodes = readFileSync(path.join(r.points[i].dir, 'nodes.csv'), 'utf8').trim().split('\n').slice(1).map((l) => l.split(','));
      for (const s of [2, 3, 4]) expect(nodes.filter((c) => c[1].startsWith(`s${s}-`)).length).toBe(3 * k);
      const links = readFileSync(path.join(r.points[i].dir, 'links.csv'), 'utf8').trim().split('\n');
      const cols = links[0].split(',');
      const bh = links.slice(1).map((l) => l.split(',')).filter((c) => c[cols.indexOf('link')].startsWith('bh-'));
      expect(bh.length).toBe(2 * (6 + 9 * k)); // one row per direction
      const capCol = cols.findIndex((c) => /mbps/i.test(c));
      expect(bh.every((c) => Number(c[capCol]) === 50)).toBe(true);
    }
  }, 60_000);
});

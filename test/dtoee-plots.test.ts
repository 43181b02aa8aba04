/**
 * DTO-EE figures (docs/PLOTS.md "DTO-EE", docs/DTOEE.md "Convergence"): the per-policy sweep
 * figures and the convergence figures are written from real (small) runs, and the pure
 * functions that compute their data are checked against hand computations.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { convergenceRows, iterationsWithin, measureConvergence } from '../src/dtoee/convergence.js';
import { randomProblem } from '../src/dtoee/random.js';
import { aggregatePolicies, categoryLabels, meanCi95, readDtoeeSweep, type DtoeeSweep } from '../src/plot/dtoee.js';
import { planFigures, renderFigures } from '../src/plot/index.js';
import { runSweep } from '../src/sweep/index.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(repo, 'dist', 'src', 'cli', 'main.js');
const tmp = mkdtempSync(path.join(tmpdir(), 'hatsim-dtoee-plots-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('the data of the figures, by hand', () => {
  it('meanCi95: mean and Student-t 95 % half-width', () => {
    const a = meanCi95([1, 2, 3, 4]); // s^2 = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; t(3) = 3.182
    expect(a.mean).toBe(2.5);
    expect(a.half).toBeCloseTo((3.182 * Math.sqrt(5 / 3)) / 2, 10);
    const b = meanCi95([10, 14]); // s = 4 / sqrt 2; half = 12.706 s / sqrt 2 = 12.706 x 2
    expect(b.half).toBeCloseTo(12.706 * 2, 10);
    expect(Number.isNaN(meanCi95([7]).half)).toBe(true);
  });

  it('aggregatePolicies averages over the seed axis per (x, policy, other parameters), x numerically, policies in legend order', () => {
    const row = (rate: number, policy: string, seed: number, d: number, p99: number, acc: number) => ({
      point: `p-${rate}-${policy}-${seed}`, params: { rate, 'policies.dtoee.policy': policy, seed }, policy, tasks: 10, delay_mean_ms: d, delay_p99_ms: p99, accuracy: acc,
    });
    const sw: DtoeeSweep = {
      params: ['rate', 'policies.dtoee.policy', 'seed'], seedParam: 'seed', policyParam: 'policies.dtoee.policy',
      rows: [
        row(1.2, 'no-exit', 1, 900, 2000, 0.8), row(1.2, 'no-exit', 2, 1100, 2600, 0.84),
        row(0.4, 'no-exit', 1, 300, 700, 0.82), row(0.4, 'no-exit', 2, 340, 760, 0.8),
        row(0.4, 'dtoee', 1, 100, 400, 0.79), row(0.4, 'dtoee', 2, 120, 380, 0.81),
        row(1.2, 'dtoee', 1, 150, 500, 0.7), row(1.2, 'dtoee', 2, 130, 520, 0.72),
      ],
    };
    const pts = aggregatePolicies(sw, 'rate');
    expect(pts.map((p) => `${p.x}/${p.policy}`)).toEqual(['0.4/dtoee', '0.4/no-exit', '1.2/dtoee', '1.2/no-exit']);
    const hi = pts[3];
    expect(hi.n).toBe(2);
    expect(hi.group).toBe('all');
    expect(hi.mean.delay_mean_ms).toBe(1000);
    expect(hi.half.delay_mean_ms).toBeCloseTo(12.706 * 100, 8); // |900 - 1100| / 2 x t(1)
    expect(hi.mean.delay_p99_ms).toBe(2300);
    expect(hi.mean.accuracy).toBeCloseTo(0.82, 12);
    expect(hi.half.accuracy).toBeCloseTo(12.706 * 0.02, 10);
  });

  it('categoryLabels: a linked axis\'s list values as entries joined by +, without their shared prefix', () => {
    const m = categoryLabels(['jetson-agx-orin-64gb', '["jetson-agx-orin-64gb","jetson-tx2","jetson-tx2"]']);
    expect([...m.values()]).toEqual(['agx-orin-64gb', 'agx-orin-64gb + tx2 + tx2']);
    expect([...categoryLabels(['dtoee', 'no-exit']).values()]).toEqual(['dtoee', 'no-exit']);
  });

  it('convergenceRows: rounds from the per-round counts, gap in percent; iterationsWithin: from where it stays inside', () => {
    const rows = convergenceRows(0.5, [3, 2, 1.5, 1.01, 1.0, 1.02, 1.005], [2, 0, 5], 1);
    expect(rows.map((r) => r.round)).toEqual([1, 1, 3, 3, 3, 3, 3]);
    expect(rows.map((r) => +r.gap_pct.toFixed(6))).toEqual([200, 100, 50, 1, 0, 2, 0.5]);
    expect(iterationsWithin(rows, 1)).toBe(7); // inside at 4 and 5, out again at 6
    expect(iterationsWithin(rows, 5)).toBe(6 - 2); // inside from iteration 4 on
    expect(iterationsWithin(rows, 0.1)).toBeNull();
    expect(() => convergenceRows(1, [1, 2], [3], 1)).toThrow(/trace has 2/);
  });

  it('measureConvergence on a seeded random topology: the trace ends at the distributed result, within 1 % of the centralised optimum', () => {
    const spec = randomProblem({ seed: 3, nodesPerStage: [3, 3, 2], load: 0.8, sojourn: 'mm1', accuracy: { mode: 'weight', beta: 0.2 } });
    const res = measureConvergence(spec, [0.5, 1]);
    for (const run of res.runs) {
      expect(run.rows.length).toBe(run.iterations);
      expect(run.rows.at(-1)!.gap_pct).toBeCloseTo(run.finalGapPct, 8);
      expect(Math.abs(run.finalGapPct)).toBeLessThan(1);
      expect(run.within1Pct).not.toBeNull();
      expect(run.within1Pct!).toBeLessThanOrEqual(run.iterations);
    }
  });
});

describe('figures written from real runs', () => {
  it('a small dtoee sweep (rate x policy x seed): per-policy delay and accuracy figures and a table whose cells are the seeds\' mean', async () => {
    const out = path.join(tmp, 'sweep');
    await runSweep({
      scenario: path.join(repo, 'scenarios/dtoee-sweep-city.yaml'),
      grid: ['workload.arrival.ratePerS=0.2,0.6', 'policies.dtoee.policy=dtoee,no-exit', 'seed=1,2'],
      overrides: ['workload.requestsPerDevice=2'], out, jobs: 1,
    });
    const sw = readDtoeeSweep(out);
    expect(sw.rows.length).toBe(8);
    expect([sw.seedParam, sw.policyParam]).toEqual(['seed', 'policies.dtoee.policy']);
    const plan = planFigures(out, { points: 'none' });
    const ids = plan.figures.map((f) => f.id);
    for (const m of ['delay-mean-ms', 'delay-p99-ms', 'accuracy']) expect(ids).toContain(`dtoee-${m}-vs-workload.arrival.ratePerS`);
    // The table's cell for (0.6, no-exit) is the mean of the two seeds' task_summary.csv values.
    const table = plan.tables.find((t) => t.id === 'dtoee-workload.arrival.ratePerS')!;
    const cell = table.rows.find((r) => r[0] === '0.6' && r[2] === 'no-exit')!;
    const means = sw.rows.filter((r) => r.params['workload.arrival.ratePerS'] === 0.6 && r.policy === 'no-exit').map((r) => r.delay_mean_ms);
    expect(means.length).toBe(2);
    expect(Number(cell[4])).toBeCloseTo((means[0] + means[1]) / 2, 1);
    const r = await renderFigures(out, { formats: ['svg'], points: 'none', outDir: path.join(out, 'fig') });
    const svg = readFileSync(path.join(r.outDir, 'dtoee-delay-mean-ms-vs-workload.arrival.ratePerS.svg'), 'utf8');
    expect(svg).toContain('<svg');
    expect(svg).toContain('no-exit');
    expect(svg).toContain('dtoee');
  }, 120_000);

  it('hatsim dtoee-convergence writes convergence.csv, convergence.json and both figures; a bad --starts exits 2 and writes nothing', () => {
    if (!existsSync(cli)) throw new Error('dist/ is missing: run `npm run build` first (npm test does)');
    const out = path.join(tmp, 'conv');
    const r = spawnSync(process.execPath, [cli, 'dtoee-convergence', 'scenarios/dtoee-city.yaml', '--out', out, '--format', 'svg', '--quiet'], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    const csv = readFileSync(path.join(out, 'convergence.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('start_tau,iteration,round,objective,centralised_objective,gap_pct');
    const meta = JSON.parse(readFileSync(path.join(out, 'convergence.json'), 'utf8')) as { nodes: number; runs: { startTau: number; iterations: number; finalGapPct: number }[] };
    expect(meta.nodes).toBe(24);
    expect(meta.runs.map((x) => x.startTau)).toEqual([0.5, 1]);
    expect(csv.length - 1).toBe(meta.runs[0].iterations + meta.runs[1].iterations);
    for (const run of meta.runs) expect(Math.abs(run.finalGapPct)).toBeLessThan(1);
    for (const f of ['dtoee-convergence.svg', 'dtoee-convergence-gap.svg']) expect(existsSync(path.join(out, 'figures', f))).toBe(true);
    const bad = path.join(tmp, 'conv-bad');
    const b = spawnSync(process.execPath, [cli, 'dtoee-convergence', 'scenarios/dtoee-city.yaml', '--out', bad, '--starts', '0.5,2'], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
    expect(b.status).toBe(2);
    expect(b.stderr).toMatch(/--starts 0\.5,2: give comma-separated starting thresholds in \[0, 1\]/);
    expect(b.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(bad)).toBe(false);
  }, 60_000);
});

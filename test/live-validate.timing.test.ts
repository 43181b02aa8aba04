/**
 * End to end (built CLI): `hatsim validate scenarios/live-tiny.yaml` runs
 * 1 cloud + 2 device processes over loopback for all five systems, simulates
 * the same scenario and seed, and passes within the CI threshold in under
 * about 2 minutes. Then the same live run against a broken simulator (links
 * with half the latency) must fail: the threshold catches a wrong model.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-validate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** CI threshold (%). This machine measured 6-11 % run to run (docs/LIVE.md); a broken model is off by > 40 %. */
const CI_MAX_ERROR_PCT = 15;

interface Verdict { pass: boolean; medianAbsErrorPct: { ttft_mean_ms: number; tbt_mean_ms: number } }

describe('hatsim validate (live vs simulated)', () => {
  // Real processes on a shared 2-core VM: under outside load a run can land just past the
  // threshold (15.4 % was seen against 15 %); one retry runs live again from scratch. A broken
  // model (half the link latency) is off by > 30 % and fails every attempt.
  it('passes on live-tiny within the CI threshold in under ~2 minutes, and fails for a broken model', { retry: 1 }, () => {
    const out = join(tmp, 'ok');
    const t0 = Date.now();
    const r = spawnSync(process.execPath, [CLI, 'validate', 'scenarios/live-tiny.yaml', '--max-error-pct', String(CI_MAX_ERROR_PCT), '--out', out],
      { cwd: REPO, encoding: 'utf8', timeout: 170_000 });
    const wallS = (Date.now() - t0) / 1000;
    process.stdout.write(r.stdout.split('\n').filter((l) => /mean|median/.test(l)).join('\n') + `\nwall ${wallS.toFixed(1)} s\n`);
    expect(r.status, r.stdout + r.stderr).toBe(0);
    expect(wallS).toBeLessThan(130);
    const csv = readFileSync(join(out, 'validation.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).toBe('system,metric,live,sim,error_pct');
    expect(csv.length).toBe(1 + 5 * 7);
    // bytes are accounted identically
    for (const line of csv.filter((l) => /bytes_/.test(l))) expect(Number(line.split(',')[4])).toBe(0);
    const run = JSON.parse(readFileSync(join(out, 'live', 'run.json'), 'utf8')) as { mode: string; errors: string[] };
    expect(run.mode).toBe('live');
    expect(run.errors).toEqual([]);

    // Same live run, simulator with half the link latency: must fail.
    const bad = spawnSync(process.execPath, [CLI, 'validate', 'scenarios/live-tiny.yaml', '--max-error-pct', String(CI_MAX_ERROR_PCT),
      '--live-dir', join(out, 'live'), '--sim-set', 'devices.0.link.latencyMs=10', '--out', join(tmp, 'bad')], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    expect(bad.status, bad.stdout + bad.stderr).toBe(1);
    const v = JSON.parse(readFileSync(join(tmp, 'bad', 'validation.json'), 'utf8')) as Verdict;
    expect(v.pass).toBe(false);
    expect(v.medianAbsErrorPct.ttft_mean_ms).toBeGreaterThan(2 * CI_MAX_ERROR_PCT);
  });
});

/**
 * Issue 14 (CI): one small suite scenario live (built CLI): the device-cloud runner on
 * loopback, 1 device + cloud, where host costs are most of the latency. With the shipped
 * host fit (calibration/ci-cpu-2core/host-fit-devcloud.json, applied by default) the
 * median over systems of |error| of mean TTFT is under the threshold; the same live run
 * simulated without the host model (--hosts none) is over it: the host model does the
 * work. Mean TBT is reported, not thresholded: on loopback the fitted message cost
 * over-predicts the decode rounds (docs/LIVE.md). Also checks replay and attribution.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-valsuite-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const SCENARIO = 'scenarios/validation/tiny-1dev-loopback.yaml';
/** CI threshold on mean TTFT (%): with the shipped fit 34-48 % at load 8-16, without it 90-95 % (docs/LIVE.md). */
const CI_MAX_ERROR_PCT = 65;

interface Validation {
  pass: boolean;
  medianAbsErrorPct: { ttft_mean_ms: number; tbt_mean_ms: number };
  hostApplied: { dispatchMs: number } | null;
  replay: { acceptMismatches: number; maxArrivalDiffS: number; rows: { metric: string }[] };
  attribution: { systems: { system: string; max_sum_error_ms: number; e2e_ms: number }[] };
}

describe('validation suite scenario in CI: host model on vs off', () => {
  it('loopback tiny: mean TTFT within the threshold with the shipped host fit, beyond it without', { retry: 1 }, () => {
    const out = join(tmp, 'on');
    // The command's own verdict also thresholds TBT; this test reads the TTFT statistic from validation.json.
    const r = spawnSync(process.execPath, [CLI, 'validate', SCENARIO, '--max-error-pct', '1000', '--out', out], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    process.stdout.write(r.stdout.split('\n').filter((l) => /median|load/.test(l)).join('\n') + '\n');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const on = JSON.parse(readFileSync(join(out, 'validation.json'), 'utf8')) as Validation;
    expect(on.hostApplied).not.toBeNull();
    expect(on.medianAbsErrorPct.ttft_mean_ms).toBeLessThan(CI_MAX_ERROR_PCT);
    expect(on.replay.acceptMismatches).toBe(0);
    expect(on.replay.maxArrivalDiffS).toBeLessThan(1e-9);
    expect(on.replay.rows.length).toBeGreaterThan(0);
    // Attribution: every ms of each request in one part, summing to its e2e.
    for (const s of on.attribution.systems) expect(s.max_sum_error_ms).toBeLessThan(1e-6 * Math.max(1, s.e2e_ms));

    const off = spawnSync(process.execPath, [CLI, 'validate', SCENARIO, '--max-error-pct', String(CI_MAX_ERROR_PCT), '--live-dir', join(out, 'live'), '--hosts', 'none', '--out', join(tmp, 'off')],
      { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    expect(off.status, off.stdout + off.stderr).toBe(1);
    const v = JSON.parse(readFileSync(join(tmp, 'off', 'validation.json'), 'utf8')) as Validation;
    expect(v.hostApplied).toBeNull();
    expect(v.medianAbsErrorPct.ttft_mean_ms).toBeGreaterThan(CI_MAX_ERROR_PCT);
  });
});

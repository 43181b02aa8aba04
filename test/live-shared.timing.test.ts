/**
 * A shared bottleneck shaped live (issue 14 point 5; src/live/shared-net.ts): 4 device
 * processes and the cloud of scenarios/validation/tiny-4dev-shared.yaml, every device crossing
 * one 3 Mbit/s access point. `hatsim validate` on HAT (the system whose hidden-state chunks
 * load the point) passes within the CI threshold; the same live run against a simulator that
 * ignores the sharing (each device alone at its own link) is off by far more and fails.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const SCEN = 'scenarios/validation/tiny-4dev-shared.yaml';
const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-shared-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** CI threshold (%): measured 3 % (TTFT) / 12 % (TBT) at load 5; ignoring the sharing gives 76 % on TTFT. */
const CI_MAX_ERROR_PCT = 20;

interface Verdict { pass: boolean; medianAbsErrorPct: { ttft_mean_ms: number; tbt_mean_ms: number } }

describe('live shared bottleneck vs the simulator', () => {
  it('HAT through a shared 3 Mbit/s access point validates; a simulator without the sharing fails', { retry: 1 }, () => {
    const out = join(tmp, 'ok');
    const r = spawnSync(process.execPath, [CLI, 'validate', SCEN, '--set', 'systems=[hat]', '--max-error-pct', String(CI_MAX_ERROR_PCT), '--out', out],
      { cwd: REPO, encoding: 'utf8', timeout: 170_000 });
    process.stdout.write(r.stdout.split('\n').filter((l) => /mean|median/.test(l)).join('\n') + '\n');
    expect(r.status, r.stdout + r.stderr).toBe(0);
    const rows = readFileSync(join(out, 'validation.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
    for (const row of rows.filter((x) => x[1].startsWith('bytes_'))) expect(Number(row[4])).toBe(0);
    const run = JSON.parse(readFileSync(join(out, 'live', 'run.json'), 'utf8')) as { errors: string[] };
    expect(run.errors).toEqual([]);
    // Live TTFT is far above what the devices' own links give (the point is doing the shaping).
    const alone = spawnSync(process.execPath, [CLI, 'validate', SCEN, '--set', 'systems=[hat]', '--max-error-pct', String(CI_MAX_ERROR_PCT),
      '--live-dir', join(out, 'live'), '--sim-set', 'devices.0.via=[]', '--out', join(tmp, 'alone')], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });
    expect(alone.status, alone.stdout + alone.stderr).toBe(1);
    const v = JSON.parse(readFileSync(join(tmp, 'alone', 'validation.json'), 'utf8')) as Verdict;
    expect(v.medianAbsErrorPct.ttft_mean_ms).toBeGreaterThan(2 * CI_MAX_ERROR_PCT);
  });
});

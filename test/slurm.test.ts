/**
 * Sweeps on a real Slurm cluster (issue 15): a one-node cluster on localhost (munged, slurmctld,
 * slurmd from Debian's slurm-wlm + munge, started by scripts/slurm-local.sh with a generated
 * config in a temp dir), the sweep submitted as a job array with one shard per task
 * (scripts/sweep-array.sbatch, the example of docs/SWEEPS.md), `hatsim merge`, and the merged
 * sweep compared byte for byte with the unsharded one.
 * Skipped when Slurm or munge is not installed or when not root (`.ci/run` installs them).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';
import { pointFiles } from './support/tree.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const SLURM_LOCAL = join(REPO, 'scripts/slurm-local.sh');
const onPath = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
const haveSlurm = ['munged', 'mungekey', 'slurmctld', 'slurmd', 'sbatch', 'sinfo'].every(onPath);
const isRoot = process.getuid?.() === 0;
const T = 300_000;
const SWEEP_ARGS = ['--grid', 'devices.0.link.uplinkMbps=10,40', '--grid', 'workload.promptTokens.tokens=32,128', '--seed', '7', '--parquet'];

describe.skipIf(!haveSlurm || !isRoot || !existsSync(CLI))('Slurm: a sweep as a job array on a one-node cluster', () => {
  let tmp: string;
  let env: NodeJS.ProcessEnv;
  const run = (cmd: string, args: string[], timeout = T): string => {
    const r = spawnSync(cmd, args, { cwd: REPO, encoding: 'utf8', env, timeout });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}${r.stdout}`);
    return r.stdout;
  };
  /** The final states of a job array's tasks (scontrol keeps finished jobs for MinJobAge = 300 s). */
  const waitForJob = (jobId: string): string[] => {
    const deadline = Date.now() + 240_000;
    for (;;) {
      const text = run('scontrol', ['-o', 'show', 'job', jobId]);
      const states = text.split('\n').filter((l) => l.includes('ArrayTaskId='))
        .map((l) => ({ task: Number(/ArrayTaskId=(\d+)/.exec(l)?.[1]), state: /JobState=(\S+)/.exec(l)?.[1] ?? '?' }))
        .sort((a, b) => a.task - b.task);
      if (states.length === 3 && states.every((x) => !/PENDING|RUNNING|CONFIGURING|COMPLETING/.test(x.state))) return states.map((x) => x.state);
      if (Date.now() > deadline) throw new Error(`job ${jobId} did not finish: ${text}`);
      spawnSync('sleep', ['0.5']);
    }
  };
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), 'hatsim-slurm-'));
    env = { ...process.env };
    run('bash', [SLURM_LOCAL, 'up', join(tmp, 'cluster')], 120_000);
    env.SLURM_CONF = join(tmp, 'cluster', 'slurm.conf');
  }, T);
  afterAll(() => {
    if (!tmp) return;
    spawnSync('bash', [SLURM_LOCAL, 'down', join(tmp, 'cluster')], { timeout: 60_000 });
    rmSync(tmp, { recursive: true, force: true });
  });

  it('3 array tasks run one shard each; hatsim merge equals the unsharded sweep byte for byte', () => {
    const out = join(tmp, 'array');
    const submitted = run('sbatch', ['--array=1-3', `--output=${join(tmp, 'task-%A_%a.out')}`, `--chdir=${REPO}`,
      join(REPO, 'scripts/sweep-array.sbatch'), 'scenarios/tiny-local.yaml', out, ...SWEEP_ARGS]);
    const jobId = /Submitted batch job (\d+)/.exec(submitted)?.[1];
    expect(jobId).toBeDefined();
    // Wait for the array (polling scontrol: faster than sbatch --wait's back-off); every task must complete.
    const states = waitForJob(jobId!);
    expect(states).toEqual(['COMPLETED', 'COMPLETED', 'COMPLETED']);
    // One log per array task, each for its own shard directory.
    expect(readdirSync(tmp).filter((f) => f.startsWith(`task-${jobId}_`)).sort()).toEqual([1, 2, 3].map((k) => `task-${jobId}_${k}.out`));
    expect(readdirSync(out).sort()).toEqual(['shard-1-of-3', 'shard-2-of-3', 'shard-3-of-3']);
    for (let k = 1; k <= 3; k++) expect(readdirSync(join(out, `shard-${k}-of-3`, 'points')).length).toBeGreaterThan(0);

    run(process.execPath, [CLI, 'merge', out, '--out', join(tmp, 'merged'), '--quiet']);
    run(process.execPath, [CLI, 'sweep', 'scenarios/tiny-local.yaml', ...SWEEP_ARGS, '--out', join(tmp, 'unsharded'), '--jobs', '1', '--quiet']);
    for (const f of ['sweep.csv', 'sweep.parquet']) {
      expect(readFileSync(join(tmp, 'merged', f))).toEqual(readFileSync(join(tmp, 'unsharded', f)));
    }
    const merged = pointFiles(join(tmp, 'merged'));
    expect(merged.size).toBe(4 * 9); // 6 CSVs (nodes.csv, links.csv included) + run.json + 2 Parquet files per point
    expect(merged).toEqual(pointFiles(join(tmp, 'unsharded')));
  }, T);
});

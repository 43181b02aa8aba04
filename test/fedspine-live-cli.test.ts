/**
 * Bad input to the live FedSpine commands: one message naming the field, exit 2, before any
 * device process starts (dist build of the CLI).
 */
import { spawnSync } from 'node:child_process';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const S = join(REPO, 'scenarios/fedspine-live-small.yaml');

function run(args: string[]): { status: number | null; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, err: `${r.stdout}${r.stderr}` };
}

describe('live FedSpine bad input', () => {
  it.each([
    [['live', 'fedspine', S, '--set', 'space.ratioMax=0.3'], /space\.ratioMax = 0\.3: the live runner trains unpruned models only/],
    [['live', 'fedspine', S, '--set', 'rounds.deadlineS=5'], /rounds\.deadlineS/],
    [['live', 'fedspine', S, '--set', 'live.categories=[news]'], /live\.categories has 1 entries for 4 devices/],
    [['live', 'fedspine', S, '--set', 'live.categories=[news,romance,government,nosuch]'], /live\.categories\[3\] = "nosuch"/],
    [['live', 'fedspine', S, '--method', 'oracle'], /--method oracle is not a method of the scenario/],
    [['live', 'fedspine', S, '--set', 'live.lr=-1'], /live\.lr: must be a number > 0/],
    [['live', 'fed-device', '--scenario', S, '--server', 'nohost', '--device', '0'], /--server: give HOST:PORT/],
    [['live', 'fed-device', '--scenario', S, '--server', '127.0.0.1:1', '--device', '9'], /--device 9: the scenario has devices 0\.\.3/],
    [['validate', S, '--live-dir', join(REPO, 'no-such-dir')], /--live-dir .*need rounds\.csv and run\.json/],
    [['live', 'fed-calibrate', S, '--reps', '0'], /--reps: give an integer >= 1/],
  ])('%j', (args, msg) => {
    const r = run(args);
    expect(r.status, r.err).toBe(2);
    expect(r.err).toMatch(msg);
    expect(r.err).not.toMatch(/\n\s+at /); // no stack trace
  });
});

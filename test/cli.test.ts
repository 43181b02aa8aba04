/**
 * The `hatsim` command end to end (built CLI in dist/: `npm test` builds first).
 * Bad input: exit code 2, one clear message naming the field, no stack trace, no results written.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const hatsim = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/);

describe.skipIf(!existsSync(CLI))('hatsim CLI', () => {
  it('run writes the output contract atomically and prints the table', () => {
    const out = mkdtempSync(join(tmpdir(), 'hatsim-run-'));
    const r = hatsim('run', 'scenarios/tiny-local.yaml', '--out', out);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/hat-nochunk/);
    for (const f of ['requests.csv', 'summary.csv', 'timeline.csv', 'gpu_util.csv', 'run.json']) expect(existsSync(join(out, f))).toBe(true);
    const header = readFileSync(join(out, 'requests.csv'), 'utf8').split('\n')[0];
    expect(header.startsWith('system,device,request,arrival_s,prompt_tokens,output_tokens,ttft_ms,tbt_mean_ms')).toBe(true);
    for (const c of ['e2e_ms', 'bytes_up', 'bytes_down', 'raw_token_bytes_up']) expect(header.split(',')).toContain(c);
    const sHeader = readFileSync(join(out, 'summary.csv'), 'utf8').split('\n')[0].split(',');
    for (const c of ['system', 'requests', 'ttft_mean_ms', 'ttft_p50_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p50_ms', 'tbt_p99_ms', 'throughput_tok_s', 'bytes_up_per_request', 'raw_token_bytes_up']) expect(sHeader).toContain(c);
    const info = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(info.seed).toBe(1);
    expect(info.version).toMatch(/\d+\.\d+\.\d+/);
    expect(info.eventCount).toBeGreaterThan(0);
    expect(typeof info.wallMs).toBe('number');
    expect(info.scenario.name).toBe('tiny-local');
    expect(info.latency[0].components.decoderLayer.source).toMatch(/estimate|measured|imported/);
  });

  it('--seed and --set change the run; the same seed reproduces requests.csv byte for byte', () => {
    const a = mkdtempSync(join(tmpdir(), 'hatsim-a-')), b = mkdtempSync(join(tmpdir(), 'hatsim-b-')), c = mkdtempSync(join(tmpdir(), 'hatsim-c-'));
    expect(hatsim('run', 'scenarios/tiny-local.yaml', '--out', a, '--seed', '5', '--quiet').status).toBe(0);
    expect(hatsim('run', 'scenarios/tiny-local.yaml', '--out', b, '--seed', '5', '--quiet').status).toBe(0);
    expect(hatsim('run', 'scenarios/tiny-local.yaml', '--out', c, '--seed', '6', '--set', 'workload.requestsPerDevice=7', '--quiet').status).toBe(0);
    const read = (d: string) => readFileSync(join(d, 'requests.csv'), 'utf8');
    expect(read(a)).toBe(read(b));
    expect(read(c)).not.toBe(read(a));
    expect(read(c).trim().split('\n').length).toBe(1 + 7 * 5);
  });

  it('describe prints sizes, sources and chunk sizes without running', () => {
    const r = hatsim('describe', 'scenarios/hat-testbed.yaml');
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/8192 bytes per token/);
    expect(r.stdout).toMatch(/chunk tokens/);
    expect(r.stdout).toMatch(/decoderLayer=estimate/);
  });

  const bad: [string, string[], RegExp][] = [
    ['an unknown field path in --set', ['run', 'scenarios/tiny-local.yaml', '--set', 'cloud.gpuz=2'], /gpuz/],
    ['a bad value in --set', ['run', 'scenarios/tiny-local.yaml', '--set', 'cloud.gpus=-1'], /cloud\.gpus/],
    ['a missing scenario file', ['run', 'scenarios/nope.yaml'], /not found/],
    ['a negative seed', ['run', 'scenarios/tiny-local.yaml', '--seed', '-3'], /seed/],
    ['an unknown system', ['run', 'scenarios/tiny-local.yaml', '--systems', 'hat,warp'], /warp/],
    ['an unknown command', ['fly'], /Unknown|command/i],
    ['an unknown flag', ['run', 'scenarios/tiny-local.yaml', '--fast'], /fast/],
    ['an unknown hardware id', ['run', 'scenarios/tiny-local.yaml', '--set', 'cloud.hardware=h200'], /h200/],
    ['an unknown model', ['run', 'scenarios/tiny-local.yaml', '--set', 'model=gpt-9'], /gpt-9/],
  ];
  for (const [what, args, msg] of bad) {
    it(`exits 2 with a clear message on ${what}`, () => {
      const out = mkdtempSync(join(tmpdir(), 'hatsim-bad-'));
      const r = hatsim(...args, ...(args[0] === 'run' ? ['--out', join(out, 'res')] : []));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
      noStack(r.stderr);
      expect(existsSync(join(out, 'res'))).toBe(false);
    });
  }

  it('a scenario with a YAML syntax error names the line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-yaml-'));
    const f = join(dir, 's.yaml');
    writeFileSync(f, 'name: x\nmodel: [llama2-7b\n');
    const r = hatsim('run', f);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/line \d+/);
    noStack(r.stderr);
  });
});

/** `hatsim run` on FedSpine scenarios through the built CLI: outputs, and bad input => exit 2, no stack, nothing written. */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const hatsim = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at .+:\d+:\d+/);

const small = (extra = '') => `kind: fedspine
name: cli-small
seed: 2
model: roberta-base-sized
methods: [fedspine, uniform]
training: { batch: 4, seqLen: 64, logits: last }
rounds: { max: 4, localSteps: 4, targetLoss: 2.4 }
server: { uplinkMbps: 1000, downlinkMbps: 1000 }
learning: { file: ${join(REPO, 'scenarios/fedspine-learning.json')} }
devices:
  - { name: tx2, count: 2, hardware: jetson-tx2, link: { uplinkMbps: 10, downlinkMbps: 40, latencyMs: 20 } }
  - { name: agx, count: 1, hardware: jetson-agx-xavier-32gb, link: { uplinkMbps: 100, downlinkMbps: 100, latencyMs: 2 } }
${extra}`;

function scenarioFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'fedspine-cli-'));
  const f = join(dir, 's.yaml');
  writeFileSync(f, text);
  return f;
}

describe.skipIf(!existsSync(CLI))('hatsim run (FedSpine)', () => {
  it('writes rounds.csv, summary.csv and run.json and prints a table', () => {
    const out = mkdtempSync(join(tmpdir(), 'fedspine-out-'));
    const r = hatsim('run', scenarioFile(small()), '--out', out);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/fedspine/);
    const header = readFileSync(join(out, 'rounds.csv'), 'utf8').split('\n')[0];
    expect(header).toMatch(/^method,round,device,hardware,status,feasible,ratio,rank/);
    const info = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8'));
    expect(info.kind).toBe('fedspine');
    expect(info.assumptions.length).toBeGreaterThan(3);
    expect(readFileSync(join(out, 'summary.csv'), 'utf8').split('\n')).toHaveLength(4);
  });
  it('describe prints per-hardware costs at the space corners and the assumptions', () => {
    const r = hatsim('describe', scenarioFile(small()));
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/jetson-tx2 +0 +32 /);
    expect(r.stdout).toMatch(/Assumptions/);
  });
  const bad: [string, string, RegExp][] = [
    ['a rank outside its range', small().replace('training:', 'space: { rankMin: 0 }\ntraining:'), /space\.rankMin.*integer >= 1/],
    ['a ratio outside its range', small().replace('training:', 'space: { ratioMax: 1.2 }\ntraining:'), /space\.ratioMax.*\[0, 1\)/],
    ['a baseline rank outside the space', small().replace('training:', 'baselines: { uniformRank: 99 }\ntraining:'), /baselines\.uniformRank/],
    ['a device that cannot hold the smallest configuration', small().replace('hardware: jetson-tx2,', 'hardware: jetson-tx2, memoryGiB: 1,'), /tx2-0.*cannot hold even the smallest configuration/],
    ['an unknown key', small().replace('training:', 'trainin: {}\ntraining:'), /unknown key "trainin"/],
  ];
  for (const [what, text, msg] of bad) {
    it(`exits 2 on ${what}`, () => {
      const out = join(mkdtempSync(join(tmpdir(), 'fedspine-bad-')), 'out');
      const r = hatsim('run', scenarioFile(text), '--out', out);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
      noStack(r.stderr);
      expect(existsSync(out)).toBe(false);
    });
  }
  it('exits 2 on an availability trace that does not parse, naming the line and field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedspine-av-'));
    writeFileSync(join(dir, 'av.csv'), 'device,start_s,end_s\ntx2-0,0,100\ntx2-1,abc,100\n');
    const out = join(dir, 'out');
    const r = hatsim('run', scenarioFile(small(`availability: { kind: trace, file: ${join(dir, 'av.csv')} }\n`)), '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/av\.csv:3: field start_s/);
    noStack(r.stderr);
    expect(existsSync(out)).toBe(false);
  });
});

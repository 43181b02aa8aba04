/**
 * The bench against inference-lab (bench/peer.ts, issue 15) compares the two simulators on the
 * same workload: these checks hold it to that. The Poisson trace has rate 5/s; hatsim, fed the
 * trace round-robin over 1,000 devices, simulates exactly its arrivals; the peer accepts the
 * configuration and completes every request. Small N: a few seconds.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import { afterAll, describe, expect, it } from 'vitest';
import { PEER_WORKLOAD, peerConfig, writeTrace } from '../bench/peer.js';
import { REPO } from './helpers.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const PEER_CHILD = join(REPO, 'dist/bench/peer-child.js');
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-bench-peer-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const rows = (file: string): Record<string, string>[] => parse(readFileSync(file, 'utf8'), { columns: true }) as Record<string, string>[];

describe('bench vs inference-lab: the same workload on both sides', () => {
  const n = 2000;
  const trace = join(tmp, 'trace.csv');
  writeTrace(trace, n);
  const arrivals = rows(trace).map((r) => Number(r.arrived_at));

  it('the trace is a Poisson process at 5 requests/s with 512/128 tokens (mean gap within 3 sigma, gaps positive)', () => {
    expect(arrivals).toHaveLength(n);
    const gaps = arrivals.map((t, i) => t - (i === 0 ? 0 : arrivals[i - 1]));
    expect(Math.min(...gaps)).toBeGreaterThan(0);
    const mean = gaps.reduce((a, b) => a + b, 0) / n;
    const sigma = 1 / PEER_WORKLOAD.ratePerS / Math.sqrt(n); // exponential: sd = mean
    expect(Math.abs(mean - 1 / PEER_WORKLOAD.ratePerS)).toBeLessThan(3 * sigma);
    for (const r of rows(trace)) expect([r.num_prefill_tokens, r.num_decode_tokens]).toEqual(['512', '128']);
  });

  it.skipIf(!existsSync(CLI))('hatsim simulates exactly those arrivals, round-robin over 1,000 devices, every request finished', () => {
    const out = join(tmp, 'hatsim');
    const r = spawnSync(process.execPath, [CLI, 'run', join(REPO, 'bench/peer-cloud-only.yaml'), '--out', out, '--quiet',
      '--set', 'devices.0.count=1000', '--set', `workload.requestsPerDevice=${n / 1000}`, '--set', `workload.arrival={kind: trace, path: ${trace}}`],
    { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const req = rows(join(out, 'requests.csv'));
    expect(req).toHaveLength(n);
    for (const x of req) {
      const device = Number(x.device.replace(/^dev-/, ''));
      const j = Number(x.request) * 1000 + device; // trace row j goes to device j % 1000
      expect(Number(x.arrival_s)).toBeCloseTo(arrivals[j] - arrivals[0], 5);
      expect([x.prompt_tokens, x.output_tokens]).toEqual(['512', '128']);
    }
    expect(rows(join(out, 'summary.csv'))[0].unfinished).toBe('0');
  });

  it.skipIf(!existsSync(PEER_CHILD))('inference-lab accepts the configuration and completes every request', () => {
    const r = spawnSync(process.execPath, [PEER_CHILD, peerConfig(200)], { encoding: 'utf8', timeout: 120_000 });
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim()) as { completed: number; ttftMeanMs: number; simMs: number };
    expect(out.completed).toBe(200);
    expect(out.ttftMeanMs).toBeGreaterThan(0);
    expect(out.simMs).toBeGreaterThan(0);
  });
});

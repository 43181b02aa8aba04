/**
 * Issue 15 items 1-2: the streamed results path and the closed-form token delivery give the
 * same bytes as the in-memory, one-event-per-delivery path they replace.
 *  - `runScenario(s, { spillDir })` (what `hatsim run` does: records spilled to disk as requests
 *    finish, read back in id windows) against `runScenario(s)` (records in memory): every file of
 *    the results directory equal, with the read-back window forced small so rows cross windows;
 *  - the cloud system's settled deliveries (network.settle) against the same run with settling
 *    switched off (every token delivered by its own event, the pre-issue-15 path): equal rows,
 *    including jitter, a horizon that cuts requests mid-stream, several GPUs and a closed loop.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadScenario } from '../src/scenario/load.js';
import { runScenario } from '../src/sim/run.js';
import { runOutputs } from '../src/sim/outputs.js';
import { writeRunOutputs } from '../src/results/write.js';
import { toCsv } from '../src/results/csv.js';
import { REQUEST_COLUMNS, SUMMARY_COLUMNS } from '../src/results/types.js';
import { Network } from '../src/network/network.js';
import type { Scenario } from '../src/scenario/types.js';
import { SCENARIOS, scenario } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'hatsim-stream-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Every file of a results directory (run.json without its wall time). */
function filesOf(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of readdirSync(dir).sort()) {
    let text = readFileSync(join(dir, f), 'utf8');
    if (f === 'run.json') text = text.replace(/"wallMs": \d+/, '"wallMs": 0');
    out[f] = text;
  }
  return out;
}

function bothWays(name: string, s: Scenario, windowRows: number): { memory: Record<string, string>; streamed: Record<string, string> } {
  const a = join(tmp, `${name}-memory`), b = join(tmp, `${name}-streamed`);
  writeRunOutputs(a, runOutputs(runScenario(s)));
  // A small window: the read-back makes several passes and rows land in several windows.
  writeRunOutputs(b, runOutputs(runScenario(s, { spillDir: b, spillWindowRows: windowRows })));
  return { memory: filesOf(a), streamed: filesOf(b) };
}

describe('streamed requests (RunOptions.spillDir) equal the in-memory results', () => {
  for (const file of ['tiny-local.yaml', 'hat-testbed.yaml', 'topo-fanout.yaml', 'topo-chain.yaml']) {
    it(`${file}: every output file identical`, () => {
      const s = loadScenario(join(SCENARIOS, file), file === 'hat-testbed.yaml' ? ['workload.requestsPerDevice=4'] : []);
      const { memory, streamed } = bothWays(file, s, file === 'tiny-local.yaml' ? 7 : 2003);
      expect(Object.keys(streamed)).toEqual(Object.keys(memory)); // no spill or part file left behind
      for (const f of Object.keys(memory)) expect(streamed[f], f).toBe(memory[f]);
      expect(memory['requests.csv'].split('\n').length).toBeGreaterThan(10);
    });
  }

  it('a horizon that leaves requests unfinished, three devices, three systems: identical, unfinished counted', () => {
    const s = scenario({
      devices: [{ name: 'dev', count: 3, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 40, downlinkMbps: 80, latencyMs: 20, jitterMs: 3 } }],
      workload: { arrival: { kind: 'poisson', ratePerS: 2 }, requestsPerDevice: 12 },
      horizonS: 6,
      systems: ['cloud', 'hat', 'sd'],
    });
    const { memory, streamed } = bothWays('horizon', s, 5);
    for (const f of Object.keys(memory)) expect(streamed[f], f).toBe(memory[f]);
    const summary = memory['summary.csv'].trim().split('\n').map((l) => l.split(','));
    const unfinished = summary.slice(1).map((r) => Number(r[summary[0].indexOf('unfinished')]));
    expect(unfinished.some((u) => u > 0)).toBe(true);
  });
});

/** Run with the cloud system's closed-form deliveries switched off: one event per token, as before issue 15. */
function withoutSettling<T>(f: () => T): T {
  const proto = Network.prototype as { settle?: unknown };
  const saved = proto.settle;
  proto.settle = undefined;
  try { return f(); } finally { proto.settle = saved; }
}

function csvs(s: Scenario): { requests: string; summary: string; events: number } {
  const r = runScenario(s);
  const o = runOutputs(r);
  return { requests: toCsv(o.requests, REQUEST_COLUMNS), summary: toCsv(o.summary, SUMMARY_COLUMNS), events: r.eventCount };
}

describe('closed-form token delivery (network.settle) equals one event per delivery', () => {
  const cases: [string, Record<string, unknown>][] = [
    ['one device, no jitter', {}],
    ['jitter, 8 devices, 2 GPUs, Poisson', {
      devices: [{ name: 'dev', count: 8, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 20, downlinkMbps: 5, latencyMs: 15, jitterMs: 4 } }],
      cloud: { hardware: 'a6000', gpus: 2 },
      workload: { arrival: { kind: 'poisson', ratePerS: 0.5 }, requestsPerDevice: 6, outputTokens: { kind: 'uniform', minTokens: 1, maxTokens: 90 } },
    }],
    ['a horizon that cuts token streams', {
      devices: [{ name: 'dev', count: 4, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 20, downlinkMbps: 1, latencyMs: 30, jitterMs: 2 } }],
      workload: { arrival: { kind: 'poisson', ratePerS: 1 }, requestsPerDevice: 8 },
      horizonS: 9,
    }],
    ['closed loop', { workload: { arrival: { kind: 'closed-loop', thinkTimeS: 0.3 }, requestsPerDevice: 6 } }],
  ];
  for (const [name, over] of cases) {
    it(name, () => {
      const s = scenario({ ...over, systems: ['cloud'] });
      const settled = csvs(s);
      const perEvent = withoutSettling(() => csvs(s));
      expect(settled.requests).toBe(perEvent.requests);
      expect(settled.summary).toBe(perEvent.summary);
      // The point of it: far fewer events (none per delivered token).
      expect(settled.events).toBeLessThan(perEvent.events);
    });
  }
});

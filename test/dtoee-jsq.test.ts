/**
 * jsq with reported loads (policies.dtoee.jsqLoad: reported; sim/dtoee-control.ts LoadReports,
 * dtoee/round.ts LoadBoard): the reports are network messages in closed form (ticks x links);
 * with a period longer than the run a node only ever knows the first report (all loads 0), so
 * every choice is a tie broken by the task's draw (a uniform split, 4 sigma); with short periods
 * it acts on fresh loads; instant mode (the default) is untouched (golden hashes).
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LoadBoard } from '../src/dtoee/index.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem, type SystemRun } from '../src/sim/run.js';
import { SCENARIOS } from './helpers.js';

const FILE = join(SCENARIOS, 'dtoee-live-small.yaml');
const LOADED = ['policies.dtoee.policy=jsq', 'workload.arrival.ratePerS=60', 'workload.requestsPerDevice=400', 'environment.nodeSpeed=[{node: s2-1, fromS: 0, factor: 25}]'];
const sim = (over: string[]): SystemRun => simulateSystem(buildTestbed(loadScenario(FILE, over)), 'dtoee');
/** Share of the tasks reaching stage 2 that went to s2-0. */
function shareS20(r: SystemRun): { share: number; n: number } {
  const deep = r.tasks.filter((t) => t.nodes.includes('s2-'));
  return { share: deep.filter((t) => t.nodes.includes('s2-0')).length / deep.length, n: deep.length };
}

describe('jsq with reported loads', () => {
  it('the reports are messages in closed form: (floor(end / period) + 2) ticks x 4 links', () => {
    const period = 0.25;
    const inst = sim(LOADED), rep = sim([...LOADED, 'policies.dtoee.jsqLoad=reported', `policies.dtoee.loadPeriodS=${period}`]);
    expect(rep.requests.length).toBe(800);
    // A task's messages do not depend on its route (exits are draws against fixed thresholds): the difference is the reports.
    const ticks = Math.floor(rep.simEndS / period) + 2;
    expect(rep.messagesSent - inst.messagesSent).toBe(ticks * 4);
    expect(rep.messagesDelivered).toBe(rep.messagesSent);
  });

  it('a period longer than the run: only the t = 0 report (load 0), every choice a tie, a uniform split (4 sigma); fresher reports and instant loads avoid the slowed node', () => {
    const staleRun = sim([...LOADED, 'policies.dtoee.jsqLoad=reported', 'policies.dtoee.loadPeriodS=100000']);
    const stale = shareS20(staleRun), sigma = Math.sqrt(0.25 / stale.n);
    expect(Math.abs(stale.share - 0.5)).toBeLessThan(4 * sigma);
    const freshRun = sim([...LOADED, 'policies.dtoee.jsqLoad=reported', 'policies.dtoee.loadPeriodS=0.2']);
    const fresh = shareS20(freshRun), inst = shareS20(sim(LOADED));
    expect(fresh.share).toBeGreaterThan(0.5 + 4 * sigma);
    expect(inst.share).toBeGreaterThan(0.5 + 4 * sigma);
    // s2-1 is 25x slower: sending it half the stage-2 tasks backs it up.
    expect(freshRun.summary.ttft_mean_ms).toBeLessThan(staleRun.summary.ttft_mean_ms);
  });

  it('LoadBoard: 0 before a report, the newest report wins, an older one arriving late is ignored', () => {
    const b = new LoadBoard();
    expect(b.load('a', 'x')).toBe(0);
    b.set('a', 'x', 3, 1.0);
    b.set('a', 'x', 5, 0.5); // sent earlier, arrived later
    expect(b.load('a', 'x')).toBe(3);
    b.set('a', 'x', 1, 2.0);
    expect(b.load('a', 'x')).toBe(1);
    expect(b.load('b', 'x')).toBe(0);
  });
});

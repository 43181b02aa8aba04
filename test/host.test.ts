/**
 * Hosts (issue 14 point 2): nodes on one machine share its cores by processor sharing;
 * each compute op pays the host's dispatch cost and each message its send and receive
 * cost. Closed forms on the engine and on the chain scenario; without hosts nothing moves.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine, type Handler } from '../src/core/engine.js';
import { singleShape } from '../src/compute/types.js';
import { stagePlan } from '../src/protocol/systems/staged.js';
import { loadScenario } from '../src/scenario/load.js';
import { HostCpu } from '../src/sim/host.js';
import { DeviceProcessor, type ComputeWaiter } from '../src/sim/device.js';
import { buildTestbed, simulateSystem } from '../src/sim/run.js';
import { SCENARIOS } from './helpers.js';

/** Submit jobs of `ms` at times `atS` to one-at-a-time processors on one host; returns each job's end time (ms). */
function runJobs(cores: number, dispatchMs: number, jobs: { atS: number; ms: number; proc: number }[], procs: number): number[] {
  const engine = new Engine();
  const host = new HostCpu(engine, 'h', cores, dispatchMs);
  const p = Array.from({ length: procs }, () => new DeviceProcessor(engine, host));
  const ends: number[] = new Array<number>(jobs.length).fill(NaN);
  jobs.forEach((j, i) => {
    const waiter: ComputeWaiter = { computeDone: (e) => { ends[i] = e.nowS * 1000; } };
    const h: Handler = { fire: () => p[j.proc].submit(waiter, j.ms) };
    engine.schedule(j.atS, h, 0, 1);
  });
  engine.run();
  return ends;
}

describe('host CPU: processor sharing over its cores', () => {
  it('two 10 ms jobs on one core end together at 20 ms; on two cores at 10 ms', () => {
    expect(runJobs(1, 0, [{ atS: 0, ms: 10, proc: 0 }, { atS: 0, ms: 10, proc: 1 }], 2).map((x) => +x.toFixed(9))).toEqual([20, 20]);
    expect(runJobs(2, 0, [{ atS: 0, ms: 10, proc: 0 }, { atS: 0, ms: 10, proc: 1 }], 2).map((x) => +x.toFixed(9))).toEqual([10, 10]);
  });

  it('unequal jobs: 10 and 30 ms on one core end at 20 and 40 ms (work conserved); a late arrival slows the running job from then on', () => {
    expect(runJobs(1, 0, [{ atS: 0, ms: 10, proc: 0 }, { atS: 0, ms: 30, proc: 1 }], 2).map((x) => +x.toFixed(9))).toEqual([20, 40]);
    // Job A (20 ms) alone for 10 ms, then B (10 ms) joins: both at half speed; A's last 10 ms and B's 10 ms end together at 30 ms.
    expect(runJobs(1, 0, [{ atS: 0, ms: 20, proc: 0 }, { atS: 0.01, ms: 10, proc: 1 }], 2).map((x) => +x.toFixed(9))).toEqual([30, 30]);
    // Three jobs on two cores: rate 2/3 each until the 6 ms one ends at 9 ms; then the others run alone.
    const ends = runJobs(2, 0, [{ atS: 0, ms: 6, proc: 0 }, { atS: 0, ms: 12, proc: 1 }, { atS: 0, ms: 12, proc: 2 }], 3);
    expect(ends.map((x) => +x.toFixed(9))).toEqual([9, 15, 15]);
  });

  it('a processor still runs its own jobs one at a time; dispatch is paid per job', () => {
    // Same processor: FIFO, no sharing between its own jobs; 2 ms dispatch each.
    expect(runJobs(4, 2, [{ atS: 0, ms: 10, proc: 0 }, { atS: 0, ms: 10, proc: 0 }], 1).map((x) => +x.toFixed(9))).toEqual([12, 24]);
  });
});

describe('hosts in a scenario: the chain with its two edge nodes on one box', () => {
  const base = join(SCENARIOS, 'topo-chain.yaml');

  it('per-message and per-op costs in closed form on idle nodes; results unchanged without hosts', () => {
    const slow = ['workload.arrival.ratePerS=0.1'];
    const withHost = [...slow, 'hosts=[{name: box, cores: 2, dispatchMs: 1.5, messageMs: 0.25, nodes: [edge-a, edge-b]}]'];
    const s0 = loadScenario(base, slow);
    const s1 = loadScenario(base, withHost);
    expect(s1.topology.nodes.filter((n) => n.host === 'box').map((n) => n.name)).toEqual(['edge-a', 'edge-b']);
    const r0 = simulateSystem(buildTestbed(s0), 'staged');
    const r1 = simulateSystem(buildTestbed(s1), 'staged');
    // dev -> A: A receives (0.25); A -> B: A sends, B receives (0.5); B -> dev: B sends (0.25); two stages pay 1.5 each.
    const extra = 0.25 + 0.5 + 0.25 + 2 * 1.5;
    for (let i = 0; i < r0.requests.length; i++) expect(r1.requests[i].e2e_ms - r0.requests[i].e2e_ms).toBeCloseTo(extra, 9);
    const hops = r1.hops.filter((h) => h.request === 0);
    const tb = buildTestbed(s1);
    const plan = stagePlan(s1.topology.nodes, s1.policies.staged, tb.model.numLayers);
    const stageA = tb.nodeLatency.get('jetson-agx-orin-64gb')!.part(plan.parts[0].key, plan.parts[0]).batchMs(singleShape(64, 0), 0);
    expect(hops[0].compute_ms).toBeCloseTo(stageA + 1.5, 9);
  });

  it('one core shared by both stages under load: tasks take longer than with two, never shorter than the idle sum', () => {
    const load = ['workload.arrival.ratePerS=150', 'workload.requestsPerDevice=200', 'nodes.1.hardware=ci-cpu-2core', 'nodes.2.hardware=ci-cpu-2core', 'links.1.mbps=10000', 'nodes.0.concurrency=unlimited'];
    const one = simulateSystem(buildTestbed(loadScenario(base, [...load, 'hosts=[{name: box, cores: 1, nodes: [edge-a, edge-b]}]'])), 'staged');
    const two = simulateSystem(buildTestbed(loadScenario(base, [...load, 'hosts=[{name: box, cores: 2, nodes: [edge-a, edge-b]}]'])), 'staged');
    const none = simulateSystem(buildTestbed(loadScenario(base, load)), 'staged');
    const mean = (r: typeof one) => r.requests.reduce((a, x) => a + x.e2e_ms, 0) / r.requests.length;
    // Two cores for two single-job nodes: never more than two jobs, so the unshared model (to float rounding).
    const diff = Math.max(...two.requests.map((r, i) => Math.abs(r.e2e_ms - none.requests[i].e2e_ms)));
    expect(diff).toBeLessThan(1e-6);
    expect(mean(one)).toBeGreaterThan(mean(two));
    // Work is conserved: the nodes' busy time is the sum of their stretched jobs, at least the nominal work.
    const busy = (r: typeof one) => r.nodes.filter((n) => n.node.startsWith('edge')).reduce((a, n) => a + n.busy_ms, 0);
    expect(busy(one)).toBeGreaterThanOrEqual(busy(none) - 1e-6);
  });

  it('bad hosts: unknown node, a node on two hosts, a host with no node, cores < 1: errors naming the field', () => {
    const err = (h: string): string => { try { loadScenario(base, [`hosts=${h}`]); } catch (e) { return (e as Error).message; } return '(no error)'; };
    expect(err('[{name: box, cores: 2, nodes: [edge-c]}]')).toMatch(/hosts\[0\]\.nodes\[0\]: names no node or node group/);
    expect(err('[{name: a, cores: 2, nodes: [edge-a]}, {name: b, cores: 2, nodes: [edge-a]}]')).toMatch(/hosts\[1\]\.nodes\[0\]: node 'edge-a' is already on host 'a'/);
    expect(err('[{name: box, cores: 2}]')).toMatch(/hosts\[0\]\.name: no node sits on host 'box'/);
    expect(err('[{name: box, cores: 0, nodes: [edge-a]}]')).toMatch(/hosts\[0\]\.cores: must be an integer >= 1/);
  });
});

describe('host costs fitted from a live run (calibrate --from-live) and applied by validate --hosts', () => {
  it('recovers the dispatch and message costs of a run that has them (a simulated "live" run with a known host)', async () => {
    const { mkdtempSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { writeRunOutputs } = await import('../src/results/write.js');
    const { runOutputs } = await import('../src/sim/outputs.js');
    const { runScenario } = await import('../src/sim/run.js');
    const { fitHostFromLive, hostOverride, readHostFit } = await import('../src/calibrate/host-fit.js');
    const dir = mkdtempSync(join((tmpdir()), 'hatsim-hostfit-'));
    const base = join(SCENARIOS, 'topo-chain.yaml');
    const slow = ['workload.arrival.ratePerS=0.1'];
    writeRunOutputs(join(dir, 'live'), runOutputs(runScenario(loadScenario(base, [...slow, 'hosts=[{name: box, cores: 2, dispatchMs: 2, messageMs: 0.5, nodes: [dev, edge-a, edge-b]}]']))));
    writeRunOutputs(join(dir, 'sim'), runOutputs(runScenario(loadScenario(base, slow))));
    const fit = fitHostFromLive(dir, { cores: 2 });
    expect(fit.host.dispatchMs).toBeCloseTo(2, 9);
    expect(fit.host.messageMs).toBeCloseTo(0.5, 9);
    expect(fit.samples).toEqual({ visits: 40, requests: 20 });
    // A validation made with --live-dir: the live run is found through validation.json's liveDir.
    const { cpSync } = await import('node:fs');
    const dir2 = mkdtempSync(join(tmpdir(), 'hatsim-hostfit2-'));
    cpSync(join(dir, 'sim'), join(dir2, 'sim'), { recursive: true });
    const { writeFileSync: wf } = await import('node:fs');
    wf(join(dir2, 'validation.json'), JSON.stringify({ liveDir: join(dir, 'live') }));
    expect(fitHostFromLive(dir2, { cores: 2 }).host).toEqual(fit.host);
    // Applied to the simulated side it reproduces the "live" run.
    const { writeFileSync } = await import('node:fs');
    writeFileSync(join(dir, 'fit.json'), JSON.stringify(fit));
    const again = runScenario(loadScenario(base, [...slow, hostOverride(readHostFit(join(dir, 'fit.json')), ['dev', 'edge-a', 'edge-b'])]));
    const live = runScenario(loadScenario(base, [...slow, 'hosts=[{name: box, cores: 2, dispatchMs: 2, messageMs: 0.5, nodes: [dev, edge-a, edge-b]}]']));
    again.systems[0].requests.forEach((r, i) => expect(r.e2e_ms).toBeCloseTo(live.systems[0].requests[i].e2e_ms, 9));
    // Not a validate folder, or a bad fit file: errors naming the flag.
    expect(() => fitHostFromLive(join(dir, 'live'), { cores: 2 })).toThrow(/--from-live: .*not found: expected a hatsim validate output folder/);
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ format: 'hatsim-host-fit/1', host: { name: 'x', cores: 0, dispatchMs: 1, messageMs: 0 } }));
    expect(() => readHostFit(join(dir, 'bad.json'))).toThrow(/--hosts: .*host must be/);
  });
});

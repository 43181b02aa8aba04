/**
 * `npm run bench`: speed of the engine and of the simulator on the testbed.
 *
 *  1. engine: raw event throughput (schedule + fire of a no-op handler, heap of 1,000 pending events);
 *  2. testbed-all-systems: scenarios/hat-testbed.yaml, all five systems, 10,050 requests in total;
 *     testbed-10k: the same with 334 requests per device (10,020 requests) for each system;
 *  3. devices-1000: the testbed scaled to 1,000 devices (and 32 GPUs), hat only, 5 requests per device;
 *  4. peer (issue 15, bench/peer.ts): inference-lab vs hatsim at 1k, 10k, 100k requests (--no-peer skips it,
 *     --quick runs 1k only); --scale adds 10,000 devices x 1,000,000 requests (wall time, peak RSS).
 *
 * Targets (issue 2): >= 2 M events/s; the 30-device testbed with 10,000 requests in < 2 s of wall time.
 * Single-threaded; the machine's other load shows up in the numbers (the load average is printed).
 * Each measurement is repeated (--reps N, default 3) and the median is reported with the range,
 * because this kind of VM drifts in speed between runs. --quick: small sizes, one run (a smoke test).
 */
import { loadavg, cpus } from 'node:os';
import { Engine, type Handler } from '../src/core/engine.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem } from '../src/sim/run.js';
import type { SystemId } from '../src/scenario/types.js';
import { peerArgs, peerBench } from './peer.js';

function engineBench(events: number): { eventsPerS: number } {
  const engine = new Engine(2048);
  let left = events;
  const h: Handler = {
    fire(e: Engine): void {
      if (left-- > 0) e.after(0.001 + (left % 97) * 1e-5, h);
    },
  };
  for (let i = 0; i < 1000; i++) engine.after(i * 1e-6, h);
  const t0 = performance.now();
  engine.run();
  const s = (performance.now() - t0) / 1000;
  return { eventsPerS: engine.eventCount / s };
}

interface Timing { wallS: number[]; events: number; requests: number }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function fmt(t: Timing): string {
  const m = median(t.wallS);
  return `${m.toFixed(3).padStart(6)}  ${Math.min(...t.wallS).toFixed(2)}-${Math.max(...t.wallS).toFixed(2)}  ${String(t.events).padStart(9)}  ${(t.events / m / 1e6).toFixed(2).padStart(10)}   ${(t.requests / m).toFixed(0).padStart(10)}`;
}

const HEADER = 'system        median s  min-max    events     M events/s   requests/s(wall)';

function simBench(label: string, scenarioPath: string, overrides: string[], systems: SystemId[], reps: number): Map<SystemId, Timing> {
  const scenario = loadScenario(scenarioPath, overrides);
  const t0 = performance.now();
  const tb = buildTestbed(scenario);
  const setupMs = performance.now() - t0;
  console.log(`\n${label}: ${tb.devices.length} devices, ${tb.workload.reduce((a, w) => a + w.length, 0)} requests per system (setup ${setupMs.toFixed(0)} ms, ${reps} runs each)`);
  console.log(HEADER);
  const out = new Map<SystemId, Timing>();
  for (const sys of systems) {
    const t: Timing = { wallS: [], events: 0, requests: 0 };
    for (let i = 0; i < reps; i++) {
      const t1 = performance.now();
      const r = simulateSystem(tb, sys, { timelineRequests: 0 });
      t.wallS.push((performance.now() - t1) / 1000);
      t.events = r.eventCount; t.requests = r.requests.length;
    }
    out.set(sys, t);
    console.log(`${sys.padEnd(12)}  ${fmt(t)}`);
  }
  return out;
}

const quick = process.argv.includes('--quick');
// Issue 15: the bench against inference-lab (bench/peer.ts; alone: npm run bench:peer) runs after
// the rows below unless --no-peer; --scale adds the 10k-device, 1M-request row; --peer-timeout-s S.
const peer = peerArgs(process.argv);
const repsArg = process.argv.indexOf('--reps');
const reps = repsArg > 0 ? Number(process.argv[repsArg + 1]) : quick ? 1 : 3;
if (!Number.isInteger(reps) || reps < 1) {
  console.error(`bench: --reps must be an integer >= 1, got ${process.argv[repsArg + 1]}`);
  process.exit(2);
}
console.log(`hatsim bench on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const eb = engineBench(quick ? 1_000_000 : 5_000_000);
console.log(`engine: ${(eb.eventsPerS / 1e6).toFixed(2)} M events/s (no-op handlers, 1,000 pending)`);
const all: SystemId[] = ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat'];
let wholeS = 0;
{
  // The whole testbed scenario (all five systems) with 10,050 requests in total (67 per device per system).
  const s = loadScenario('scenarios/hat-testbed.yaml', [`workload.requestsPerDevice=${quick ? 7 : 67}`]);
  const t: Timing = { wallS: [], events: 0, requests: 0 };
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    const tb = buildTestbed(s);
    let events = 0, requests = 0;
    for (const sys of all) { const r = simulateSystem(tb, sys, { timelineRequests: 0 }); events += r.eventCount; requests += r.requests.length; }
    t.wallS.push((performance.now() - t0) / 1000);
    t.events = events; t.requests = requests;
  }
  wholeS = median(t.wallS);
  console.log(`\ntestbed-all-systems: the testbed scenario, five systems, ${t.requests} requests in total (${reps} runs)`);
  console.log(HEADER);
  console.log(`${'all five'.padEnd(12)}  ${fmt(t)}`);
}
const per = simBench('testbed-10k', 'scenarios/hat-testbed.yaml', [`workload.requestsPerDevice=${quick ? 34 : 334}`], all, reps);
simBench('devices-1000', 'scenarios/hat-testbed.yaml', [
  'devices.0.count=334', 'devices.1.count=333', 'devices.2.count=333', 'cloud.gpus=32', `workload.requestsPerDevice=${quick ? 1 : 5}`,
], ['hat', 'cloud'], reps);
// DTO-EE (issue 10): the city scenario, 120 cameras, 24 edge nodes; requests/s(wall) = tasks per wall second.
simBench('dtoee-city', 'scenarios/dtoee-city.yaml', [`workload.requestsPerDevice=${quick ? 10 : 60}`], ['dtoee'], reps);

if (!quick) {
  // Issue 2's targets, on medians: >= 2 M events/s; the testbed with 10,000 requests in < 2 s.
  const rows = [...per].map(([sys, t]) => ({ sys, s: median(t.wallS), mev: t.events / median(t.wallS) / 1e6 }));
  const slowest = rows.reduce((a, b) => (b.s > a.s ? b : a));
  const leastRate = rows.reduce((a, b) => (b.mev < a.mev ? b : a));
  console.log('\ntargets (medians):');
  console.log(`  whole testbed, 10,050 requests over five systems < 2 s: ${wholeS.toFixed(2)} s ${wholeS < 2 ? 'ok' : 'MISSED'}`);
  console.log(`  each system alone, 10,020 requests < 2 s: slowest ${slowest.sys} ${slowest.s.toFixed(2)} s ${slowest.s < 2 ? 'ok' : 'MISSED'}`);
  console.log(`  >= 2 M events/s: lowest ${leastRate.sys} ${leastRate.mev.toFixed(2)} M/s ${leastRate.mev >= 2 ? 'ok' : 'MISSED'}`);
}

{
  // FedSpine (issue 13): scenarios/fedspine-80.yaml, 80 devices, each method alone; rounds per wall second.
  const { loadFedSpineScenario } = await import('../src/fedspine/scenario.js');
  const { buildCostModels, simulateMethod } = await import('../src/fedspine/rounds.js');
  const { config } = loadFedSpineScenario('scenarios/fedspine-80.yaml', [`rounds.max=${quick ? 15 : 150}`]);
  const costs = buildCostModels(config);
  console.log(`\nfedspine-80: ${config.devices.length} devices, ${config.rounds.max} rounds per method (${reps} runs each)`);
  console.log('method        median s  min-max    events     rounds/s(wall)');
  for (const m of config.methods) {
    const wallS: number[] = [];
    let events = 0, rounds = 0;
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      const r = simulateMethod(config, m, costs);
      wallS.push((performance.now() - t0) / 1000);
      events = r.summary.events; rounds = r.summary.rounds;
    }
    const med = median(wallS);
    console.log(`${m.padEnd(12)}  ${med.toFixed(3).padStart(8)}  ${Math.min(...wallS).toFixed(2)}-${Math.max(...wallS).toFixed(2)}  ${String(events).padStart(9)}  ${(rounds / med).toFixed(1).padStart(12)}`);
  }
}

// --baseline DIR: the testbed and devices-1000 on an earlier build and on this one, alternating (bench/compare.ts).
const baseArg = process.argv.indexOf('--baseline');
if (baseArg > 0) {
  const { compareWithBaseline } = await import('./compare.js');
  await compareWithBaseline(process.argv[baseArg + 1], Math.max(reps, 5), process.argv.includes('--isolate'));
}

if (!process.argv.includes('--no-peer')) peerBench(quick ? { ...peer, sizes: [1000] } : peer);

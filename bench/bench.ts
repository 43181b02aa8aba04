/**
 * `npm run bench`: speed of the engine and of the simulator on the testbed.
 *
 *  1. engine: raw event throughput (schedule + fire of a no-op handler, heap of 1,000 pending events);
 *  2. testbed-all-systems: scenarios/hat-testbed.yaml, all five systems, 10,050 requests in total;
 *     testbed-10k: the same with 334 requests per device (10,020 requests) for each system;
 *  3. devices-1000: the testbed scaled to 1,000 devices (and 32 GPUs), hat only, 5 requests per device.
 *
 * Targets (issue 2): >= 2 M events/s; the 30-device testbed with 10,000 requests in < 2 s of wall time.
 * Single-threaded; the machine's other load shows up in the numbers (the load average is printed).
 */
import { loadavg, cpus } from 'node:os';
import { Engine, type Handler } from '../src/core/engine.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem } from '../src/sim/run.js';
import type { SystemId } from '../src/scenario/types.js';

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

function simBench(label: string, scenarioPath: string, overrides: string[], systems: SystemId[]): void {
  const scenario = loadScenario(scenarioPath, overrides);
  const t0 = performance.now();
  const tb = buildTestbed(scenario);
  const setupMs = performance.now() - t0;
  console.log(`\n${label}: ${tb.devices.length} devices, ${tb.workload.reduce((a, w) => a + w.length, 0)} requests per system (setup ${setupMs.toFixed(0)} ms)`);
  console.log('system        wall s   events     M events/s   requests/s(wall)');
  for (const sys of systems) {
    const t1 = performance.now();
    const r = simulateSystem(tb, sys, { timelineRequests: 0 });
    const s = (performance.now() - t1) / 1000;
    console.log(`${sys.padEnd(12)}  ${s.toFixed(3).padStart(6)}  ${String(r.eventCount).padStart(9)}  ${(r.eventCount / s / 1e6).toFixed(2).padStart(10)}   ${(r.requests.length / s).toFixed(0).padStart(10)}`);
  }
}

const quick = process.argv.includes('--quick');
console.log(`hatsim bench on ${cpus()[0]?.model ?? 'unknown CPU'} (${cpus().length} cores), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
const eb = engineBench(quick ? 1_000_000 : 5_000_000);
console.log(`engine: ${(eb.eventsPerS / 1e6).toFixed(2)} M events/s (no-op handlers, 1,000 pending)`);
const all: SystemId[] = ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat'];
{
  // The whole testbed scenario (all five systems) with 10,050 requests in total (67 per device per system).
  const s = loadScenario('scenarios/hat-testbed.yaml', [`workload.requestsPerDevice=${quick ? 7 : 67}`]);
  const t0 = performance.now();
  const tb = buildTestbed(s);
  let events = 0, requests = 0;
  for (const sys of all) { const r = simulateSystem(tb, sys, { timelineRequests: 0 }); events += r.eventCount; requests += r.requests.length; }
  const sec = (performance.now() - t0) / 1000;
  console.log(`\ntestbed-all-systems: ${requests} requests in total over the five systems: ${sec.toFixed(3)} s wall, ${(events / sec / 1e6).toFixed(2)} M events/s, ${(requests / sec).toFixed(0)} requests/s`);
}
simBench('testbed-10k', 'scenarios/hat-testbed.yaml', [`workload.requestsPerDevice=${quick ? 34 : 334}`], all);
simBench('devices-1000', 'scenarios/hat-testbed.yaml', [
  'devices.0.count=334', 'devices.1.count=333', 'devices.2.count=333', 'cloud.gpus=32', `workload.requestsPerDevice=${quick ? 1 : 5}`,
], ['hat', 'cloud']);

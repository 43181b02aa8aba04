/**
 * Issue 14 points 1, 4, 5, 6 without a live run: the suite's scenarios and halves, the
 * host's background load and shared batching in closed form, replay (a run replayed
 * against itself has zero error; a known distortion is measured exactly), the attribution
 * sweep, and the device-cloud host fit recovering known parameters from synthetic logs.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src/core/engine.js';
import { InputError } from '../src/core/errors.js';
import { HostCpu } from '../src/sim/host.js';
import { Replica, type CloudJob } from '../src/sim/cloud.js';
import { addSequence, singleShape } from '../src/compute/types.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem } from '../src/sim/run.js';
import { toCsv } from '../src/results/csv.js';
import { SUMMARY_COLUMNS } from '../src/results/types.js';
import { readSuite, runnerOf, simulateOnHost } from '../src/live/suite.js';
import { compareRequests, replayLive, replayTestbed } from '../src/live/replay.js';
import { attributeLive, sweep } from '../src/live/attribution.js';
import { REQUEST_COLUMNS } from '../src/results/types.js';
import { fitDevCloudHost, hostAtLoad, type HostFit } from '../src/calibrate/host-fit.js';
import { STEP_COLUMNS } from '../src/live/steps.js';
import { REPO } from './helpers.js';

const SUITE = join(REPO, 'scenarios', 'validation');

describe('the validation suite (scenarios/validation/suite.yaml)', () => {
  const { entries } = readSuite(SUITE);
  const loaded = entries.map((e) => ({ e, s: loadScenario(join(SUITE, e.file)) }));

  it('at least six scenarios spanning 1 to 8 devices, tiny and TinyLlama dimensions, loopback and shaped links', () => {
    expect(entries.length).toBeGreaterThanOrEqual(6);
    const devices = loaded.map(({ s }) => s.topology.nodes.filter((n) => n.kind === 'device').length);
    expect(Math.min(...devices)).toBe(1);
    expect(Math.max(...devices)).toBe(8);
    expect(new Set(loaded.map(({ s }) => s.model))).toEqual(new Set(['tiny-test', 'tinyllama-1.1b']));
    const latencies = loaded.flatMap(({ s }) => s.topology.links.map((l) => l.latencyMs));
    expect(latencies).toContain(0);
    expect(latencies).toContain(20);
  });

  it('each half holds both live runners (each runner fitted on scenarios the other half lacks)', () => {
    for (const half of ['a', 'b']) {
      expect(new Set(loaded.filter(({ e }) => e.half === half).map(({ s }) => runnerOf(s)))).toEqual(new Set(['topology', 'devcloud']));
    }
  });

  it('a bad suite file is an InputError naming the field', () => {
    const d = mkdtempSync(join(tmpdir(), 'suite-'));
    writeFileSync(join(d, 'suite.yaml'), 'scenarios:\n  - { file: x.yaml, half: c }\n');
    expect(() => readSuite(d)).toThrow(InputError);
    expect(() => readSuite(d)).toThrow(/half must be a or b/);
    writeFileSync(join(d, 'suite.yaml'), 'scenarios:\n  - { file: missing.yaml, half: a }\n');
    expect(() => readSuite(d)).toThrow(/not found/);
    expect(() => readSuite(join(d, 'nope'))).toThrow(/suite.yaml not found/);
  });
});

describe('host: background load and shared batching', () => {
  it('one job with backgroundLoad 3 on 2 cores runs at 2/4 speed; work is conserved', () => {
    const engine = new Engine();
    const host = new HostCpu(engine, 'h', 2, 0.5, false, 3);
    let endMs = NaN;
    host.start({ hostDone: (e) => { endMs = e.nowS * 1000; } }, 10);
    engine.run();
    expect(endMs).toBeCloseTo((10 + 0.5) * 2, 9);
    expect(host.workMs).toBeCloseTo(10.5, 12);
  });

  it('shareBatching: every cloud step pays the dispatch (cloud decode TBT + dispatch exactly; loopback-free, idle host)', () => {
    const p = join(SUITE, 'tiny-2dev-shaped.yaml');
    const base = simulateOnHost(p, [], null);
    const host = { name: 'h', cores: 64, dispatchMs: 0.25, messageMs: 0, shareBatching: true, backgroundLoad: 0 };
    const withHost = simulateOnHost(p, [], host);
    const tbt = (rows: typeof base) => rows.find((r) => r.system === 'cloud')!.tbt_mean_ms;
    expect(tbt(withHost) - tbt(base)).toBeCloseTo(0.25, 6);
    // Without shareBatching the cloud's steps are not on the host: its TBT does not move.
    expect(tbt(simulateOnHost(p, [], { ...host, shareBatching: false }))).toBeCloseTo(tbt(base), 9);
  });
});

describe('a CPU server on a shared host runs its step\'s sequences one after another', () => {
  it('a step of two decode jobs: the sum of their single passes + one dispatch; without the host one batched pass', () => {
    const tb = buildTestbed(loadScenario(join(SUITE, 'tiny-4dev-shaped.yaml')));
    const model = tb.cloudLatency.submodel('full');
    const run = (host: HostCpu | null, engine: Engine): number => {
      const r = new Replica(engine, 0, model, 512, 16, host);
      let endS = NaN;
      // A (ctx 5) starts a step alone at submit; B (ctx 10) and C (ctx 40) form the next step together.
      for (const [i, ctx] of [[0, 5], [1, 10], [2, 40]]) {
        const req = { cloudQueueMs: 0, cloudComputeMs: 0, spans: null, batchMark: -1 };
        // A minimal job: only the fields the replica reads (the full CloudJob carries a RequestState).
        r.submit({ request: req, req, waiter: { cloudDone: (e: Engine) => { endS = e.nowS; } }, tokens: 1, done: 0, ctx, logits: 1, enqueuedS: 0, started: false, label: `j${i}`, taken: 0 } as unknown as CloudJob);
      }
      engine.run();
      return endS * 1000;
    };
    const single = (ctx: number): number => model.batchMs(singleShape(1, ctx), 1);
    const batch = singleShape(1, 10);
    addSequence(batch, 1, 40);
    const batchedMs = model.batchMs(batch, 2);
    expect(Math.abs(batchedMs - (single(10) + single(40)))).toBeGreaterThan(0.05); // the two models differ here
    const e1 = new Engine();
    expect(run(new HostCpu(e1, 'h', 64, 0.2, true), e1)).toBeCloseTo(single(5) + 0.2 + single(10) + single(40) + 0.2, 9);
    const e0 = new Engine();
    expect(run(null, e0)).toBeCloseTo(single(5) + batchedMs, 9);
  });
});

describe('replay: the simulator on the live arrivals, request by request', () => {
  const s = loadScenario(join(SUITE, 'tiny-2dev-shaped.yaml'));
  const tb = buildTestbed(s);
  const own = s.systems.map((sys) => simulateSystem(tb, sys)).flatMap((r) => r.requests);

  it('a closed-loop run replayed against itself: zero error, the same acceptance draws, the same arrivals', () => {
    const { result } = replayLive(tb, own);
    expect(result.acceptMismatches).toBe(0);
    expect(result.unmatched).toBe(0);
    expect(result.maxArrivalDiffS).toBeLessThan(1e-9);
    for (const r of result.rows) expect(r.abs_max_pct).toBeLessThan(1e-6);
  });

  it('arrivals are taken from the live run (open loop) and a +10 % live TTFT reads as -9.09 % everywhere', () => {
    const later = own.map((r) => ({ ...r, arrival_s: r.arrival_s + 5 }));
    const rtb = replayTestbed(tb, 'hat', later);
    expect(rtb.scenario.workload.arrival.kind).not.toBe('closed-loop');
    const want = later.find((r) => r.system === 'hat' && r.device === tb.devices[1].name && r.request === 2)!.arrival_s;
    expect(rtb.workload[1][2].arrivalS).toBeCloseTo(want, 12);
    expect(rtb.workload[1][2].arrivalS).not.toBeCloseTo(tb.workload[1][2].arrivalS, 3);
    const slow = own.map((r) => ({ ...r, ttft_ms: r.ttft_ms * 1.1 }));
    const cmp = compareRequests(slow, own);
    for (const r of cmp.rows.filter((x) => x.metric === 'ttft_ms')) {
      expect(r.median_error_pct).toBeCloseTo((1 / 1.1 - 1) * 100, 6);
      expect(r.abs_max_pct).toBeCloseTo((1 - 1 / 1.1) * 100, 6);
    }
    for (const r of cmp.rows.filter((x) => x.metric !== 'ttft_ms')) expect(r.abs_max_pct).toBeLessThan(1e-9);
  });
});

describe('attribution sweep', () => {
  it('each ms in one part, compute over queueing over wire over host; outside time counted', () => {
    // Window 0..100: compute 10..30, wire 20..50 (overlap 20..30 is compute), queueing 60..70, wire 95..110 (10 ms outside).
    const { byPrio, outside } = sweep([
      { a: 10, b: 30, prio: 0 }, { a: 20, b: 50, prio: 2 }, { a: 60, b: 70, prio: 1 }, { a: 95, b: 110, prio: 2 },
    ], 0, 100);
    expect(byPrio).toEqual([20, 10, 25, 45]);
    expect(byPrio.reduce((a, b) => a + b, 0)).toBe(100);
    expect(outside).toBe(10);
  });
});

describe('attribution of a live run folder', () => {
  it('one request: device pass, frame up, cloud queue and compute, reply down, host for the rest; the reply excess over the link model', () => {
    const dir = mkdtempSync(join(tmpdir(), 'att-'));
    // Arrival at 100 ms, e2e 50 ms: device pass 100-104, request frame 104-114, cloud queue 115-116 and compute 116-120,
    // reply handed 120, read at 131 (link model: 1000 bytes at 8 Mbit/s = 1 ms + 8 ms latency: excess 2 ms), nothing 131-150.
    const step = (o: Record<string, unknown>) => ({ system: 'hat', role: 'device-0', request: 0, kind: 'compute', label: 'x', tokens: 1, ctx: 0, start_ms: 0, end_ms: 0, real_ms: 0, target_ms: 0, sim_ms: 0, bytes: 0, frame_bytes: 0, ...o });
    writeFileSync(join(dir, 'steps.csv'), toCsv([
      step({ start_ms: 100, end_ms: 104 }),
      step({ kind: 'send', label: 'request', start_ms: 104, end_ms: 114 }),
      step({ role: 'cloud', kind: 'job-queue', label: 'device 0 seq 0', start_ms: 115, end_ms: 116 }),
      step({ role: 'cloud', kind: 'job-compute', label: 'device 0 seq 0', start_ms: 116, end_ms: 120 }),
      step({ kind: 'recv', label: 'reply', start_ms: 131, end_ms: 131, frame_bytes: 1000 }),
    ], STEP_COLUMNS));
    const req = Object.fromEntries(REQUEST_COLUMNS.map((c) => [c, 0])) as Record<string, unknown>;
    writeFileSync(join(dir, 'requests.csv'), toCsv([{ ...req, system: 'hat', device: 'dev-0', request: 0, arrival_s: 0.1, e2e_ms: 50 }], REQUEST_COLUMNS));
    const a = attributeLive(dir, () => ({ mbps: 8, latencyMs: 8 }))!;
    const r = a.rows[0];
    expect([r.compute_ms, r.queueing_ms, r.wire_ms, r.host_ms].map((x) => +x.toFixed(9))).toEqual([8, 1, 21, 20]);
    expect(r.sum_ms).toBeCloseTo(50, 9);
    expect(r.outside_ms).toBe(0);
    expect(a.summary[0].reply_excess_p50_ms).toBeCloseTo(2, 9);
  });
});

describe('a host fit applied at another load (hostAtLoad)', () => {
  it('background load in proportion to the load average, message cost to 1 + background; unknown load or no record: as fitted', () => {
    const fit = { host: { name: 'h', cores: 2, dispatchMs: 0.2, messageMs: 1.5, shareBatching: true, backgroundLoad: 2 }, liveLoadAvg1m: [8, 12] } as HostFit;
    const at5 = hostAtLoad(fit, 5);
    expect(at5.backgroundLoad).toBeCloseTo(1, 12);
    expect(at5.messageMs).toBeCloseTo(1.5 * (2 / 3), 12);
    expect(at5.dispatchMs).toBe(0.2);
    expect(hostAtLoad(fit, NaN)).toEqual(fit.host);
    expect(hostAtLoad({ host: fit.host } as HostFit, 5)).toEqual(fit.host);
  });
});

describe('device-cloud host fit (calibrate --from-live) recovers known costs', () => {
  it('synthetic live logs made with dispatch 0.3 ms, background load 3, message 0.5 ms: the fit finds them', () => {
    const scenarioPath = join(SUITE, 'tiny-2dev-shaped.yaml');
    const truth = { name: 'local', cores: 2, dispatchMs: 0.3, messageMs: 0.5, shareBatching: true, backgroundLoad: 3 };
    const dir = mkdtempSync(join(tmpdir(), 'fit-'));
    const live = join(dir, 'live');
    mkdirSync(live);
    writeFileSync(join(dir, 'validation.json'), JSON.stringify({ scenarioPath, overrides: [], liveDir: live, simOverrides: [], loadAvg1m: { before: 1, after: 1 } }));
    // Ops: wall = (sim + 0.3) x (1 + 3) / 2, for a spread of predicted ms; every 7th op 50 % slower (noise the median ignores).
    const steps = Array.from({ length: 200 }, (_, i) => {
      const sim = 0.1 + (i % 13) * 0.4;
      const wall = (sim + 0.3) * 2 * (i % 7 === 0 ? 1.5 : 1);
      return { system: 'hat', role: 'device-0', request: 0, kind: i % 2 ? 'compute' : 'step', label: 'x', tokens: 1, ctx: 0, start_ms: i * 10, end_ms: i * 10 + wall, real_ms: wall, target_ms: 0, sim_ms: sim, bytes: 0, frame_bytes: 0 };
    });
    writeFileSync(join(live, 'steps.csv'), toCsv(steps, STEP_COLUMNS));
    const summary = simulateOnHost(scenarioPath, [], truth);
    writeFileSync(join(live, 'summary.csv'), toCsv(summary, SUMMARY_COLUMNS));
    const fit = fitDevCloudHost([dir], { cores: 2 }, simulateOnHost);
    expect(fit.host.dispatchMs).toBeCloseTo(0.3, 6);
    expect(fit.host.backgroundLoad).toBe(3);
    expect(fit.host.messageMs).toBeCloseTo(0.5, 6);
    expect(fit.host.shareBatching).toBe(true);
  });
});

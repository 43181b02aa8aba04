/**
 * DTO-EE online (dtoee/online.ts, sim/dtoee-control.ts) and the changing environment
 * (sim/environment.ts): a round driven one message at a time computes what the synchronous
 * driver computes; in the simulator a round's messages cross the network (their count and
 * bytes in closed form, their bytes in the network's totals, the round takes simulated time);
 * the online policy moves traffic away from a stage-2 node that slows down 4x and beats the
 * offline policy after the change (margins from the sample size); the schedules do what they
 * say; runs are deterministic; offline results are untouched; bad input names the field.
 */
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import { DtoeeDistributed, OnlineDtoee, createDtoPolicy, randomProblem, type DtoMessage, type StatePolicy } from '../src/dtoee/index.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem, topologyView, type SystemRun, type Testbed } from '../src/sim/run.js';
import { dtoeeProblem } from '../src/protocol/systems/dtoee.js';
import type { ProtocolEnv } from '../src/protocol/context.js';
import { Piecewise } from '../src/sim/environment.js';
import { SCENARIOS } from './helpers.js';
import { runOutputs } from '../src/sim/outputs.js';
import { writeRunOutputs } from '../src/results/write.js';
import { planDtoeeOnline, routingValues } from '../src/plot/dtoee-online.js';
import { compileSpec } from '../src/plot/render.js';

const RUSH = join(SCENARIOS, 'dtoee-rush.yaml');
const sim = (over: string[]): SystemRun => simulateSystem(buildTestbed(loadScenario(RUSH, over)), 'dtoee');

/** Mean and its standard error by batch means (consecutive batches absorb the queue's autocorrelation). */
function batchMean(xs: readonly number[], batches = 20): { mean: number; se: number } {
  const n = xs.length, size = Math.floor(n / batches);
  const means: number[] = [];
  for (let b = 0; b < batches; b++) {
    let s = 0;
    for (let i = b * size; i < (b + 1) * size; i++) s += xs[i];
    means.push(s / size);
  }
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const m = means.reduce((a, b) => a + b, 0) / batches;
  const v = means.reduce((a, b) => a + (b - m) ** 2, 0) / (batches - 1);
  return { mean, se: Math.sqrt(v / batches) };
}

/** The dtoee problem the protocol builds for a testbed (as test/dtoee-sim.test.ts). */
function problemOf(tb: Testbed) {
  const env = { hiddenBytesPerToken: tb.model.hiddenSize * 2, tokenBytes: 4, policies: tb.scenario.policies, topology: topologyView(tb, tb.devices[0], -1) } as unknown as ProtocolEnv;
  return dtoeeProblem(env, env.topology, tb.devices.map((x) => x.node.index));
}

/** Tasks with their arrival time, in arrival order. */
function tasksByArrival(r: SystemRun): { arrivalS: number; delayMs: number; nodes: string[] }[] {
  const arr = new Map(r.requests.map((q) => [`${q.device}/${q.request}`, q.arrival_s]));
  return r.tasks.map((t) => ({ arrivalS: arr.get(`${t.device}/${t.request}`)!, delayMs: t.delay_ms, nodes: t.nodes.split('>') }))
    .sort((a, b) => a.arrivalS - b.arrivalS);
}

describe('OnlineDtoee (pure)', () => {
  it('a round equals DtoeeDistributed.observe with the same iterations, and delivering messages late and out of order changes nothing', () => {
    const spec = randomProblem({ seed: 3, nodesPerStage: [3, 3, 2], load: 0.8, accuracy: { mode: 'weight', beta: 0.2 } });
    const warm = (createDtoPolicy('dtoee', spec) as StatePolicy).state();
    const obs = { inputRatePerS: Object.fromEntries(spec.nodes.filter((n) => n.stage === 1).map((n, i) => [n.id, (n.inputRatePerS ?? 0) * (1.3 + 0.1 * i)])), serviceTimeS: { [spec.nodes[4].id]: 1.5 / (spec.nodes[4].serviceRatePerS ?? 1 / spec.nodes[4].serviceTimeS!) } };
    const K = 10;
    const ref = new DtoeeDistributed(spec, { roundIterations: K }, warm).observe(obs).state;

    const sync = new OnlineDtoee(spec, { roundIterations: K }, warm);
    const u = sync.update(obs);
    expect(sync.heldState()).toEqual(ref);
    expect(u.iterations).toBe(4 * K);

    // Message by message, each delivered after a seeded random delay; a node steps when it has heard every neighbour.
    const on = new OnlineDtoee(spec, { roundIterations: K }, warm);
    on.beginRound(obs);
    const N = on.configs.length, T = on.iterations, ids = on.configs.map((c) => c.id);
    const rng = new Rng(99, 'test/delays');
    const iter = new Array<number>(N).fill(0);
    const bufs = ids.map(() => new Map<number, DtoMessage[]>());
    const queue: { at: number; seq: number; to: number; k: number; m: DtoMessage }[] = [];
    let seq = 0, now = 0;
    const run = (n: number, inbox: DtoMessage[]) => {
      const k = iter[n];
      const out = on.step(n, k, inbox);
      iter[n]++;
      if (iter[n] === T) { on.apply(n); return; }
      for (const m of out) queue.push({ at: now + rng.uniform() * 5, seq: seq++, to: ids.indexOf(m.to), k, m });
    };
    for (let n = 0; n < N; n++) run(n, []);
    expect(on.heldState()).toEqual(warm); // nothing applied before the round's end
    while (queue.length > 0) {
      queue.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const e = queue.shift()!;
      now = e.at;
      const b = bufs[e.to];
      b.set(e.k, [...(b.get(e.k) ?? []), e.m]);
      while (iter[e.to] < T && (bufs[e.to].get(iter[e.to] - 1)?.length ?? 0) === on.expected(e.to)) {
        const inbox = bufs[e.to].get(iter[e.to] - 1)!;
        bufs[e.to].delete(iter[e.to] - 1);
        run(e.to, inbox);
      }
    }
    expect(iter.every((k) => k === T)).toBe(true);
    expect(on.heldState()).toEqual(ref);
  });
});

describe('the changing environment', () => {
  it('Piecewise: factors multiply where windows overlap; the inverse integral in closed form', () => {
    const f = Piecewise.of([{ fromS: 10, toS: 30, factor: 2 }, { fromS: 20, toS: 40, factor: 3 }]);
    expect([0, 10, 19.9, 20, 30, 39, 40, 100].map((t) => f.at(t))).toEqual([1, 2, 2, 6, 3, 3, 1, 1]);
    // integral: 10 (0-10) + 20 (10-20) + 60 (20-30) + 30 (30-40) = 120 at t = 40.
    expect(f.inverseIntegral(5)).toBe(5);
    expect(f.inverseIntegral(20)).toBe(15);
    expect(f.inverseIntegral(60)).toBeCloseTo(25, 12);
    expect(f.inverseIntegral(120)).toBeCloseTo(40, 12);
    expect(f.inverseIntegral(130)).toBeCloseTo(50, 12);
  });

  it('a rush hour doubles the arrivals in its window (4 sigma), a group-only window leaves the other devices\' arrivals byte-identical', () => {
    const base = buildTestbed(loadScenario(RUSH, ['environment.arrivals=[]']));
    const rush = buildTestbed(loadScenario(RUSH, []));
    const count = (tb: typeof base, a: number, b: number) => tb.workload.flat().filter((w) => w.arrivalS >= a && w.arrivalS < b).length;
    const cams = rush.devices.length, rate = 0.4;
    for (const [a, b, m] of [[0, 200, 1], [200, 400, 2], [400, 600, 1]] as const) {
      const mean = cams * rate * m * (b - a);
      expect(Math.abs(count(rush, a, b) - mean), `[${a}, ${b})`).toBeLessThan(4 * Math.sqrt(mean));
    }
    // Same draws, time-changed: before the window nothing moves.
    base.workload.forEach((reqs, d) => reqs.forEach((w, i) => { if (w.arrivalS < 200) expect(rush.workload[d][i].arrivalS).toBe(w.arrivalS); }));
    const group = buildTestbed(loadScenario(RUSH, ['environment.arrivals=[{fromS: 100, toS: 300, multiplier: 3, devices: [cam-x]}]']));
    group.devices.forEach((d) => {
      const same = group.workload[d.index].every((w, i) => w.arrivalS === base.workload[d.index][i].arrivalS);
      expect(same, d.name).toBe(d.node.group !== 'cam-x');
    });
  });

  it('a node slowdown multiplies the node\'s job times by the factor from fromS on', () => {
    const r = sim(['environment.arrivals=[]', 'workload.requestsPerDevice=150', 'policies.dtoee.monitor=false']);
    const before: number[] = [], after: number[] = [];
    const arr = new Map(r.requests.map((q) => [`${q.device}/${q.request}`, q.arrival_s]));
    for (const h of r.hops) {
      if (h.node !== 's2-agx') continue;
      const submitS = arr.get(`${h.device}/${h.request}`)! + h.submit_ms / 1000;
      (submitS < 300 ? before : after).push(h.compute_ms);
    }
    expect(before.length).toBeGreaterThan(50);
    expect(after.length).toBeGreaterThan(50);
    for (const x of before) expect(x).toBeCloseTo(before[0], 9);
    for (const x of after) expect(x).toBeCloseTo(4 * before[0], 9);
  });

  it('bad schedules and options are InputErrors naming the field', () => {
    const err = (over: string[]): InputError => {
      try { sim(over); } catch (e) { if (e instanceof InputError) return e; throw e; }
      throw new Error(`no error for ${over.join(' ')}`);
    };
    expect(err(['environment.nodeSpeed=[{node: s9-agx, fromS: 10, factor: 2}]']).field).toBe('environment.nodeSpeed[0].node');
    expect(err(['environment.nodeSpeed=[{node: metro, fromS: 10, factor: 2}]']).message).toMatch(/metro.*no hardware/);
    expect(err(['environment.arrivals=[{fromS: 0, toS: 10, multiplier: 2, devices: [s1-agx]}]']).field).toBe('environment.arrivals[0].devices[0]');
    expect(err(['environment.arrivals=[{fromS: 0, toS: 10, multiplier: 2, devices: [cam-q]}]']).message).toMatch(/cam-q.*names no node/);
    expect(err(['workload.arrival={kind: closed-loop, thinkTimeS: 1}']).field).toBe('environment.arrivals');
    expect(err(['policies.dtoee.online=true', 'policies.dtoee.policy=random']).field).toBe('policies.dtoee.online');
    expect(() => loadScenario(RUSH, ['environment.arrivals=[{fromS: 50, toS: 10, multiplier: 2}]'])).toThrow(/environment\.arrivals\[0\]\.toS.*fromS < toS/s);
    expect(() => loadScenario(RUSH, ['environment.nodeSpeed=[{node: s2-agx, fromS: 10, factor: 0}]'])).toThrow(/environment\.nodeSpeed\[0\]\.factor/);
  });
});

describe('dtoee online in the simulator', () => {
  // The slowdown alone (no rush hour): s2-agx, the offline optimum's stage-2 favourite, 4x slower from 300 s.
  const over = ['environment.arrivals=[]', 'workload.requestsPerDevice=240'];
  const tbOn = buildTestbed(loadScenario(RUSH, [...over, 'policies.dtoee.online=true']));
  const on = simulateSystem(tbOn, 'dtoee');
  const off = sim(over);

  it('a round\'s messages cross the network: count and bytes in closed form, in the network\'s byte totals, and the round takes simulated time', () => {
    const rounds = on.dtoeeRounds!;
    const done = rounds.filter((r) => r.status === 'done');
    expect(done.length).toBeGreaterThan(15);
    // 3 x 3 x 3 pipeline: 18 node pairs between consecutive stages; per iteration but the last, one flow and one cost message on each.
    const pairs = 18, K = 40, header = 64;
    for (const r of done) {
      expect(r.iterations).toBe(K);
      expect(r.messages).toBe((K - 1) * 2 * pairs);
      expect(r.bytes).toBe((K - 1) * pairs * ((24 + 8 + header) + (24 + 16 + header)));
      // Each iteration waits for a message over a route of two 2-ms backhaul links.
      expect(r.end_s - r.start_s).toBeGreaterThanOrEqual((K - 1) * 0.004 - 1e-9);
      expect(r.end_s - r.start_s).toBeLessThan(30);
      expect(r.objective_after).toBeLessThanOrEqual(r.objective_before + 1e-12);
      expect(r.centralised_objective).toBeNaN(); // oracle off
    }
    const taskBytes = on.requests.reduce((a, q) => a + q.bytes_up + q.bytes_down, 0);
    expect(on.bytesSent).toBe(taskBytes + done.reduce((a, r) => a + r.bytes, 0));
    expect(off.bytesSent).toBe(off.requests.reduce((a, q) => a + q.bytes_up + q.bytes_down, 0));
  });

  it('with the oracle on, every warm-started round of 40 iterations reaches the centralised objective of its measured model within 1 %', () => {
    const r = sim([...over, 'workload.requestsPerDevice=90', 'policies.dtoee.online=true', 'policies.dtoee.oracle=true']);
    const done = r.dtoeeRounds!.filter((x) => x.status === 'done');
    expect(done.length).toBeGreaterThanOrEqual(6);
    for (const x of done) expect(Math.abs(x.objective_after / x.centralised_objective - 1), `round ${x.round}`).toBeLessThan(0.01);
  });

  it('a round in the simulator computes what the synchronous algorithm computes from the measured values', () => {
    const rows = on.dtoeeNodes!;
    const at = (t: number) => rows.filter((r) => r.time_s === t);
    const obs = { inputRatePerS: Object.fromEntries(at(30).filter((r) => r.stage === 1).map((r) => [r.node, r.arrival_per_s])), serviceTimeS: Object.fromEntries(at(30).map((r) => [r.node, r.service_estimate_ms / 1000])) };
    const { spec } = problemOf(tbOn);
    const ref = new OnlineDtoee(spec, { roundIterations: 10 }, (createDtoPolicy('dtoee', spec) as StatePolicy).state());
    ref.update(obs);
    for (const r of at(60)) {
      expect(r.threshold, r.node).toBeCloseTo(ref.threshold(r.node), 9);
      if (r.stage < 3) {
        const fr = ref.fractions(r.node);
        for (const part of r.routing.split('|')) {
          const [to, f] = part.split('=');
          expect(Number(f), `${r.node}->${to}`).toBeCloseTo(fr[to], 4);
        }
      }
    }
  });

  it('after a stage-2 node slows down 4x, the online policy routes less to it and its mean delay is lower than the offline policy\'s (4 standard errors)', () => {
    // Tasks arriving from 360 s (two 30-s windows after the change: measured, re-optimised, applied) to the end.
    const since = (r: SystemRun, a: number, b: number) => tasksByArrival(r).filter((t) => t.arrivalS >= a && t.arrivalS < b);
    const share = (ts: ReturnType<typeof since>) => {
      const reach = ts.filter((t) => t.nodes.length >= 2);
      const p = reach.filter((t) => t.nodes[1] === 's2-agx').length / reach.length;
      return { p, se: Math.sqrt(Math.max(p * (1 - p), 1 / reach.length) / reach.length), n: reach.length };
    };
    const onAfter = share(since(on, 360, Infinity)), offAfter = share(since(off, 360, Infinity)), onBefore = share(since(on, 60, 300));
    expect(onAfter.n).toBeGreaterThan(500);
    expect(offAfter.p - onAfter.p).toBeGreaterThan(4 * Math.hypot(offAfter.se, onAfter.se));
    expect(onBefore.p - onAfter.p).toBeGreaterThan(4 * Math.hypot(onBefore.se, onAfter.se));
    const dOn = batchMean(since(on, 360, Infinity).map((t) => t.delayMs)), dOff = batchMean(since(off, 360, Infinity).map((t) => t.delayMs));
    expect(dOff.mean - dOn.mean).toBeGreaterThan(4 * Math.hypot(dOn.se, dOff.se));
    // The rows say the same: the node's held share drops, its measured arrivals follow.
    const up = on.dtoeeNodes!.filter((r) => r.node === 's1-agx');
    const frac = (t: number) => Number(/s2-agx=([0-9.]+)/.exec(up.find((r) => r.time_s === t)!.routing)![1]);
    expect(frac(300)).toBeGreaterThan(0.5);
    expect(frac(390)).toBeLessThan(frac(300) / 2);
  });

  it('new values take effect on a node when its round ends there: tasks leaving it before use the old fractions, after it the new', () => {
    const row = (t: number) => on.dtoeeNodes!.find((r) => r.node === 's1-nx' && r.time_s === t)!;
    const toAgx = (r: { routing: string }) => Number(/s2-agx=([0-9.]+)/.exec(r.routing)![1]);
    expect(toAgx(row(330))).toBe(1);
    expect(toAgx(row(360))).toBe(0);
    const appliedS = row(360).applied_s;
    expect(appliedS).toBeGreaterThan(330);
    expect(appliedS).toBeLessThan(331);
    const arr = new Map(on.requests.map((q) => [`${q.device}/${q.request}`, q.arrival_s]));
    const byTask = new Map<string, { node: string; endS: number }[]>();
    for (const h of on.hops) {
      const k = `${h.device}/${h.request}`;
      const list = byTask.get(k) ?? [];
      list[h.seq] = { node: h.node, endS: arr.get(k)! + h.end_ms / 1000 };
      byTask.set(k, list);
    }
    const before: string[] = [], after: string[] = [];
    for (const hs of byTask.values()) {
      if (hs.length < 2 || hs[0].node !== 's1-nx') continue;
      const t = hs[0].endS; // the routing decision: when its stage-1 pass ends on s1-nx
      if (t > 300 && t < appliedS) before.push(hs[1].node);
      else if (t > appliedS && t < 360) after.push(hs[1].node);
    }
    expect(before.length).toBeGreaterThan(10);
    expect(after.length).toBeGreaterThan(10);
    expect(before.every((n) => n === 's2-agx')).toBe(true);
    expect(after.every((n) => n === 's2-nx')).toBe(true);
  });

  it('per node, the arrival rates the agents derive from their neighbours\' flow messages match the measured ones (4 sigma over 60-300 s)', () => {
    const rows = on.dtoeeNodes!.filter((r) => r.time_s > 60 && r.time_s <= 300);
    for (const node of new Set(rows.map((r) => r.node))) {
      const mine = rows.filter((r) => r.node === node);
      const measured = mine.reduce((a, r) => a + r.arrival_per_s * 30, 0);
      const model = mine.reduce((a, r) => a + r.model_arrival_per_s * 30, 0);
      // The model's rates come from the previous window's measured input: two Poisson counts apart.
      expect(Math.abs(measured - model), node).toBeLessThanOrEqual(4 * Math.sqrt(2 * Math.max(model, 1)));
      if (model > 100) expect(Math.abs(measured / model - 1), node).toBeLessThan(0.15);
    }
  });

  it('deterministic: the same testbed simulated again gives identical rows and tasks; monitor rows leave offline tasks unchanged', () => {
    const again = simulateSystem(tbOn, 'dtoee');
    expect(again.tasks).toEqual(on.tasks);
    expect(again.dtoeeNodes).toEqual(on.dtoeeNodes);
    expect(again.dtoeeRounds).toEqual(on.dtoeeRounds);
    const quiet = sim([...over, 'policies.dtoee.monitor=false']);
    expect(quiet.tasks).toEqual(off.tasks);
    expect(quiet.dtoeeNodes).toBeUndefined();
    expect(off.dtoeeNodes!.length).toBeGreaterThan(0);
    expect(off.dtoeeRounds).toEqual([]);
  });

  it('writes dtoee_nodes.csv and dtoee_rounds.csv, and plots thresholds, splits, load and rounds from them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-dtoee-online-'));
    writeRunOutputs(dir, runOutputs({ scenario: tbOn.scenario, systems: [on], eventCount: on.eventCount, wallMs: 0, provenance: [], warnings: [] }));
    const nodes = readFileSync(join(dir, 'dtoee_nodes.csv'), 'utf8').trim().split('\n');
    expect(nodes[0]).toBe('system,policy,time_s,round,node,stage,threshold,routing,arrival_per_s,service_ms,service_estimate_ms,utilization,model_arrival_per_s,applied_s');
    expect(nodes.length - 1).toBe(on.dtoeeNodes!.length);
    expect(on.dtoeeNodes!.length).toBe(9 * on.dtoeeRounds!.length);
    expect(existsSync(join(dir, 'dtoee_rounds.csv'))).toBe(true);
    const figs: { id: string; spec: Record<string, unknown> }[] = [];
    planDtoeeOnline(dir, (id, _t, _d, spec) => figs.push({ id, spec }));
    expect(figs.map((f) => f.id)).toEqual(['dtoee-thresholds', 'dtoee-routing', 'dtoee-load', 'dtoee-rounds']);
    for (const f of figs) expect(() => compileSpec(f.spec)).not.toThrow();
    // Six senders (stages 1-2) x three receivers per window.
    const rows = on.dtoeeNodes!.map((r) => ({ ...r, time_s: String(r.time_s) })) as unknown as Record<string, string>[];
    expect(routingValues(rows).length).toBe(6 * 3 * on.dtoeeRounds!.length);
  });
});

/**
 * The topology core (src/topology/, sim/world.ts): closed forms on the example
 * scenarios, the legacy form against its nodes/links equivalent, and bad input.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { singleShape } from '../src/compute/types.js';
import { InputError } from '../src/core/errors.js';
import { stagePlan } from '../src/protocol/systems/staged.js';
import { toCsv } from '../src/results/csv.js';
import { REQUEST_COLUMNS } from '../src/results/types.js';
import { loadScenario, parseScenarioObject } from '../src/scenario/load.js';
import { buildTestbed, runScenario, simulateSystem } from '../src/sim/run.js';
import { REPO, SCENARIOS } from './helpers.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const hatsim = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
const HEADER = 64;

describe('chain: device -> edge A -> edge B -> device', () => {
  it('each task takes exactly the sum of its stages and hops (idle nodes and links)', () => {
    const s = loadScenario(join(SCENARIOS, 'topo-chain.yaml'), ['workload.arrival.ratePerS=0.1']);
    const tb = buildTestbed(s);
    const run = simulateSystem(tb, 'staged');
    const plan = stagePlan(s.topology.nodes, s.policies.staged, tb.model.numLayers);
    const P = 64, hb = tb.model.hiddenSize * tb.model.activationBytesPerElem;
    const lat = (name: string) => tb.nodeLatency.get(s.topology.nodes.find((n) => n.name === name)!.hardware!)!;
    const stageA = lat('edge-a').part(plan.parts[0].key, plan.parts[0]).batchMs(singleShape(P, 0), 0);
    const stageB = lat('edge-b').part(plan.parts[1].key, plan.parts[1]).batchMs(singleShape(P, 0), 1);
    const tx = (bytes: number, mbps: number) => ((bytes + HEADER) * 8) / (mbps * 1e6) * 1000;
    const expected = tx(P * 4, 40) + 10 + stageA + tx(P * hb, 100) + 5 + stageB + tx(4, 80) + 8;
    expect(run.requests.length).toBe(20);
    for (const r of run.requests) {
      expect(r.ttft_ms).toBeCloseTo(expected, 9);
      expect(r.e2e_ms).toBeCloseTo(expected, 9);
      expect(r.cloud_queue_ms).toBe(0);
    }
    // hops.csv: one visit per stage, in order, on the named nodes, no queueing.
    const hops = run.hops.filter((h) => h.request === 0);
    expect(hops.map((h) => h.node)).toEqual(['edge-a', 'edge-b']);
    expect(hops[0].compute_ms).toBeCloseTo(stageA, 9);
    expect(hops[1].start_ms).toBeCloseTo(tx(P * 4, 40) + 10 + stageA + tx(P * hb, 100) + 5, 9);
    // links.csv: every byte sent crossed the links of its route, once.
    const link = (name: string, from: string) => run.links.find((l) => l.link === name && l.from === from)!;
    expect(link('dev-a', 'dev').bytes).toBe(20 * (P * 4 + HEADER));
    expect(link('a-b', 'edge-a').bytes).toBe(20 * (P * hb + HEADER));
    expect(link('b-dev', 'edge-b').bytes).toBe(20 * (4 + HEADER));
    const node = (name: string) => run.nodes.find((n) => n.node === name)!;
    expect(node('edge-a').jobs).toBe(20);
    expect(node('edge-a').busy_ms).toBeCloseTo(20 * stageA, 6);
  });
});

describe('fan-out: a fixed 30/70 split over two M/D/1 nodes', () => {
  const s = loadScenario(join(SCENARIOS, 'topo-fanout.yaml'));
  const tb = buildTestbed(s);
  const run = simulateSystem(tb, 'staged');
  const n = s.workload.requestsPerDevice, lambda = 50;
  const plan = stagePlan(s.topology.nodes, s.policies.staged, tb.model.numLayers);
  const D = tb.nodeLatency.get('jetson-agx-orin-64gb')!.part(plan.parts[0].key, plan.parts[0]).batchMs(singleShape(128, 0), 1) / 1000;

  it('splits tasks in the policy\'s proportions (within 4 binomial sigma)', () => {
    const toA = run.hops.filter((h) => h.node === 'edge-a').length;
    expect(run.hops.length).toBe(n);
    expect(Math.abs(toA / n - 0.3)).toBeLessThan(4 * Math.sqrt(0.3 * 0.7 / n));
  });

  it('each node\'s mean wait matches M/D/1 (Pollaczek-Khinchine) within sampling error', () => {
    for (const [node, p] of [['edge-a', 0.3], ['edge-b', 0.7]] as const) {
      const waits = run.hops.filter((h) => h.node === node).map((h) => h.queue_ms / 1000);
      const rho = lambda * p * D;
      expect(rho).toBeGreaterThan(0.2);
      expect(rho).toBeLessThan(0.9);
      const wq = (rho * D) / (2 * (1 - rho));
      const mean = waits.reduce((a, b) => a + b, 0) / waits.length;
      // Waits are autocorrelated: with ~30,000 / ~70,000 tasks per node, five seeds stayed within 2.2 %; allow 6 %.
      expect(Math.abs(mean - wq) / wq).toBeLessThan(0.06);
      for (const h of run.hops.filter((x) => x.node === node)) expect(h.compute_ms).toBeCloseTo(D * 1000, 9);
      const rec = run.nodes.find((x) => x.node === node)!;
      expect(rec.mean_wait_ms / 1000).toBeCloseTo(mean, 9);
    }
  });
});

describe('shared access point: four phones share one uplink max-min fairly', () => {
  it('four simultaneous uploads through a 20 Mbit/s uplink each get a quarter of it', () => {
    const s = loadScenario(join(SCENARIOS, 'topo-shared-ap.yaml'), [
      'workload.arrival={"kind":"closed-loop","thinkTimeS":0}', 'workload.promptTokens={"kind":"fixed","tokens":4096}',
      'links.0.jitterMs=0', 'systems=["staged"]',
    ]);
    const run = simulateSystem(buildTestbed(s), 'staged');
    const bytes = 4096 * 4 + HEADER;
    const first = run.hops.filter((h) => h.request === 0 && h.seq === 0);
    expect(first.length).toBe(4);
    // Every phone's message is alone on its 100 Mbit/s radio but shares the uplink with three others.
    for (const h of first) expect(h.submit_ms).toBeCloseTo((4 * bytes * 8) / 20e6 * 1000 + 2 + 5, 6);
    const up = run.links.find((l) => l.link === 'ap-uplink' && l.from === 'ap')!;
    expect(up.shared).toBe(true);
    expect(run.links.find((l) => l.link === 'radio-0' && l.from === 'phone-0')!.shared).toBe(false);
  });
});

describe('the devices + cloud form expands into the same topology', () => {
  const legacy = {
    name: 'eq', seed: 4, model: 'llama2-7b', systems: ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat'],
    devices: [
      { name: 'a', count: 2, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 40, downlinkMbps: 80, latencyMs: 20, jitterMs: 1 }, via: ['nic'] },
      { name: 'b', count: 1, hardware: 'jetson-xavier-nx', link: { uplinkMbps: 10, downlinkMbps: 30, latencyMs: 35, jitterMs: 0 }, via: ['nic'] },
    ],
    cloud: { hardware: 'a6000', gpus: 2 },
    network: { shared: [{ name: 'nic', uplinkMbps: 60, downlinkMbps: 200 }] },
    workload: { arrival: { kind: 'poisson', ratePerS: 0.2 }, promptTokens: { kind: 'fixed', tokens: 400 }, outputTokens: { kind: 'fixed', tokens: 24 }, requestsPerDevice: 6 },
  };
  const nodesForm = {
    ...legacy, devices: undefined, cloud: undefined, network: undefined,
    nodes: [
      { name: 'a', count: 2, kind: 'device', hardware: 'jetson-agx-orin-64gb', server: 'cloud' },
      { name: 'b', count: 1, kind: 'device', hardware: 'jetson-xavier-nx', server: 'cloud' },
      { name: 'sw', kind: 'switch' },
      { name: 'cloud', kind: 'server', hardware: 'a6000', processor: { kind: 'batching', gpus: 2 } },
    ],
    links: [
      { name: 'a', a: 'a', b: 'sw', aToBMbps: 40, bToAMbps: 80, latencyMs: 20, jitterMs: 1 },
      { name: 'b', a: 'b', b: 'sw', aToBMbps: 10, bToAMbps: 30, latencyMs: 35 },
      { name: 'nic', a: 'sw', b: 'cloud', aToBMbps: 60, bToAMbps: 200, latencyMs: 0 },
    ],
  };
  const clean = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));

  it('gives byte-identical requests.csv for all five HAT-family systems', () => {
    const a = runScenario(parseScenarioObject(legacy, 'legacy', { baseDir: SCENARIOS }));
    const b = runScenario(parseScenarioObject(clean(nodesForm), 'nodes', { baseDir: SCENARIOS }));
    const csv = (r: typeof a) => toCsv(r.systems.flatMap((x) => x.requests), REQUEST_COLUMNS);
    expect(a.systems[0].requests.length).toBe(18);
    expect(csv(b)).toBe(csv(a));
    // The nic is crossed by three device paths: shared in both forms.
    expect(b.systems[4].links.find((l) => l.link === 'nic' && l.from === 'sw')!.shared).toBe(true);
  });
});

describe('bad topology input: an error naming the field, exit 2, nothing written', () => {
  const base = (over: Record<string, unknown>) => ({
    name: 'bad', model: 'tiny-test', systems: ['staged'], split: { inputLayers: 1, outputLayers: 1 },
    nodes: [
      { name: 'dev', kind: 'device', hardware: 'jetson-orin-nx-16gb', server: 'e1' },
      { name: 'e1', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 1 },
      { name: 'e2', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 2 },
    ],
    links: [{ name: 'l1', a: 'dev', b: 'e1', mbps: 50, latencyMs: 5 }, { name: 'l2', a: 'e1', b: 'e2', mbps: 50, latencyMs: 5 }],
    workload: { arrival: { kind: 'poisson', ratePerS: 1 }, promptTokens: { kind: 'fixed', tokens: 8 }, outputTokens: { kind: 'fixed', tokens: 1 }, requestsPerDevice: 2 },
    ...over,
  });
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['a link to an unknown node', { links: [{ a: 'dev', b: 'nowhere', mbps: 5, latencyMs: 1 }] }, /links\[0\]\.b: must name a node or node group/],
    ['a route that does not exist', { links: [{ name: 'l1', a: 'dev', b: 'e1', mbps: 50, latencyMs: 5 }] }, /no route from 'e1' to 'e2'/],
    ['an explicit route that is not a path', { routes: [{ from: 'dev', to: 'e2', links: ['l2'] }] }, /routes\[0\]\.links\[0\]: link 'l2' joins 'e1' and 'e2'.*contiguous/],
    ['a route with a cycle', {
      links: [{ name: 'l1', a: 'dev', b: 'e1', mbps: 50, latencyMs: 5 }, { name: 'l2', a: 'e1', b: 'e2', mbps: 50, latencyMs: 5 }, { name: 'l3', a: 'e2', b: 'dev', mbps: 50, latencyMs: 5 }],
      routes: [{ from: 'dev', to: 'e2', links: ['l1', 'l2', 'l3', 'l1'] }],
    }, /a cycle/],
    ['a node whose part does not fit its memory', { model: 'llama2-7b', split: {}, nodes: [
      { name: 'dev', kind: 'device', hardware: 'jetson-orin-nx-16gb', server: 'e1' },
      { name: 'e1', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 1, memoryGB: 4 },
      { name: 'e2', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 2 }] }, /'e1' .*cannot hold stage 1 .* of llama2-7b/],
    ['a stage with no node', { nodes: [
      { name: 'dev', kind: 'device', hardware: 'jetson-orin-nx-16gb', server: 'e1' },
      { name: 'e1', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 1 },
      { name: 'e2', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 3 }] }, /stage 2 has no node/],
    ['routing fractions that do not sum to 1', { nodes: [
      { name: 'dev', kind: 'device', hardware: 'jetson-orin-nx-16gb' },
      { name: 'e1', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 1 },
      { name: 'e2', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 1 }],
    links: [{ a: 'dev', b: 'e1', mbps: 5, latencyMs: 1 }, { a: 'dev', b: 'e2', mbps: 5, latencyMs: 1 }],
    policies: { staged: { routing: { kind: 'fixed', fractions: { dev: { e1: 0.5, e2: 0.2 } } } } } }, /fractions\.dev: the routing fractions sum to 0\.7/],
    ['both scenario forms at once', { devices: [{ name: 'x', count: 1, hardware: 'jetson-orin-nx-16gb', link: { uplinkMbps: 1, downlinkMbps: 1, latencyMs: 1 } }] }, /devices: cannot be combined with nodes/],
  ];
  for (const [what, over, pattern] of cases) {
    it(what, () => {
      let err: unknown;
      try { runScenario(parseScenarioObject(base(over), 'bad', { baseDir: SCENARIOS })); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(pattern);
    });
  }

  it.skipIf(!existsSync(CLI))('through the CLI: exit 2, one message, no stack, no results directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-topo-'));
    const file = join(dir, 'bad.json');
    writeFileSync(file, JSON.stringify(base({ links: [{ a: 'dev', b: 'nowhere', mbps: 5, latencyMs: 1 }] })));
    const out = join(dir, 'out');
    const r = hatsim('run', file, '--out', out);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/links\[0\]\.b/);
    expect(r.stderr).not.toMatch(/\n\s+at .+:\d+:\d+/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
    const mem = join(dir, 'mem.json');
    writeFileSync(mem, JSON.stringify(base({ model: 'llama2-7b', split: {}, nodes: [
      { name: 'dev', kind: 'device', hardware: 'jetson-orin-nx-16gb', server: 'e1' },
      { name: 'e1', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 1, memoryGB: 4 },
      { name: 'e2', kind: 'edge', hardware: 'jetson-agx-orin-64gb', stage: 2 }] })));
    const m = hatsim('run', mem, '--out', out);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/cannot hold stage 1/);
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});

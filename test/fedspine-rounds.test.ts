/** FedSpine round simulator: closed-form round time, LoRA bytes, feasibility, deadline, availability, determinism. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveFedSpine } from '../src/fedspine/scenario.js';
import { buildCostModels, simulateFedSpine, simulateMethod, checkDevicesFit } from '../src/fedspine/rounds.js';
import { writeFedSpineOutputs } from '../src/fedspine/outputs.js';
import { loraParams, pruneStructure } from '../src/fedspine/cost.js';
import { parseAvailabilityTrace } from '../src/fedspine/availability.js';
import { InputError } from '../src/core/errors.js';
import { SCENARIOS } from './helpers.js';

type Obj = Record<string, unknown>;
const link = (up: number, down: number, lat: number) => ({ uplinkMbps: up, downlinkMbps: down, latencyMs: lat, jitterMs: 0 });
function raw(over: Obj = {}): Obj {
  return {
    kind: 'fedspine', name: 't', seed: 3, model: 'roberta-base-sized', methods: ['uniform'],
    training: { batch: 4, seqLen: 64, logits: 'last' },
    rounds: { max: 3, localSteps: 5, targetLoss: 1.5, aggregationS: 0.5 },
    server: { uplinkMbps: 100000, downlinkMbps: 100000 },
    devices: [
      { name: 'tx2', count: 1, hardware: 'jetson-tx2', link: link(10, 40, 30) },
      { name: 'nx', count: 1, hardware: 'jetson-xavier-nx', link: link(50, 100, 5) },
      { name: 'agx', count: 1, hardware: 'jetson-agx-xavier-32gb', link: link(100, 200, 2) },
    ],
    ...over,
  };
}
const load = (over: Obj = {}) => resolveFedSpine(raw(over), 'test', SCENARIOS).config;

describe('round time and bytes (fixed links, no contention, always available)', () => {
  it('round time = the slowest participant\'s download + K steps + upload; waiting = round - own time', () => {
    const cfg = load();
    const costs = buildCostModels(cfg);
    const { rows } = simulateMethod(cfg, 'uniform', costs);
    const rank = cfg.baselines.uniformRank;
    const bytes = loraParams(cfg.model, pruneStructure(cfg.model, 0), rank, ['q', 'v']) * 2;
    const own = cfg.devices.map((d, i) => {
      const down = d.link.latencyMs / 1000 + ((bytes + 64) * 8) / (d.link.downlinkMbps * 1e6);
      const up = d.link.latencyMs / 1000 + ((bytes + 64) * 8) / (d.link.uplinkMbps * 1e6);
      return down + (5 * costs[i].cost(0, rank).stepMs) / 1000 + up;
    });
    const slowest = Math.max(...own);
    const r1 = rows.filter((r) => r.round === 1);
    expect(r1).toHaveLength(3);
    r1.forEach((r, i) => {
      expect(r.status).toBe('ok');
      expect(r.round_s).toBeCloseTo(slowest, 9);
      expect(r.finish_s - r.start_s).toBeCloseTo(own[i], 9);
      expect(r.wait_s).toBeCloseTo(slowest - own[i], 9);
      expect(r.download_s + r.compute_s + r.upload_s).toBeCloseTo(own[i], 9);
    });
    // The next round starts after aggregation.
    expect(rows.find((r) => r.round === 2)!.start_s).toBeCloseTo(slowest + 0.5, 9);
    expect(own.indexOf(slowest)).toBe(0); // the TX2 is the straggler
  });
  it('bytes per round = r (d_in + d_out) per adapted matrix x 2 B + headers, shrunk by pruning', () => {
    const cfg = load({ methods: ['fixed'], baselines: { uniformRank: 4, fixedRatio: 0.5 }, rounds: { max: 4, localSteps: 20, targetLoss: 1.5 }, pruning: { stepsBetween: 20, maxStep: 0.5 } });
    const { rows } = simulateMethod(cfg, 'fixed', buildCostModels(cfg));
    const full = 12 * 2 * 4 * (768 + 768) * 2, half = 12 * 2 * 4 * (768 + 384) * 2;
    const r1 = rows.filter((r) => r.round === 1), r2 = rows.filter((r) => r.round === 2);
    for (const r of r1) { expect(r.bytes_down).toBe(full + 64); expect(r.bytes_up).toBe(full + 64); expect(r.ratio_after).toBe(0); }
    // Round 2's first local step is iteration 20: a pruning step to 0.5, so the upload is the pruned size.
    for (const r of r2) { expect(r.bytes_down).toBe(full + 64); expect(r.bytes_up).toBe(half + 64); expect(r.ratio_after).toBe(0.5); }
    for (const r of rows.filter((x) => x.round === 3)) expect(r.bytes_down).toBe(half + 64);
  });
});

describe('the shared server NIC', () => {
  it('simultaneous downloads share the NIC max-min fairly: 3 devices at 100 Mb/s behind a 30 Mb/s NIC get 10 Mb/s each', () => {
    const cfg = load({
      server: { uplinkMbps: 100000, downlinkMbps: 30 },
      devices: [{ name: 'd', count: 3, hardware: 'jetson-agx-xavier-32gb', link: link(100, 100, 4) }],
    });
    const rows = simulateMethod(cfg, 'uniform', buildCostModels(cfg)).rows.filter((r) => r.round === 1);
    const bytes = rows[0].bytes_down;
    for (const r of rows) expect(r.download_s).toBeCloseTo((bytes * 8) / 10e6 + 0.004, 9);
  });
});

describe('feasibility', () => {
  it('the bandit never picks a configuration the device cannot hold; a baseline that does not fit sits out', () => {
    // 1.6 GiB TX2: weights ~0.38 GB + 1 GiB reserve leave little room; large batches make high ranks and low ratios infeasible.
    const over = { methods: ['fedspine', 'uniform'], training: { batch: 16, seqLen: 512, logits: 'last', reservedGiB: 0.5 }, baselines: { uniformRank: 8, fixedRatio: 0.3 },
      rounds: { max: 30, localSteps: 2, targetLoss: 0.5 },
      devices: [{ name: 'small', count: 2, hardware: 'jetson-tx2', memoryGiB: 3.2, link: link(50, 50, 5) }, { name: 'agx', count: 1, hardware: 'jetson-agx-xavier-32gb', link: link(100, 200, 2) }] };
    const cfg = load(over);
    const costs = buildCostModels(cfg);
    expect(costs[0].cost(0, 8).feasible).toBe(false);
    expect(costs[0].cost(0.6, 2).feasible).toBe(true);
    const res = simulateFedSpine(cfg);
    const fed = res.rows.filter((r) => r.method === 'fedspine' && r.status === 'ok');
    expect(fed.length).toBeGreaterThan(60);
    for (const r of fed) expect(costs[cfg.devices.findIndex((d) => d.name === r.device)].cost(r.ratio, r.rank).feasible).toBe(true);
    const uni = res.rows.filter((r) => r.method === 'uniform' && r.device.startsWith('small'));
    for (const r of uni) { expect(r.status).toBe('infeasible'); expect(r.feasible).toBe(false); }
  });
  it('a device whose current model does not fit prunes at once to the lowest ratio that fits, before training', () => {
    const cfg = load({ methods: ['fixed'], training: { batch: 16, seqLen: 512, logits: 'last', reservedGiB: 0.5 }, baselines: { uniformRank: 2, fixedRatio: 0.6 },
      rounds: { max: 1, localSteps: 1, targetLoss: 0.5 },
      devices: [{ name: 'small', count: 1, hardware: 'jetson-tx2', memoryGiB: 3.2, link: link(50, 50, 5) }] });
    const costs = buildCostModels(cfg);
    let lowest = 0;
    while (!costs[0].cost(lowest, 2).feasible) lowest = Math.round((lowest + 0.05) * 1e9) / 1e9;
    expect(lowest).toBeGreaterThan(0);
    const [row] = simulateMethod(cfg, 'fixed', costs).rows;
    expect(row.status).toBe('ok');
    expect(row.ratio_after).toBeCloseTo(lowest, 9); // one local step: no scheduled pruning step, only the one-shot fit
    expect(row.compute_s).toBeCloseTo(costs[0].cost(lowest, 2).stepMs / 1000, 9);
  });
  it('a device that cannot hold even the smallest configuration is an InputError naming it', () => {
    const cfg = load({ devices: [{ name: 'tiny', count: 1, hardware: 'jetson-tx2', memoryGiB: 1, link: link(10, 10, 1) }] });
    expect(() => checkDevicesFit(cfg, buildCostModels(cfg))).toThrow(/tiny-0.*cannot hold even the smallest configuration/);
  });
});

describe('deadline, dropouts and availability traces', () => {
  it('with a deadline the round ends at it; slower devices are late and their updates discarded', () => {
    const cfg = load();
    const base = simulateMethod(cfg, 'uniform', buildCostModels(cfg)).rows.filter((r) => r.round === 1);
    const times = base.map((r) => r.finish_s - r.start_s).sort((a, b) => a - b);
    const deadline = (times[1] + times[2]) / 2; // between the second and the slowest
    const dl = load({ rounds: { max: 3, localSteps: 5, targetLoss: 1.5, aggregationS: 0.5, deadlineS: deadline } });
    const rows = simulateMethod(dl, 'uniform', buildCostModels(dl)).rows.filter((r) => r.round === 1);
    expect(rows.filter((r) => r.status === 'late').map((r) => r.device)).toEqual(['tx2-0']);
    for (const r of rows) expect(r.round_s).toBeCloseTo(deadline, 9);
  });
  it('a device offline at the round start sits out; one going offline mid-round drops and the server stops waiting', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedspine-av-'));
    // tx2 online only until 1 s (drops in round 1), nx always, agx never.
    writeFileSync(join(dir, 'av.csv'), 'device,start_s,end_s\ntx2-0,0,1\nnx-0,0,100000\n');
    const cfg = load({ availability: { kind: 'trace', file: join(dir, 'av.csv') } });
    const rows = simulateMethod(cfg, 'uniform', buildCostModels(cfg)).rows;
    const r1 = rows.filter((r) => r.round === 1);
    expect(r1.find((r) => r.device === 'tx2-0')!.status).toBe('dropped');
    expect(r1.find((r) => r.device === 'agx-0')!.status).toBe('offline');
    const nx = r1.find((r) => r.device === 'nx-0')!;
    expect(nx.status).toBe('ok');
    expect(nx.round_s).toBeCloseTo(Math.max(1, nx.finish_s - nx.start_s), 9);
  });
  it('an availability trace that does not parse names the line and the field', () => {
    const names = ['a-0', 'b-0'];
    expect(() => parseAvailabilityTrace('dev,start,end\n', 'av.csv', names)).toThrow(/av.csv:1: header/);
    expect(() => parseAvailabilityTrace('device,start_s,end_s\na-0,0,10\nb-0,x,5\n', 'av.csv', names)).toThrow(/av.csv:3: field start_s/);
    expect(() => parseAvailabilityTrace('device,start_s,end_s\nzz,0,10\n', 'av.csv', names)).toThrow(/av.csv:2: field device/);
    expect(() => parseAvailabilityTrace('device,start_s,end_s\na-0,5,4\n', 'av.csv', names)).toThrow(InputError);
  });
});

describe('determinism', () => {
  it('same seed => byte-identical rounds.csv and summary.csv; another seed differs', () => {
    const over = { methods: ['fedspine', 'hetlora', 'oracle'], availability: { kind: 'markov', meanOnlineS: 200, meanOfflineS: 50 }, rounds: { max: 12, localSteps: 5, targetLoss: 1.5 } };
    const a = mkdtempSync(join(tmpdir(), 'fedspine-det-')), b = mkdtempSync(join(tmpdir(), 'fedspine-det-')), c = mkdtempSync(join(tmpdir(), 'fedspine-det-'));
    for (const [dir, seed] of [[a, 3], [b, 3], [c, 4]] as const) {
      const cfg = load({ ...over, seed });
      writeFedSpineOutputs(dir, cfg, simulateFedSpine(cfg), {});
    }
    expect(readFileSync(join(a, 'rounds.csv'))).toEqual(readFileSync(join(b, 'rounds.csv')));
    expect(readFileSync(join(a, 'summary.csv'))).toEqual(readFileSync(join(b, 'summary.csv')));
    expect(readFileSync(join(a, 'rounds.csv'))).not.toEqual(readFileSync(join(c, 'rounds.csv')));
  });
});

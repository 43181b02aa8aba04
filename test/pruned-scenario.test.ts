/**
 * Pruned models in scenarios (issue 11 point 6): a scenario declares pruned versions of
 * catalog models (`models:`), names them wherever a model runs on a device (HAT's device
 * layers, sd's drafter, device-only's model, the served model of DTO-EE's stages), and the
 * memory check says per device whether it fits (weights + KV of the longest request +
 * reserve). device-only is a registered system of the HAT comparison.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { componentSize, getModel } from '../src/model/catalog.js';
import { devicePartsModel, lookupModel, type DeclaredModel } from '../src/model/declared.js';
import { prunedDecoderSize, prunedTotalParams } from '../src/model/pruning.js';
import { prunedFullModelMs } from '../src/compute/pruned.js';
import { rooflineComponent } from '../src/compute/roofline.js';
import { getHardware } from '../src/compute/hardware.js';
import { singleShape } from '../src/compute/types.js';
import { checkLiveModels } from '../src/live/models.js';
import { SYSTEMS } from '../src/protocol/registry.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, deviceMemory, runScenario } from '../src/sim/run.js';
import { REPO, SCENARIOS, scenario } from './helpers.js';

const ORIN = join(SCENARIOS, 'comp-orin-nx.yaml');

/** A non-uniform pruning of llama2-7b: 28 of 32 layers, widths varying per layer. */
function uneven(): DeclaredModel {
  const layersKept = [...Array(32).keys()].filter((i) => ![20, 21, 22, 23].includes(i));
  return { id: 'l7-uneven', base: 'llama2-7b', pruning: { layersKept, ffnWidths: layersKept.map((_, k) => 6000 + 100 * k) }, source: 'inline' };
}

function errorOf(f: () => unknown): string {
  try { f(); } catch (e) { return e instanceof Error ? e.message : String(e); }
  return '(no error)';
}

describe('declared (pruned) models', () => {
  it('a declared model is the pruning\'s equivalent spec: its totals are the per-layer sums at each layer\'s own width', () => {
    const d = uneven();
    const base = getModel('llama2-7b');
    const m = lookupModel(d.id, [d]);
    expect(m.id).toBe('l7-uneven');
    expect(m.numLayers).toBe(28);
    const dec = prunedDecoderSize(base, d.pruning);
    const layer = componentSize(m, 'decoderLayer');
    expect(m.numLayers * layer.params).toBeCloseTo(dec.params, 0);
    expect(m.numLayers * layer.flopsPerToken).toBeCloseTo(dec.flopsPerToken, 0);
    expect(componentSize(m, 'embedding').params + m.numLayers * layer.params + componentSize(m, 'lmHead').params).toBeCloseTo(prunedTotalParams(base, d.pruning), 0);
    // Decode is memory-bound in every layer on an Orin NX: the equivalent spec's roofline equals the per-layer sum.
    const hw = getHardware('jetson-orin-nx-16gb');
    const shape = singleShape(1, 512);
    const equiv = rooflineComponent(m, 'embedding', 'attention-block', hw).batchMs(shape) + m.numLayers * rooflineComponent(m, 'decoderLayer', 'attention-block', hw).batchMs(shape) + rooflineComponent(m, 'lmHead', 'attention-block', hw).batchMs(shape);
    expect(equiv).toBeCloseTo(prunedFullModelMs(base, d.pruning, hw, shape), 9);
  });

  it('HAT\'s device model takes the first input and last output kept layers at their own widths', () => {
    const d = uneven();
    const target = getModel('llama2-7b');
    const dm = devicePartsModel(target, d.id, [d], 2, 2);
    // kept widths: 6000, 6100 (first two) and 8600, 8700 (last two of 28)
    expect(dm.intermediateSize).toBe((6000 + 6100 + 8600 + 8700) / 4);
    expect(dm.hiddenSize).toBe(target.hiddenSize);
    const tiny: DeclaredModel = { id: 't-p', base: 'tinyllama-1.1b', pruning: { layersKept: [0, 1, 2, 3], ffnWidths: [100, 100, 100, 100] }, source: 'inline' };
    expect(errorOf(() => devicePartsModel(target, 't-p', [tiny], 2, 2))).toMatch(/split\.deviceModel: t-p has hiddenSize 2048 but the served model llama2-7b has 4096/);
  });

  it('scenario fields: models inline or from a pruning.json, referenced by id, checked with field-naming errors', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-pruned-'));
    const d = uneven();
    writeFileSync(join(dir, 'pruning.json'), JSON.stringify({ ...d.pruning, layers: [] }));
    const s = scenario({
      models: [{ id: 'l7-file', base: 'llama2-7b', pruning: join(dir, 'pruning.json') }, { id: 'l7-inline', base: 'llama2-7b', pruning: d.pruning }],
      systems: ['hat', 'device-only'],
      split: { deviceModel: 'l7-file' },
      policies: { deviceOnly: { model: 'l7-inline' }, hat: { acceptanceModel: 'l7-file' } },
    });
    expect(s.models.map((m) => [m.id, m.source === 'inline' ? 'inline' : 'file'])).toEqual([['l7-file', 'file'], ['l7-inline', 'inline']]);
    expect(s.models[0].pruning).toEqual(d.pruning);
    const tb = buildTestbed(s);
    expect(tb.deviceModel.intermediateSize).toBe((6000 + 6100 + 8600 + 8700) / 4);
    expect(tb.model.id).toBe('llama2-7b');

    const bad = (over: Record<string, unknown>): string => errorOf(() => scenario(over));
    expect(bad({ models: [{ id: 'llama2-7b', base: 'llama2-7b', pruning: d.pruning }] })).toMatch(/models\[0\]\.id: is a catalog model id/);
    expect(bad({ models: [{ id: 'x', base: 'llama3-8b', pruning: d.pruning }] })).toMatch(/models\[0\]\.base: must be a catalog model id/);
    expect(bad({ models: [{ id: 'x', base: 'llama2-7b', pruning: { layersKept: [0, 40], ffnWidths: [10, 10] } }] })).toMatch(/models\[0\]\.pruning: .*layersKept\[1\] = 40/);
    expect(bad({ models: [{ id: 'x', base: 'llama2-7b', pruning: { layersKept: [0, 1], ffnWidths: [10] } }] })).toMatch(/models\[0\]\.pruning: .*one width per kept layer/);
    expect(bad({ models: [{ id: 'x', base: 'llama2-7b', pruning: join(dir, 'missing.json') }] })).toMatch(/models\[0\]\.pruning: file not found/);
    expect(bad({ policies: { deviceOnly: { model: 'l7-inlin' } }, models: [{ id: 'l7-inline', base: 'llama2-7b', pruning: d.pruning }] }))
      .toMatch(/policies\.deviceOnly\.model: unknown model id "l7-inlin" \(did you mean "l7-inline"\?\)/);
    expect(bad({ policies: { sd: { drafterModel: 'l7-inline', acceptanceModel: 'tinyllama-1.1b' } }, models: [{ id: 'l7-inline', base: 'llama2-7b', pruning: d.pruning }] }))
      .toMatch(/policies\.sd\.acceptanceModel: says the sd acceptance figures .* measured for tinyllama-1\.1b, but this scenario runs l7-inline/);
    expect(bad({ policies: { dtoee: { profileModel: 'tinyllama-1.1b' } } })).toMatch(/policies\.dtoee\.profileModel: .*runs llama2-7b/);
  });

  it('a calibration file under the declared id wins over the roofline, as for any model', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-pruned-cal-'));
    const src = join(REPO, 'calibration', 'ci-cpu-2core', 'tiny-test');
    const dst = join(dir, 'ci-cpu-2core', 'tiny-test-p');
    mkdirSync(dst, { recursive: true });
    cpSync(src, join(dir, 'ci-cpu-2core', 'tiny-test'), { recursive: true });
    cpSync(src, dst, { recursive: true });
    const j = JSON.parse(readFileSync(join(dst, 'model.json'), 'utf8')) as { modelId: string };
    j.modelId = 'tiny-test-p';
    writeFileSync(join(dst, 'model.json'), JSON.stringify(j));
    const tiny = getModel('tiny-test');
    const s = scenario({
      model: 'tiny-test', calibrationDir: dir,
      models: [{ id: 'tiny-test-p', base: 'tiny-test', pruning: { layersKept: [0, 1, 2], ffnWidths: [tiny.intermediateSize, 300, 200] } }],
      devices: [{ name: 'dev', count: 1, hardware: 'ci-cpu-2core', link: { uplinkMbps: 40, downlinkMbps: 80, latencyMs: 20, jitterMs: 0 } }],
      cloud: { hardware: 'ci-cpu-2core', gpus: 1 },
      split: { inputLayers: 1, outputLayers: 1 },
      systems: ['device-only'],
      policies: { deviceOnly: { model: 'tiny-test-p' }, sd: { drafterModel: 'tiny-test' } },
    });
    const tb = buildTestbed(s);
    const prov = tb.provenance.find((p) => p.modelId === 'tiny-test-p');
    expect(prov?.components.decoderLayer.source).toBe('measured');
  });
});

describe('memory feasibility per device', () => {
  it('weights + KV cache of the longest request + reserve, in closed form, per system', () => {
    const s = loadScenario(ORIN);
    const tb = buildTestbed(s);
    const p30 = lookupModel('llama2-7b-p30', s.models);
    const layer = componentSize(p30, 'decoderLayer');
    const weights = componentSize(p30, 'embedding').weightBytes + p30.numLayers * layer.weightBytes + componentSize(p30, 'lmHead').weightBytes;
    for (const m of deviceMemory(tb, SYSTEMS['device-only'])) {
      const longest = Math.max(...tb.workload[m.device.index].map((r) => r.promptTokens + r.outputTokens));
      expect(m.model.id).toBe('llama2-7b-p30');
      expect(m.need.weightBytes).toBeCloseTo(weights, 0);
      expect(m.need.kvTokens).toBe(longest);
      expect(m.need.kvBytes).toBeCloseTo(longest * p30.numLayers * layer.kvBytesPerToken, 0);
      expect(m.need.reserveBytes).toBe(2.5e9);
    }
    // HAT's device holds 2 + 2 pruned layers, the adapter, embedding and LM head, and their KV cache.
    const dm = tb.deviceModel;
    const hatNeed = deviceMemory(tb, SYSTEMS.hat)[0].need;
    const expected = componentSize(dm, 'embedding').weightBytes + 4 * componentSize(dm, 'decoderLayer').weightBytes + componentSize(dm, 'adapter').weightBytes + componentSize(dm, 'lmHead').weightBytes;
    expect(hatNeed.weightBytes).toBeCloseTo(expected, 0);
    // memory.kvCache none: weights only
    const none = buildTestbed(loadScenario(ORIN, ['memory.kvCache=none']));
    expect(deviceMemory(none, SYSTEMS['device-only'])[0].need.kvBytes).toBe(0);
  });

  it('the Orin NX cannot hold unpruned LLaMA-2-7B with the scenario\'s reserve (error names board and model); it can with no reserve; the pruned one runs', () => {
    const msg = errorOf(() => runScenario(loadScenario(ORIN, ['policies.deviceOnly.model=llama2-7b', 'systems=[device-only]'])));
    expect(msg).toMatch(/nodes: 'orin-nx-\d' \(jetson-orin-nx-16gb, 17\.18 GB\) cannot hold device-only's whole model of llama2-7b \(13\.48 GB of weights \+ .* GB of KV cache .* \+ 2\.50 GB reserved/);
    const e = (() => { try { runScenario(loadScenario(ORIN, ['policies.deviceOnly.model=llama2-7b', 'systems=[device-only]'])); } catch (x) { return x; } return null; })();
    expect(e).toBeInstanceOf(InputError);
    const noReserve = runScenario(loadScenario(ORIN, ['policies.deviceOnly.model=llama2-7b', 'systems=[device-only]', 'memory.reserveGB=0']));
    expect(noReserve.systems[0].summary.requests).toBeGreaterThan(0);
  });
});

describe('device-only in the HAT comparison', () => {
  it('nothing crosses the network; TTFT and TBT are the whole model\'s passes on an idle device (closed form)', () => {
    const s = scenario({
      systems: ['device-only', 'hat'],
      models: [{ id: 'l7-uneven', base: 'llama2-7b', pruning: uneven().pruning }],
      policies: { deviceOnly: { model: 'l7-uneven' } },
      workload: { arrival: { kind: 'poisson', ratePerS: 0.0001 }, requestsPerDevice: 3 },
    });
    const run = runScenario(s);
    const dev = run.systems.find((x) => x.system === 'device-only')!;
    expect(dev.bytesSent).toBe(0);
    expect(dev.summary.bytes_up_per_request).toBe(0);
    const hw = getHardware('jetson-agx-orin-64gb');
    const base = getModel('llama2-7b');
    const p = uneven().pruning;
    const m = lookupModel('l7-uneven', s.models);
    const passMs = (tokens: number, ctx: number): number => {
      const sh = singleShape(tokens, ctx);
      return rooflineComponent(m, 'embedding', 'attention-block', hw).batchMs(sh) + m.numLayers * rooflineComponent(m, 'decoderLayer', 'attention-block', hw).batchMs(sh) + rooflineComponent(m, 'lmHead', 'attention-block', hw).batchMs(singleShape(1, 0));
    };
    // compute/pruned.ts's per-layer sum, with the LM head over the last position only (as the protocol asks: logits = 1, composeParts).
    const head = rooflineComponent(base, 'lmHead', 'attention-block', hw);
    const perLayerMs = (tokens: number, ctx: number): number => prunedFullModelMs(base, p, hw, singleShape(tokens, ctx)) - head.batchMs(singleShape(tokens, ctx)) + head.batchMs(singleShape(1, 0));
    for (const r of dev.requests) {
      // Idle device (arrivals ~10^4 s apart): TTFT = one prefill pass of the pruned model's equivalent spec...
      expect(r.device_queue_ms).toBe(0);
      expect(r.ttft_ms).toBeCloseTo(passMs(256, 0), 6);
      // ...which, in prefill, only approximates the per-layer sum when kept layers straddle the roofline's ridge (documented: within 2 % here).
      expect(Math.abs(r.ttft_ms / perLayerMs(256, 0) - 1)).toBeLessThan(0.02);
      // Mean TBT over contexts 256..286 (decode is memory-bound in every layer, so the equivalent spec is exact).
      let sum = 0;
      for (let i = 1; i < 32; i++) sum += perLayerMs(1, 256 + i - 1);
      expect(r.tbt_mean_ms).toBeCloseTo(sum / 31, 6);
    }
  });

  it('the live runner refuses declared models and a device-only model other than the drafter, naming the field', () => {
    const s = loadScenario(ORIN);
    expect(errorOf(() => checkLiveModels(s))).toMatch(/^split\.deviceModel: llama2-7b-p30 is a declared \(pruned\) model; the live runner builds its ONNX graphs from catalog models only/);
    const s2 = scenario({ systems: ['device-only', 'sd'], policies: { sd: { drafterModel: 'tinyllama-1.1b' } } });
    expect(errorOf(() => checkLiveModels(s2))).toMatch(/^policies\.deviceOnly\.model: the live runner holds one whole model per device/);
    expect(() => checkLiveModels(scenario({ systems: ['device-only', 'sd'], policies: { sd: { drafterModel: 'llama2-7b' } } }))).not.toThrow();
  });
});

describe('FedSpine trains a declared (pruned) local model', () => {
  it('model names a pruned roberta-base-sized: the cost model sees fewer layers and narrower FFNs, rounds get shorter', async () => {
    const { loadFedSpineScenario } = await import('../src/fedspine/scenario.js');
    const { simulateFedSpine } = await import('../src/fedspine/rounds.js');
    const file = join(SCENARIOS, 'fedspine-80.yaml');
    const short = ['rounds.max=5', 'methods=[uniform]'];
    const base = loadFedSpineScenario(file, short);
    const pruned = loadFedSpineScenario(file, [...short,
      'models.0={id: rb-p, base: roberta-base-sized, pruning: {layersKept: [0, 1, 2, 3, 4, 5, 6, 7, 8], ffnWidths: [2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048]}}',
      'model=rb-p']);
    expect(pruned.config.model.id).toBe('rb-p');
    expect(pruned.config.model.numLayers).toBe(9);
    expect(pruned.config.model.intermediateSize).toBe(2048);
    const a = simulateFedSpine(base.config).summaries[0];
    const b = simulateFedSpine(pruned.config).summaries[0];
    expect(b.mean_round_s).toBeLessThan(a.mean_round_s);
    expect(() => loadFedSpineScenario(file, [...short, 'model=rb-q'])).toThrow(/model: unknown model id "rb-q"/);
  });
});

/**
 * Simulator invariants and closed-form cases (docs/INVARIANTS.md lists each
 * invariant with the test that checks it).
 */
import { describe, expect, it } from 'vitest';
import { resolveLatency } from '../src/compute/resolve.js';
import { singleShape } from '../src/compute/types.js';
import { getModel, hiddenStateBytesPerToken, makeSplitPlan } from '../src/model/catalog.js';
import { expectedTokensPerRound } from '../src/policy/draft.js';
import { predictPipelineMs, splitPrompt } from '../src/policy/chunk.js';
import { buildTestbed, runScenario, simulateSystem } from '../src/sim/run.js';
import { runOutputs } from '../src/sim/outputs.js';
import { toCsv } from '../src/results/csv.js';
import { REQUEST_COLUMNS } from '../src/results/types.js';
import { pipelineStages } from '../src/protocol/systems/split-prefill.js';
import type { Predictor, ProtocolEnv } from '../src/protocol/context.js';
import { HAT_SYSTEMS as SYSTEM_IDS } from '../src/scenario/types.js';
import { scenario } from './helpers.js';

const HEADER = 64;

/** Latency models and link arithmetic for the default test scenario, computed independently of the simulator. */
function reference() {
  const s = scenario();
  const model = getModel('llama2-7b');
  const plan = makeSplitPlan(model, 2, 2, 'attention-block');
  const dev = resolveLatency({ hardwareId: 'jetson-agx-orin-64gb', model, plan, calibrationDir: s.calibrationDir });
  const cloud = resolveLatency({ hardwareId: 'a6000', model, plan, calibrationDir: s.calibrationDir });
  const hb = hiddenStateBytesPerToken(model);
  const ms = (m: { batchMs(sh: ReturnType<typeof singleShape>, l: number): number }, n: number, ctx: number, logits: number) => m.batchMs(singleShape(n, ctx), logits);
  const upMs = (bytes: number) => ((bytes + HEADER) * 8) / 40e6 * 1000 + 20;
  const downMs = (bytes: number) => ((bytes + HEADER) * 8) / 80e6 * 1000 + 20;
  return { s, model, plan, dev, cloud, hb, ms, upMs, downMs };
}

describe('closed-form cases', () => {
  it('ushape, one device, no contention: TTFT is the sum of its stage latencies, and so is every token after', () => {
    const r = reference();
    const P = 256, O = 32;
    const res = runScenario(r.s).systems.find((x) => x.system === 'ushape')!;
    const input = r.dev.submodel('input'), output = r.dev.submodel('output'), middle = r.cloud.submodel('middle');
    const ttft = r.ms(input, P, 0, 0) + r.upMs(P * r.hb) + r.ms(middle, P, 0, 0) + r.downMs(P * r.hb) + r.ms(output, P, 0, 1);
    let decode = 0;
    for (let pos = P; pos < P + O - 1; pos++) {
      decode += r.ms(input, 1, pos, 0) + r.upMs(r.hb) + r.ms(middle, 1, pos, 0) + r.downMs(r.hb) + r.ms(output, 1, pos, 1);
    }
    expect(res.requests.length).toBe(5);
    for (const q of res.requests) {
      expect(q.device_queue_ms).toBeCloseTo(0, 6);
      expect(q.ttft_ms).toBeCloseTo(ttft, 6);
      expect(q.e2e_ms).toBeCloseTo(ttft + decode, 6);
      expect(q.tbt_mean_ms).toBeCloseTo(decode / (O - 1), 6);
    }
  });

  it('cloud baseline, one device: TTFT = upload + prefill + one token down; tokens stream one decode step apart', () => {
    const r = reference();
    const full = r.cloud.submodel('full');
    const res = runScenario(r.s).systems.find((x) => x.system === 'cloud')!;
    const ttft = r.upMs(256 * 4) + r.ms(full, 256, 0, 1) + r.downMs(4);
    for (const q of res.requests) {
      expect(q.ttft_ms).toBeCloseTo(ttft, 6);
      expect(q.raw_token_bytes_up).toBe(256 * 4);
    }
  });

  it("HAT's chunk-size predictor equals the simulated prefill on an idle testbed, and dynamic chunking picks its minimum", () => {
    const r = reference();
    for (const P of [64, 700, 2000]) {
      const s = scenario({ workload: { promptTokens: { kind: 'fixed', tokens: P }, outputTokens: { kind: 'fixed', tokens: 1 }, requestsPerDevice: 3 } });
      const tb = buildTestbed(s);
      const res = simulateSystem(tb, 'hat');
      const chunk = res.requests[0].chunk_tokens;
      // Rebuild the predictor from the reference latency models.
      const predictor: Predictor = {
        deviceMs: (w, n, ctx, l) => (w === 'slm' ? NaN : r.ms(r.dev.submodel(w === 'drafter' ? 'input' : w), n, ctx, l)),
        cloudMs: (_w, n, ctx, l) => r.ms(r.cloud.submodel('middle'), n, ctx, l),
        txMs: (dir, bytes) => ((bytes + HEADER) * 8) / (dir === 'up' ? 40e6 : 80e6) * 1000,
        latencyMs: () => 20,
      };
      const env: ProtocolEnv = { hiddenBytesPerToken: r.hb, tokenBytes: 4, predictor, policies: s.policies };
      const stages = pipelineStages(env, null, true);
      const predicted = predictPipelineMs(splitPrompt(P, chunk), stages);
      for (const q of res.requests) expect(q.ttft_ms).toBeCloseTo(predicted, 6);
      // No candidate of the 1-D search predicts less than the chosen one.
      for (const c of [16, 32, 48, 64, 96, 128, 256, 512, 1024, P]) {
        if (c < 32 || c > Math.min(1024, P)) continue;
        expect(predictPipelineMs(splitPrompt(P, c), stages)).toBeGreaterThanOrEqual(predicted - 1e-9);
      }
    }
  });

  it('speculative rounds: mean tokens per verification matches (1-a^(g+1))/(1-a)', () => {
    for (const [a, g] of [[0.7, 4], [0.5, 3], [0.9, 6]] as const) {
      const s = scenario({
        systems: ['hat', 'sd'],
        workload: { promptTokens: { kind: 'fixed', tokens: 16 }, outputTokens: { kind: 'fixed', tokens: 4000 }, requestsPerDevice: 3 },
        policies: { hat: { acceptance: a, draft: { kind: 'fixed', gamma: g } }, sd: { acceptance: a, draft: { kind: 'fixed', gamma: g } } },
      });
      for (const sys of runScenario(s).systems) {
        const rounds = sys.requests.reduce((x, q) => x + q.rounds, 0);
        const accepted = sys.requests.reduce((x, q) => x + q.accepted_tokens, 0);
        // Every round emits accepted + 1 tokens (the last round may be cut short: at most one per request).
        const perRound = (accepted + rounds) / rounds;
        expect(Math.abs(perRound - expectedTokensPerRound(a, g)) / expectedTokensPerRound(a, g)).toBeLessThan(0.03);
      }
    }
  });

  it('M/D/1: a one-GPU cloud serving one request at a time with Poisson arrivals has the Pollaczek-Khinchine mean wait', () => {
    // 200 devices each Poisson(lambda/200) = Poisson(lambda) at the cloud (a constant uplink delay keeps it Poisson;
    // with so many devices a device is almost never still busy when its next request arrives);
    // output 1 token, so each request is one prefill job of fixed service time D. Only requests that arrive
    // while every device is still issuing requests count (after that the total rate decays).
    const base = scenario({
      systems: ['cloud'],
      devices: [{ name: 'dev', count: 200, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 1000, downlinkMbps: 1000, latencyMs: 5, jitterMs: 0 } }],
      cloud: { hardware: 'a6000', gpus: 1, maxBatchSeqs: 1, tokenBudget: 4096 },
      workload: { promptTokens: { kind: 'fixed', tokens: 512 }, outputTokens: { kind: 'fixed', tokens: 1 }, requestsPerDevice: 240 },
    });
    const r = reference();
    const D = r.ms(r.cloud.submodel('full'), 512, 0, 1) / 1000;
    const rho = 0.6;
    const lambda = rho / D;
    const s = scenario({
      systems: ['cloud'],
      devices: base.devices,
      cloud: { hardware: 'a6000', gpus: 1, maxBatchSeqs: 1, tokenBudget: 4096 },
      workload: { arrival: { kind: 'poisson', ratePerS: lambda / 200 }, promptTokens: { kind: 'fixed', tokens: 512 }, outputTokens: { kind: 'fixed', tokens: 1 }, requestsPerDevice: 240 },
    });
    const res = runScenario(s).systems[0];
    const lastArrival = new Map<string, number>();
    for (const q of res.requests) lastArrival.set(q.device, Math.max(lastArrival.get(q.device) ?? 0, q.arrival_s));
    const steadyUntilS = Math.min(...lastArrival.values());
    const steady = res.requests.filter((q) => q.arrival_s > 5 * D && q.arrival_s < steadyUntilS);
    expect(steady.length).toBeGreaterThan(20000);
    const meanWaitS = steady.reduce((x, q) => x + q.cloud_queue_ms, 0) / steady.length / 1000;
    const pk = (lambda * D * D) / (2 * (1 - rho));
    expect(res.requests.length).toBe(48000);
    expect(Math.abs(meanWaitS - pk) / pk).toBeLessThan(0.06);
  });
});

describe('invariants', () => {
  const s = scenario({
    devices: [
      { name: 'a', count: 3, hardware: 'jetson-agx-orin-64gb', link: { uplinkMbps: 20, downlinkMbps: 50, latencyMs: 15, jitterMs: 3 }, via: ['ap'] },
      { name: 'b', count: 2, hardware: 'jetson-xavier-nx', link: { uplinkMbps: 30, downlinkMbps: 60, latencyMs: 30, jitterMs: 0 } },
    ],
    network: { shared: [{ name: 'ap', uplinkMbps: 30, downlinkMbps: 60 }] },
    cloud: { hardware: 'a6000', gpus: 2 },
    workload: { arrival: { kind: 'poisson', ratePerS: 0.2 }, promptTokens: { kind: 'lognormal', meanTokens: 400, cv: 0.8, minTokens: 8, maxTokens: 2000 }, outputTokens: { kind: 'lognormal', meanTokens: 40, cv: 0.8, minTokens: 1, maxTokens: 200 }, requestsPerDevice: 12 },
    policies: { hat: { parallelDrafting: true } },
  });
  const run = runScenario(s, { timelineRequests: 1000 });

  it('conservation of requests: every request finishes exactly once, with all its output tokens', () => {
    const tb = buildTestbed(s);
    for (const sys of run.systems) {
      expect(sys.summary.unfinished).toBe(0);
      const keys = new Set(sys.requests.map((q) => `${q.device}/${q.request}`));
      expect(keys.size).toBe(sys.requests.length);
      expect(sys.requests.length).toBe(5 * 12);
      for (const q of sys.requests) {
        const w = tb.workload[tb.devices.find((d) => d.name === q.device)!.index][q.request];
        expect(q.output_tokens).toBe(w.outputTokens);
        expect(q.prompt_tokens).toBe(w.promptTokens);
      }
    }
  });

  it('conservation of bytes: bytes sent = bytes delivered = the sum over requests', () => {
    for (const sys of run.systems) {
      expect(sys.bytesDelivered).toBe(sys.bytesSent);
      expect(sys.messagesDelivered).toBe(sys.messagesSent);
      const perRequest = sys.requests.reduce((x, q) => x + q.bytes_up + q.bytes_down, 0);
      expect(perRequest).toBe(sys.bytesSent);
    }
  });

  it('causality: arrival <= start <= first token <= last token; spans inside the request; no negative durations', () => {
    for (const sys of run.systems) {
      for (const q of sys.requests) {
        expect(q.device_queue_ms).toBeGreaterThanOrEqual(0);
        expect(q.ttft_ms).toBeGreaterThanOrEqual(q.device_queue_ms);
        expect(q.e2e_ms).toBeGreaterThanOrEqual(q.ttft_ms);
        expect(q.cloud_queue_ms).toBeGreaterThanOrEqual(0);
        expect(q.tbt_max_ms).toBeGreaterThanOrEqual(0);
      }
      for (const sp of sys.spans) {
        expect(sp.end_ms).toBeGreaterThanOrEqual(sp.start_ms);
        expect(sp.start_ms).toBeGreaterThanOrEqual(0);
        const q = sys.requests.find((x) => x.device === sp.device && x.request === sp.request)!;
        expect(sp.end_ms).toBeLessThanOrEqual(q.e2e_ms + 1e-6);
      }
    }
  });

  it('privacy: hat, hat-nochunk and ushape send no raw tokens up; cloud and sd do', () => {
    for (const sys of run.systems) {
      const raw = sys.summary.raw_token_bytes_up;
      if (sys.system === 'cloud' || sys.system === 'sd') expect(raw).toBeGreaterThan(0);
      else expect(raw).toBe(0);
    }
  });

  it('split systems upload hidden states of every prompt position (hidden_size x 2 bytes per token)', () => {
    for (const sys of run.systems.filter((x) => x.system === 'ushape' || x.system.startsWith('hat'))) {
      for (const q of sys.requests) expect(q.hidden_bytes_up).toBeGreaterThanOrEqual(q.prompt_tokens * 8192);
    }
  });

  it('each GPU is busy at most 100% of any time bin', () => {
    for (const sys of run.systems) for (const g of sys.gpuUtil) expect(g.busy_fraction).toBeLessThanOrEqual(1 + 1e-9);
  });
});

describe('determinism', () => {
  const csvOf = (seed: number) => {
    const s = scenario({
      seed,
      devices: [{ name: 'd', count: 4, hardware: 'jetson-orin-nx-16gb', link: { uplinkMbps: 20, downlinkMbps: 40, latencyMs: 10, jitterMs: 2 } }],
      workload: { promptTokens: { kind: 'lognormal', meanTokens: 300, cv: 0.5 }, outputTokens: { kind: 'lognormal', meanTokens: 30, cv: 0.5 }, requestsPerDevice: 6 },
    });
    return toCsv(runOutputs(runScenario(s)).requests, REQUEST_COLUMNS);
  };
  it('the same scenario and seed give byte-identical requests.csv; another seed differs', () => {
    const a = csvOf(3), b = csvOf(3), c = csvOf(4);
    expect(a).toBe(b);
    expect(c).not.toBe(a);
  });
  it('every system id has a protocol', () => {
    const res = runScenario(scenario({ workload: { requestsPerDevice: 1 } }));
    expect(res.systems.map((x) => x.system)).toEqual([...SYSTEM_IDS]);
  });
});

describe('calibration files in the simulator', () => {
  it('a shipped measured calibration is used (run.json provenance), and the run differs from the estimate', () => {
    const measured = runScenario(scenario({
      model: 'tiny-test', split: { inputLayers: 1, outputLayers: 1 }, systems: ['ushape'],
      devices: [{ name: 'd', count: 1, hardware: 'ci-cpu-2core', link: { uplinkMbps: 40, downlinkMbps: 80, latencyMs: 5 } }],
      cloud: { hardware: 'ci-cpu-2core', gpus: 1 },
      policies: { sd: { drafterModel: 'tiny-test' } },
    }));
    const prov = measured.provenance.find((p) => p.hardwareId === 'ci-cpu-2core' && p.modelId === 'tiny-test')!;
    expect(prov.components.decoderLayer.source).toBe('measured');
    expect(prov.components.decoderLayer.origin).toMatch(/calibration[\\/]ci-cpu-2core[\\/]tiny-test[\\/]model\.json$/);
    expect(measured.systems[0].summary.latency_source).toBe('measured');
    const info = runOutputs(measured).runInfo as { latency: typeof measured.provenance };
    expect(info.latency).toEqual(measured.provenance);
  });

  it('a component missing from a calibration file falls back to the estimate with a warning', () => {
    const s = scenario({ systems: ['ushape'], cloud: { hardware: 'a40', gpus: 1 }, workload: { requestsPerDevice: 1 } });
    const r = runScenario(s);
    const a40 = r.provenance.find((p) => p.hardwareId === 'a40')!;
    expect(a40.components.decoderLayer.source).toBe('imported');
    expect(a40.components.lmHead.source).toBe('estimate');
    expect(r.warnings.some((w) => /lmHead/.test(w) && /estimate/.test(w))).toBe(true);
  });
});

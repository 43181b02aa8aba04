/**
 * Training-step calibration (fedspine/traincal.ts) and its use by the cost model and the
 * round simulator: the fit recovers known factors, a bad file is refused naming the field,
 * cost.ts computes step time from the measured numbers (closed form), rounds add the measured
 * per-round overhead, and a replayed plan is what the simulator runs (live validation).
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { deviceCostModel, forwardFlops, pruneStructure } from '../src/fedspine/cost.js';
import { buildCostModels, simulateMethod } from '../src/fedspine/rounds.js';
import { loadFedSpineScenario } from '../src/fedspine/scenario.js';
import { fitStepFactors, loadTrainCalibration, TRAIN_CAL_FORMAT, type TrainCalibration } from '../src/fedspine/traincal.js';
import { getModel } from '../src/model/catalog.js';
import { compareMetrics, roundMetrics } from '../src/live/fed-validate.js';
import { calibrationRankIndex } from '../src/live/fed-calibrate.js';

const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-traincal-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const SCEN = resolve(__dirname, '../scenarios/fedspine-live-small.yaml');
const model = getModel('brown-small');

function calFile(dir: string, over: Partial<TrainCalibration> = {}): TrainCalibration {
  const cal: TrainCalibration = {
    format: TRAIN_CAL_FORMAT, hardwareId: 'test-hw', model: 'brown-small', batch: 2, seqLen: 32, loraTargets: ['q', 'v'], concurrency: 4,
    points: [
      { rank: 2, loraFlopShare: 0.004, baseForwardMs: 50, forwardMs: 60, abStepMs: 250, stepMs: 300, samples: 5 },
      { rank: 16, loraFlopShare: 0.032, baseForwardMs: 70, forwardMs: 80, abStepMs: 350, stepMs: 420, samples: 5 },
      { rank: 9, loraFlopShare: 0.018, baseForwardMs: 60, forwardMs: 70, abStepMs: 300, stepMs: 360, samples: 5 },
    ],
    roundOverheadMs: 12.5,
    fit: { frozenStepFactor: 5.5, loraStepFactor: 10, rmse: 0, bStdErr: 0 },
    abFit: { frozenStepFactor: 5, loraStepFactor: 8, rmse: 0, bStdErr: 0 },
    measured: { at: 'now', loadAvgBefore: [1, 1, 1], loadAvgAfter: [1, 1, 1], command: 'test', backend: 'test' },
    ...over,
  };
  mkdirSync(join(dir, 'test-hw', 'brown-small'), { recursive: true });
  writeFileSync(join(dir, 'test-hw', 'brown-small', 'train.json'), JSON.stringify(cal));
  return cal;
}

describe('training-step calibration', () => {
  it('the fit recovers the factors of exact data and clamps a negative LoRA factor', () => {
    // the forward is the points' median (50 ms), as cost.ts multiplies it
    const pts = [0.004, 0.018, 0.032].map((x, i) => ({ loraFlopShare: x, baseForwardMs: [40, 50, 70][i], stepMs: 50 * (5.5 + 12 * x) }));
    const f = fitStepFactors(pts);
    expect(f.frozenStepFactor).toBeCloseTo(5.5, 9);
    expect(f.loraStepFactor).toBeCloseTo(12, 7);
    expect(f.rmse).toBeLessThan(1e-9);
    const neg = fitStepFactors([{ loraFlopShare: 0.01, baseForwardMs: 10, stepMs: 60 }, { loraFlopShare: 0.03, baseForwardMs: 10, stepMs: 50 }, { loraFlopShare: 0.02, baseForwardMs: 10, stepMs: 55 }]);
    expect(neg.loraStepFactor).toBe(0);
    expect(neg.frozenStepFactor).toBeCloseTo(5.5, 9);
  });

  it('cost.ts uses the measured forward (median), factors and round overhead: closed form', () => {
    const dir = join(tmp, 'ok');
    const cal = calFile(dir);
    const training = { batch: 2, seqLen: 32, logits: 'all' as const, loraTargets: ['q', 'v'] as const, frozenStepFactor: 2, loraStepFactor: 3, loraBytesPerParam: 16, wireBytesPerElem: 4 as const, reservedBytes: 0 };
    const m = deviceCostModel({ hardwareId: 'test-hw', memoryCapacityBytes: 2 ** 31, model, training: { ...training, loraTargets: ['q', 'v'] }, calibrationDir: dir });
    expect(m.fullForwardMs).toBe(60); // median of 50, 70, 60
    expect(m.roundOverheadMs).toBe(12.5);
    expect(m.trainCalibration).toContain('train.json');
    const w = forwardFlops(model, pruneStructure(model, 0), 8, { ...training, loraTargets: ['q', 'v'] });
    expect(m.cost(0, 8).stepMs).toBeCloseTo(60 * (cal.fit.frozenStepFactor + cal.fit.loraStepFactor * (w.lora / w.frozen)), 9);
    // another shape: the file does not apply (and the unknown hardware has no other latency model)
    expect(() => deviceCostModel({ hardwareId: 'test-hw', memoryCapacityBytes: 2 ** 31, model, training: { ...training, batch: 3, loraTargets: ['q', 'v'] }, calibrationDir: dir })).toThrow(InputError);
  });

  it('refuses a broken file naming the field', () => {
    const dir = join(tmp, 'bad');
    calFile(dir, { roundOverheadMs: -1 });
    expect(() => loadTrainCalibration(dir, 'test-hw', 'brown-small')).toThrow(/roundOverheadMs/);
    calFile(dir, { model: 'tiny-test' });
    expect(() => loadTrainCalibration(dir, 'test-hw', 'brown-small')).toThrow(/field "model"/);
    writeFileSync(join(dir, 'test-hw', 'brown-small', 'train.json'), '{');
    expect(() => loadTrainCalibration(dir, 'test-hw', 'brown-small')).toThrow(/not valid JSON/);
    expect(loadTrainCalibration(dir, 'other-hw', 'brown-small')).toBeNull();
  });
});

describe('lock-step calibration rounds', () => {
  it('the workers of one round run different ranks, and every worker runs every rank over n rounds', () => {
    for (const [n, workers] of [[3, 4], [3, 3], [2, 4], [1, 4]]) {
      for (let i = 0; i < n; i++) {
        const inRound = Array.from({ length: workers }, (_, w) => calibrationRankIndex(i, w, n));
        // as many distinct ranks as the round can hold (n ranks over `workers` workers)
        expect(new Set(inRound).size).toBe(Math.min(n, workers));
        for (const j of inRound) { expect(j).toBeGreaterThanOrEqual(0); expect(j).toBeLessThan(n); }
      }
      for (let w = 0; w < workers; w++) expect(new Set(Array.from({ length: n }, (_, i) => calibrationRankIndex(i, w, n))).size).toBe(n);
    }
  });
});

describe('the round simulator with a calibration and a replayed plan', () => {
  it('compute = K steps from the calibration + the round overhead; the replayed ranks are the ones run', () => {
    const dir = join(tmp, 'sim');
    // the shipped file lives under calibration/ci-cpu-2core; point this run at ours (same batch as the scenario, or it does not apply)
    const batch = loadFedSpineScenario(SCEN).config.training.batch;
    mkdirSync(join(dir, 'ci-cpu-2core', 'brown-small'), { recursive: true });
    writeFileSync(join(dir, 'ci-cpu-2core', 'brown-small', 'train.json'), JSON.stringify({ ...calFile(join(tmp, 'x')), hardwareId: 'ci-cpu-2core', batch }));
    const { config } = loadFedSpineScenario(SCEN, [`calibrationDir=${dir}`, 'rounds.max=3']);
    const costs = buildCostModels(config);
    const plan = (round: number, d: number) => ({ ratio: 0, rank: 2 + ((round * 3 + d) % 15) });
    const { rows } = simulateMethod(config, 'fedspine', costs, { replay: plan });
    expect(rows.length).toBe(3 * config.devices.length);
    for (const r of rows) {
      const d = config.devices.findIndex((x) => x.name === r.device);
      expect(r.rank).toBe(plan(r.round, d).rank);
      const want = (config.rounds.localSteps * costs[d].cost(0, r.rank).stepMs + 12.5) / 1000;
      expect(r.compute_s).toBeCloseTo(want, 9);
      // round time = the slowest participant's download + compute + upload
      expect(r.download_s + r.compute_s + r.upload_s + r.wait_s).toBeCloseTo(r.round_s, 9);
    }
  });

  it('validation metrics: means over rounds and updates; wait relative to the round time', () => {
    const rows = [
      { round: 1, status: 'ok' as const, round_s: 2, download_s: 0.5, compute_s: 1, upload_s: 0.5, wait_s: 0 },
      { round: 1, status: 'ok' as const, round_s: 2, download_s: 0.3, compute_s: 0.9, upload_s: 0.3, wait_s: 0.5 },
      { round: 2, status: 'ok' as const, round_s: 4, download_s: 0.4, compute_s: 3, upload_s: 0.6, wait_s: 0 },
    ];
    const m = roundMetrics(rows);
    expect(m.round_s).toBe(3);
    expect(m.compute_s).toBeCloseTo(4.9 / 3, 12);
    const cmp = compareMetrics('x', m, { ...m, round_s: 3.3, wait_s: m.wait_s + 0.6 }, 10);
    expect(cmp.find((r) => r.metric === 'round_s')!.error_pct).toBeCloseTo(10, 9);
    expect(cmp.find((r) => r.metric === 'wait_s')!.error_pct).toBeCloseTo(20, 9); // 0.6 s of a 3 s round
    expect(cmp.find((r) => r.metric === 'wait_s')!.within).toBe(false);
    expect(cmp.find((r) => r.metric === 'wait_s')!.gated).toBe(false);
  });
});

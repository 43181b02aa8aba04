/** Observe -> calibrate: fitting the learning model from a FedSpine results directory reproduces the run's losses. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveFedSpine } from '../src/fedspine/scenario.js';
import { simulateFedSpine } from '../src/fedspine/rounds.js';
import { writeFedSpineOutputs } from '../src/fedspine/outputs.js';
import { learningRowsFromResults } from '../src/fedspine/fitlog.js';
import { DEFAULT_LEARNING, fitLearning, stepsFactor } from '../src/fedspine/learning.js';
import { InputError } from '../src/core/errors.js';
import { SCENARIOS } from './helpers.js';

const link = { uplinkMbps: 50, downlinkMbps: 100, latencyMs: 5 };
const planted = { lossInit: 2.2, lossMin: 0.5, eta: 0.3, kappaSteps: 6, rankHalf: 8, pruneDamage: 0.5, floorPrune: 0.9, floorHetero: 0.2, noiseStd: 0 };

describe('fit-learning from a results directory', () => {
  it('recovers the planted progress parameters from the simulator\'s own rounds.csv', () => {
    const raw = {
      kind: 'fedspine', seed: 5, model: 'roberta-base-sized', methods: ['fedspine', 'hetlora', 'fixed'],
      training: { batch: 2, seqLen: 32, logits: 'last' }, rounds: { max: 40, localSteps: 10, targetLoss: 1 },
      learning: planted, heterogeneity: 0.3, server: { uplinkMbps: 1000, downlinkMbps: 1000 },
      availability: { kind: 'markov', meanOnlineS: 60, meanOfflineS: 20 },
      devices: [
        { name: 'tx2', count: 4, hardware: 'jetson-tx2', link, data: { kind: 'lognormal', mean: 500, cv: 0.6 } },
        { name: 'agx', count: 2, hardware: 'jetson-agx-xavier-32gb', link },
      ],
    };
    const { config, parsed } = resolveFedSpine(raw, 'fit test', SCENARIOS);
    const dir = mkdtempSync(join(tmpdir(), 'fedspine-fit-'));
    writeFedSpineOutputs(dir, config, simulateFedSpine(config), parsed);
    const rows = learningRowsFromResults(dir);
    expect(rows.length).toBeGreaterThan(60);
    const fit = fitLearning(rows, DEFAULT_LEARNING);
    // rounds.csv keeps 6 decimals: the fit is as good as the file.
    expect(fit.rmse).toBeLessThan(2e-6);
    const p = fit.params;
    // With one K only eta x s(K) is identified (see fitlog.ts), plus the rank and pruning effects.
    expect(p.eta * stepsFactor(p, 10)).toBeCloseTo(planted.eta * stepsFactor(planted, 10), 3);
    expect(p.rankHalf).toBeCloseTo(planted.rankHalf, 1);
    expect(p.pruneDamage).toBeCloseTo(planted.pruneDamage, 2);
  });
  it('a directory that is not a FedSpine run is an InputError', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedspine-fit-bad-'));
    expect(() => learningRowsFromResults(dir)).toThrow(InputError);
    writeFileSync(join(dir, 'run.json'), '{"kind":"other"}');
    writeFileSync(join(dir, 'rounds.csv'), 'method,round\n');
    expect(() => learningRowsFromResults(dir)).toThrow(/not from a FedSpine run/);
  });
});

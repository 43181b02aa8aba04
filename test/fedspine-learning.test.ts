/** FedSpine learning model: closed-form properties and a fit that recovers planted parameters. */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { Rng } from '../src/core/rng.js';
import { InputError } from '../src/core/errors.js';
import { DEFAULT_LEARNING, FITTED, deviceImprovement, fitLearning, loadLearning, lossFloor, nextLoss, type LearningParams, type LearningRow } from '../src/fedspine/learning.js';
import { SCENARIOS } from './helpers.js';

const c = { localSteps: 20, heterogeneity: 0.5 };

describe('learning model', () => {
  it('the shipped parameter file holds the documented defaults', () => {
    expect(loadLearning(join(SCENARIOS, 'fedspine-learning.json'))).toEqual(DEFAULT_LEARNING);
  });
  it('one participant with the whole data: L1 = F + (L0 - F) exp(-g) (closed form)', () => {
    const p = DEFAULT_LEARNING;
    const g = p.eta * (1 - Math.exp(-20 / p.kappaSteps)) * (8 / (8 + p.rankHalf)) * (1 - p.pruneDamage * 0.25);
    const f = p.lossMin + p.floorPrune * 0.0625 + p.floorHetero * 0.5 * (1 - Math.exp(-2));
    expect(nextLoss(p, c, 2, [{ share: 1, ratio: 0.25, rank: 8 }])).toBeCloseTo(f + (2 - f) * Math.exp(-g), 12);
    expect(lossFloor(p, c, 0.25)).toBeCloseTo(f, 12);
  });
  it('higher rank and lower ratio progress faster; no participant leaves the loss unchanged', () => {
    const p = DEFAULT_LEARNING;
    const at = (ratio: number, rank: number) => nextLoss(p, c, 2, [{ share: 1, ratio, rank }]);
    expect(at(0, 16)).toBeLessThan(at(0, 4));
    expect(at(0, 8)).toBeLessThan(at(0.5, 8));
    expect(nextLoss(p, c, 2, [])).toBe(2);
    expect(nextLoss(p, c, 2, [{ share: 0.5, ratio: 0, rank: 8 }])).toBeGreaterThan(at(0, 8));
    expect(deviceImprovement(p, c, 2, 0, 16)).toBeGreaterThan(deviceImprovement(p, c, 2, 0.5, 16));
  });
  it('a bad parameter file names the field', () => {
    const dir = mkdtempSync(join(tmpdir(), 'fedspine-learn-'));
    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...DEFAULT_LEARNING, pruneDamage: 3 }));
    expect(() => loadLearning(join(dir, 'bad.json'))).toThrow(/pruneDamage.*\[0, 1\]/);
    writeFileSync(join(dir, 'junk.json'), '{ nope');
    expect(() => loadLearning(join(dir, 'junk.json'))).toThrow(InputError);
  });
});

describe('fitting the learning parameters', () => {
  it('recovers planted parameters from logged rounds (least squares)', () => {
    const planted: LearningParams = { lossInit: 3, lossMin: 0.5, eta: 0.15, kappaSteps: 6, rankHalf: 10, pruneDamage: 0.4, floorPrune: 0.8, floorHetero: 0.3, noiseStd: 0 };
    const rng = new Rng(11, 'fit');
    const rows: LearningRow[] = [];
    for (let t = 0; t < 240; t++) {
      const cond = { localSteps: 1 + rng.int(40), heterogeneity: rng.uniform() };
      const parts = Array.from({ length: 1 + rng.int(5) }, () => ({ share: 0.05 + 0.2 * rng.uniform(), ratio: 0.7 * rng.uniform(), rank: 1 + rng.int(64) }));
      const lossBefore = 1 + 2.5 * rng.uniform();
      rows.push({ ...cond, participants: parts, lossBefore, lossAfter: nextLoss(planted, cond, lossBefore, parts) });
    }
    const fit = fitLearning(rows, DEFAULT_LEARNING);
    expect(fit.rmse).toBeLessThan(1e-7);
    for (const k of FITTED) expect(Math.abs(fit.params[k] - planted[k]) / planted[k]).toBeLessThan(1e-3);
  });
  it('too few rows is an InputError', () => {
    expect(() => fitLearning([])).toThrow(InputError);
  });
});

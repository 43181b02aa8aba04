import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../src/core/errors.js';
import { Rng } from '../src/core/rng.js';
import {
  decideExit, defaultProfile, exitAccuracy, exitCorrect, exitProb, exitProbSlope, profileToJson, readProfile, validateProfile,
  type ExitProfile,
} from '../src/dtoee/profile.js';

const small = (): ExitProfile => ({
  format: 'hatsim-exit-profile/1', model: 'tiny', confidence: 'max-softmax', source: 'measured', notes: 'hand',
  thresholds: [0, 0.5, 1],
  stages: [
    { stage: 1, layers: [0, 2], exitProb: [1, 0.6, 0], exitAccuracy: [0.5, 0.7, 0.9], samples: 10 },
    { stage: 2, layers: [2, 4], exitProb: [1, 0.8, 0.2], exitAccuracy: [0.6, 0.8, 1], samples: 10 },
  ],
  finalAccuracy: 0.95, finalLayers: [4, 6],
});

function fieldOf(f: () => unknown): string | undefined {
  try { f(); } catch (e) { if (e instanceof InputError) return e.field; throw e; }
  return 'no error';
}

describe('exit profile validation', () => {
  it('accepts a good profile and round-trips through JSON', () => {
    const p = validateProfile(JSON.parse(profileToJson(small())), 3);
    expect(p).toEqual(small());
  });

  it('rejects a profile not monotone in the threshold, naming the entry', () => {
    const p = small(); p.stages[1].exitProb = [1, 0.5, 0.7];
    expect(fieldOf(() => validateProfile(p))).toBe('stages[1].exitProb[2]');
    expect(() => validateProfile(p)).toThrow(/non-increasing/);
  });

  it('rejects thresholds outside [0, 1], unsorted, or not covering [0, 1]', () => {
    const a = small(); a.thresholds = [0, 1.5, 1];
    expect(fieldOf(() => validateProfile(a))).toBe('thresholds[1]');
    const b = small(); b.thresholds = [0, 0.5, 0.5];
    expect(fieldOf(() => validateProfile(b))).toBe('thresholds[2]');
    const c = small(); c.thresholds = [0.1, 0.5, 1];
    expect(fieldOf(() => validateProfile(c))).toBe('thresholds');
  });

  it('rejects lengths that differ from the grid', () => {
    const p = small(); p.stages[0].exitAccuracy = [0.5, 0.7];
    expect(fieldOf(() => validateProfile(p))).toBe('stages[0].exitAccuracy');
    expect(() => validateProfile(p)).toThrow(/one per threshold \(3\)/);
  });

  it('rejects a missing stage (numbering gap, or fewer exit stages than the split needs)', () => {
    const p = small(); p.stages[1].stage = 3;
    expect(fieldOf(() => validateProfile(p))).toBe('stages[1].stage');
    expect(fieldOf(() => validateProfile(small(), 4))).toBe('stages');
    expect(() => validateProfile(small(), 4)).toThrow(/needs 3/);
  });

  it('rejects exitProb(0) != 1, NaN-like values, bad enums and layer gaps', () => {
    const a = small(); a.stages[0].exitProb = [0.9, 0.6, 0];
    expect(fieldOf(() => validateProfile(a))).toBe('stages[0].exitProb[0]');
    const b = JSON.parse(profileToJson(small())); b.stages[0].exitAccuracy[1] = null;
    expect(fieldOf(() => validateProfile(b))).toBe('stages[0].exitAccuracy[1]');
    const c = small() as unknown as Record<string, unknown>; c.confidence = 'entropy';
    expect(fieldOf(() => validateProfile(c))).toBe('confidence');
    const d = small(); d.stages[1].layers = [3, 4];
    expect(fieldOf(() => validateProfile(d))).toBe('stages[1].layers');
    const e = small(); e.finalAccuracy = 1.2;
    expect(fieldOf(() => validateProfile(e))).toBe('finalAccuracy');
  });

  it('reader: bad JSON and bad fields are InputErrors that name the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dtoee-prof-'));
    const bad = join(dir, 'bad.json'); writeFileSync(bad, '{ nope');
    expect(() => readProfile(bad)).toThrow(InputError);
    const p = small(); p.thresholds = [0, 2, 1];
    const f = join(dir, 'f.json'); writeFileSync(f, JSON.stringify(p));
    expect(() => readProfile(f)).toThrow(new RegExp(`${f.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}.*thresholds\\[1\\]`));
    const ok = join(dir, 'ok.json'); writeFileSync(ok, profileToJson(small()));
    expect(readProfile(ok, 3)).toEqual(small());
  });
});

describe('exit profile interpolation', () => {
  const p = small();
  it('is linear between grid points and exact on them', () => {
    expect(exitProb(p, 1, 0)).toBe(1);
    expect(exitProb(p, 1, 0.5)).toBeCloseTo(0.6, 12);
    expect(exitProb(p, 1, 0.25)).toBeCloseTo(0.8, 12);
    expect(exitProb(p, 1, 0.75)).toBeCloseTo(0.3, 12);
    expect(exitAccuracy(p, 2, 0.75)).toBeCloseTo(0.9, 12);
    expect(exitProb(p, 1, 1)).toBe(0);
    expect(exitProb(p, 1, -1)).toBe(1);
    expect(exitProbSlope(p, 1, 0.25)).toBeCloseTo(-0.8, 12);
    expect(exitProbSlope(p, 1, 0.75)).toBeCloseTo(-1.2, 12);
  });

  it('a threshold of 1 turns the exit off even where a saturating softmax measured confidence 1', () => {
    const q = small(); q.stages[1].exitProb = [1, 0.8, 0.2];
    expect(exitProb(q, 2, 1)).toBe(0);
    expect(exitProb(q, 2, 0.999)).toBeCloseTo(0.2012, 10);
    expect(exitCorrect(q, 2, 1).q).toBe(0);
    expect(decideExit(q, 2, 1, 0)).toBe(false);
  });

  it('exitCorrect derivative matches a finite difference inside a segment', () => {
    for (const tau of [0.1, 0.3, 0.6, 0.9]) {
      const h = 1e-6;
      const fd = (exitCorrect(p, 2, tau + h).q - exitCorrect(p, 2, tau - h).q) / (2 * h);
      expect(exitCorrect(p, 2, tau).dq).toBeCloseTo(fd, 6);
    }
  });

  it('seeded exit draws match the profile within a binomial tolerance', () => {
    const rng = new Rng(7, 'exit');
    const N = 20000; let exits = 0;
    for (let i = 0; i < N; i++) if (decideExit(p, 1, 0.75, rng.uniform())) exits++;
    const pr = 0.3, sd = Math.sqrt(pr * (1 - pr) / N);
    expect(Math.abs(exits / N - pr)).toBeLessThan(4 * sd);
    expect(decideExit(p, 1, 0, 0.999999)).toBe(true);
    expect(decideExit(p, 1, 1, 0)).toBe(false);
  });
});

describe('default profile [assumption]', () => {
  const d = defaultProfile({ stages: 4, layers: 32, model: 'llama-2-7b' });
  it('is a valid profile for the split, marked as an assumption', () => {
    expect(validateProfile(JSON.parse(profileToJson(d)), 4)).toEqual(d);
    expect(d.source).toBe('assumption');
    expect(d.stages.map((s) => s.layers)).toEqual([[0, 8], [8, 16], [16, 24]]);
    expect(d.finalLayers).toEqual([24, 32]);
  });
  it('higher threshold: fewer exits, more accurate exits; deeper stages more accurate and exit more', () => {
    for (const s of d.stages) {
      for (let k = 1; k < d.thresholds.length; k++) {
        expect(s.exitProb[k]).toBeLessThanOrEqual(s.exitProb[k - 1]);
        expect(s.exitAccuracy[k]).toBeGreaterThanOrEqual(s.exitAccuracy[k - 1] - 1e-12);
      }
    }
    for (const tau of [0, 0.3, 0.6, 0.9]) {
      expect(exitAccuracy(d, 2, tau)).toBeGreaterThan(exitAccuracy(d, 1, tau));
      expect(exitProb(d, 3, tau)).toBeGreaterThanOrEqual(exitProb(d, 2, tau));
    }
    expect(d.finalAccuracy).toBeGreaterThan(exitAccuracy(d, 3, 0));
  });
});

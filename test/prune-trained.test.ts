/**
 * Pruning the model trained here (src/prune/trained.ts): its weights as a source, real-text
 * calibration (validation split) and held-out perplexity (test split).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEFAULT_OPTIONS } from '../src/prune/options.js';
import { runPrune } from '../src/prune/run.js';
import { loadTrained, trainedCalibration } from '../src/prune/trained.js';
import { REPO } from './helpers.js';

describe('pruning brown-small (trained here) on real text', () => {
  const src = loadTrained(join(REPO, 'models/brown-small'));
  const cal = trainedCalibration(src, { sequences: 8, heldOut: 4, seqLen: 32 });

  it('reads the trained tensors in the pruner\'s layout and calibrates on real text', () => {
    const l0 = src.layer(0), h = src.dims.hidden;
    expect(l0.q.length).toBe(h * h);
    expect(l0.gate.length).toBe(h * l0.ffn);
    expect(src.embedding().length).toBe(src.dims.vocab * h);
    expect(cal.realText).toBe(true);
    expect(cal.calib.length).toBe(8 * 32);
    expect(cal.heldOut.length).toBe(4 * 32);
  });

  it('held-out perplexity of the unpruned model is far below the vocabulary size, and magnitude pruning at 10 % raises it', () => {
    const r = runPrune(src, cal, { ...DEFAULT_OPTIONS, method: 'magnitude', ratio: 0.1, outDir: mkdtempSync(join(tmpdir(), 'hatsim-prune-trained-')), log: () => undefined });
    expect(r.quality.perplexityBefore).not.toBeNull();
    expect(r.quality.perplexityBefore!).toBeLessThan(src.dims.vocab / 2);
    expect(r.quality.perplexityAfter!).toBeGreaterThanOrEqual(r.quality.perplexityBefore! * 0.999);
    expect(r.achievedRatio).toBeGreaterThan(0.09);
  });
});

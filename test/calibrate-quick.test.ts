/**
 * CI check of the calibration harness: `--quick` on tiny-test end to end
 * (well under 2 minutes), then the fitted model against FRESH measurements
 * (new sessions, new random shapes) with a tolerance derived from the
 * run-to-run noise and held-out error the run measured; the same check must
 * fail for a model whose coefficients are doubled.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCalibration } from '../src/compute/calibration.js';
import { getModel } from '../src/model/catalog.js';
import { absPctErr, predictMs, quantile, scalePieces, type FitPiece } from '../src/calibrate/fit.js';
import { buildPartGraph, PART_IDS } from '../src/calibrate/graph.js';
import { createSession, QUICK_REPS, timeShape } from '../src/calibrate/measure.js';
import { heldOutGrid, runCalibration, type CalibrationRun } from '../src/calibrate/run.js';
import { readSamples } from '../src/calibrate/samples.js';
import { Rng } from '../src/core/rng.js';

const out = mkdtempSync(join(os.tmpdir(), 'hatsim-calib-quick-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));
const model = getModel('tiny-test');

describe('hatsim calibrate --quick on tiny-test', () => {
  let run: CalibrationRun;

  it('runs end to end in well under 2 minutes and writes valid files', async () => {
    const t0 = Date.now();
    run = await runCalibration({ modelId: 'tiny-test', hardwareId: 'ci-test', quick: true, outDir: out, progress: false, log: () => {} });
    const seconds = (Date.now() - t0) / 1000;
    expect(seconds).toBeLessThan(90);
    expect(run.interrupted).toBe(false);
    const file = loadCalibration(run.modelPath!, { hardwareId: 'ci-test', modelId: 'tiny-test' });
    for (const part of PART_IDS) {
      expect(file.components[part]?.source).toBe('measured');
      expect(file.components[part]?.fit?.heldOutSamples).toBeGreaterThan(0);
    }
    expect(file.layerScaling?.map((l) => l.layers)).toEqual([2, 4]);
    expect(file.meta.ortVersion).toMatch(/^\d+\.\d+/);
    const samples = readSamples(run.samplesPath);
    expect(samples.some((s) => s.split === 'test')).toBe(true);
    expect(samples.some((s) => s.seqs > 1 && s.component === 'decoderLayer')).toBe(true);
    expect(samples.some((s) => s.seqs > 1 && s.component !== 'decoderLayer')).toBe(false); // device-only parts: one sequence
    expect(file.components.decoderLayer?.fit?.statistic).toBe('p10');
    expect(readFileSync(run.reportPath!, 'utf8')).toContain('Layer scaling');
  }, 120_000);

  // Fresh ONNX Runtime timings on a shared 2-core VM whose speed drifts: a run can land above its
  // tolerance (31-49 % against 25-28 % was seen, when the calibration and the fresh measurements
  // fell in different speed phases). A retry calibrates again and re-measures from fresh sessions;
  // a wrong model (doubled coefficients, 85-135 %) fails every attempt.
  let attempt = 0;
  it('fits fresh measurements within the noise-derived tolerance, and doubled coefficients fail it', { retry: 2, timeout: 150_000 }, async () => {
    if (attempt++ > 0) {
      rmSync(join(out, 'ci-test'), { recursive: true, force: true });
      run = await runCalibration({ modelId: 'tiny-test', hardwareId: 'ci-test', quick: true, outDir: out, progress: false, log: () => {} });
    }
    const file = loadCalibration(run.modelPath!);
    // Tolerance from what the run itself measured: 3 x the median run-to-run noise over parts,
    // or 1.5 x the median over parts of the run's own held-out p90 error (the tiny model is
    // overhead-bound: its fit error can exceed the noise on a quiet machine), whichever is larger,
    // kept within [25 %, 60 %]. Doubled coefficients give 85-135 % here, so the check still fails
    // for a wrong model.
    const noise = run.parts.map((p) => p.noise.medianPct);
    const heldOut = PART_IDS.map((p) => file.components[p]!.fit!.heldOutP90AbsPctErr!);
    const tolPct = Math.min(60, Math.max(25, 3 * quantile(noise, 0.5), 1.5 * quantile(heldOut, 0.5)));
    const errs: number[] = [];
    const errsDoubled: number[] = [];
    const dir = mkdtempSync(join(out, 'fresh-'));
    const rng = new Rng(99, 'fresh');
    for (const part of PART_IDS) {
      const pieces = file.components[part]!.pieces as FitPiece[];
      const doubled = scalePieces(pieces.map((p) => ({ ...p, c4MsPerSeq: p.c4MsPerSeq ?? 0 })), 2);
      const g = buildPartGraph({ model, part, dir, seed: 4242 });
      const session = await createSession(g.path, { ep: 'cpu', threads: 1 });
      const partErrs: number[] = [];
      const partDoubled: number[] = [];
      for (const s of heldOutGrid(model, part, true, 6, rng)) {
        const t = await timeShape(session, model, s, QUICK_REPS);
        const shape = { tokens: s.tokensPerSeq * s.seqs, ctx: s.ctxPerSeq * s.seqs, seqs: s.seqs };
        const measured = file.components[part]!.fit!.statistic === 'p10' ? t.p10Ms : t.medianMs; // what the model was fitted to
        partErrs.push(absPctErr(predictMs(pieces, shape), measured));
        partDoubled.push(absPctErr(predictMs(doubled, shape), measured));
      }
      await session.release();
      errs.push(...partErrs);
      errsDoubled.push(...partDoubled);
      // Per part, the doubled model must be further from fresh measurements than the fitted one
      // (robust to a uniform drift of the machine's speed below 1.5x); the thresholded check is below.
      expect(quantile(partDoubled, 0.5), `${part}: doubled model must be worse than the fit`).toBeGreaterThan(quantile(partErrs, 0.5));
    }
    const median = quantile(errs, 0.5);
    console.log(`tiny-test quick: fresh median abs err ${median.toFixed(1)} % (tolerance ${tolPct.toFixed(1)} %, noise medians ${noise.map((n) => n.toFixed(1)).join('/')} %, held-out p90s ${heldOut.map((n) => n.toFixed(1)).join('/')} %), doubled ${quantile(errsDoubled, 0.5).toFixed(1)} %`);
    expect(median).toBeLessThanOrEqual(tolPct);
    expect(quantile(errsDoubled, 0.5)).toBeGreaterThan(tolPct);
  });
});

describe('hatsim calibrate: interrupt and resume', () => {
  it('keeps the finished parts when interrupted, and --resume measures only what is missing', async () => {
    const dir = mkdtempSync(join(out, 'resume-'));
    const controller = new AbortController();
    const parts = ['embedding', 'lmHead'];
    // Interrupt as soon as the second part's session is ready: the first part is finished.
    const first = await runCalibration({
      modelId: 'tiny-test', hardwareId: 'ci-resume', quick: true, outDir: dir, progress: false, parts, signal: controller.signal,
      log: (line) => { if (line.startsWith('lmHead: session ready')) controller.abort(); },
    });
    expect(first.interrupted).toBe(true);
    expect(first.modelPath).toBeNull();
    const kept = readSamples(first.samplesPath);
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.every((s) => s.component === 'embedding')).toBe(true); // the interrupted part wrote nothing
    const resumed = await runCalibration({ modelId: 'tiny-test', hardwareId: 'ci-resume', quick: true, outDir: dir, progress: false, parts, resume: true, log: () => {} });
    expect(resumed.interrupted).toBe(false);
    const all = readSamples(resumed.samplesPath);
    // The embedding's points were kept as measured, not measured again; the LM head's were added.
    const key = (s: { component: string; tokens: number; ctx: number; seqs: number; split: string }): string => `${s.component}|${s.tokens}|${s.ctx}|${s.seqs}|${s.split}`;
    const before = new Map(kept.map((s) => [key(s), s.medianMs]));
    for (const s of all.filter((x) => x.component === 'embedding')) expect(s.medianMs).toBe(before.get(key(s)));
    expect(all.filter((s) => s.component === 'embedding')).toHaveLength(kept.length);
    expect(all.some((s) => s.component === 'lmHead')).toBe(true);
    const file = loadCalibration(resumed.modelPath!, { hardwareId: 'ci-resume', modelId: 'tiny-test' });
    expect(Object.keys(file.components).sort()).toEqual(['embedding', 'lmHead']);
  }, 120_000);
});

/**
 * The calibration report (markdown, also printed to the terminal): measured
 * vs fitted per part, fit quality, run-to-run noise, layer-scaling check.
 */
import type { CalibrationFile } from '../compute/calibration.js';
import { absPctErr, kneeText, predictMs, statValue, type FitPiece, type FitStatistic, type Sample } from './fit.js';
import type { LayerScalingResult, PartOutcome } from './run.js';

export interface ReportInput {
  file: CalibrationFile;
  parts: readonly PartOutcome[];
  layerScaling: readonly LayerScalingResult[];
  durationMs: number;
  loadAvg: { start: number; end: number; mean: number };
  quick: boolean;
}

function f(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Math.abs(x) >= 100) return x.toFixed(1);
  return x.toPrecision(digits);
}

function pieceText(p: FitPiece): string {
  const range = p.maxTokens === null ? 'rest' : `tokens <= ${p.maxTokens}`;
  return `${range}: ${f(p.c0Ms)} ms + ${f(p.c1MsPerToken)} ms/token + ${f(p.c2MsPerTokenCtx)} ms/(token*ctx) + ${f(p.c3MsPerCtx)} ms/ctx + ${f(p.c4MsPerSeq)} ms/extra seq + ${f(p.c5MsPerTokenSq)} ms/token^2`;
}

function pointsTable(pieces: readonly FitPiece[], samples: readonly Sample[], statistic: FitStatistic): string[] {
  const lines = [`| tokens | ctx | seqs | measured ${statistic} ms | median (p10-p90) ms | fitted ms | error % |`, '|---:|---:|---:|---:|---:|---:|---:|'];
  const sorted = [...samples].sort((a, b) => a.tokens - b.tokens || a.ctx - b.ctx || a.seqs - b.seqs);
  for (const s of sorted) {
    const pred = predictMs(pieces, s);
    const v = statValue(s, statistic);
    lines.push(`| ${s.tokens} | ${s.ctx} | ${s.seqs} | ${f(v)} | ${f(s.medianMs)} (${f(s.p10Ms)}-${f(s.p90Ms)}) | ${f(pred)} | ${f(((pred - v) / v) * 100, 2)} |`);
  }
  return lines;
}

export function renderReport(input: ReportInput): string {
  const { file, parts, layerScaling } = input;
  const m = file.meta;
  const out: string[] = [];
  out.push(`# Calibration report: ${file.modelId} on ${file.hardwareId}${input.quick ? ' (quick)' : ''}`);
  out.push('');
  out.push(`- created ${m.createdAt} by ${m.tool}; ONNX Runtime ${m.ortVersion ?? '?'}, EP ${m.executionProvider ?? '?'}, threads ${m.threads ?? '?'}`);
  out.push(`- CPU: ${m.cpuModel ?? '?'}; GPU: ${m.gpuModel ?? 'none'}`);
  out.push(`- load average (1 min) start/end/mean: ${f(input.loadAvg.start)}/${f(input.loadAvg.end)}/${f(input.loadAvg.mean)}; duration ${(input.durationMs / 1000).toFixed(0)} s`);
  out.push('');
  out.push('## Fit quality');
  out.push('');
  out.push(`A point's latency is the ${parts[0]?.fit.statistic === 'median' ? 'median' : '10th percentile (p10)'} of its repeats; errors are against that.`);
  out.push('');
  out.push('| part | train pts | R² | held-out pts | held-out median abs err % | p90 % | run-to-run noise median / max % | knee |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const p of parts) {
    const q = p.fit.quality;
    out.push(
      `| ${p.part} | ${q.samples} | ${f(q.r2, 4)} | ${q.heldOutSamples} | ${f(q.heldOutMedianAbsPctErr, 3)} | ${f(q.heldOutP90AbsPctErr, 3)} | ${f(p.noise.medianPct, 2)} / ${f(p.noise.maxPct, 2)} | ${kneeText(p.fit.knee)} |`,
    );
  }
  out.push('');
  out.push('## Layer scaling (L stacked layers vs L x one layer)');
  out.push('');
  if (layerScaling.length === 0) {
    out.push('not measured');
  } else {
    out.push('| layers | tokens | ctx | stacked ms | one layer ms | deviation % |');
    out.push('|---:|---:|---:|---:|---:|---:|');
    for (const l of layerScaling) {
      for (const p of l.points) out.push(`| ${p.layers} | ${p.tokens} | ${p.ctx} | ${f(p.stackedMs)} | ${f(p.singleMs)} | ${f(p.deviationPct, 2)} |`);
      out.push(`| ${l.layers} | | | | **median** | **${f(l.deviationPct, 2)}** |`);
    }
  }
  for (const p of parts) {
    out.push('');
    out.push(`## ${p.part}`);
    out.push('');
    out.push(`Graph: ${p.opsNote}. Session creation ${(p.sessionMs / 1000).toFixed(1)} s.`);
    out.push('');
    for (const piece of p.fit.pieces) out.push(`- ${pieceText(piece)}`);
    out.push('');
    out.push('Held-out points (fresh random shapes, not used by the fit):');
    out.push('');
    out.push(...pointsTable(p.fit.pieces, p.test, p.fit.statistic));
    out.push('');
    const errs = p.train.map((s) => absPctErr(predictMs(p.fit.pieces, s), statValue(s, p.fit.statistic)));
    out.push(`Training points: ${p.train.length}, mean abs err ${f(errs.reduce((a, b) => a + b, 0) / Math.max(1, errs.length), 3)} %.`);
  }
  out.push('');
  out.push(`Notes: ${m.notes ?? ''}`);
  out.push('');
  return out.join('\n');
}

/**
 * samples.csv beside model.json (docs/calibration-format.md):
 *   component,tokens,ctx,seqs,layers,median_ms,p10_ms,p90_ms,reps,split
 * `tokens` and `ctx` are sums over the batch; batches are uniform. Rows are
 * appended one at a time as they are measured (one write each), so an
 * interrupted run leaves a consistent file that --resume continues.
 */
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { InputError } from '../core/errors.js';
import type { Sample } from './fit.js';

export const SAMPLES_HEADER = 'component,tokens,ctx,seqs,layers,median_ms,p10_ms,p90_ms,reps,split';

export function sampleKey(s: Pick<Sample, 'component' | 'tokens' | 'ctx' | 'seqs' | 'layers' | 'split'>): string {
  return `${s.component}|${s.tokens}|${s.ctx}|${s.seqs}|${s.layers}|${s.split}`;
}

function fmt(x: number): string {
  return Number.isInteger(x) ? String(x) : x.toPrecision(6);
}

export function sampleLine(s: Sample): string {
  return [s.component, s.tokens, s.ctx, s.seqs, s.layers, fmt(s.medianMs), fmt(s.p10Ms), fmt(s.p90Ms), s.reps, s.split].join(',');
}

export function readSamples(path: string): Sample[] {
  const text = readFileSync(path, 'utf8');
  const lines = text.split('\n');
  if (lines[0].trim() !== SAMPLES_HEADER) {
    throw new InputError(`${path}: not a samples file (expected header "${SAMPLES_HEADER}")`);
  }
  const out: Sample[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const f = line.split(',');
    // A line cut by a crash mid-write is dropped (it will be measured again).
    if (f.length !== 10 || (f[9] !== 'train' && f[9] !== 'test')) continue;
    const nums = f.slice(1, 9).map(Number);
    if (nums.some((x) => !Number.isFinite(x))) continue;
    out.push({
      component: f[0],
      tokens: nums[0],
      ctx: nums[1],
      seqs: nums[2],
      layers: nums[3],
      medianMs: nums[4],
      p10Ms: nums[5],
      p90Ms: nums[6],
      reps: nums[7],
      split: f[9],
    });
  }
  return out;
}

/** Appending writer; on start either continues (resume) or rewrites the file from scratch. */
export class SamplesWriter {
  readonly done = new Map<string, Sample>();
  /** `keep`: without resume, rows of these components survive (parts not re-measured). */
  constructor(readonly path: string, resume: boolean, keep?: (component: string) => boolean) {
    if ((resume || keep) && existsSync(path)) {
      const rows = readSamples(path).filter((s) => resume || (keep !== undefined && keep(s.component)));
      for (const s of rows) this.done.set(sampleKey(s), s);
      // rewrite cleanly (drops a torn last line), atomically
      writeFileSync(`${path}.tmp`, [SAMPLES_HEADER, ...rows.map(sampleLine)].join('\n') + '\n');
      renameSync(`${path}.tmp`, path);
    } else {
      writeFileSync(`${path}.tmp`, SAMPLES_HEADER + '\n');
      renameSync(`${path}.tmp`, path);
    }
  }
  has(key: string): Sample | undefined {
    return this.done.get(key);
  }
  append(s: Sample): void {
    appendFileSync(this.path, sampleLine(s) + '\n');
    this.done.set(sampleKey(s), s);
  }
  all(): Sample[] {
    return [...this.done.values()];
  }
}

/**
 * The whole pipeline on the shipped brown-small weights, built CLI, in about a minute:
 * load + export (hatsim export-model), calibrate quick on the export, then
 * `hatsim live local scenarios/live-brown-small.yaml --onnx-dir ... --real-acceptance greedy|sampled`
 * (1 cloud + 1 device, the fresh calibration; greedy runs hat and sd). Checks:
 * - greedy: every request's generated tokens equal an offline greedy decode of the full model
 *   (speculative decoding with greedy verification must reproduce it exactly);
 * - the first verification round of each request (context = a real test-split prompt) accepts
 *   per draft position within sampling error (3 standard errors of the difference) of
 *   models/brown-small/acceptance.json, greedy and sampled;
 * - the records' rounds / drafted / accepted agree with the real-acceptance log;
 * - real acceptance with the seeded graphs exits 2.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import type { RealAcceptanceSummary, RealRequestLine } from '../src/live/device-real.js';
import { OnnxLm } from '../src/train/ort.js';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-live-real-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const cli = (args: string[], timeoutMs = 120_000): { status: number | null; out: string } => {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: timeoutMs });
  return { status: r.status, out: r.stdout + r.stderr };
};

interface FileRun { positions: { position: number; reached: number; rate: number }[] }
const file = JSON.parse(readFileSync(join(REPO, 'models/brown-small/acceptance.json'), 'utf8')) as { greedy: FileRun; sampled: FileRun };

/** First-round rate of each position with >= 10 samples within 3 s.e. of the file's. */
function withinSamplingError(sum: RealAcceptanceSummary, run: FileRun, system = 'hat'): string[] {
  const bad: string[] = [];
  const pos = sum.bySystem.find((b) => b.system === system)!.positions;
  expect(pos.length).toBeGreaterThanOrEqual(3);
  for (const p of pos) {
    const f = run.positions[p.position - 1];
    const fr = p.firstRound;
    if (fr.reached < 10) continue;
    const seFile = Math.sqrt((f.rate * (1 - f.rate)) / f.reached);
    const z = Math.abs(fr.rate - f.rate) / Math.sqrt(fr.stdErr ** 2 + seFile ** 2 + 1e-12);
    process.stdout.write(`${system} ${sum.mode} position ${p.position}: first rounds ${fr.rate.toFixed(3)} (${fr.accepted}/${fr.reached}), file ${f.rate.toFixed(3)} (${f.reached}), z ${z.toFixed(2)}; all rounds ${p.rate.toFixed(3)} (${p.reached})\n`);
    if (z > 3) bad.push(`${system} ${sum.mode} position ${p.position}: ${fr.rate.toFixed(3)} vs ${f.rate.toFixed(3)} (z ${z.toFixed(2)})`);
  }
  return bad;
}

describe('live --real-acceptance on the shipped brown-small weights', () => {
  it('export, calibrate quick, live greedy + sampled: greedy tokens = offline greedy decode, acceptance within sampling error of acceptance.json', { retry: 1 }, async () => {
    const t0 = Date.now();
    const onnx = join(tmp, 'onnx'), cal = join(tmp, 'cal');
    let r = cli(['export-model', '--dir', 'models/brown-small', '--out', onnx]);
    expect(r.status, r.out).toBe(0);
    r = cli(['calibrate', '--model', 'brown-small', '--hardware-id', 'ci-cpu-2core', '--quick', '--onnx-dir', onnx, '--out', cal]);
    expect(r.status, r.out).toBe(0);
    const common = ['live', 'local', 'scenarios/live-brown-small.yaml', '--onnx-dir', onnx, '--set', `calibrationDir=${cal}`,
      '--set', 'workload.requestsPerDevice=30', '--set', 'workload.outputTokens.tokens=8'];

    // Refused: real acceptance on the seeded graphs.
    const bad = cli(['live', 'local', 'scenarios/live-brown-small.yaml', '--real-acceptance', 'greedy', '--out', join(tmp, 'bad')]);
    expect(bad.status, bad.out).toBe(2);
    expect(bad.out).toMatch(/seeded random weights/);

    const greedyOut = join(tmp, 'greedy');
    r = cli([...common, '--real-acceptance', 'greedy', '--set', 'systems=[hat,sd]', '--out', greedyOut]);
    expect(r.status, r.out).toBe(0);
    const run = JSON.parse(readFileSync(join(greedyOut, 'run.json'), 'utf8')) as { errors: string[]; realAcceptance: { mode: string } };
    expect(run.errors).toEqual([]);
    expect(run.realAcceptance.mode).toBe('greedy');
    const lines = readFileSync(join(greedyOut, 'real-acceptance-device-0.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as RealRequestLine);
    expect(lines.filter((l) => l.system === 'hat').length).toBe(30);
    expect(lines.filter((l) => l.system === 'sd').length).toBe(30);

    // Offline greedy decode of the full model from the same prompts.
    const m = getModel('brown-small');
    const lm = await OnnxLm.load(m, onnx);
    const V = m.vocabSize;
    const argmax = (l: Float32Array): number => { let b = 0; for (let i = 1; i < l.length; i++) if (l[i] > l[b]) b = i; return b; };
    for (const l of lines) {
      expect(l.prompt.length).toBe(64);
      expect(l.generated.length).toBe(8);
      lm.reset();
      let lg = await lm.step(l.prompt);
      const ref: number[] = [];
      let t = argmax(lg.subarray(lg.length - V));
      while (ref.length < l.generated.length) { ref.push(t); lg = await lm.step([t]); t = argmax(lg); }
      expect(l.generated, `request ${l.request}: ${JSON.stringify(l.text)}`).toEqual(ref);
    }
    // Records agree with the real rounds.
    const req = readFileSync(join(greedyOut, 'requests.csv'), 'utf8').trim().split('\n');
    const cols = req[0].split(',');
    const ix = (c: string): number => cols.indexOf(c);
    const gsum = JSON.parse(readFileSync(join(greedyOut, 'real-acceptance.json'), 'utf8')) as RealAcceptanceSummary;
    const badGreedy: string[] = [];
    for (const system of ['hat', 'sd']) {
      let drafted = 0, accepted = 0;
      for (const row of req.slice(1)) {
        const v = row.split(',');
        if (v[ix('system')] !== system) continue;
        drafted += Number(v[ix('drafted_tokens')]); accepted += Number(v[ix('accepted_tokens')]);
      }
      const b = gsum.bySystem.find((x) => x.system === system)!;
      expect(b.drafted).toBe(drafted);
      expect(b.accepted).toBe(accepted);
      expect(accepted).toBeGreaterThan(0);
      expect(accepted).toBeLessThan(drafted);
      badGreedy.push(...withinSamplingError(gsum, file.greedy, system));
    }

    const sampledOut = join(tmp, 'sampled');
    r = cli([...common, '--real-acceptance', 'sampled', '--temperature', '1', '--set', 'policies.hat.acceptanceFile.mode=sampled', '--out', sampledOut]);
    expect(r.status, r.out).toBe(0);
    const ssum = JSON.parse(readFileSync(join(sampledOut, 'real-acceptance.json'), 'utf8')) as RealAcceptanceSummary;
    expect(ssum.mode).toBe('sampled');
    const badSampled = withinSamplingError(ssum, file.sampled);
    const wallS = (Date.now() - t0) / 1000;
    process.stdout.write(`pipeline wall ${wallS.toFixed(1)} s, load ${os.loadavg().map((x) => x.toFixed(1)).join(' ')}\n`);
    expect([...badGreedy, ...badSampled]).toEqual([]);
    expect(wallS).toBeLessThan(150);
  });
});

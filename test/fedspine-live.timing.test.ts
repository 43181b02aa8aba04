/**
 * A live federated run (hatsim validate on scenarios/fedspine-live-small.yaml): a server and
 * 4 device processes fine-tuning brown-small with LoRA over shaped links (6 rounds of 8 local
 * steps), validated against the simulator replaying the same configurations with the shipped
 * training calibration (held out, no flags: the links dominate the round, so the machine's
 * load moves the round time by less than the gate). The real validation loss must fall by a
 * margin well above what a run that does not learn shows (README "FedSpine"). Then the same
 * live run against a simulator whose links are half as fast must fail. One retry.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'csv-parse/sync';
import { loadFedSpineScenario } from '../src/fedspine/scenario.js';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const SCEN = join(REPO, 'scenarios/fedspine-live-small.yaml');
const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-fed-live-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Row { metric: string; live: string; sim: string; error_pct: string; within: string; gated: string; variant: string }

function validate(out: string, extra: string[]): { status: number | null; rows: Row[]; stdout: string } {
  const r = spawnSync(process.execPath, [CLI, 'validate', SCEN, '--out', out, ...extra], { encoding: 'utf8', timeout: 300_000 });
  let rows: Row[] = [];
  try { rows = parse(readFileSync(join(out, 'validation.csv'), 'utf8'), { columns: true }) as Row[]; } catch { /* no file: rows stay empty */ }
  return { status: r.status, rows, stdout: `${r.stdout}\n${r.stderr}` };
}

describe('live FedSpine run vs the simulator', () => {
  it('4 device processes complete their rounds, the loss falls, round times within 10 %; a wrong link fails', () => {
    let out = join(tmp, 'a');
    let v = validate(out, []);
    if (v.status !== 0) { out = join(tmp, 'b'); v = validate(out, []); }
    expect(v.status, v.stdout).toBe(0);
    const live = parse(readFileSync(join(out, 'live', 'rounds.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    const info = JSON.parse(readFileSync(join(out, 'live', 'run.json'), 'utf8')) as { learning: { lossInit: number }; devices: unknown[]; errors: string[] };
    expect(info.devices.length).toBe(4);
    expect(info.errors).toEqual([]);
    const rounds = Math.max(...live.map((r) => Number(r.round)));
    expect(rounds).toBe(6);
    expect(live.filter((r) => r.status === 'ok').length).toBe(4 * rounds);
    // Real loss: the data-weighted validation loss of the global model (32 windows x 32 tokens of
    // each device's held-out category documents) falls by more than LOSS_MARGIN. Measured: 5.2318
    // -> 5.2273 over the 6 rounds, monotone, the same in three runs (README). A run that does not
    // learn stays at its initial loss exactly (lr 0: B stays 0, the global model is the base);
    // the paired standard error of the change over these windows is 0.0015 (a 0.0059 change,
    // measured offline with the same trainer and data), so the margin is 2 standard errors and
    // the measured fall 3.
    const LOSS_MARGIN = 0.003;
    const sizes = [1000, 1500, 800, 1200];
    const weighted = (t: number) => live.filter((r) => Number(r.round) === t).reduce((s, r, i) => s + Number(r.loss) * sizes[i], 0) / sizes.reduce((a, b) => a + b, 0);
    expect(weighted(rounds), `final ${weighted(rounds)} vs initial ${info.learning.lossInit}`).toBeLessThan(info.learning.lossInit - LOSS_MARGIN);
    expect(weighted(rounds)).toBeLessThan(weighted(1));
    const row = (rows: Row[], m: string) => rows.find((r) => r.metric === m && r.variant === 'calibrated')!;
    for (const m of ['round_s', 'download_s', 'upload_s']) expect(Math.abs(Number(row(v.rows, m).error_pct)), m).toBeLessThanOrEqual(10);
    // The same live run against links at half their rates: download and upload double.
    const groups = (loadFedSpineScenario(SCEN).parsed.devices);
    const half = groups.flatMap((g, i) => ['--sim-set', `devices[${i}].link.uplinkMbps=${g.link.uplinkMbps / 2}`, '--sim-set', `devices[${i}].link.downlinkMbps=${g.link.downlinkMbps / 2}`]);
    const w = validate(join(tmp, 'wrong'), ['--live-dir', join(out, 'live'), ...half]);
    expect(w.status, w.stdout).toBe(1);
    expect(Number(row(w.rows, 'round_s').error_pct)).toBeGreaterThan(10);
  }, 660_000);
});

describe('live FedSpine server under hostile frames', () => {
  it('drops every bad frame with a logged reason and completes its rounds', async () => {
    const { spawn } = await import('node:child_process');
    const WebSocket = (await import('ws')).default;
    const { encodeFrame, makeFrame, FrameType, Dtype, jsonPayload } = await import('../src/live/wire.js');
    const out = join(tmp, 'hostile');
    const child = spawn(process.execPath, [CLI, 'live', 'fedspine', SCEN, '--out', out, '--set', 'rounds.max=2'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no port: ${log}`)), 120_000);
      child.stderr.on('data', (c: Buffer) => {
        log += c.toString();
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
        if (m) { clearTimeout(t); resolve(Number(m[1])); }
      });
    });
    const attack = async (frames: Uint8Array[]): Promise<void> => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`);
      await new Promise<void>((r, j) => { ws.once('open', () => r()); ws.once('error', j); });
      for (const f of frames) ws.send(f);
      await new Promise((r) => setTimeout(r, 300));
      ws.terminate();
    };
    await attack([new Uint8Array([1, 2, 3])]); // not a frame
    await attack([encodeFrame(makeFrame(FrameType.fedUpdate, { dtype: Dtype.fp32 }))]); // an update before hello
    await attack([encodeFrame(makeFrame(FrameType.fedHello, { dtype: Dtype.utf8, payload: jsonPayload({ device: 9 }) }))]); // no such device
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, log).toBe(0);
    const info = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { errors: string[] };
    expect(info.errors.length).toBe(3);
    expect(info.errors.join('\n')).toMatch(/too-short/);
    expect(info.errors.join('\n')).toMatch(/expected fedHello first/);
    expect(info.errors.join('\n')).toMatch(/device 9 is not 0\.\.3/);
    const rows = parse(readFileSync(join(out, 'rounds.csv'), 'utf8'), { columns: true }) as Record<string, string>[];
    expect(rows.filter((r) => r.status === 'ok').length).toBe(8);
  }, 240_000);
});

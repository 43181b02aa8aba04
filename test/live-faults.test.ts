/**
 * Live runner faults against a real cloud server (built CLI, 127.0.0.1, tiny
 * model): malformed / oversized / unauthenticated messages, a device that
 * disconnects mid-request, a server restart, clean SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Dtype, FrameType, Work, decodeFrame, encodeFrame, jsonPayload, makeFrame, tokenHash, type Frame } from '../src/live/wire.js';

const REPO = resolve(__dirname, '..');
const CLI = join(REPO, 'dist/src/cli/main.js');
const SCENARIO = join(REPO, 'scenarios/live-tiny.yaml');
const tmp = mkdtempSync(join(os.tmpdir(), 'hatsim-live-faults-'));
const procs = new Set<ChildProcess>();
afterAll(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

interface Proc { child: ChildProcess; output: () => string; exited: Promise<number> }

function start(args: string[]): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  procs.add(child);
  let out = '';
  child.stdout!.on('data', (c: Buffer) => { out += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { out += c.toString(); });
  const exited = new Promise<number>((res) => child.on('exit', (code) => { procs.delete(child); res(code ?? 128); }));
  return { child, output: () => out, exited };
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function startCloud(extra: string[], listen = '127.0.0.1:0'): Promise<Proc & { port: number }> {
  const p = start(['live', 'cloud', '--scenario', SCENARIO, '--listen', listen, ...extra]);
  await until(() => /listening on [\d.]+:\d+/.test(p.output()) || p.child.exitCode !== null, 60_000, 'cloud listening');
  const m = /listening on [\d.]+:(\d+)/.exec(p.output());
  if (!m) throw new Error(`cloud did not start: ${p.output()}`);
  return { ...p, port: Number(m[1]) };
}

async function stop(p: Proc): Promise<number> {
  p.child.kill('SIGTERM');
  return p.exited;
}

interface Raw { ws: WebSocket; frames: Frame[]; closed: Promise<number> }

async function raw(port: number): Promise<Raw> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}`);
  const frames: Frame[] = [];
  ws.on('message', (d: Buffer) => frames.push(decodeFrame(new Uint8Array(d))));
  const closed = new Promise<number>((res) => ws.on('close', (code) => res(code)));
  await new Promise<void>((res, rej) => { ws.once('open', () => res()); ws.once('error', rej); });
  return { ws, frames, closed };
}

const errorText = (f: Frame | undefined): string => (f && f.type === FrameType.error ? new TextDecoder().decode(f.payload) : '');
const hello = (device: number, system: string, index: number, token = '') =>
  encodeFrame(makeFrame(FrameType.hello, { deviceId: device, payload: jsonPayload({ system, systemIndex: index, tokenSha256: token }) }));

async function pingOk(port: number): Promise<boolean> {
  const c = await raw(port);
  c.ws.send(encodeFrame(makeFrame(FrameType.ping, { seq: 5 })));
  await until(() => c.frames.length > 0, 5000, 'pong');
  c.ws.close();
  return c.frames[0].type === FrameType.pong && c.frames[0].seq === 5;
}

const ONE_DEVICE = ['--set', 'systems=[ushape]', '--set', 'devices.0.count=1'];

describe('live cloud server faults', () => {
  it('malformed and unknown frames get an error frame and a closed connection; other connections keep working', async () => {
    const cloud = await startCloud(ONE_DEVICE);
    const a = await raw(cloud.port);
    a.ws.send(Buffer.from('this is not a frame at all, just bytes............................................'));
    expect(await a.closed).toBe(1008);
    expect(errorText(a.frames[0])).toMatch(/^bad-magic/);
    const b = await raw(cloud.port);
    const unknown = encodeFrame(makeFrame(FrameType.ping, {}));
    unknown.writeUInt8(77, 5);
    b.ws.send(unknown);
    expect(await b.closed).toBe(1008);
    expect(errorText(b.frames[0])).toMatch(/^bad-type/);
    const c = await raw(cloud.port); // a request before hello is out of protocol
    c.ws.send(encodeFrame(makeFrame(FrameType.request, { work: Work.middle, tokens: 1, dtype: Dtype.fp16, payloadTokens: 1, payload: new Uint8Array(512) })));
    expect(await c.closed).toBe(1008);
    expect(errorText(c.frames[0])).toMatch(/^bad-state/);
    const d = await raw(cloud.port); // wrong payload shape after a good hello
    d.ws.send(hello(0, 'ushape', 0));
    await until(() => d.frames.length > 0, 5000, 'hello-ack');
    expect(d.frames[0].type).toBe(FrameType.helloAck);
    d.ws.send(encodeFrame(makeFrame(FrameType.request, { work: Work.middle, tokens: 2, dtype: Dtype.fp16, payloadTokens: 2, payload: new Uint8Array(100) })));
    expect(await d.closed).toBe(1008);
    expect(errorText(d.frames[1])).toMatch(/^bad-shape/);
    expect(await pingOk(cloud.port)).toBe(true);
    expect(await stop(cloud)).toBe(0);
    expect(cloud.output()).toMatch(/rejected: .*magic/);
  });

  it('rejects an oversized frame with an error frame', async () => {
    const cloud = await startCloud([...ONE_DEVICE, '--max-frame-mb', '0.01']);
    const a = await raw(cloud.port);
    a.ws.send(encodeFrame(makeFrame(FrameType.request, { work: Work.middle, tokens: 40, dtype: Dtype.fp16, payloadTokens: 40, payload: new Uint8Array(40 * 512) })));
    expect(await a.closed).toBe(1008);
    expect(errorText(a.frames[0])).toMatch(/^too-large/);
    expect(await pingOk(cloud.port)).toBe(true);
    expect(await stop(cloud)).toBe(0);
  });

  it('rejects a hello without the right shared-secret token', async () => {
    const cloud = await startCloud([...ONE_DEVICE, '--token', 's3cret']);
    const a = await raw(cloud.port);
    a.ws.send(hello(0, 'ushape', 0, tokenHash('wrong')));
    expect(await a.closed).toBe(1008);
    expect(errorText(a.frames[0])).toMatch(/^bad-auth/);
    const b = await raw(cloud.port);
    b.ws.send(hello(0, 'ushape', 0, tokenHash('s3cret')));
    await until(() => b.frames.length > 0, 5000, 'hello-ack');
    expect(b.frames[0].type).toBe(FrameType.helloAck);
    b.ws.close();
    expect(await stop(cloud)).toBe(0);
  });

  it('a device that disconnects mid-request frees its server state; the other device still finishes', async () => {
    const out = join(tmp, 'disconnect');
    const set = ['--set', 'systems=[ushape]', '--set', 'workload.requestsPerDevice=2'];
    const cloud = await startCloud(set);
    const a = await raw(cloud.port);
    a.ws.send(hello(0, 'ushape', 0)); // device 0 joins by hand
    const dev1 = start(['live', 'device', '--scenario', SCENARIO, ...set, '--server', `127.0.0.1:${cloud.port}`, '--device', '1', '--out', out]);
    await until(() => a.frames.some((f) => f.type === FrameType.helloAck), 60_000, 'barrier');
    // a 64-token prefill chunk, then gone before the reply
    a.ws.send(encodeFrame(makeFrame(FrameType.request, { deviceId: 0, requestId: 0, work: Work.middle, tokens: 64, dtype: Dtype.fp16, payloadTokens: 64, u0: 64 * 512, payload: new Uint8Array(64 * 512) })));
    a.ws.terminate();
    expect(await dev1.exited).toBe(0);
    await until(() => /device 0 disconnected; dropped \d+ queued jobs, released 1 requests/.test(cloud.output()), 5000, 'release log');
    const lines = readFileSync(join(out, 'device-1.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { kind: string });
    expect(lines.filter((l) => l.kind === 'record')).toHaveLength(2);
    expect(await stop(cloud)).toBe(0);
  });

  it('a device retries with backoff when the server restarts; later requests succeed', async () => {
    const out = join(tmp, 'restart');
    const set = [...ONE_DEVICE, '--set', 'workload.requestsPerDevice=4', '--set', 'workload.arrival.thinkTimeS=1.5'];
    const cloud1 = await startCloud(set);
    const port = cloud1.port;
    const dev = start(['live', 'device', '--scenario', SCENARIO, ...set, '--server', `127.0.0.1:${port}`, '--device', '0', '--out', out]);
    const records = (): { kind: string; record?: { request: number } }[] =>
      existsSync(join(out, 'device-0.jsonl')) ? readFileSync(join(out, 'device-0.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { kind: string }) : [];
    await until(() => records().some((l) => l.kind === 'record'), 60_000, 'first record');
    expect(await stop(cloud1)).toBe(0); // clean shutdown on SIGTERM
    await new Promise((r) => setTimeout(r, 400));
    const cloud2 = await startCloud(set, `127.0.0.1:${port}`);
    expect(await dev.exited).toBe(0);
    const ls = records();
    const done = ls.filter((l) => l.kind === 'record').map((l) => l.record!.request);
    const unfinished = ls.filter((l) => l.kind === 'unfinished').length;
    expect(done.length + unfinished).toBe(4);
    expect(done).toContain(3); // the last request ran against the restarted server
    expect(done.length).toBeGreaterThanOrEqual(2);
    expect(dev.output()).toMatch(/reconnected/);
    expect(await stop(cloud2)).toBe(0);
  });
});

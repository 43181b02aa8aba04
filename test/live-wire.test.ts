/**
 * Live runner, pure parts: wire frames (round trip, rejections) and the
 * user-space shaper's arithmetic against the simulator's network model.
 */
import { describe, expect, it } from 'vitest';
import { Engine, type Handler } from '../src/core/engine.js';
import { RngStreams } from '../src/core/rng.js';
import { Network } from '../src/network/network.js';
import { LinkModel, ShapedSender, type Clock } from '../src/live/shaper.js';
import {
  DEFAULT_MAX_FRAME_BYTES, Dtype, Flag, FrameType, HEADER_BYTES, MAGIC, WIRE_VERSION, WireError, Work, checkShape, decodeFrame,
  encodeFrame, fromFp16, makeFrame, toFp16, tokenHash,
} from '../src/live/wire.js';
import { compareSummaries, verdict } from '../src/live/validate.js';
import type { SummaryRecord } from '../src/results/types.js';

const H = 256;

function code(fn: () => void): string {
  try { fn(); } catch (e) { if (e instanceof WireError) return e.code; throw e; }
  return 'no error';
}

describe('wire frames', () => {
  it('round-trips every header field and the payload', () => {
    const payload = new Uint8Array(3 * H * 2).map((_, i) => i & 0xff);
    const f = makeFrame(FrameType.request, {
      flags: Flag.chained, deviceId: 7, requestId: 123456, seq: 42, work: Work.middle, dtype: Dtype.fp16,
      tokens: 3, ctx: 900, logits: 0, payloadTokens: 3, f0: 1.5, f1: 2.25, f2: 20.125, u0: 1536, u1: 9, payload,
    });
    const buf = encodeFrame(f);
    expect(buf.byteLength).toBe(HEADER_BYTES + payload.byteLength);
    expect(buf.readUInt32LE(0)).toBe(MAGIC);
    expect(buf.subarray(0, 4).toString('latin1')).toBe('HSIM');
    const g = decodeFrame(buf);
    const { payload: p2, ...rest } = g;
    const { payload: _p, ...want } = f;
    expect(rest).toEqual(want);
    expect(Buffer.from(p2).equals(Buffer.from(payload))).toBe(true);
    expect(() => checkShape(g, H)).not.toThrow();
  });

  it('rejects a malformed header, unknown type or version, wrong length, oversized frames', () => {
    const good = encodeFrame(makeFrame(FrameType.hello, {}));
    expect(code(() => decodeFrame(new Uint8Array(10)))).toBe('too-short');
    const badMagic = Buffer.from(good); badMagic.write('XXXX', 0, 'latin1');
    expect(code(() => decodeFrame(badMagic))).toBe('bad-magic');
    const badVersion = Buffer.from(good); badVersion.writeUInt8(WIRE_VERSION + 1, 4);
    expect(code(() => decodeFrame(badVersion))).toBe('bad-version');
    const badType = Buffer.from(good); badType.writeUInt8(99, 5);
    expect(code(() => decodeFrame(badType))).toBe('bad-type');
    const badLen = Buffer.from(good); badLen.writeUInt32LE(5, 36);
    expect(code(() => decodeFrame(badLen))).toBe('bad-length');
    const big = encodeFrame(makeFrame(FrameType.request, { payload: new Uint8Array(2000) }));
    expect(code(() => decodeFrame(big, 1024))).toBe('too-large');
    expect(code(() => decodeFrame(good, DEFAULT_MAX_FRAME_BYTES))).toBe('no error');
  });

  it('checks payload shapes: hidden rows x hidden x dtype, ids x 4, rows <= tokens', () => {
    const req = (fields: Parameters<typeof makeFrame>[1]) => decodeFrame(encodeFrame(makeFrame(FrameType.request, { work: Work.middle, tokens: 4, ...fields })));
    expect(code(() => checkShape(req({ dtype: Dtype.fp16, payloadTokens: 4, payload: new Uint8Array(4 * H * 2) }), H))).toBe('no error');
    expect(code(() => checkShape(req({ dtype: Dtype.fp16, payloadTokens: 4, payload: new Uint8Array(4 * H * 2 - 2) }), H))).toBe('bad-shape');
    expect(code(() => checkShape(req({ dtype: Dtype.fp32, payloadTokens: 4, payload: new Uint8Array(4 * H * 2) }), H))).toBe('bad-shape');
    expect(code(() => checkShape(req({ dtype: Dtype.fp16, payloadTokens: 3, payload: new Uint8Array(3 * H * 2) }), H))).toBe('bad-shape'); // middle needs every position
    expect(code(() => checkShape(req({ work: Work.full, dtype: Dtype.int32, payloadTokens: 3, payload: new Uint8Array(12) }), H))).toBe('no error'); // sd: g ids for g+1 positions
    expect(code(() => checkShape(req({ work: Work.full, dtype: Dtype.int32, payloadTokens: 3, payload: new Uint8Array(13) }), H))).toBe('bad-shape');
    expect(code(() => checkShape(req({ work: Work.full, dtype: Dtype.int32, payloadTokens: 5, payload: new Uint8Array(20) }), H))).toBe('bad-shape');
    expect(code(() => checkShape(req({ work: 0 }), H))).toBe('bad-shape');
  });

  it('fp16 conversion round-trips hidden-state values within fp16 precision', () => {
    const x = Float32Array.from([0, 1, -1, 0.5, 3.14159, -65504, 1e-3, 123.456]);
    const y = fromFp16(toFp16(x));
    for (let i = 0; i < x.length; i++) expect(Math.abs(y[i] - x[i])).toBeLessThanOrEqual(Math.abs(x[i]) * 1e-3 + 1e-6);
    expect(toFp16(Float32Array.of(1))[0]).toBe(0x3c00);
  });

  it('hashes the shared secret (hello never carries the secret)', () => {
    expect(tokenHash('s3cret')).toMatch(/^[0-9a-f]{64}$/);
    expect(tokenHash('s3cret')).not.toBe(tokenHash('other'));
  });
});

/** Delivery times (ms) of messages through the simulator's Network, one device, one direction. */
function simDeliveries(sends: { atMs: number; bytes: number }[], link: { mbps: number; latencyMs: number; jitterMs: number }, seed: number): number[] {
  const engine = new Engine(64);
  const streams = new RngStreams(seed);
  const net = new Network(engine, [{ link: { uplinkMbps: link.mbps, downlinkMbps: link.mbps, latencyMs: link.latencyMs, jitterMs: link.jitterMs }, via: [] }], [], (n) => streams.get(n));
  const out: number[] = [];
  const onDelivered: Handler = { fire: (e) => { out.push(e.nowS * 1000); } };
  const starter: Handler = { fire: (_e, tag) => net.send(0, 'up', sends[tag].bytes, onDelivered, 0) };
  sends.forEach((s, i) => engine.schedule(s.atMs / 1000, starter, i));
  engine.run(1e6);
  return out;
}

describe('link shaper', () => {
  const sends = [
    { atMs: 0, bytes: 64_000 }, { atMs: 1, bytes: 600 }, { atMs: 2, bytes: 600 }, { atMs: 40, bytes: 10_000 },
    { atMs: 41, bytes: 64 }, { atMs: 200, bytes: 1_000_000 }, { atMs: 200.5, bytes: 64 },
  ];

  it('serialises FIFO at the link rate and adds latency after the last byte, like the simulator', () => {
    const link = { mbps: 20, latencyMs: 15, jitterMs: 0 };
    const m = new LinkModel(link, null);
    const live = sends.map((s) => m.schedule(s.atMs, s.bytes).deliverMs);
    const sim = simDeliveries(sends, link, 1);
    live.forEach((t, i) => expect(t).toBeCloseTo(sim[i], 6));
    // closed form for the first two: 64 kB at 20 Mbit/s = 25.6 ms, then 600 B queued behind it
    expect(live[0]).toBeCloseTo(25.6 + 15, 9);
    expect(live[1]).toBeCloseTo(25.6 + 0.24 + 15, 9);
  });

  it('with jitter: the same seeded draws as the simulator and never reordering', () => {
    const link = { mbps: 50, latencyMs: 10, jitterMs: 8 };
    const streams = new RngStreams(5);
    const m = new LinkModel(link, streams.get('net/0/jitter/up'));
    const live = sends.map((s) => m.schedule(s.atMs, s.bytes).deliverMs);
    const sim = simDeliveries(sends, link, 5);
    live.forEach((t, i) => expect(t).toBeCloseTo(sim[i], 6));
    for (let i = 1; i < live.length; i++) expect(live[i]).toBeGreaterThanOrEqual(live[i - 1]);
  });

  it('releases held frames in order at their delivery times (fake clock)', async () => {
    let now = 0;
    const clock: Clock = { nowMs: () => now };
    const sender = new ShapedSender(new LinkModel({ mbps: 8, latencyMs: 5, jitterMs: 0 }, null), clock);
    const written: string[] = [];
    const t1 = sender.send(1000, () => written.push('a')); // 1 ms tx + 5 ms
    sender.sendUnshaped(() => written.push('ctl')); // never overtakes 'a'
    expect(t1.deliverMs).toBeCloseTo(6, 9);
    expect(written).toEqual([]);
    now = 6.01;
    await new Promise((r) => setTimeout(r, 10));
    expect(written).toEqual(['a', 'ctl']);
    sender.close();
  });
});

describe('validation statistic', () => {
  const row = (system: string, ttft: number, tbt: number): SummaryRecord => ({
    system: system as SummaryRecord['system'], requests: 1, unfinished: 0, ttft_mean_ms: ttft, ttft_p50_ms: ttft, ttft_p99_ms: ttft,
    tbt_mean_ms: tbt, tbt_p50_ms: tbt, tbt_p99_ms: tbt, e2e_mean_ms: 0, throughput_tok_s: 0, bytes_up_per_request: 100,
    bytes_down_per_request: 100, raw_token_bytes_up: 0, hidden_bytes_up: 0, cloud_queue_mean_ms: 0, gpu_util_mean: 0,
    acceptance_rate: 0, tokens_per_round: 0, latency_source: 'x',
  });
  it('thresholds the median over systems of |error| of mean TTFT and of mean TBT', () => {
    const live = [row('cloud', 100, 10), row('ushape', 100, 10), row('hat', 100, 10)];
    const sim = [row('cloud', 150, 10.5), row('ushape', 95, 11), row('hat', 108, 9)];
    const rows = compareSummaries(live, sim);
    expect(rows.find((r) => r.system === 'cloud' && r.metric === 'ttft_mean_ms')!.error_pct).toBeCloseTo(50, 9);
    const v = verdict(rows, 10);
    expect(v.medianAbsErrorPct.ttft_mean_ms).toBeCloseTo(8, 9); // |50|, |-5|, |8| -> 8
    expect(v.medianAbsErrorPct.tbt_mean_ms).toBeCloseTo(10, 9); // 5, 10, 10
    expect(v.pass).toBe(true);
    expect(verdict(rows, 7.9).pass).toBe(false);
  });
});

/**
 * FedSpine's federated frames (live/fedwire.ts) and aggregation over the wire:
 * exact round trips, every malformed message refused with a WireError (the
 * receivers drop it with a logged reason), and heterogeneous-rank updates
 * that crossed the wire aggregate to the hand-computed result.
 */
import { describe, expect, it } from 'vitest';
import { getModel } from '../src/model/catalog.js';
import { aggregateLora, type LoraFactors } from '../src/fedspine/aggregate.js';
import { loraParams, pruneStructure } from '../src/fedspine/cost.js';
import {
  decodeRound, decodeUpdate, encodeRound, encodeUpdate, fromDeviceLayout, initGlobalLora, loraElements, loraMatrices, toDeviceLayout,
  type LoraMatrix, type UpdateInfo,
} from '../src/live/fedwire.js';
import { Dtype, FrameType, WireError, decodeFrame, encodeFrame, makeFrame, type Frame } from '../src/live/wire.js';

const model = getModel('brown-small');
const mats = loraMatrices(model, ['q', 'v']);
const lim = { mats, rankMax: 16 };

function wireTrip(f: Frame): Frame {
  const buf = encodeFrame(f);
  return decodeFrame(new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
}

function code(fn: () => unknown): string {
  try { fn(); } catch (e) { if (e instanceof WireError) return e.code; throw e; }
  return 'no error';
}

const upd = (round: number, rank: number): UpdateInfo => ({ round, rank, ratioAfter: 0, recvEpochMs: 1e12, handedEpochMs: 1e12 + 500, trainMs: 480, stepMs: [160, 160, 160], losses: [5.2, 5.1, 5.0] });

describe('FedSpine frames', () => {
  it('lists the adapted matrices of brown-small with their dims; the element count is cost.ts loraParams', () => {
    expect(mats.length).toBe(model.numLayers * 2);
    expect(mats[0]).toEqual({ name: 'layers.0.attn.q.weight', dIn: 128, dOut: 128 });
    expect(mats[1]).toEqual({ name: 'layers.0.attn.v.weight', dIn: 128, dOut: 64 });
    for (const r of [1, 5, 16]) expect(loraElements(mats, r)).toBe(loraParams(model, pruneStructure(model, 0), r, ['q', 'v']));
  });

  it('round-trips a round (fp32 exactly) and an update (fp16 to half precision)', () => {
    const g = initGlobalLora(mats, 16, 7);
    const slice = toDeviceLayout(g, 5);
    const f = wireTrip(encodeRound(2, { round: 3, ratio: 0, rank: 5, steps: 4, firstStep: 8 }, slice, mats, Dtype.fp32));
    expect(f.type).toBe(FrameType.fedRound);
    const r = decodeRound(f, lim);
    expect(r.info).toEqual({ round: 3, ratio: 0, rank: 5, steps: 4, firstStep: 8 });
    for (const [k, v] of slice) expect(r.lora.get(k)).toEqual(v);
    const u = decodeUpdate(wireTrip(encodeUpdate(2, upd(3, 5), slice, mats, Dtype.fp16)), lim);
    expect(u.info).toEqual(upd(3, 5));
    for (const [k, v] of slice) {
      const got = u.lora.get(k)!;
      for (let i = 0; i < v.length; i++) expect(Math.abs(got[i] - v[i])).toBeLessThanOrEqual(Math.abs(v[i]) * 2 ** -10 + 6.2e-5); // fp16 flushes |x| < 2^-14 to 0
    }
  });

  it('the device layout is the transpose of the global factors, and back', () => {
    const g = initGlobalLora(mats, 8, 1);
    for (const f of g.values()) for (let i = 0; i < f.b.length; i++) f.b[i] = (i % 13) - 6; // non-zero B
    const dev = toDeviceLayout(g, 3);
    const m = mats[1], gf = g.get(m.name)!;
    const a = dev.get(`${m.name}.lora_a`)!, b = dev.get(`${m.name}.lora_b`)!;
    // lora_a [in, r][c][k] = A[k][c]; lora_b [r, out][k][o] = B[o][k]
    expect(a[5 * 3 + 2]).toBe(gf.a[2 * m.dIn + 5]);
    expect(b[1 * m.dOut + 7]).toBe(gf.b[7 * gf.rank + 1]);
    const back = fromDeviceLayout(mats, dev, 3).get(m.name)!;
    for (let k = 0; k < 3; k++) for (let c = 0; c < m.dIn; c++) expect(back.a[k * m.dIn + c]).toBe(gf.a[k * m.dIn + c]);
    for (let o = 0; o < m.dOut; o++) for (let k = 0; k < 3; k++) expect(back.b[o * 3 + k]).toBe(gf.b[o * gf.rank + k]);
  });

  it('refuses malformed messages with a named reason', () => {
    const slice = toDeviceLayout(initGlobalLora(mats, 16, 2), 4);
    const good = encodeUpdate(1, upd(2, 4), slice, mats, Dtype.fp32);
    const withPayload = (p: Uint8Array, extra: Partial<Frame> = {}): Frame => ({ ...good, ...extra, payload: p });
    // tensors one element short
    expect(code(() => decodeUpdate(withPayload(good.payload.subarray(0, good.payload.byteLength - 4)), lim))).toBe('bad-shape');
    // a rank above the space
    expect(code(() => decodeUpdate(encodeUpdate(1, upd(2, 17), toDeviceLayout(initGlobalLora(mats, 17, 2), 17), mats, Dtype.fp32), lim))).toBe('bad-shape');
    // header and JSON disagree
    expect(code(() => decodeUpdate({ ...good, seq: 9 }, lim))).toBe('bad-shape');
    // a JSON length past the end, and no JSON length at all
    const p = good.payload.slice(); new DataView(p.buffer).setUint32(0, 1e6, true);
    expect(code(() => decodeUpdate(withPayload(p), lim))).toBe('bad-length');
    expect(code(() => decodeUpdate(withPayload(new Uint8Array(2)), lim))).toBe('too-short');
    // not JSON
    const q = good.payload.slice(); q[4] = 0x7b; q[5] = 0x7b;
    expect(code(() => decodeUpdate(withPayload(q), lim))).toBe('bad-shape');
    // a NaN in the tensors
    const nan = good.payload.slice(); const jl = new DataView(nan.buffer).getUint32(0, true);
    new DataView(nan.buffer).setFloat32(4 + jl + 8, NaN, true);
    expect(code(() => decodeUpdate(withPayload(nan), lim))).toBe('bad-shape');
    // missing field, wrong dtype, wrong frame type, time going backwards
    const noTrain = encodeUpdate(1, upd(2, 4), slice, mats, Dtype.fp32);
    const txt = new TextDecoder().decode(noTrain.payload.subarray(4, 4 + new DataView(noTrain.payload.buffer, noTrain.payload.byteOffset).getUint32(0, true)));
    expect(txt).toContain('"trainMs"');
    expect(code(() => decodeUpdate({ ...good, dtype: Dtype.int32 }, lim))).toBe('bad-shape');
    expect(code(() => decodeUpdate(makeFrame(FrameType.fedRound, {}), lim))).toBe('bad-type');
    expect(code(() => decodeUpdate(encodeUpdate(1, { ...upd(2, 4), handedEpochMs: 1 }, slice, mats, Dtype.fp32), lim))).toBe('bad-shape');
    expect(code(() => decodeRound(encodeRound(0, { round: 1, ratio: 1.5, rank: 4, steps: 1, firstStep: 0 }, slice, mats, Dtype.fp32), lim))).toBe('bad-shape');
  });
});

describe('aggregation over the wire', () => {
  it('two devices of ranks 1 and 2 aggregate to the hand-computed zero-padded average', () => {
    // A tiny 2-matrix problem so the expected values can be written out.
    const tiny: LoraMatrix[] = [{ name: 'm', dIn: 2, dOut: 2 }];
    const dev = (rank: number, a: number[], b: number[]): Map<string, Float32Array> => new Map([['m.lora_a', new Float32Array(a)], ['m.lora_b', new Float32Array(b)]]);
    // device 1 (rank 1, data 1): lora_a [in=2, r=1] = [1, 2], lora_b [r=1, out=2] = [3, 4]
    // device 2 (rank 2, data 3): lora_a [2, 2] = [[5, 6], [7, 8]], lora_b [2, 2] = [[1, 2], [3, 4]]
    const d1 = dev(1, [1, 2], [3, 4]), d2 = dev(2, [5, 6, 7, 8], [1, 2, 3, 4]);
    const lim2 = { mats: tiny, rankMax: 2 };
    const over = (m: Map<string, Float32Array>, r: number) => decodeUpdate(wireTrip(encodeUpdate(0, upd(1, r), m, tiny, Dtype.fp32)), lim2).lora;
    const f1 = fromDeviceLayout(tiny, over(d1, 1), 1).get('m')!, f2 = fromDeviceLayout(tiny, over(d2, 2), 2).get('m')!;
    const g = aggregateLora([{ factors: f1, dataSize: 1 }, { factors: f2, dataSize: 3 }], 2);
    // A (r x in): device 1 row 0 = [1, 2]; device 2 rows = [[5, 7], [6, 8]] (transpose of its lora_a).
    // row 0: (1*[1,2] + 3*[5,7]) / 4 = [4, 5.75]; row 1 (device 1 pads zero): 3*[6,8]/4 = [4.5, 6]
    expect([...g.a]).toEqual([4, 5.75, 4.5, 6]);
    // B (out x r): device 1 column 0 = [3, 4]; device 2 = [[1, 3], [2, 4]].
    // column 0: (1*[3,4] + 3*[1,2]) / 4 = [1.5, 2.5]; column 1: 3*[3,4]/4 = [2.25, 3]
    expect([...g.b]).toEqual([1.5, 2.25, 2.5, 3]);
    // holders normalisation: a component only device 2 holds keeps its value
    const h = aggregateLora([{ factors: f1, dataSize: 1 }, { factors: f2, dataSize: 3 }], 2, { weighting: 'data', normalize: 'holders' });
    expect([...h.a]).toEqual([4, 5.75, 6, 8]);
    const back: LoraFactors = fromDeviceLayout(tiny, toDeviceLayout(new Map([['m', g]]), 2), 2).get('m')!;
    expect([...back.a]).toEqual([...g.a]);
  });
});

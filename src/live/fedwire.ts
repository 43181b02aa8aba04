/**
 * FedSpine's messages on the versioned wire (docs/wire-protocol.md,
 * "Federated frames"): frame types fedHello, fedRound, fedUpdate (wire.ts),
 * payload = [u32 JSON length][UTF-8 JSON][LoRA tensors]. Pure: encode,
 * decode and validate; LoRA layout conversion between the server's global
 * factors (fedspine/aggregate.ts: A [r, in], B [out, r]) and a device's
 * training layout (train/lora.ts: lora_a [in, r], lora_b [r, out]).
 *
 * Tensor section: for every adapted matrix in loraShapes order (layer by
 * layer, target by target), lora_a then lora_b of the message's rank,
 * row-major, fp16 (dtype 1) or fp32 (dtype 2). Its length must be exactly
 * loraParams x element bytes; every check failure is a WireError (the
 * receiver logs it and drops the frame).
 */
import { Rng } from '../core/rng.js';
import type { ModelSpec } from '../model/types.js';
import { loraShapes, type LoraTarget } from '../train/lora.js';
import { zeroFactors, type LoraFactors } from '../fedspine/aggregate.js';
import { Dtype, FrameType, WireError, fromFp16, makeFrame, toFp16, type Frame } from './wire.js';

/** One adapted matrix: its weight name and LoRA dims. */
export interface LoraMatrix { name: string; dIn: number; dOut: number }

export function loraMatrices(model: ModelSpec, targets: readonly LoraTarget[]): LoraMatrix[] {
  const shapes = loraShapes(model, { rank: 1, targets: [...targets] });
  const out: LoraMatrix[] = [];
  for (let i = 0; i < shapes.length; i += 2) out.push({ name: shapes[i].name.slice(0, -'.lora_a'.length), dIn: shapes[i].dims[0], dOut: shapes[i + 1].dims[1] });
  return out;
}

export type GlobalLora = Map<string, LoraFactors>;

/** The server's initial global state of rank R: A seeded normal (std 1/sqrt(in)), B zero (so W' = W). */
export function initGlobalLora(mats: readonly LoraMatrix[], rank: number, seed: number): GlobalLora {
  const g: GlobalLora = new Map();
  for (const m of mats) {
    const f = zeroFactors(rank, m.dIn, m.dOut);
    const r = new Rng(seed, `fed/lora-init/${m.name}`);
    const std = 1 / Math.sqrt(m.dIn);
    for (let i = 0; i < f.a.length; i++) f.a[i] = r.normal() * std;
    g.set(m.name, f);
  }
  return g;
}

/** A device's slice (first r components) in its training layout (lora_a [in, r], lora_b [r, out]). */
export function toDeviceLayout(global: GlobalLora, rank: number): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const [name, f] of global) {
    if (rank > f.rank) throw new WireError('bad-shape', `rank ${rank} exceeds the global rank ${f.rank}`);
    const a = new Float32Array(f.dIn * rank), b = new Float32Array(rank * f.dOut);
    for (let k = 0; k < rank; k++) {
      for (let c = 0; c < f.dIn; c++) a[c * rank + k] = f.a[k * f.dIn + c];
      for (let o = 0; o < f.dOut; o++) b[k * f.dOut + o] = f.b[o * f.rank + k];
    }
    out.set(`${name}.lora_a`, a);
    out.set(`${name}.lora_b`, b);
  }
  return out;
}

/** A device's trained factors (training layout, rank r) as aggregate.ts factors. */
export function fromDeviceLayout(mats: readonly LoraMatrix[], lora: ReadonlyMap<string, Float32Array>, rank: number): Map<string, LoraFactors> {
  const out = new Map<string, LoraFactors>();
  for (const m of mats) {
    const a = lora.get(`${m.name}.lora_a`), b = lora.get(`${m.name}.lora_b`);
    if (!a || !b || a.length !== m.dIn * rank || b.length !== rank * m.dOut) throw new WireError('bad-shape', `LoRA factors of ${m.name} are missing or not of rank ${rank}`);
    const f = zeroFactors(rank, m.dIn, m.dOut);
    for (let k = 0; k < rank; k++) {
      for (let c = 0; c < m.dIn; c++) f.a[k * m.dIn + c] = a[c * rank + k];
      for (let o = 0; o < m.dOut; o++) f.b[o * rank + k] = b[k * m.dOut + o];
    }
    out.set(m.name, f);
  }
  return out;
}

export function loraElements(mats: readonly LoraMatrix[], rank: number): number {
  return mats.reduce((s, m) => s + rank * (m.dIn + m.dOut), 0);
}

function packTensors(mats: readonly LoraMatrix[], lora: ReadonlyMap<string, Float32Array>, rank: number, dtype: number): Uint8Array {
  const all = new Float32Array(loraElements(mats, rank));
  let o = 0;
  for (const m of mats) {
    for (const part of ['lora_a', 'lora_b']) {
      const v = lora.get(`${m.name}.${part}`);
      const want = part === 'lora_a' ? m.dIn * rank : rank * m.dOut;
      if (!v || v.length !== want) throw new WireError('bad-shape', `${m.name}.${part}: ${v?.length ?? 0} elements, expected ${want}`);
      all.set(v, o);
      o += want;
    }
  }
  return dtype === Dtype.fp16 ? new Uint8Array(toFp16(all).buffer) : new Uint8Array(all.buffer);
}

function unpackTensors(mats: readonly LoraMatrix[], bytes: Uint8Array, rank: number, dtype: number): Map<string, Float32Array> {
  const n = loraElements(mats, rank);
  const eb = dtype === Dtype.fp16 ? 2 : 4;
  if (bytes.byteLength !== n * eb) throw new WireError('bad-shape', `LoRA tensors of ${bytes.byteLength} bytes; rank ${rank} over ${mats.length} matrices needs ${n} x ${eb} = ${n * eb} bytes`);
  const copy = bytes.slice(); // aligned
  const all = dtype === Dtype.fp16 ? fromFp16(new Uint16Array(copy.buffer, 0, n)) : new Float32Array(copy.buffer, 0, n);
  for (let i = 0; i < n; i++) if (!Number.isFinite(all[i])) throw new WireError('bad-shape', `LoRA tensor element ${i} is not finite`);
  const out = new Map<string, Float32Array>();
  let o = 0;
  for (const m of mats) {
    out.set(`${m.name}.lora_a`, all.slice(o, o + m.dIn * rank)); o += m.dIn * rank;
    out.set(`${m.name}.lora_b`, all.slice(o, o + rank * m.dOut)); o += rank * m.dOut;
  }
  return out;
}

/** What a fedRound carries besides the tensors. */
export interface RoundInfo {
  round: number;
  ratio: number;
  rank: number;
  steps: number;
  /** Index of the device's first local step this round (seeded batches continue across rounds). */
  firstStep: number;
}

/** What a fedUpdate carries besides the tensors. */
export interface UpdateInfo {
  round: number;
  rank: number;
  ratioAfter: number;
  /** Device clock (ms since the epoch): the round's frame arrived / the update was handed to the shaper. */
  recvEpochMs: number;
  handedEpochMs: number;
  /** Training wall time and per-step times, ms. */
  trainMs: number;
  stepMs: number[];
  losses: number[];
}

function withJson(json: unknown, tensors: Uint8Array): Uint8Array {
  const j = new TextEncoder().encode(JSON.stringify(json));
  const out = new Uint8Array(4 + j.byteLength + tensors.byteLength);
  new DataView(out.buffer).setUint32(0, j.byteLength, true);
  out.set(j, 4);
  out.set(tensors, 4 + j.byteLength);
  return out;
}

function splitJson(f: Frame): { json: Record<string, unknown>; tensors: Uint8Array } {
  const p = f.payload;
  if (p.byteLength < 4) throw new WireError('too-short', `${f.type === FrameType.fedRound ? 'fedRound' : 'fedUpdate'} payload of ${p.byteLength} bytes has no JSON length`);
  const len = new DataView(p.buffer, p.byteOffset, p.byteLength).getUint32(0, true);
  if (4 + len > p.byteLength) throw new WireError('bad-length', `JSON length ${len} runs past the payload (${p.byteLength} bytes)`);
  let json: unknown;
  try { json = JSON.parse(new TextDecoder().decode(p.subarray(4, 4 + len))); } catch { throw new WireError('bad-shape', 'the JSON section is not valid UTF-8 JSON'); }
  if (!json || typeof json !== 'object' || Array.isArray(json)) throw new WireError('bad-shape', 'the JSON section must be an object');
  return { json: json as Record<string, unknown>, tensors: p.subarray(4 + len) };
}

function num(j: Record<string, unknown>, k: string, check: (v: number) => boolean, what: string): number {
  const v = j[k];
  if (typeof v !== 'number' || !Number.isFinite(v) || !check(v)) throw new WireError('bad-shape', `field ${k} = ${JSON.stringify(v)}: must be ${what}`);
  return v;
}

function nums(j: Record<string, unknown>, k: string): number[] {
  const v = j[k];
  if (!Array.isArray(v) || !v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new WireError('bad-shape', `field ${k} must be an array of finite numbers`);
  return v as number[];
}

const isInt = (lo: number, hi = Infinity) => (v: number) => Number.isInteger(v) && v >= lo && v <= hi;

export interface FedLimits { mats: readonly LoraMatrix[]; rankMax: number }

export function encodeRound(deviceId: number, info: RoundInfo, lora: ReadonlyMap<string, Float32Array>, mats: readonly LoraMatrix[], dtype: 1 | 2): Frame {
  return makeFrame(FrameType.fedRound, { deviceId, seq: info.round, u0: info.rank, dtype, payload: withJson(info, packTensors(mats, lora, info.rank, dtype)) });
}

export function decodeRound(f: Frame, lim: FedLimits): { info: RoundInfo; lora: Map<string, Float32Array> } {
  if (f.type !== FrameType.fedRound) throw new WireError('bad-type', `expected a fedRound frame, got type ${f.type}`);
  if (f.dtype !== Dtype.fp16 && f.dtype !== Dtype.fp32) throw new WireError('bad-shape', `LoRA tensors must be fp16 (1) or fp32 (2), dtype ${f.dtype}`);
  const { json, tensors } = splitJson(f);
  const info: RoundInfo = {
    round: num(json, 'round', isInt(1), 'an integer >= 1'),
    ratio: num(json, 'ratio', (v) => v >= 0 && v < 1, 'a ratio in [0, 1)'),
    rank: num(json, 'rank', isInt(1, lim.rankMax), `an integer in [1, ${lim.rankMax}]`),
    steps: num(json, 'steps', isInt(1), 'an integer >= 1'),
    firstStep: num(json, 'firstStep', isInt(0), 'an integer >= 0'),
  };
  if (info.round !== f.seq || info.rank !== f.u0) throw new WireError('bad-shape', `header (round ${f.seq}, rank ${f.u0}) and JSON (round ${info.round}, rank ${info.rank}) disagree`);
  return { info, lora: unpackTensors(lim.mats, tensors, info.rank, f.dtype) };
}

export function encodeUpdate(deviceId: number, info: UpdateInfo, lora: ReadonlyMap<string, Float32Array>, mats: readonly LoraMatrix[], dtype: 1 | 2): Frame {
  return makeFrame(FrameType.fedUpdate, { deviceId, seq: info.round, u0: info.rank, dtype, payload: withJson(info, packTensors(mats, lora, info.rank, dtype)) });
}

export function decodeUpdate(f: Frame, lim: FedLimits): { info: UpdateInfo; lora: Map<string, Float32Array> } {
  if (f.type !== FrameType.fedUpdate) throw new WireError('bad-type', `expected a fedUpdate frame, got type ${f.type}`);
  if (f.dtype !== Dtype.fp16 && f.dtype !== Dtype.fp32) throw new WireError('bad-shape', `LoRA tensors must be fp16 (1) or fp32 (2), dtype ${f.dtype}`);
  const { json, tensors } = splitJson(f);
  const info: UpdateInfo = {
    round: num(json, 'round', isInt(1), 'an integer >= 1'),
    rank: num(json, 'rank', isInt(1, lim.rankMax), `an integer in [1, ${lim.rankMax}]`),
    ratioAfter: num(json, 'ratioAfter', (v) => v >= 0 && v < 1, 'a ratio in [0, 1)'),
    recvEpochMs: num(json, 'recvEpochMs', (v) => v > 0, 'a positive time'),
    handedEpochMs: num(json, 'handedEpochMs', (v) => v > 0, 'a positive time'),
    trainMs: num(json, 'trainMs', (v) => v >= 0, 'a time >= 0'),
    stepMs: nums(json, 'stepMs'),
    losses: nums(json, 'losses'),
  };
  if (info.round !== f.seq || info.rank !== f.u0) throw new WireError('bad-shape', `header (round ${f.seq}, rank ${f.u0}) and JSON (round ${info.round}, rank ${info.rank}) disagree`);
  if (info.handedEpochMs < info.recvEpochMs) throw new WireError('bad-shape', `handedEpochMs ${info.handedEpochMs} is before recvEpochMs ${info.recvEpochMs}`);
  return { info, lora: unpackTensors(lim.mats, tensors, info.rank, f.dtype) };
}

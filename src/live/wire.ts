/**
 * The device-cloud wire protocol (docs/wire-protocol.md): WebSocket binary
 * messages, each one frame = a fixed 64-byte little-endian header + payload.
 *
 * Pure encode/decode and validation; no sockets here. Every decode error is a
 * `WireError` with a stable `code` that goes into the error frame.
 */
import { createHash } from 'node:crypto';

export const MAGIC = 0x4d495348; // "HSIM" read as a little-endian u32
/** 2: node-to-node frames (nodeHello, task) for the topology runner (live/node.ts). */
export const WIRE_VERSION = 2;
export const HEADER_BYTES = 64;
export const DEFAULT_MAX_FRAME_BYTES = 64 * 1024 * 1024;

export const FrameType = {
  hello: 1,
  helloAck: 2,
  request: 3,
  reply: 4,
  error: 5,
  bye: 6,
  loadQuery: 7,
  loadReply: 8,
  /** Unshaped echo (either side): measures the real one-way transit to compensate in shaping. */
  ping: 9,
  pong: 10,
  /** Node-to-node (live/node.ts): a peer node introduces itself (JSON: node name, token hash). */
  nodeHello: 11,
  /** Node-to-node: a task moving along its route ([u32 JSON length][JSON state][payload bytes]). */
  task: 12,
  /** Node-to-node: one message of DTO-EE's distributed algorithm (JSON, format hatsim-dtoee/1; live/dtoee-live.ts). */
  dtoee: 13,
  /** FedSpine (live/fedwire.ts): a device joins a federated run (JSON: device index, token hash). */
  fedHello: 20,
  /** FedSpine: server to device, a round's configuration + the global LoRA slice ([u32 JSON length][JSON][tensors]). */
  fedRound: 21,
  /** FedSpine: device to server, the trained LoRA update ([u32 JSON length][JSON][tensors]). */
  fedUpdate: 22,
} as const;
export type FrameTypeId = (typeof FrameType)[keyof typeof FrameType];
const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(FrameType).map(([k, v]) => [v, k]));
export function frameTypeName(t: number): string { return TYPE_NAMES[t] ?? `unknown(${t})`; }

export const Work = { none: 0, middle: 1, full: 2 } as const;
export const Dtype = { none: 0, fp16: 1, fp32: 2, int32: 3, utf8: 4 } as const;
export type DtypeId = (typeof Dtype)[keyof typeof Dtype];
export function dtypeBytes(d: number): number {
  return d === Dtype.fp16 ? 2 : d === Dtype.fp32 ? 4 : d === Dtype.int32 ? 4 : 1;
}

/** Flags (bit set). */
export const Flag = {
  /** request: a cloud op with no uplink payload (the server would loop on its own); queued when the request's previous job completes. */
  chained: 1,
  /** hello: rejoin a system already started (after a reconnect): acknowledged at once, no barrier. */
  rejoin: 2,
  /** bye: the request (request id) is finished: release its replica. Without it: the device is done with the system. */
  requestDone: 4,
} as const;

/**
 * Header fields. Offsets in docs/wire-protocol.md. Request-only, reply-only and
 * load fields share the generic slots `f0..f2` (f32) and `u0..u1` (u32).
 */
export interface Frame {
  type: number;
  version: number;
  flags: number;
  deviceId: number;
  requestId: number;
  seq: number;
  work: number;
  dtype: number;
  tokens: number;
  ctx: number;
  logits: number;
  /** Token rows in the payload (hidden-state rows or token ids). */
  payloadTokens: number;
  /** reply: cloud queue ms; request: 0. */
  f0: number;
  /** reply: cloud compute ms. */
  f1: number;
  /** reply: shaped network ms of this frame (delivery - handed to the shaper). */
  f2: number;
  /** request: expected reply payload bytes; reply / loadReply: replica index. */
  u0: number;
  /** loadReply: queued tokens; reply: active requests on the replica. hello: first 4 bytes of the token hash. */
  u1: number;
  payload: Uint8Array;
}

export class WireError extends Error {
  constructor(readonly code: 'bad-magic' | 'bad-version' | 'bad-type' | 'too-short' | 'too-large' | 'bad-length' | 'bad-shape' | 'bad-auth' | 'bad-state', message: string) {
    super(message);
    this.name = 'WireError';
  }
}

export function emptyFrame(type: number): Frame {
  return {
    type, version: WIRE_VERSION, flags: 0, deviceId: 0, requestId: 0, seq: 0, work: 0, dtype: 0,
    tokens: 0, ctx: 0, logits: 0, payloadTokens: 0, f0: 0, f1: 0, f2: 0, u0: 0, u1: 0, payload: new Uint8Array(0),
  };
}

export function makeFrame(type: number, fields: Partial<Frame>): Frame {
  return { ...emptyFrame(type), ...fields };
}

/** Encode a frame into one buffer (header + payload). */
export function encodeFrame(f: Frame): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + f.payload.byteLength);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt8(f.version, 4);
  buf.writeUInt8(f.type, 5);
  buf.writeUInt16LE(f.flags, 6);
  buf.writeUInt32LE(f.deviceId >>> 0, 8);
  buf.writeUInt32LE(f.requestId >>> 0, 12);
  buf.writeUInt32LE(f.seq >>> 0, 16);
  buf.writeUInt8(f.work, 20);
  buf.writeUInt8(f.dtype, 21);
  buf.writeUInt16LE(0, 22);
  buf.writeUInt32LE(f.tokens >>> 0, 24);
  buf.writeUInt32LE(f.ctx >>> 0, 28);
  buf.writeUInt32LE(f.logits >>> 0, 32);
  buf.writeUInt32LE(f.payload.byteLength, 36);
  buf.writeUInt32LE(f.payloadTokens >>> 0, 40);
  buf.writeFloatLE(f.f0, 44);
  buf.writeFloatLE(f.f1, 48);
  buf.writeFloatLE(f.f2, 52);
  buf.writeUInt32LE(f.u0 >>> 0, 56);
  buf.writeUInt32LE(f.u1 >>> 0, 60);
  buf.set(f.payload, HEADER_BYTES);
  return buf;
}

/**
 * Decode and check the framing (magic, version, known type, declared length =
 * actual, size limit). Shape checks against a model are `checkShape`.
 */
export function decodeFrame(data: Uint8Array, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Frame {
  if (data.byteLength > maxFrameBytes) throw new WireError('too-large', `frame of ${data.byteLength} bytes exceeds the limit of ${maxFrameBytes} bytes`);
  if (data.byteLength < HEADER_BYTES) throw new WireError('too-short', `frame of ${data.byteLength} bytes is shorter than the ${HEADER_BYTES}-byte header`);
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (b.readUInt32LE(0) !== MAGIC) throw new WireError('bad-magic', 'frame does not start with the magic "HSIM"');
  const version = b.readUInt8(4);
  if (version !== WIRE_VERSION) throw new WireError('bad-version', `wire version ${version} is not supported (this side speaks ${WIRE_VERSION})`);
  const type = b.readUInt8(5);
  if (TYPE_NAMES[type] === undefined) throw new WireError('bad-type', `unknown frame type ${type}`);
  const len = b.readUInt32LE(36);
  if (len !== data.byteLength - HEADER_BYTES) throw new WireError('bad-length', `header says ${len} payload bytes, frame carries ${data.byteLength - HEADER_BYTES}`);
  const dtype = b.readUInt8(21);
  if (dtype > Dtype.utf8) throw new WireError('bad-shape', `unknown dtype ${dtype}`);
  const work = b.readUInt8(20);
  if (work > Work.full) throw new WireError('bad-shape', `unknown work ${work}`);
  return {
    type, version,
    flags: b.readUInt16LE(6),
    deviceId: b.readUInt32LE(8),
    requestId: b.readUInt32LE(12),
    seq: b.readUInt32LE(16),
    work, dtype,
    tokens: b.readUInt32LE(24),
    ctx: b.readUInt32LE(28),
    logits: b.readUInt32LE(32),
    payloadTokens: b.readUInt32LE(40),
    f0: b.readFloatLE(44),
    f1: b.readFloatLE(48),
    f2: b.readFloatLE(52),
    u0: b.readUInt32LE(56),
    u1: b.readUInt32LE(60),
    payload: new Uint8Array(data.buffer, data.byteOffset + HEADER_BYTES, len),
  };
}

/**
 * Shape checks of a request or reply payload: hidden-state frames carry
 * payloadTokens x hiddenSize elements of the dtype; id frames payloadTokens x 4
 * bytes. A middle request must carry a hidden state for every position it
 * processes (payloadTokens = tokens) unless chained; payloadTokens never
 * exceeds tokens.
 */
export function checkShape(f: Frame, hiddenSize: number): void {
  if (f.type !== FrameType.request && f.type !== FrameType.reply) return;
  const n = f.payload.byteLength;
  if (f.type === FrameType.request) {
    if (f.work !== Work.middle && f.work !== Work.full) throw new WireError('bad-shape', `request work must be middle (1) or full (2), got ${f.work}`);
    if (f.tokens < 1) throw new WireError('bad-shape', 'request with 0 tokens');
    if (f.payloadTokens > f.tokens) throw new WireError('bad-shape', `payload has ${f.payloadTokens} token rows for a ${f.tokens}-token job`);
    if (f.logits > f.tokens) throw new WireError('bad-shape', `logits ${f.logits} > tokens ${f.tokens}`);
  }
  if (n === 0 && f.payloadTokens === 0) return;
  if (f.dtype === Dtype.fp16 || f.dtype === Dtype.fp32) {
    const want = f.payloadTokens * hiddenSize * dtypeBytes(f.dtype);
    if (n !== want) throw new WireError('bad-shape', `hidden-state payload of ${n} bytes; ${f.payloadTokens} tokens x ${hiddenSize} x ${dtypeBytes(f.dtype)} B = ${want} expected`);
    if (f.type === FrameType.request && f.work === Work.middle && (f.flags & Flag.chained) === 0 && f.payloadTokens !== f.tokens) {
      throw new WireError('bad-shape', `middle request over ${f.tokens} positions carries ${f.payloadTokens} hidden states`);
    }
  } else if (f.dtype === Dtype.int32) {
    if (n !== f.payloadTokens * 4) throw new WireError('bad-shape', `token-id payload of ${n} bytes; ${f.payloadTokens} ids x 4 B = ${f.payloadTokens * 4} expected`);
  } else {
    throw new WireError('bad-shape', `a ${frameTypeName(f.type)} payload must be fp16, fp32 or int32 (dtype ${f.dtype})`);
  }
}

/** SHA-256 of the shared secret, hex: what hello carries (never the secret itself). */
export function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function jsonPayload(obj: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(obj));
}
export function parseJsonPayload(f: Frame): Record<string, unknown> {
  try {
    const v: unknown = JSON.parse(new TextDecoder().decode(f.payload));
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new WireError('bad-shape', `${frameTypeName(f.type)} payload must be a UTF-8 JSON object`);
}

// ---- fp16 <-> fp32 ---------------------------------------------------------------
const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** Round-to-nearest fp32 -> fp16 bits (denormals flushed to zero; enough for hidden states). */
export function toFp16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  for (let i = 0; i < src.length; i++) {
    f32[0] = src[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = ((x >>> 23) & 0xff) - 127 + 15;
    let mant = x & 0x7fffff;
    if (exp <= 0) { dst[i] = sign; continue; }
    if (exp >= 31) { dst[i] = sign | 0x7c00 | (((x >>> 23) & 0xff) === 0xff && mant ? 0x200 : 0); continue; }
    mant += 0x1000; // round
    if (mant & 0x800000) { mant = 0; if (exp + 1 >= 31) { dst[i] = sign | 0x7c00; continue; } dst[i] = sign | ((exp + 1) << 10); continue; }
    dst[i] = sign | (exp << 10) | (mant >>> 13);
  }
  return dst;
}

export function fromFp16(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  for (let i = 0; i < src.length; i++) {
    const h = src[i];
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) { u32[0] = sign; }
    else if (exp === 31) { u32[0] = sign | 0x7f800000 | (mant << 13); }
    else { u32[0] = sign | ((exp - 15 + 127) << 23) | (mant << 13); }
    dst[i] = f32[0];
  }
  return dst;
}

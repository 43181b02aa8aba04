/**
 * The live driver of protocol generators: the same generators and policy
 * objects as the simulator (sim/driver.ts), executed asynchronously with a
 * real clock, a real device processor (ONNX passes in a worker) and a real
 * socket to the cloud server.
 *
 * Op semantics (docs/LIVE.md):
 * - compute: queued on the device processor (foreground FIFO / background),
 *   `repeat` passes run sequentially; resumes when done.
 * - up: its payload is buffered in the branch; resumes at once.
 * - cloud: becomes ONE request frame carrying the buffered up payload(s); the
 *   frame is held until the request's next `down` op is seen (in the same
 *   synchronous run of the generators, i.e. at the same instant) so that the
 *   frame can carry the reply size the protocol expects; or, if the branch
 *   blocks on anything else first, sent with the default reply size (middle:
 *   tokens x hidden bytes; full: 1 token id, or 2 when logits > 1). Resumes at
 *   once. A cloud op with no up payload is a chained control frame (not
 *   shaped; the server queues it when the request's previous job completes:
 *   that is when the simulator's generator would issue it).
 * - down: waits for the server's reply to the cloud op it claimed (matched by
 *   request id and sequence number).
 * - accept: seeded draws from `accept/<device>` in the same order as the simulator, or with
 *   --real-acceptance the verdict of real speculative decoding (device-real.ts).
 * - emit, note, now: inline. fork/join: async branches; any branch may join
 *   handles forked by another branch of the same request.
 * - cloudLoad: asks the server (unshaped control frame, one real round trip).
 * Byte accounting is the simulator's (payload + scenario headerBytes per op).
 */
import type { Rng } from '../core/rng.js';
import type { CloudLoad, ComputeOp, Op, Proto, Resume } from '../protocol/ops.js';
import type { RequestState } from '../sim/request.js';
import { Dtype, Flag, Work, type Frame } from './wire.js';

/** What the driver needs from the device's connection to the cloud. */
export interface CloudLink {
  /** Hand a request frame to the uplink; `modelledBytes` = what the simulator would send (0 = unshaped control frame). Returns the shaped network ms. */
  sendRequest(frame: Partial<Frame>, modelledBytes: number): number;
  awaitReply(requestId: number, seq: number): Promise<Frame>;
  load(requestId: number): Promise<CloudLoad>;
}

export interface LiveDeviceContext {
  index: number;
  /** ms since the system run started (the shared t0). */
  nowMs(): number;
  link: CloudLink;
  acceptRng: Rng;
  headerBytes: number;
  hiddenBytesPerToken: number;
  /** Bytes per hidden-state element on the wire (the model's activationBytesPerElem: 2 = fp16, 4 = fp32). */
  hiddenElemBytes?: number;
  tokenBytes: number;
  /** --real-acceptance (device-real.ts): accept ops answered by real speculative decoding; emits checked against its tokens. */
  real?: { accept(req: RequestState, drafted: number): Promise<number>; emit(req: RequestState, n: number): Promise<void> };
  /** Run a compute op on the device processor (all repeats); resolves with the device time it took (ms). */
  compute(op: ComputeOp, req: RequestState): Promise<number>;
}

interface PendingCloud {
  owner: LiveProc;
  seq: number;
  op: Extract<Op, { op: 'cloud' }>;
  hiddenBytes: number;
  rawBytes: number;
  ups: number;
}

/** All branches of one request. */
export class Family {
  readonly runs: Promise<void>[] = [];
  pending: PendingCloud | null = null;
  /** A cloud frame sent before its down op was seen (a real accept round ran in between: sd's verify). */
  sentAhead: PendingCloud | null = null;
  nextSeq = 0;
  failed: Error | null = null;
}

export class RequestFailed extends Error {}

export class LiveProc {
  private upHidden = 0;
  private upRaw = 0;
  private ups = 0;

  constructor(
    private readonly gen: Proto,
    private readonly dev: LiveDeviceContext,
    readonly req: RequestState,
    readonly family: Family = new Family(),
  ) {}

  /** Runs the branch to its end. Starts synchronously (like the simulator's child.start()). */
  async run(): Promise<void> {
    const { dev, req, family } = this;
    let value: Resume = undefined;
    try {
      for (;;) {
        if (family.failed) throw family.failed;
        const r = this.gen.next(value);
        value = undefined;
        if (r.done) { this.flushOwn(); return; }
        const op = r.value;
        switch (op.op) {
          case 'compute': {
            this.flushOwn();
            req.deviceComputeMs += await dev.compute(op, req);
            break;
          }
          case 'up': {
            this.upHidden += op.hiddenBytes; this.upRaw += op.rawTokenBytes; this.ups++;
            req.hiddenUp += op.hiddenBytes; req.rawUp += op.rawTokenBytes; req.headerUp += dev.headerBytes;
            break;
          }
          case 'cloud': {
            this.flushOwn();
            family.pending = { owner: this, seq: family.nextSeq++, op, hiddenBytes: this.upHidden, rawBytes: this.upRaw, ups: this.ups };
            this.upHidden = 0; this.upRaw = 0; this.ups = 0;
            break;
          }
          case 'down': {
            let p = family.pending;
            if (p) this.flush(p, op.hiddenBytes + op.rawTokenBytes);
            else if (family.sentAhead) { p = family.sentAhead; family.sentAhead = null; }
            else throw new Error(`invariant: down op '${op.label}' of request ${req.index} with no cloud op to answer it`);
            req.hiddenDown += op.hiddenBytes; req.rawDown += op.rawTokenBytes; req.headerDown += dev.headerBytes;
            const reply = await dev.link.awaitReply(req.id, p.seq);
            req.cloudQueueMs += reply.f0;
            req.cloudComputeMs += reply.f1;
            req.networkMs += reply.f2;
            req.replica = reply.u0;
            break;
          }
          case 'accept':
            if (dev.real) {
              // The real round takes time: send a held cloud frame (sd's verify) first, with the default reply size.
              const held = family.pending;
              if (held && held.owner === this) { this.flushOwn(); family.sentAhead = held; }
              value = await dev.real.accept(req, op.drafted);
            } else value = req.verifyRound(dev.acceptRng, op.drafted, op.rate, op.rates);
            break;
          case 'emit':
            if (dev.real) {
              const atMs = dev.nowMs();
              await dev.real.emit(req, op.tokens);
              req.tokens(op.tokens, atMs / 1000);
            } else req.tokens(op.tokens, dev.nowMs() / 1000);
            break;
          case 'fork': {
            const child = new LiveProc(op.body, dev, req, family);
            family.runs.push(child.run());
            value = family.runs.length - 1;
            break;
          }
          case 'join': {
            this.flushOwn();
            if (op.handles.length > 0) await Promise.all(op.handles.map((h) => family.runs[h]));
            break;
          }
          case 'cloudLoad': {
            this.flushOwn();
            value = await dev.link.load(req.id);
            break;
          }
          case 'now':
            value = dev.nowMs();
            break;
          case 'note':
            if (op.key === 'chunkTokens') req.chunkTokens = op.value;
            break;
        }
      }
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      if (!family.failed) family.failed = err;
      throw err;
    }
  }

  /** Send this branch's pending cloud frame (if any) with the default reply size. */
  private flushOwn(): void {
    const p = this.family.pending;
    if (p && p.owner === this) {
      const hb = this.dev.hiddenBytesPerToken, tb = this.dev.tokenBytes;
      const reply = p.op.work === 'middle' ? p.op.tokens * hb : (p.op.logits > 1 ? 2 : 1) * tb;
      this.flush(p, reply);
    }
  }

  private flush(p: PendingCloud, replyBytes: number): void {
    this.family.pending = null;
    const dev = this.dev, hb = dev.hiddenBytesPerToken, tb = dev.tokenBytes;
    const hidden = p.hiddenBytes > 0;
    const payloadTokens = hidden ? Math.round(p.hiddenBytes / hb) : Math.round(p.rawBytes / tb);
    const dtype = hidden ? (dev.hiddenElemBytes === 4 ? Dtype.fp32 : Dtype.fp16) : p.rawBytes > 0 ? Dtype.int32 : Dtype.none;
    const payloadBytes = hidden ? p.hiddenBytes : payloadTokens * 4;
    const chained = p.ups === 0;
    const modelled = chained ? 0 : p.hiddenBytes + p.rawBytes + p.ups * dev.headerBytes;
    const netMs = dev.link.sendRequest({
      requestId: this.req.id, seq: p.seq, flags: chained ? Flag.chained : 0,
      work: p.op.work === 'middle' ? Work.middle : Work.full, dtype,
      tokens: p.op.tokens, ctx: p.op.ctx, logits: p.op.logits, payloadTokens,
      u0: replyBytes,
      payload: payloadBytes > 0 ? patternBytes(payloadBytes) : new Uint8Array(0),
    }, modelled);
    this.req.networkMs += netMs;
  }
}

let pattern = new Uint8Array(0);
/** A reusable payload of the right size (values do not affect timing; see docs/LIVE.md). */
function patternBytes(n: number): Uint8Array {
  if (pattern.length < n) {
    pattern = new Uint8Array(Math.max(n, pattern.length * 2));
    for (let i = 0; i < pattern.length; i += 2) { pattern[i] = 0x00; pattern[i + 1] = 0x3c; } // fp16 1.0
  }
  return pattern.subarray(0, n);
}

/**
 * A device's connection to the cloud server: WebSocket client, hello / system
 * barrier, uplink shaping, reply matching, load queries, and reconnection with
 * exponential backoff (100 ms doubling to 2 s) when the server goes away.
 * Waiters of a lost connection fail at once (their request is reported
 * unfinished); later requests wait for the reconnection.
 */
import WebSocket from 'ws';
import type { CloudLoad } from '../protocol/ops.js';
import { sleepMs, withTimeout } from './clock.js';
import type { CloudLink } from './driver.js';
import { LinkModel, ShapedSender } from './shaper.js';
import {
  DEFAULT_MAX_FRAME_BYTES, FrameType, Flag, checkShape, decodeFrame, encodeFrame, frameTypeName, jsonPayload, makeFrame,
  parseJsonPayload, tokenHash, type Frame,
} from './wire.js';

export interface DeviceConnOptions {
  /** ws://host:port */
  url: string;
  deviceId: number;
  hiddenSize: number;
  token?: string;
  maxFrameBytes?: number;
  /** Give up reconnecting after this long (ms). */
  reconnectLimitMs?: number;
  log?: (line: string) => void;
  /** Called for each frame sent / received (steps.csv). */
  onFrame?: (dir: 'send' | 'recv', f: Frame, frameBytes: number, atMs: number, handedMs: number) => void;
}

interface Waiter { resolve: (f: Frame) => void; reject: (e: Error) => void }

export class ConnectionLost extends Error {}

export class DeviceConnection implements CloudLink {
  private ws: WebSocket | null = null;
  private sender: ShapedSender = new ShapedSender(null);
  private uplink: LinkModel | null = null;
  private serverShaped = false;
  private readonly replies = new Map<string, Frame>();
  private readonly waiters = new Map<string, Waiter>();
  private loadWaiters: Waiter[] = [];
  private ackWaiter: Waiter | null = null;
  private pongWaiter: Waiter | null = null;
  /** Measured one-way transit of the real path (ms): RTT/2 of unshaped pings at connect. */
  transitMs = 0;
  private closing = false;
  private reconnecting: Promise<void> | null = null;
  private current: { index: number; system: string } | null = null;
  private readonly log: (l: string) => void;
  reconnects = 0;
  lastError = '';

  constructor(private readonly opts: DeviceConnOptions) {
    this.log = opts.log ?? ((l) => process.stderr.write(`${l}\n`));
  }

  get connected(): boolean { return this.ws !== null && this.ws.readyState === WebSocket.OPEN; }

  /** Connect, retrying with backoff until `limitMs`. */
  async connect(limitMs = this.opts.reconnectLimitMs ?? 30_000): Promise<void> {
    const deadline = performance.now() + limitMs;
    let backoff = 100;
    for (let attempt = 0; ; attempt++) {
      if (this.closing) throw new ConnectionLost('connection closed');
      try {
        await this.open();
        return;
      } catch (e) {
        this.lastError = e instanceof Error ? e.message : String(e);
        if (performance.now() + backoff > deadline) throw new ConnectionLost(`cannot reach ${this.opts.url} after ${attempt + 1} attempts: ${this.lastError}`);
        await sleepMs(backoff);
        backoff = Math.min(2000, backoff * 2);
      }
    }
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const max = this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
      const ws = new WebSocket(this.opts.url, { maxPayload: max, perMessageDeflate: false, handshakeTimeout: 5000 });
      let opened = false;
      ws.binaryType = 'nodebuffer';
      ws.on('open', () => {
        opened = true;
        this.ws = ws;
        this.sender = new ShapedSender(this.uplink, undefined, this.transitMs);
        resolve();
      });
      ws.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
      ws.on('error', (e) => { if (!opened) reject(e); });
      ws.on('close', (code, reason) => {
        if (!opened) { reject(new Error(`closed before open (${code})`)); return; }
        if (this.ws === ws) this.onLost(`connection closed (${code}${reason.length ? ` ${reason.toString()}` : ''})`);
      });
    });
  }

  private onLost(why: string): void {
    this.ws = null;
    this.sender.close();
    const err = new ConnectionLost(why);
    for (const w of this.waiters.values()) w.reject(err);
    this.waiters.clear();
    for (const w of this.loadWaiters) w.reject(err);
    this.loadWaiters = [];
    if (this.ackWaiter) { this.ackWaiter.reject(err); this.ackWaiter = null; }
    this.replies.clear();
    if (this.closing) return;
    this.log(`device ${this.opts.deviceId}: ${why}; reconnecting`);
    this.reconnecting ??= this.reconnect().finally(() => { this.reconnecting = null; });
  }

  private async reconnect(): Promise<void> {
    try {
      await this.connect();
      this.reconnects++;
      await this.measureTransit(3);
      if (this.current) await this.hello(this.current.index, this.current.system, true);
      this.log(`device ${this.opts.deviceId}: reconnected`);
    } catch (e) {
      this.lastError = e instanceof Error ? e.message : String(e);
      this.log(`device ${this.opts.deviceId}: reconnect failed: ${this.lastError}`);
    }
  }

  /** Wait until connected (a reconnection in progress), bounded. */
  async ready(limitMs = 30_000): Promise<void> {
    if (this.connected && !this.reconnecting) return;
    if (this.reconnecting) await withTimeout(this.reconnecting, limitMs + 1000, 'reconnect');
    if (!this.connected) throw new ConnectionLost(`not connected to ${this.opts.url}: ${this.lastError}`);
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    const at = performance.now();
    let f: Frame;
    try {
      if (!isBinary) throw new Error('text message');
      f = decodeFrame(data, this.opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
      checkShape(f, this.opts.hiddenSize);
    } catch (e) {
      this.log(`device ${this.opts.deviceId}: bad frame from server: ${e instanceof Error ? e.message : String(e)}`);
      this.ws?.close(1002, 'bad frame');
      return;
    }
    this.opts.onFrame?.('recv', f, data.byteLength, at, at);
    switch (f.type) {
      case FrameType.reply: {
        const key = `${f.requestId}:${f.seq}`;
        const w = this.waiters.get(key);
        if (w) { this.waiters.delete(key); w.resolve(f); } else this.replies.set(key, f);
        break;
      }
      case FrameType.loadReply: {
        const w = this.loadWaiters.shift();
        w?.resolve(f);
        break;
      }
      case FrameType.pong: {
        const w = this.pongWaiter; this.pongWaiter = null;
        w?.resolve(f);
        break;
      }
      case FrameType.helloAck: {
        const w = this.ackWaiter; this.ackWaiter = null;
        w?.resolve(f);
        break;
      }
      case FrameType.error: {
        const msg = new TextDecoder().decode(f.payload);
        this.lastError = `server error: ${msg}`;
        this.log(`device ${this.opts.deviceId}: ${this.lastError}`);
        if (this.ackWaiter) { this.ackWaiter.reject(new Error(this.lastError)); this.ackWaiter = null; }
        break;
      }
      case FrameType.bye:
        this.log(`device ${this.opts.deviceId}: server said bye`);
        break;
      default:
        this.log(`device ${this.opts.deviceId}: unexpected ${frameTypeName(f.type)} frame`);
    }
  }

  private write(f: Frame, handedMs = performance.now()): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    const at = performance.now();
    const buf = encodeFrame(f);
    ws.send(buf, { binary: true });
    this.opts.onFrame?.('send', f, buf.byteLength, at, handedMs);
  }

  /** Median RTT/2 of `n` unshaped pings (answered by the server at once). */
  async measureTransit(n = 7): Promise<number> {
    const rtts: number[] = [];
    for (let i = 0; i < n && this.connected; i++) {
      const p = new Promise<Frame>((resolve, reject) => { this.pongWaiter = { resolve, reject }; });
      const t = performance.now();
      this.write(makeFrame(FrameType.ping, { deviceId: this.opts.deviceId, seq: i }));
      await withTimeout(p, 5000, 'pong');
      rtts.push(performance.now() - t);
      await sleepMs(2);
    }
    rtts.sort((a, b) => a - b);
    this.transitMs = rtts.length > 0 ? rtts[Math.floor(rtts.length / 2)] / 2 : 0;
    return this.transitMs;
  }

  /** Join system `index`: resolves with ms to wait until the shared start (barrier at the server). */
  async hello(index: number, system: string, rejoin = false, limitMs = 120_000): Promise<number> {
    this.current = { index, system };
    const ack = new Promise<Frame>((resolve, reject) => { this.ackWaiter = { resolve, reject }; });
    const payload = { system, systemIndex: index, tokenSha256: this.opts.token ? tokenHash(this.opts.token) : '', transitMs: this.transitMs };
    this.write(makeFrame(FrameType.hello, { deviceId: this.opts.deviceId, flags: rejoin ? Flag.rejoin : 0, payload: jsonPayload(payload) }));
    const f = await withTimeout(ack, limitMs, `hello-ack for system ${system}`);
    const j = parseJsonPayload(f);
    return typeof j.startInMs === 'number' ? j.startInMs : 0;
  }

  /** Uplink shaping for the coming system run (fresh jitter stream per system, like the simulator). */
  setUplink(model: LinkModel | null): void {
    this.uplink = model;
    this.sender.close();
    this.sender = new ShapedSender(model, undefined, this.transitMs);
  }

  /**
   * Shared-bottleneck mode (live/shared-net.ts): the server shapes this device's uplink jointly
   * with the others'. Requests are then written unshaped, their modelled bytes in the header's u1,
   * and their uplink time comes back in the reply's f2.
   */
  setServerShaped(): void {
    this.serverShaped = true;
    this.setUplink(null);
  }

  sendRequest(frame: Partial<Frame>, modelledBytes: number): number {
    if (!this.connected) throw new ConnectionLost('not connected');
    const f = makeFrame(FrameType.request, { ...frame, deviceId: this.opts.deviceId });
    if (this.serverShaped) f.u1 = Math.max(0, modelledBytes);
    if (modelledBytes <= 0 || this.serverShaped) { const h = performance.now(); this.sender.sendUnshaped(() => this.write(f, h)); return 0; }
    const t = this.sender.send(modelledBytes, (tt) => this.write(f, tt.handedMs));
    return t.deliverMs - t.handedMs;
  }

  awaitReply(requestId: number, seq: number): Promise<Frame> {
    const key = `${requestId}:${seq}`;
    const have = this.replies.get(key);
    if (have) { this.replies.delete(key); return Promise.resolve(have); }
    if (!this.connected) return Promise.reject(new ConnectionLost('not connected'));
    return new Promise((resolve, reject) => this.waiters.set(key, { resolve, reject }));
  }

  load(requestId: number): Promise<CloudLoad> {
    if (!this.connected) return Promise.reject(new ConnectionLost('not connected'));
    const p = new Promise<Frame>((resolve, reject) => this.loadWaiters.push({ resolve, reject }));
    this.sender.sendUnshaped(() => this.write(makeFrame(FrameType.loadQuery, { deviceId: this.opts.deviceId, requestId })));
    return withTimeout(p, 30_000, 'load reply').then((f) => ({ replica: f.u0, queuedTokens: f.u1, activeRequests: f.f0 }));
  }

  /** bye-request: the request is finished; the server releases its replica. Kept in order behind held frames. */
  requestDone(requestId: number): void {
    if (!this.connected) return;
    this.sender.sendUnshaped(() => this.write(makeFrame(FrameType.bye, { deviceId: this.opts.deviceId, requestId, flags: Flag.requestDone })));
  }

  systemDone(index: number): void {
    this.current = null;
    if (!this.connected) return;
    this.sender.sendUnshaped(() => this.write(makeFrame(FrameType.bye, { deviceId: this.opts.deviceId, seq: index })));
  }

  async close(): Promise<void> {
    this.closing = true;
    // let held frames (e.g. the last bye) go out
    for (let i = 0; i < 200 && this.sender.pending > 0; i++) await sleepMs(5);
    const ws = this.ws;
    if (!ws) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => { ws.terminate(); resolve(); }, 1000);
      ws.once('close', () => { clearTimeout(t); resolve(); });
      ws.close(1000, 'done');
    });
    this.ws = null;
  }
}

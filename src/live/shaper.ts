/**
 * User-space link shaping, one instance per device and direction, with the
 * simulator's fixed-link model (network/network.ts) exactly:
 *   start    = max(now, previous message's transmit end)      (FIFO serialisation)
 *   txEnd    = start + bytes * 8 / bps
 *   deliver  = max(txEnd + latency + |N(0,1)| * jitter, previous delivery)   (no reordering)
 * The sender holds the frame and writes it to the socket at `deliver`
 * (setTimeout to about 1.5 ms before, then setImmediate polling: sub-ms
 * precision without blocking the event loop). The receiver sees it about a
 * loopback hop later.
 *
 * `bytes` is the modelled message size (the protocol op's payload + the
 * scenario's headerBytes), so live and simulated runs shape the same bytes;
 * the real frame (64-byte header + payload) is recorded beside it.
 * Jitter draws come from the same stream as the simulator's
 * (`net/<d>/jitter/<dir>`), in message order.
 */
import type { Rng } from '../core/rng.js';

export interface LinkParams {
  mbps: number;
  latencyMs: number;
  jitterMs: number;
}

export interface ShapeTimes {
  handedMs: number;
  startMs: number;
  txEndMs: number;
  deliverMs: number;
}

/** The pure arithmetic (tested against the simulator with a fake clock). */
export class LinkModel {
  private lastTxEndMs = -Infinity;
  private lastDeliveryMs = -Infinity;

  constructor(readonly link: LinkParams, private readonly jitterRng: Rng | null) {
    if (!(link.mbps > 0)) throw new RangeError(`link rate must be > 0 Mbit/s, got ${link.mbps}`);
  }

  schedule(nowMs: number, bytes: number): ShapeTimes {
    const startMs = Math.max(nowMs, this.lastTxEndMs);
    const txEndMs = startMs + (bytes * 8) / (this.link.mbps * 1e6) * 1000;
    this.lastTxEndMs = txEndMs;
    let deliverMs = txEndMs + this.link.latencyMs;
    if (this.link.jitterMs > 0 && this.jitterRng) deliverMs += Math.abs(this.jitterRng.normal()) * this.link.jitterMs;
    if (deliverMs < this.lastDeliveryMs) deliverMs = this.lastDeliveryMs;
    this.lastDeliveryMs = deliverMs;
    return { handedMs: nowMs, startMs, txEndMs, deliverMs };
  }
}

export interface Clock {
  nowMs(): number;
}
export const realClock: Clock = { nowMs: () => performance.now() };

/**
 * One pending wake-up at a precise time without blocking the event loop: setTimeout to
 * about 1.5 ms before, then setImmediate polling. `arm` while armed does nothing (the pending
 * `tick` re-arms for whatever is due next); `cancel` drops a pending timer (a polling
 * immediate still runs `tick`, which checks its owner's state).
 */
export class Waker {
  private timer: NodeJS.Timeout | null = null;
  private polling = false;
  constructor(private readonly tick: () => void, private readonly clock: Clock = realClock) {}

  get armed(): boolean { return this.timer !== null || this.polling; }

  arm(atMs: number): void {
    if (this.armed) return;
    const fire = (): void => { this.timer = null; this.polling = false; this.tick(); };
    const wait = atMs - this.clock.nowMs();
    if (wait > 1.5) this.timer = setTimeout(fire, wait - 1.5);
    else { this.polling = true; setImmediate(fire); }
  }

  cancel(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/**
 * Holds frames and releases them in order at their delivery times. `write`
 * gets the frame when it is due. Unshaped frames (control) are released at
 * max(now, last release) so they never overtake a held frame.
 */
export class ShapedSender {
  private readonly queue: { atMs: number; write: () => void }[] = [];
  private readonly waker: Waker;
  private lastAtMs = -Infinity;
  private closed = false;

  /**
   * @param leadMs frames are written this long before their delivery time: the
   *   measured one-way transit of the real path (loopback + WebSocket), so they
   *   reach the receiver at the modelled delivery time.
   */
  constructor(private readonly model: LinkModel | null, private readonly clock: Clock = realClock, private readonly leadMs = 0) {
    this.waker = new Waker(() => this.pump(), clock);
  }

  /** Shape a message of `bytes` modelled bytes; `write` is called at its delivery time. */
  send(bytes: number, write: (t: ShapeTimes) => void): ShapeTimes {
    const now = this.clock.nowMs();
    const t = this.model ? this.model.schedule(now, bytes) : { handedMs: now, startMs: now, txEndMs: now, deliverMs: now };
    this.enqueue(t.deliverMs - this.leadMs, () => write(t));
    return t;
  }

  /** A control frame: not shaped, but kept in order behind held frames. */
  sendUnshaped(write: () => void): void {
    this.enqueue(this.clock.nowMs(), write);
  }

  private enqueue(atMs: number, write: () => void): void {
    if (this.closed) return;
    const at = Math.max(atMs, this.lastAtMs);
    this.lastAtMs = at;
    this.queue.push({ atMs: at, write });
    this.pump();
  }

  /** Drop held frames (connection lost). */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    this.waker.cancel();
  }

  get pending(): number { return this.queue.length; }

  private pump(): void {
    if (this.waker.armed || this.closed) return;
    for (;;) {
      const head = this.queue[0];
      if (!head) return;
      if (head.atMs - this.clock.nowMs() <= 0) {
        this.queue.shift();
        head.write();
        continue;
      }
      this.waker.arm(head.atMs);
      return;
    }
  }
}

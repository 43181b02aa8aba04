/**
 * The simulated network (contract and model: network/types.ts).
 *
 * Each device has two pipes (uplink, downlink). A pipe sends its messages in
 * FIFO order, one transmitting flow at a time; a message is delivered
 * `latencyMs` + jitter after its last byte left, never before the previous
 * message of the same pipe (no reordering).
 *
 * Three kinds of pipe, by how a flow's rate is found:
 * - fixed: no `via`, no trace. The rate is the access capacity, constant, so
 *   a message's transmit end and delivery are known when it is sent: one
 *   event (the delivery) per message, no recompute.
 * - traced: no `via`, a bandwidth trace. The flow is alone on its access link,
 *   so its finish time is the inverse of the trace's cumulative capacity
 *   (binary search, exact for the trace's finest representation; one event).
 * - shared: crosses one or more shared bottlenecks. Rates are max-min fair
 *   (progressive filling) over all active shared flows, with each flow capped
 *   by its access capacity and each shared link (per direction) a capacity
 *   constraint. Rates are recomputed when a shared flow starts or ends and
 *   when a traced shared flow's capacity changes; progress is integrated
 *   exactly between recomputes. Each flow has its own completion event,
 *   rescheduled only when its rate changes (a stale one is dropped by the
 *   pipe's generation counter); when no shared link is oversubscribed every
 *   flow runs at its own cap and a new flow leaves the others' events alone.
 *   The recompute covers all active shared flows (fine for up to a few
 *   thousand concurrent flows).
 *   Direct delivery, the common case: while no shared link is oversubscribed
 *   (every flow at its cap; tracked with per-link sums of the flows' caps), a
 *   lone message whose cap fits under every link it crosses starts without a
 *   recompute and gets its delivery event at once (one event per message); a
 *   flow ending then changes nobody's rate, so it needs neither an event nor a
 *   recompute and is retired lazily. The first recompute that finds a link
 *   oversubscribed turns direct flows back into ordinary ones (undoing the
 *   placed delivery by its id). Results are identical to the plain algorithm
 *   (test: "max-min against a reference model").
 *
 * Jitter: per message |N(0, jitterMs)| (a normal truncated at 0, i.e.
 * half-normal), added to the latency; the delivery time is then raised to the
 * previous delivery of the same pipe, so jitter never reorders.
 *
 * A device with a trace uses it for both directions and ignores its fixed
 * uplinkMbps/downlinkMbps. Its trace position is simulated time + offsetS
 * (+ a seeded uniform offset in [0, period) when randomOffset; one draw per
 * device, the same for both directions, i.e. the same instant of the recording).
 *
 * Random streams (per device, so adding a device changes no other device's
 * draws): `net/<d>/jitter/up`, `net/<d>/jitter/down`, `net/<d>/trace-offset`.
 *
 * Note: a completion event made stale by a recompute stays in the engine's heap
 * until its time (and is then ignored), so the engine's clock may end a run a
 * little after the last delivery.
 */
import { Prio } from '../core/engine.js';
import type { Engine, Handler } from '../core/engine.js';
import { InputError } from '../core/errors.js';
import type { Rng } from '../core/rng.js';
import { loadLinkTrace } from './trace.js';
import type { CapacityTrace, TraceLoadOptions, TraceSpec } from './trace.js';
import type { Direction, NetworkStats, SimNetwork } from './types.js';

/** Structurally identical to scenario's LinkSpec (network/ imports only core/). */
export interface NetLinkSpec {
  uplinkMbps: number;
  downlinkMbps: number;
  latencyMs: number;
  jitterMs: number;
  trace?: TraceSpec;
  /** Downlink latency and jitter when they differ from the uplink's (topology paths whose two routes differ). */
  downLatencyMs?: number;
  downJitterMs?: number;
  /** Use the trace's down file for the uplink and its up file for the downlink (a traced link crossed b -> a). */
  traceReversed?: boolean;
}

/** Structurally identical to scenario's SharedLinkSpec. */
export interface NetSharedLinkSpec {
  name: string;
  uplinkMbps: number;
  downlinkMbps: number;
}

export interface NetworkDevice {
  link: NetLinkSpec;
  /** Names of the shared links this device's traffic crosses (the uplink crosses their uplink direction, the downlink their downlink). */
  via: string[];
  /**
   * Topology paths (topology/paths.ts): the shared link directions each direction of this
   * path crosses, when they are not simply `via` in the same direction (a link a-b crossed
   * b -> a by the uplink). Replaces `via` when given.
   */
  viaDirected?: { up: SharedHop[]; down: SharedHop[] };
  /** Name used in this pipe's random stream names (`net/<name>/jitter/up`); default: its index. */
  streamName?: string;
}

/** One shared link crossed in one of its directions ('up' = its uplinkMbps side). */
export interface SharedHop { name: string; dir: Direction }

export type NetworkOptions = TraceLoadOptions;

const KIND_FIXED = 0, KIND_TRACED = 1, KIND_SHARED = 2;
/** Nudge (s) when reading a trace at an event time, so float rounding lands past a change point. */
const TRACE_NUDGE_S = 1e-9;

/** Capacity-0 buffers every queue starts with (never written: the first push grows the queue). */
const EMPTY_F64 = new Float64Array(0), EMPTY_I32 = new Int32Array(0);

/**
 * FIFO of messages as parallel ring buffers (no object per message). A queue allocates its
 * buffers at its first message: a network of 10,000 devices has 40,000 queues, most of
 * them used by few messages or none (ten typed arrays per pipe were most of its set-up time).
 */
class MsgQueue {
  bytes: Float64Array = EMPTY_F64;
  atS: Float64Array = EMPTY_F64;
  tags: Int32Array = EMPTY_I32;
  /** In-flight queues: the id the delivery event carries (a rescheduled message gets a new one). */
  ids: Int32Array = EMPTY_I32;
  handlers: (Handler | undefined)[] = [];
  head = 0;
  size = 0;

  push(bytes: number, handler: Handler, tag: number, atS: number, id = 0): void {
    if (this.size === this.bytes.length) this.grow();
    const i = (this.head + this.size) & (this.bytes.length - 1);
    this.bytes[i] = bytes; this.handlers[i] = handler; this.tags[i] = tag; this.atS[i] = atS; this.ids[i] = id;
    this.size++;
  }

  /** Put a message back at the head (a direct-delivery flow returned to transmitting). */
  unshift(bytes: number, handler: Handler, tag: number, atS: number): void {
    if (this.size === this.bytes.length) this.grow();
    this.head = (this.head - 1) & (this.bytes.length - 1);
    const i = this.head;
    this.bytes[i] = bytes; this.handlers[i] = handler; this.tags[i] = tag; this.atS[i] = atS; this.ids[i] = 0;
    this.size++;
  }

  /** Index of the tail (the newest message). */
  get tailIndex(): number { return (this.head + this.size - 1) & (this.bytes.length - 1); }

  /** Drop the tail (read its fields first via tailIndex). */
  popTail(): void {
    this.handlers[this.tailIndex] = undefined;
    this.size--;
  }

  /** Drop the head (read its fields first via headIndex). */
  pop(): void {
    this.handlers[this.head] = undefined;
    this.head = (this.head + 1) & (this.bytes.length - 1);
    this.size--;
  }

  private grow(): void {
    const cap = this.bytes.length, n = cap === 0 ? 8 : cap * 2;
    const b = new Float64Array(n), a = new Float64Array(n), t = new Int32Array(n), id = new Int32Array(n);
    const h = new Array<Handler | undefined>(n);
    for (let k = 0; k < this.size; k++) {
      const j = (this.head + k) & (cap - 1);
      b[k] = this.bytes[j]; a[k] = this.atS[j]; t[k] = this.tags[j]; id[k] = this.ids[j]; h[k] = this.handlers[j];
    }
    this.bytes = b; this.atS = a; this.tags = t; this.ids = id; this.handlers = h; this.head = 0;
  }
}

/**
 * One device in one direction. Fires as its head message's transmit-completion
 * handler (tag = generation; a rate change or a new message bumps it, so stale
 * completions are dropped).
 */
class Pipe implements Handler {
  readonly queue = new MsgQueue(); // head = the transmitting message while busy (not in direct mode)
  readonly inflight = new MsgQueue(); // transmitted (or in direct mode), awaiting delivery; atS = delivery time
  busy = false;
  gen = 0;
  /** Shared flows: bits left at `net.sharedLastS`, current rate (bps), index in the active list. */
  remainingBits = 0;
  rateBps = 0;
  /** Shared flows: a completion event for the current rate is pending. */
  scheduled = false;
  activeIndex = -1;
  tickPending = false;
  lastDeliveryS = 0;
  /**
   * Direct delivery (shared flows while no shared link is oversubscribed): the
   * transmitting message already sits in `inflight` with its delivery event;
   * there is no transmit-completion event. `directEndS` is its transmit end.
   */
  direct = false;
  directEndS = 0;
  /** lastDeliveryS before the direct message was placed, and its jitter draw (s), to undo the placement. */
  directPrevDeliveryS = 0;
  directJitterS = 0;
  /** Jitter (s) already drawn for the transmitting message, or NaN. */
  pendingJitterS = NaN;
  /** Fixed pipes: when the last queued message finishes transmitting. */
  freeAtS = 0;
  /** Next delivery-event id of this pipe. */
  nextId = 1;
  readonly deliverer: Handler;
  readonly ticker: Handler;

  constructor(
    readonly net: Network,
    readonly device: number,
    readonly dir: Direction,
    readonly kind: number,
    readonly accessBps: number,
    readonly trace: CapacityTrace | undefined,
    readonly exactTrace: CapacityTrace | undefined,
    readonly traceOffsetS: number,
    readonly latencyS: number,
    readonly jitterS: number,
    readonly jitterRng: Rng | undefined,
    /** Shared-resource indices (shared link * 2 + direction) crossed by this pipe. */
    readonly resources: Int32Array,
  ) {
    this.deliverer = { fire: (engine: Engine, tag: number): void => net.deliver(engine, this, tag) };
    this.ticker = { fire: (engine: Engine): void => net.traceTick(engine, this) };
  }

  fire(engine: Engine, tag: number): void {
    if (tag !== this.gen || !this.busy) return;
    if (this.kind === KIND_SHARED) this.net.sharedFlowDone(engine, this);
    else this.net.txDone(engine, this);
  }

  /** Access capacity (bps) at simulated time `nowS`. */
  capacityAt(nowS: number): number {
    return this.trace ? this.trace.capacityAt(nowS + this.traceOffsetS + TRACE_NUDGE_S) : this.accessBps;
  }

  /** Jitter (s) for the next delivery: one draw per message, in the pipe's message order. */
  drawJitterS(): number {
    return this.jitterRng !== undefined ? Math.abs(this.jitterRng.normal()) * this.jitterS : 0;
  }
}

export class Network implements SimNetwork {
  readonly stats: NetworkStats;
  private readonly pipes: Pipe[] = []; // device * 2 + (up 0, down 1)
  /** Shared resources: index = shared link * 2 + direction. */
  private readonly resCapBps: Float64Array;
  private readonly resLeft: Float64Array;
  private readonly resUnfrozen: Int32Array;
  /** Sum of the access capacities of the active untraced shared flows crossing each resource. */
  private readonly resCapSumBps: Float64Array;
  private readonly sharedNames: string[];
  private readonly active: Pipe[] = [];
  /** Active shared flows with a bandwidth trace (their caps vary: no direct delivery while any is active). */
  private tracedActive = 0;
  /** Active flows in direct-delivery mode. */
  private directActive = 0;
  /**
   * Every active shared flow runs at its access capacity (the last recompute found
   * no oversubscribed resource, and flows admitted since fitted): a flow that fits
   * starts without a recompute, and a flow ending changes nobody's rate.
   */
  private unconstrained = true;
  /** Time up to which the active shared flows' remainingBits are integrated. */
  sharedLastS = 0;
  private newRate = new Float64Array(64);
  private frozen = new Uint8Array(64);

  constructor(
    private readonly engine: Engine,
    devices: NetworkDevice[],
    shared: NetSharedLinkSpec[],
    rng: (name: string) => Rng,
    options: NetworkOptions = {},
  ) {
    const n = devices.length;
    this.stats = {
      sentBytes: { up: new Float64Array(n), down: new Float64Array(n) },
      deliveredBytes: { up: new Float64Array(n), down: new Float64Array(n) },
      messagesSent: 0,
      messagesDelivered: 0,
    };
    const byName = new Map<string, number>();
    this.resCapBps = new Float64Array(shared.length * 2);
    shared.forEach((s, i) => {
      if (byName.has(s.name)) throw new InputError(`network.shared: duplicate shared link name '${s.name}'; give each shared link a unique name`, 'network.shared');
      byName.set(s.name, i);
      this.resCapBps[2 * i] = positiveMbps(s.uplinkMbps, `network.shared '${s.name}' uplinkMbps`) * 1e6;
      this.resCapBps[2 * i + 1] = positiveMbps(s.downlinkMbps, `network.shared '${s.name}' downlinkMbps`) * 1e6;
    });
    this.sharedNames = shared.map((s) => s.name);
    this.resLeft = new Float64Array(this.resCapBps.length);
    this.resUnfrozen = new Int32Array(this.resCapBps.length);
    this.resCapSumBps = new Float64Array(this.resCapBps.length);

    devices.forEach((dev, d) => {
      const link = dev.link;
      const field = `device ${d} link`;
      if (!(link.latencyMs >= 0) || !Number.isFinite(link.latencyMs)) throw new InputError(`${field}: latencyMs must be a finite number >= 0, got ${link.latencyMs}`, 'latencyMs');
      if (!(link.jitterMs >= 0) || !Number.isFinite(link.jitterMs)) throw new InputError(`${field}: jitterMs must be a finite number >= 0, got ${link.jitterMs}`, 'jitterMs');
      const sharedIndex = (name: string): number => {
        const i = byName.get(name);
        if (i === undefined) {
          throw new InputError(`${field}: via '${name}' is not a shared link; define it under network.shared (known: ${this.sharedNames.join(', ') || 'none'})`, 'via');
        }
        return i;
      };
      // Shared resources per direction: resource = shared link * 2 + (0 its uplink, 1 its downlink).
      const res: { up: number[]; down: number[] } = { up: [], down: [] };
      if (dev.viaDirected) {
        for (const dir of ['up', 'down'] as const) {
          for (const h of dev.viaDirected[dir]) {
            const r = 2 * sharedIndex(h.name) + (h.dir === 'up' ? 0 : 1);
            if (!res[dir].includes(r)) res[dir].push(r);
          }
        }
      } else {
        for (const name of dev.via) {
          const i = sharedIndex(name);
          if (!res.up.includes(2 * i)) { res.up.push(2 * i); res.down.push(2 * i + 1); }
        }
      }
      const streamName = dev.streamName ?? String(d);
      let upT: { exact: CapacityTrace; binned: CapacityTrace } | undefined;
      let downT: typeof upT;
      let offUp = 0, offDown = 0;
      if (link.trace) {
        const t = loadLinkTrace(link.trace, options);
        upT = t.up; downT = t.down;
        const offS = link.trace.offsetS;
        if (!Number.isFinite(offS)) throw new InputError(`${field}: trace.offsetS must be a finite number of seconds, got ${offS}`, 'offsetS');
        // One uniform per device for both directions: the same instant of the recording.
        const u = link.trace.randomOffset ? rng(`net/${streamName}/trace-offset`).uniform() : 0;
        if (link.traceReversed) { const t0 = upT; upT = downT; downT = t0; }
        const rnd = u * Math.min(upT.binned.periodS, downT.binned.periodS);
        offUp = mod(offS + rnd, upT.binned.periodS);
        offDown = mod(offS + rnd, downT.binned.periodS);
      } else {
        positiveMbps(link.uplinkMbps, `${field} uplinkMbps`);
        positiveMbps(link.downlinkMbps, `${field} downlinkMbps`);
      }
      for (const dir of ['up', 'down'] as const) {
        const tr = dir === 'up' ? upT : downT;
        const rs = res[dir];
        const kind = rs.length > 0 ? KIND_SHARED : link.trace ? KIND_TRACED : KIND_FIXED;
        const latencyMs = dir === 'down' && link.downLatencyMs !== undefined ? link.downLatencyMs : link.latencyMs;
        const jitterMs = dir === 'down' && link.downJitterMs !== undefined ? link.downJitterMs : link.jitterMs;
        if (!(latencyMs >= 0) || !Number.isFinite(latencyMs)) throw new InputError(`${field}: ${dir}link latencyMs must be a finite number >= 0, got ${latencyMs}`, 'latencyMs');
        if (!(jitterMs >= 0) || !Number.isFinite(jitterMs)) throw new InputError(`${field}: ${dir}link jitterMs must be a finite number >= 0, got ${jitterMs}`, 'jitterMs');
        const jitterS = jitterMs / 1000;
        this.pipes.push(new Pipe(
          this, d, dir, kind,
          (dir === 'up' ? link.uplinkMbps : link.downlinkMbps) * 1e6,
          tr?.binned, tr?.exact,
          dir === 'up' ? offUp : offDown,
          latencyMs / 1000, jitterS,
          jitterS > 0 ? rng(`net/${streamName}/jitter/${dir}`) : undefined,
          Int32Array.from(rs),
        ));
      }
    });
  }

  send(device: number, dir: Direction, bytes: number, onDelivered: Handler, tag: number): void {
    const p = this.pipes[2 * device + (dir === 'up' ? 0 : 1)];
    if (p === undefined) throw new RangeError(`network.send: no device ${device} (have ${this.pipes.length / 2})`);
    if (!(bytes >= 0) || !Number.isFinite(bytes)) throw new RangeError(`network.send: bytes must be finite and >= 0, got ${bytes}`);
    const engine = this.engine, now = engine.nowS;
    (dir === 'up' ? this.stats.sentBytes.up : this.stats.sentBytes.down)[device] += bytes;
    this.stats.messagesSent++;
    if (p.kind === KIND_FIXED) {
      // Constant rate, FIFO: the transmit end and the delivery are known now (one event).
      const startS = p.freeAtS > now ? p.freeAtS : now;
      const endS = startS + bytes * 8 / p.accessBps;
      p.freeAtS = endS;
      let jitterS = p.pendingJitterS; // drawn by a `settle` that declined (NaN: not drawn)
      if (jitterS !== jitterS) jitterS = p.drawJitterS();
      else p.pendingJitterS = NaN;
      // As `place`, but when it is delivered within the current run the handler is the
      // delivery event itself (nothing can undo a fixed pipe's placement; counted as
      // delivered now). Later than the run's end: placed, counted when (if) delivered.
      let atS = endS + p.latencyS + jitterS;
      if (atS < p.lastDeliveryS) atS = p.lastDeliveryS;
      if (atS > engine.untilS) { this.place(engine, p, bytes, onDelivered, tag, endS, jitterS); return; }
      p.lastDeliveryS = atS;
      (dir === 'up' ? this.stats.deliveredBytes.up : this.stats.deliveredBytes.down)[device] += bytes;
      this.stats.messagesDelivered++;
      engine.schedule(atS, onDelivered, tag, Prio.completion);
      return;
    }
    if (p.direct) {
      // The pipe's direct message: finished transmitting (the pipe is idle), or still
      // transmitting, in which case the new message waits for its transmit end (an event).
      if (p.directEndS <= now) this.retireDirect(p);
      else this.undirect(p, true);
    }
    p.queue.push(bytes, onDelivered, tag, now);
    if (!p.busy) {
      const needRecompute = this.startNext(engine, p);
      if (needRecompute) this.recompute(now);
    }
  }

  /**
   * A message on a fixed-rate pipe whose delivery nobody needs an event for (the caller
   * accounts for it itself): if its delivery time is at most `untilS`, send it now and
   * return that time (counted as sent and delivered; the pipe's FIFO state advances as for
   * `send`). Otherwise (another kind of pipe, or delivered after `untilS`) do nothing and
   * return NaN: the caller then calls `send` (the same jitter draw is used).
   */
  settle(device: number, dir: Direction, bytes: number, untilS: number): number {
    const p = this.pipes[2 * device + (dir === 'up' ? 0 : 1)];
    if (p === undefined || p.kind !== KIND_FIXED || !(bytes >= 0) || !Number.isFinite(bytes)) return NaN;
    const now = this.engine.nowS;
    const startS = p.freeAtS > now ? p.freeAtS : now;
    const endS = startS + bytes * 8 / p.accessBps;
    let jitterS = p.pendingJitterS;
    if (jitterS !== jitterS) jitterS = p.drawJitterS();
    // As `place` computes it.
    let atS = endS + p.latencyS + jitterS;
    if (atS < p.lastDeliveryS) atS = p.lastDeliveryS;
    if (atS > untilS) { p.pendingJitterS = jitterS; return NaN; }
    p.pendingJitterS = NaN;
    p.freeAtS = endS;
    p.lastDeliveryS = atS;
    const st = this.stats;
    (dir === 'up' ? st.sentBytes.up : st.sentBytes.down)[device] += bytes;
    (dir === 'up' ? st.deliveredBytes.up : st.deliveredBytes.down)[device] += bytes;
    st.messagesSent++;
    st.messagesDelivered++;
    return atS;
  }

  idleTransferMs(device: number, dir: Direction, bytes: number): number {
    const p = this.pipes[2 * device + (dir === 'up' ? 0 : 1)];
    if (p === undefined) throw new RangeError(`network.idleTransferMs: no device ${device}`);
    if (bytes <= 0) return p.latencyS * 1000;
    let cap = p.capacityAt(this.engine.nowS);
    for (let k = 0; k < p.resources.length; k++) cap = Math.min(cap, this.resCapBps[p.resources[k]]);
    // cap may be 0 during a trace outage: the prediction is then Infinity.
    return (bytes * 8 / cap) * 1000 + p.latencyS * 1000;
  }

  /** Number of flows currently transmitting through shared links (for tests and diagnostics). */
  get activeSharedFlows(): number {
    const now = this.engine.nowS;
    let n = 0;
    for (const f of this.active) if (!(f.direct && f.directEndS <= now)) n++;
    return n;
  }

  /**
   * Start the head message of an idle pipe: zero-byte messages finish at once
   * (delivered after latency). A shared flow that fits under every shared link
   * while all flows run at their caps starts in direct mode; otherwise it is
   * registered and the caller must recompute (returns true).
   */
  private startNext(engine: Engine, p: Pipe): boolean {
    const q = p.queue;
    while (q.size > 0 && q.bytes[q.head] === 0) {
      this.transmitted(engine, p);
    }
    if (q.size === 0) { p.busy = false; return false; }
    p.busy = true;
    const bits = q.bytes[q.head] * 8;
    const now = engine.nowS;
    if (p.kind === KIND_TRACED) {
      const tr = p.exactTrace!;
      const x0 = now + p.traceOffsetS;
      const endS = tr.timeForCumulativeBits(tr.cumulativeBits(x0) + bits) - p.traceOffsetS;
      p.gen = (p.gen + 1) | 0;
      engine.schedule(endS > now ? endS : now, p, p.gen);
      return false;
    }
    // Shared.
    if (this.active.length === 0) this.sharedLastS = now;
    // Direct only for a lone message: queued ones need the transmit-end event to start.
    const direct = q.size === 1 && p.trace === undefined && this.unconstrained && this.fits(p, now);
    if (direct) this.advance(now); // integrate the others before this flow joins
    p.remainingBits = bits;
    p.rateBps = 0;
    p.scheduled = false;
    this.addActive(p);
    if (p.trace && !p.tickPending) this.scheduleTick(engine, p);
    if (!direct) return true;
    // Alone at its cap until it ends, unless a later recompute finds a shared link
    // oversubscribed (then `undirect` turns it back into a transmitting flow).
    p.rateBps = p.accessBps;
    p.scheduled = true;
    p.direct = true;
    this.directActive++;
    p.directEndS = now + bits / p.accessBps;
    p.directPrevDeliveryS = p.lastDeliveryS;
    p.directJitterS = p.drawJitterS();
    p.gen = (p.gen + 1) | 0;
    const h = q.head;
    const bytes = q.bytes[h], handler = q.handlers[h]!, tag = q.tags[h];
    q.pop();
    this.place(engine, p, bytes, handler, tag, p.directEndS, p.directJitterS);
    return false;
  }

  /** Does a new flow of `p` at its cap fit under every shared link it crosses? */
  private fits(p: Pipe, now: number): boolean {
    const rs = p.resources, cap = p.accessBps;
    for (let pass = 0; pass < 2; pass++) {
      let ok = true;
      for (let k = 0; k < rs.length; k++) if (this.resCapSumBps[rs[k]] + cap > this.resCapBps[rs[k]]) { ok = false; break; }
      if (ok) return true;
      if (pass === 0 && !this.retireFinishedDirect(now)) return false;
    }
    return false;
  }

  /** Place a message in flight: delivered at `endS` + latency + jitter, never before the pipe's previous delivery. */
  private place(engine: Engine, p: Pipe, bytes: number, handler: Handler, tag: number, endS: number, jitterS: number): void {
    let atS = endS + p.latencyS + jitterS;
    if (atS < p.lastDeliveryS) atS = p.lastDeliveryS;
    p.lastDeliveryS = atS;
    const id = p.nextId++;
    p.inflight.push(bytes, handler, tag, atS, id);
    engine.schedule(atS, p.deliverer, id, Prio.completion);
  }

  /** The pipe's head message has left the sender: schedule its delivery. */
  private transmitted(engine: Engine, p: Pipe): void {
    const q = p.queue, h = q.head;
    const bytes = q.bytes[h], handler = q.handlers[h]!, tag = q.tags[h];
    q.pop();
    let jitterS = p.pendingJitterS;
    if (jitterS !== jitterS) jitterS = p.drawJitterS(); // NaN: not drawn yet
    p.pendingJitterS = NaN;
    this.place(engine, p, bytes, handler, tag, engine.nowS, jitterS);
  }

  /** Transmit completion of a traced (unshared) pipe (called by Pipe.fire for a current generation). */
  txDone(engine: Engine, p: Pipe): void {
    this.transmitted(engine, p);
    this.startNext(engine, p);
  }

  /** A shared flow's last bit left now (its completion event was current): retire it, start the pipe's next message, recompute. */
  sharedFlowDone(engine: Engine, p: Pipe): void {
    const now = engine.nowS;
    const wasUnconstrained = this.unconstrained;
    if (!wasUnconstrained) this.advance(now);
    this.removeActive(p);
    this.transmitted(engine, p);
    const needRecompute = this.startNext(engine, p);
    // All flows at their caps: this one leaving changes nobody's rate.
    if (!wasUnconstrained || needRecompute) this.recompute(now);
  }

  deliver(engine: Engine, p: Pipe, id: number): void {
    const q = p.inflight, h = q.head;
    if (q.size === 0 || q.ids[h] !== id) return; // a placement undone by `undirect`
    const bytes = q.bytes[h], handler = q.handlers[h]!, tag = q.tags[h];
    q.pop();
    if (p.direct && q.size === 0) this.retireDirect(p); // the direct message itself
    (p.dir === 'up' ? this.stats.deliveredBytes.up : this.stats.deliveredBytes.down)[p.device] += bytes;
    this.stats.messagesDelivered++;
    handler.fire(engine, tag);
  }

  /** A direct flow whose transmit end has passed: it leaves the shared links; the pipe is idle. */
  private retireDirect(p: Pipe): void {
    p.direct = false;
    this.directActive--;
    this.removeActive(p);
    p.busy = false;
  }

  /** Retire every direct flow that has finished transmitting by `now`; true if any was. */
  private retireFinishedDirect(now: number): boolean {
    if (this.directActive === 0) return false;
    let any = false;
    for (let i = this.active.length - 1; i >= 0; i--) {
      const f = this.active[i];
      if (f.direct && f.directEndS <= now) { this.retireDirect(f); any = true; }
    }
    return any;
  }

  /**
   * Turn a direct flow that is still transmitting back into an ordinary one: its
   * message returns to the head of the queue (the placed delivery is dropped by its id)
   * with its jitter kept. If `keepRate`, its completion event is scheduled at its
   * direct transmit end (rate unchanged); otherwise the caller's recompute schedules it.
   */
  private undirect(p: Pipe, keepRate: boolean): void {
    const f = p.inflight, t = f.tailIndex;
    p.queue.unshift(f.bytes[t], f.handlers[t]!, f.tags[t], f.atS[t]);
    f.popTail();
    p.lastDeliveryS = p.directPrevDeliveryS;
    p.pendingJitterS = p.directJitterS;
    p.direct = false;
    this.directActive--;
    if (keepRate) {
      p.gen = (p.gen + 1) | 0;
      p.scheduled = true;
      this.engine.schedule(p.directEndS, p, p.gen);
    } else {
      p.scheduled = false;
    }
  }

  private scheduleTick(engine: Engine, p: Pipe): void {
    const x = engine.nowS + p.traceOffsetS + TRACE_NUDGE_S;
    const next = p.trace!.nextChangeS(x);
    if (next === Infinity) return;
    const atS = next - p.traceOffsetS;
    p.tickPending = true;
    engine.schedule(atS > engine.nowS ? atS : engine.nowS, p.ticker, 0, Prio.completion);
  }

  /** A traced shared pipe's capacity changes now. */
  traceTick(engine: Engine, p: Pipe): void {
    p.tickPending = false;
    if (!p.busy) return;
    this.recompute(engine.nowS);
    this.scheduleTick(engine, p);
  }

  private addActive(p: Pipe): void {
    p.activeIndex = this.active.length;
    this.active.push(p);
    if (p.trace) this.tracedActive++;
    else for (let k = 0; k < p.resources.length; k++) this.resCapSumBps[p.resources[k]] += p.accessBps;
  }

  private removeActive(p: Pipe): void {
    const a = this.active, i = p.activeIndex;
    const last = a.pop()!;
    if (last !== p) { a[i] = last; last.activeIndex = i; }
    p.activeIndex = -1;
    p.remainingBits = 0; p.rateBps = 0; p.scheduled = false;
    if (p.trace) this.tracedActive--;
    else for (let k = 0; k < p.resources.length; k++) this.resCapSumBps[p.resources[k]] -= p.accessBps;
  }

  /** Integrate the shared flows' progress up to `nowS` at their current rates. */
  private advance(nowS: number): void {
    const dt = nowS - this.sharedLastS;
    if (dt > 0) {
      for (const f of this.active) {
        const r = f.remainingBits - f.rateBps * dt;
        f.remainingBits = r > 0 ? r : 0;
      }
    }
    this.sharedLastS = nowS;
  }

  /** Max-min fair rates for all active shared flows (progressive filling), then reschedule changed completions. */
  private recompute(nowS: number): void {
    this.retireFinishedDirect(nowS);
    this.advance(nowS);
    const flows = this.active, n = flows.length;
    if (n === 0) { this.unconstrained = true; return; }
    if (this.newRate.length < n) { this.newRate = new Float64Array(2 * n); this.frozen = new Uint8Array(2 * n); }
    const rate = this.newRate, frozen = this.frozen;
    const left = this.resLeft, cnt = this.resUnfrozen;
    left.set(this.resCapBps);
    cnt.fill(0);
    for (let i = 0; i < n; i++) {
      frozen[i] = 0;
      rate[i] = flows[i].capacityAt(nowS); // the flow's cap for now
      const rs = flows[i].resources;
      for (let k = 0; k < rs.length; k++) cnt[rs[k]]++;
    }
    // Fast path: if no shared link is oversubscribed by its flows' own caps, every
    // flow simply runs at its cap (what progressive filling would give, in one pass).
    let oversubscribed = false;
    for (let i = 0; i < n && !oversubscribed; i++) {
      const rs = flows[i].resources;
      for (let k = 0; k < rs.length; k++) { left[rs[k]] -= rate[i]; if (left[rs[k]] < 0) { oversubscribed = true; break; } }
    }
    this.unconstrained = !oversubscribed && this.tracedActive === 0;
    let unfrozen = n;
    if (oversubscribed) left.set(this.resCapBps);
    else unfrozen = 0; // rate[i] already holds each flow's cap
    while (unfrozen > 0) {
      let level = Infinity;
      for (let r = 0; r < left.length; r++) {
        if (cnt[r] > 0) { const s = left[r] / cnt[r]; if (s < level) level = s; }
      }
      for (let i = 0; i < n; i++) if (!frozen[i] && rate[i] < level) level = rate[i];
      if (level < 0) level = 0;
      const tol = level * (1 + 1e-12);
      // Decide every flow to freeze at this level before touching the resources.
      for (let i = 0; i < n; i++) {
        if (frozen[i]) continue;
        let sat = rate[i] <= tol;
        if (!sat) {
          const rs = flows[i].resources;
          for (let k = 0; k < rs.length; k++) if (left[rs[k]] / cnt[rs[k]] <= tol) { sat = true; break; }
        }
        if (sat) frozen[i] = 2;
      }
      for (let i = 0; i < n; i++) {
        if (frozen[i] !== 2) continue;
        frozen[i] = 1; unfrozen--;
        rate[i] = level;
        const rs = flows[i].resources;
        for (let k = 0; k < rs.length; k++) { left[rs[k]] -= level; cnt[rs[k]]--; }
      }
    }
    // Each flow has its own completion event; only a flow whose rate changed (or a new
    // flow) is rescheduled, the stale event being dropped by the pipe's generation.
    // A flow at rate 0 (trace outage) waits for the capacity-change tick. Direct flows
    // stay direct while every flow runs at its cap; otherwise they get completion events
    // (at their direct transmit end when their rate is unchanged).
    for (let i = 0; i < n; i++) {
      const f = flows[i], r = rate[i];
      if (f.direct) {
        if (this.unconstrained) continue;
        this.undirect(f, r === f.rateBps);
      }
      if (r === f.rateBps && f.scheduled) continue;
      f.rateBps = r;
      f.gen = (f.gen + 1) | 0;
      f.scheduled = r > 0;
      if (r > 0) this.engine.schedule(nowS + f.remainingBits / r, f, f.gen);
    }
  }
}

function positiveMbps(v: number, what: string): number {
  if (!(v > 0) || !Number.isFinite(v)) throw new InputError(`${what} must be a finite bandwidth > 0 Mbps, got ${v}`, what);
  return v;
}

function mod(x: number, m: number): number {
  const r = x % m;
  return r < 0 ? r + m : r;
}

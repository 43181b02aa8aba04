/**
 * Live shaping of shared bottlenecks (device-cloud runner): the simulator's own network
 * (network/network.ts: FIFO per path direction, max-min fair rates over the shared links,
 * each flow capped by its access link, latency + jitter after the last byte) driven by the
 * real clock instead of simulated time.
 *
 * Per-device shaping (shaper.ts) cannot shape a bottleneck that several devices cross: each
 * device only sees its own messages. When the scenario has shared links, the cloud server,
 * which every path ends at, runs one `LiveSharedNetwork` for the system run and shapes both
 * directions there:
 *  - downlink: a reply is handed to the network when the server sends it and written to the
 *    socket when the network delivers it;
 *  - uplink: the device writes its request frame at once (unshaped, with the modelled bytes
 *    in the header's `u1`); the server hands it to the network on receipt and processes it
 *    when the network delivers it.
 * The model is exact (the same code as the simulator, same jitter streams `net/<d>/jitter/<dir>`
 * in message order); the real times lag it by the loopback transit (one WebSocket hop, about
 * 0.1-0.3 ms per direction: uplink frames reach the server that much after the device handed
 * them, downlink frames reach the device that much after their delivery) and by the timer
 * precision (setTimeout to 1.5 ms before an event, then setImmediate polling).
 *
 * Time mapping: engine seconds = (clock ms - t0Ms) / 1000, never decreasing. Events fire at
 * their exact model times (the network integrates rates between model instants), so only the
 * callbacks run a little after the model says.
 */
import { Engine, type Handler } from '../core/engine.js';
import { RngStreams } from '../core/rng.js';
import { Network } from '../network/network.js';
import type { Direction } from '../network/types.js';
import { deviceLink, type Testbed } from '../sim/run.js';
import type { CompiledNetwork } from '../topology/paths.js';
import { realClock, Waker, type Clock } from './shaper.js';

/**
 * Whether the server shapes every device's traffic (some device's path crosses a shared
 * link): then devices write their frames unshaped and the server runs a LiveSharedNetwork.
 */
export function shapesAtServer(tb: Testbed): boolean {
  return tb.devices.some((d) => deviceLink(tb, d).shared);
}

export class LiveSharedNetwork {
  private readonly engine = new Engine(256);
  private readonly network: Network;
  private readonly waker: Waker;
  private closed = false;
  /** Inside `poll`'s engine run: a callback that sends again must not start a nested run. */
  private running = false;

  /**
   * @param compiled the device paths as the simulator compiles them (sim/run.ts deviceNetwork)
   * @param seed the scenario seed: a fresh set of jitter streams per system run, like the simulator
   * @param t0Ms the system run's start on `clock` (engine time 0)
   */
  constructor(compiled: CompiledNetwork, seed: number, private readonly t0Ms: number, private readonly clock: Clock = realClock) {
    this.waker = new Waker(() => { if (this.closed) return; this.poll(); this.arm(); }, clock);
    const streams = new RngStreams(seed);
    this.network = new Network(this.engine, compiled.devices, compiled.shared, (name) => streams.get(name));
  }

  /** Engine seconds of the clock's now (clamped so the engine never goes back). */
  private nowS(): number {
    return Math.max(this.engine.nowS, (this.clock.nowMs() - this.t0Ms) / 1000);
  }

  /**
   * Hand a message of `bytes` modelled bytes to path `path` in direction `dir` now;
   * `onDelivered(networkMs)` runs when the network delivers it (networkMs = model delivery - hand-over).
   */
  send(path: number, dir: Direction, bytes: number, onDelivered: (networkMs: number) => void): void {
    if (this.closed) return;
    this.poll();
    const handedS = this.engine.nowS;
    const h: Handler = { fire: (e: Engine): void => onDelivered((e.nowS - handedS) * 1000) };
    this.network.send(path, dir, bytes, h, 0);
    this.arm();
  }

  /** Fire every event due by the clock's now and move the engine to now. */
  poll(): void {
    if (this.running) return; // a delivery callback sending again: it sends at the event's time
    const nowS = this.nowS();
    this.running = true;
    try { this.engine.run(nowS); } finally { this.running = false; }
    if (this.engine.nowS < nowS) this.engine.nowS = nowS;
  }

  /** Bytes delivered per path and direction so far. */
  get stats(): Network['stats'] { return this.network.stats; }

  /** Stop: pending deliveries never fire. */
  close(): void {
    this.closed = true;
    this.waker.cancel();
  }

  private arm(): void {
    if (this.closed) return;
    const next = this.engine.nextS;
    if (next !== Infinity) this.waker.arm(this.t0Ms + next * 1000);
  }
}

/**
 * Releases writes in the order they were queued, each when it is ready: a shaped entry when
 * its network delivery fires, an unshaped one (control frames) at once but never before the
 * entries queued ahead of it (as ShapedSender keeps control frames behind held ones).
 */
export class OrderedRelease {
  private readonly queue: { ready: boolean; run: () => void }[] = [];
  private closed = false;

  /** Queue `run`; returns the function that marks it ready (call it at delivery). */
  hold(run: () => void): () => void {
    const e = { ready: false, run };
    if (!this.closed) this.queue.push(e);
    return () => { e.ready = true; this.flush(); };
  }

  /** Queue `run`, ready at once (released when everything ahead of it is). */
  now(run: () => void): void { this.hold(run)(); }

  get pending(): number { return this.queue.length; }

  close(): void { this.closed = true; this.queue.length = 0; }

  private flush(): void {
    while (!this.closed && this.queue.length > 0 && this.queue[0].ready) this.queue.shift()!.run();
  }
}

import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Engine } from '../src/core/engine.js';
import type { Handler } from '../src/core/engine.js';
import { InputError } from '../src/core/errors.js';
import { RngStreams } from '../src/core/rng.js';
import { Network } from '../src/network/network.js';
import type { NetLinkSpec, NetSharedLinkSpec, NetworkDevice } from '../src/network/network.js';
import {
  CapacityTrace, DEFAULT_MAHIMAHI_BIN_S, MAHIMAHI_PACKET_BITS, clearTraceCache, loadLinkTrace, parseCsvTrace, parseMahimahi,
} from '../src/network/trace.js';
import type { Direction } from '../src/network/types.js';
import type { LinkSpec, SharedLinkSpec } from '../src/scenario/types.js';

// The scenario's types must stay assignable to the network's local structural types.
const _linkCompat = (l: LinkSpec): NetLinkSpec => l;
const _sharedCompat = (s: SharedLinkSpec): NetSharedLinkSpec => s;
void _linkCompat; void _sharedCompat;

const FIX = new URL('./fixtures/links/', import.meta.url).pathname;
const MAHIMAHI_DIR = new URL('../../shared/data/links/mahimahi/', import.meta.url).pathname;
const TMOBILE = `${MAHIMAHI_DIR}TMobile-LTE-short`;

function link(over: Partial<NetLinkSpec> = {}): NetLinkSpec {
  return { uplinkMbps: 10, downlinkMbps: 20, latencyMs: 5, jitterMs: 0, ...over };
}

/** Records delivery times by tag; counts deliveries per tag. */
class Recorder implements Handler {
  readonly atS = new Map<number, number>();
  readonly count = new Map<number, number>();
  readonly order: number[] = [];
  fire(engine: Engine, tag: number): void {
    this.atS.set(tag, engine.nowS);
    this.count.set(tag, (this.count.get(tag) ?? 0) + 1);
    this.order.push(tag);
  }
  t(tag: number): number {
    const v = this.atS.get(tag);
    if (v === undefined) throw new Error(`tag ${tag} not delivered`);
    return v;
  }
}

function setup(devices: NetworkDevice[], shared: NetSharedLinkSpec[] = [], seed = 1) {
  const engine = new Engine();
  const streams = new RngStreams(seed);
  const net = new Network(engine, devices, shared, (n) => streams.get(n));
  return { engine, net, rec: new Recorder() };
}

/** Send at absolute time atS through an engine event. */
function sendAt(engine: Engine, net: Network, atS: number, device: number, dir: Direction, bytes: number, h: Handler, tag: number): void {
  engine.schedule(atS, { fire: () => net.send(device, dir, bytes, h, tag) }, 0, 1);
}

describe('Network: fixed links (fast path)', () => {
  it('a lone message takes bytes*8/bps + latency', () => {
    const { engine, net, rec } = setup([{ link: link(), via: [] }]);
    net.send(0, 'up', 1_000_000, rec, 1); // 8e6 bits at 10 Mbps = 0.8 s
    net.send(0, 'down', 1_000_000, rec, 2); // at 20 Mbps = 0.4 s; directions independent
    engine.run();
    expect(rec.t(1)).toBeCloseTo(0.8 + 0.005, 12);
    expect(rec.t(2)).toBeCloseTo(0.4 + 0.005, 12);
  });

  it('two messages go FIFO back to back', () => {
    const { engine, net, rec } = setup([{ link: link(), via: [] }]);
    net.send(0, 'up', 500_000, rec, 1); // 0.4 s
    net.send(0, 'up', 250_000, rec, 2); // starts at 0.4 s, 0.2 s
    engine.run();
    expect(rec.t(1)).toBeCloseTo(0.405, 12);
    expect(rec.t(2)).toBeCloseTo(0.605, 12);
    expect(rec.t(2) - rec.t(1)).toBeCloseTo(250_000 * 8 / 10e6, 12);
  });

  it('the next message starts when the previous finished transmitting, not when delivered', () => {
    const { engine, net, rec } = setup([{ link: link({ latencyMs: 1000 }), via: [] }]);
    net.send(0, 'up', 125_000, rec, 1); // 0.1 s
    net.send(0, 'up', 125_000, rec, 2);
    engine.run();
    expect(rec.t(1)).toBeCloseTo(1.1, 12);
    expect(rec.t(2)).toBeCloseTo(1.2, 12);
  });

  it('zero-byte messages are delivered after the latency, in order', () => {
    const { engine, net, rec } = setup([{ link: link(), via: [] }]);
    net.send(0, 'up', 0, rec, 1);
    net.send(0, 'up', 125_000, rec, 2); // 0.1 s
    net.send(0, 'up', 0, rec, 3);
    engine.run();
    expect(rec.t(1)).toBeCloseTo(0.005, 12);
    expect(rec.t(2)).toBeCloseTo(0.105, 12);
    expect(rec.t(3)).toBeCloseTo(0.105, 12);
    expect(rec.order).toEqual([1, 2, 3]);
  });

  it('rejects non-positive bandwidth, unknown via and bad bytes', () => {
    expect(() => setup([{ link: link({ uplinkMbps: 0 }), via: [] }])).toThrow(InputError);
    expect(() => setup([{ link: link(), via: [] }], [{ name: 'ap', uplinkMbps: -1, downlinkMbps: 5 }])).toThrow(InputError);
    expect(() => setup([{ link: link(), via: ['nope'] }])).toThrow(/not a shared link/);
    const { net, rec } = setup([{ link: link(), via: [] }]);
    expect(() => net.send(0, 'up', -1, rec, 0)).toThrow(RangeError);
    expect(() => net.send(3, 'up', 1, rec, 0)).toThrow(RangeError);
  });

  it('idleTransferMs = bytes*8/min(access, shared) + latency', () => {
    const { net } = setup(
      [{ link: link(), via: [] }, { link: link(), via: ['ap'] }],
      [{ name: 'ap', uplinkMbps: 4, downlinkMbps: 100 }],
    );
    expect(net.idleTransferMs(0, 'up', 1_000_000)).toBeCloseTo(800 + 5, 9);
    expect(net.idleTransferMs(1, 'up', 1_000_000)).toBeCloseTo(2000 + 5, 9);
    expect(net.idleTransferMs(1, 'down', 1_000_000)).toBeCloseTo(400 + 5, 9);
    expect(net.idleTransferMs(1, 'down', 0)).toBe(5);
  });

  it('handles many transfers quickly (no recompute on the fast path)', () => {
    const n = 200_000;
    const { engine, net } = setup([{ link: link(), via: [] }, { link: link(), via: [] }]);
    let delivered = 0;
    const h: Handler = { fire: () => { delivered++; } };
    const t0 = performance.now();
    for (let i = 0; i < n; i++) net.send(i & 1, i & 2 ? 'up' : 'down', 100, h, i);
    engine.run();
    expect(delivered).toBe(n);
    expect(performance.now() - t0).toBeLessThan(3000);
  });
});

describe('Network: shared bottlenecks (max-min)', () => {
  const fast = link({ uplinkMbps: 100, downlinkMbps: 100, latencyMs: 10 });

  it('two equal flows through one shared link each get C/2', () => {
    const { engine, net, rec } = setup(
      [{ link: fast, via: ['ap'] }, { link: fast, via: ['ap'] }],
      [{ name: 'ap', uplinkMbps: 10, downlinkMbps: 10 }],
    );
    const bytes = 1_250_000; // 1e7 bits
    net.send(0, 'up', bytes, rec, 1);
    net.send(1, 'up', bytes, rec, 2);
    engine.run();
    const both = 2 * bytes * 8 / 10e6 + 0.01;
    expect(rec.t(1)).toBeCloseTo(both, 9);
    expect(rec.t(2)).toBeCloseTo(both, 9);
    expect(net.activeSharedFlows).toBe(0);
  });

  it('uplink and downlink of a shared link are separate resources', () => {
    const { engine, net, rec } = setup(
      [{ link: fast, via: ['ap'] }, { link: fast, via: ['ap'] }],
      [{ name: 'ap', uplinkMbps: 10, downlinkMbps: 10 }],
    );
    net.send(0, 'up', 1_250_000, rec, 1);
    net.send(1, 'down', 1_250_000, rec, 2);
    engine.run();
    expect(rec.t(1)).toBeCloseTo(1.01, 9);
    expect(rec.t(2)).toBeCloseTo(1.01, 9);
  });

  it('a flow starting when another is half done: exact max-min recompute', () => {
    const { engine, net, rec } = setup(
      [{ link: fast, via: ['ap'] }, { link: fast, via: ['ap'] }],
      [{ name: 'ap', uplinkMbps: 10, downlinkMbps: 10 }],
    );
    const bytes = 1_250_000; // T = 1e7 bits / 1e7 bps = 1 s alone
    net.send(0, 'up', bytes, rec, 1);
    sendAt(engine, net, 0.5, 1, 'up', bytes, rec, 2);
    engine.run();
    // [0, 0.5): flow 1 alone at C: 5e6 bits left. From 0.5 both at C/2: flow 1 ends at 0.5 + 5e6/5e6 = 1.5.
    // Flow 2 sent 5e6 bits by 1.5, then alone at C: 5e6/1e7 = 0.5 s more -> 2.0.
    expect(rec.t(1)).toBeCloseTo(1.5 + 0.01, 9);
    expect(rec.t(2)).toBeCloseTo(2.0 + 0.01, 9);
  });

  it('a flow capped by its access link leaves the rest to the other flow', () => {
    const slow = link({ uplinkMbps: 10, downlinkMbps: 10, latencyMs: 0 });
    const quick = link({ uplinkMbps: 100, downlinkMbps: 100, latencyMs: 0 });
    const { engine, net, rec } = setup(
      [{ link: slow, via: ['ap'] }, { link: quick, via: ['ap'] }],
      [{ name: 'ap', uplinkMbps: 50, downlinkMbps: 50 }],
    );
    net.send(0, 'up', 1_250_000, rec, 1); // 1e7 bits at 10 Mbps -> 1 s
    net.send(1, 'up', 5_000_000, rec, 2); // 4e7 bits: 40 Mbps for 1 s (4e7)... exactly 1 s
    net.send(1, 'up', 1_250_000, rec, 3); // then alone: min(100, 50) = 50 Mbps -> 0.2 s
    engine.run();
    expect(rec.t(1)).toBeCloseTo(1.0, 9);
    expect(rec.t(2)).toBeCloseTo(1.0, 9);
    expect(rec.t(3)).toBeCloseTo(1.2, 9);
  });

  it('two shared links in series: the tighter one decides, max-min across both', () => {
    // d0 via a (10); d1 via a,b; d2 via b (b = 30). Max-min: a splits 5/5; d2 gets 30-5 = 25.
    const q = link({ uplinkMbps: 1000, downlinkMbps: 1000, latencyMs: 0 });
    const { engine, net, rec } = setup(
      [{ link: q, via: ['a'] }, { link: q, via: ['a', 'b'] }, { link: q, via: ['b'] }],
      [{ name: 'a', uplinkMbps: 10, downlinkMbps: 10 }, { name: 'b', uplinkMbps: 30, downlinkMbps: 30 }],
    );
    net.send(0, 'up', 625_000, rec, 0); // 5e6 bits at 5 Mbps -> 1 s
    net.send(1, 'up', 625_000, rec, 1); // 5e6 bits at 5 Mbps -> 1 s
    net.send(2, 'up', 3_125_000, rec, 2); // 2.5e7 bits at 25 Mbps -> 1 s
    engine.run();
    expect(rec.t(0)).toBeCloseTo(1, 9);
    expect(rec.t(1)).toBeCloseTo(1, 9);
    expect(rec.t(2)).toBeCloseTo(1, 9);
  });

  it('conservation and causality under random load; every message delivered once', () => {
    const devices: NetworkDevice[] = [];
    for (let d = 0; d < 30; d++) {
      devices.push({
        link: link({ uplinkMbps: 5 + d, downlinkMbps: 20 + 2 * d, latencyMs: 3 + (d % 4), jitterMs: d % 3 }),
        via: d % 3 === 0 ? [] : d % 3 === 1 ? ['ap'] : ['ap', 'nic'],
      });
    }
    const { engine, net } = setup(devices, [
      { name: 'ap', uplinkMbps: 40, downlinkMbps: 80 },
      { name: 'nic', uplinkMbps: 25, downlinkMbps: 25 },
    ]);
    const streams = new RngStreams(7);
    const r = streams.get('test/load');
    const n = 3000;
    const sentAt = new Float64Array(n), minLat = new Float64Array(n), deliveredAt = new Float64Array(n).fill(NaN);
    const dev = new Int32Array(n), dirs: Direction[] = [];
    let count = 0;
    const h: Handler = {
      fire: (e, tag) => {
        expect(Number.isNaN(deliveredAt[tag])).toBe(true); // exactly once
        deliveredAt[tag] = e.nowS; count++;
      },
    };
    for (let i = 0; i < n; i++) {
      const d = r.int(devices.length), dir: Direction = r.bernoulli(0.5) ? 'up' : 'down';
      const at = r.uniform() * 5, bytes = r.bernoulli(0.05) ? 0 : r.int(200_000);
      sentAt[i] = at; dev[i] = d; dirs.push(dir); minLat[i] = devices[d].link.latencyMs / 1000;
      sendAt(engine, net, at, d, dir, bytes, h, i);
    }
    engine.run();
    expect(count).toBe(n);
    expect(net.stats.messagesSent).toBe(n);
    expect(net.stats.messagesDelivered).toBe(n);
    const sum = (a: Float64Array) => a.reduce((s, v) => s + v, 0);
    expect(sum(net.stats.sentBytes.up)).toBe(sum(net.stats.deliveredBytes.up));
    expect(sum(net.stats.sentBytes.down)).toBe(sum(net.stats.deliveredBytes.down));
    for (let d = 0; d < devices.length; d++) {
      expect(net.stats.deliveredBytes.up[d]).toBe(net.stats.sentBytes.up[d]);
      expect(net.stats.deliveredBytes.down[d]).toBe(net.stats.sentBytes.down[d]);
    }
    for (let i = 0; i < n; i++) expect(deliveredAt[i]).toBeGreaterThanOrEqual(sentAt[i] + minLat[i] - 1e-12);
    // FIFO per device-direction: delivery order follows send order.
    const order = [...Array(n).keys()].sort((a, b) => sentAt[a] - sentAt[b]);
    const last = new Map<string, number>();
    for (const i of order) {
      const k = `${dev[i]}/${dirs[i]}`;
      expect(deliveredAt[i]).toBeGreaterThanOrEqual(last.get(k) ?? -Infinity);
      last.set(k, deliveredAt[i]);
    }
    expect(net.activeSharedFlows).toBe(0);
  });
});

/**
 * Reference model for the max-min network, written as plainly as possible:
 * time advances from event to event (a send, or the earliest transmit end),
 * every event recomputes every transmitting flow's rate by progressive filling,
 * pipes are FIFO, delivery = transmit end + latency. No fast paths: the
 * simulator's direct-delivery mode and skipped recomputes must give the same times.
 */
function referenceDeliveries(
  devices: { upBps: number; downBps: number; latencyS: number; via: number[] }[],
  sharedBps: number[], // per shared link, same capacity in each direction
  sends: { atS: number; device: number; dir: 0 | 1; bytes: number }[],
): number[] {
  const out = new Array<number>(sends.length).fill(NaN);
  const order = [...sends.keys()].sort((a, b) => sends[a].atS - sends[b].atS || a - b);
  const queues = new Map<number, number[]>(); // pipe -> message indices (head transmitting)
  const left = new Map<number, number>(); // pipe -> bits left of its head
  let now = 0, next = 0;
  const pipeCap = (p: number) => (p & 1 ? devices[p >> 1].downBps : devices[p >> 1].upBps);
  const pipeRes = (p: number) => devices[p >> 1].via.map((s) => 2 * s + (p & 1));
  const rates = (): Map<number, number> => {
    const active = [...left.keys()];
    const rate = new Map<number, number>(), frozen = new Set<number>();
    const cap = sharedBps.flatMap((c) => [c, c]);
    while (frozen.size < active.length) {
      let level = Infinity;
      for (let r = 0; r < cap.length; r++) {
        const users = active.filter((p) => !frozen.has(p) && pipeRes(p).includes(r)).length;
        if (users > 0) level = Math.min(level, cap[r] / users);
      }
      for (const p of active) if (!frozen.has(p)) level = Math.min(level, pipeCap(p));
      const tol = level * (1 + 1e-12);
      const freeze = active.filter((p) => !frozen.has(p) && (pipeCap(p) <= tol || pipeRes(p).some((r) => {
        const users = active.filter((q) => !frozen.has(q) && pipeRes(q).includes(r)).length;
        return cap[r] / users <= tol;
      })));
      for (const p of freeze) { frozen.add(p); rate.set(p, level); for (const r of pipeRes(p)) cap[r] -= level; }
    }
    return rate;
  };
  const startHead = (p: number) => {
    const q = queues.get(p)!;
    while (q.length > 0 && sends[q[0]].bytes === 0) out[q.shift()!] = now + devices[p >> 1].latencyS;
    if (q.length > 0) left.set(p, sends[q[0]].bytes * 8);
  };
  for (;;) {
    const rate = rates();
    let tEnd = Infinity;
    for (const [p, bits] of left) tEnd = Math.min(tEnd, now + bits / rate.get(p)!);
    const tSend = next < order.length ? sends[order[next]].atS : Infinity;
    const t = Math.min(tEnd, tSend);
    if (t === Infinity) break;
    for (const [p, bits] of left) left.set(p, bits - rate.get(p)! * (t - now));
    now = t;
    for (const [p, bits] of [...left]) {
      if (bits > 1e-6 * (sends[queues.get(p)![0]].bytes * 8) && bits > 1e-3) continue;
      left.delete(p);
      const i = queues.get(p)!.shift()!;
      out[i] = now + devices[p >> 1].latencyS;
      startHead(p);
    }
    while (next < order.length && sends[order[next]].atS <= now) {
      const i = order[next++], p = 2 * sends[i].device + sends[i].dir;
      if (!queues.has(p)) queues.set(p, []);
      const q = queues.get(p)!;
      q.push(i);
      if (!left.has(p) && q.length === 1) startHead(p);
    }
  }
  return out;
}

describe('Network: max-min against a reference model', () => {
  for (const seed of [1, 2, 3]) {
    it(`random sends switching between free and oversubscribed shared links match the reference (seed ${seed})`, () => {
      const streams = new RngStreams(seed);
      const r = streams.get('test/reference');
      const devs = [];
      for (let d = 0; d < 12; d++) {
        devs.push({ upBps: (2 + r.int(20)) * 1e6, downBps: (4 + r.int(30)) * 1e6, latencyS: (1 + r.int(20)) / 1000, via: d % 4 === 0 ? [] : d % 4 === 3 ? [0, 1] : [0] });
      }
      const sharedBps = [40e6, 25e6];
      const sends: { atS: number; device: number; dir: 0 | 1; bytes: number }[] = [];
      for (let i = 0; i < 400; i++) {
        // Bursts (oversubscribed) alternate with quiet stretches (every flow at its cap).
        const burst = Math.floor(i / 40) % 2 === 0;
        const atS = Math.floor(i / 40) * 0.5 + (burst ? r.uniform() * 0.05 : r.uniform() * 0.5);
        sends.push({ atS, device: r.int(devs.length), dir: r.bernoulli(0.5) ? 0 : 1, bytes: r.bernoulli(0.05) ? 0 : 1000 + r.int(150_000) });
      }
      const expected = referenceDeliveries(devs, sharedBps, sends);
      const { engine, net } = setup(
        devs.map((d) => ({ link: { uplinkMbps: d.upBps / 1e6, downlinkMbps: d.downBps / 1e6, latencyMs: d.latencyS * 1000, jitterMs: 0 }, via: d.via.map((s) => ['ap', 'nic'][s]) })),
        [{ name: 'ap', uplinkMbps: 40, downlinkMbps: 40 }, { name: 'nic', uplinkMbps: 25, downlinkMbps: 25 }],
      );
      const got = new Array<number>(sends.length).fill(NaN);
      const h: Handler = { fire: (e, tag) => { got[tag] = e.nowS; } };
      sends.forEach((m, i) => sendAt(engine, net, m.atS, m.device, m.dir === 0 ? 'up' : 'down', m.bytes, h, i));
      engine.run();
      let oversubscribedAtSome = false;
      for (let i = 0; i < sends.length; i++) {
        expect(got[i], `message ${i}`).toBeCloseTo(expected[i], 7);
        const alone = sends[i].bytes * 8 / (sends[i].dir === 0 ? devs[sends[i].device].upBps : devs[sends[i].device].downBps);
        if (expected[i] - sends[i].atS - devs[sends[i].device].latencyS > alone * 1.5) oversubscribedAtSome = true;
      }
      expect(oversubscribedAtSome).toBe(true); // the test exercises the shared (slow) regime too
      expect(net.activeSharedFlows).toBe(0);
    });
  }
});

describe('Network: jitter', () => {
  function run(seed: number, extraDevice: boolean): number[] {
    const devices: NetworkDevice[] = [{ link: link({ jitterMs: 20, latencyMs: 10 }), via: [] }];
    if (extraDevice) devices.push({ link: link({ jitterMs: 50 }), via: [] });
    const d = 0;
    const { engine, net, rec } = setup(devices, [], seed);
    if (extraDevice) for (let i = 0; i < 50; i++) net.send(1, 'up', 1000, rec, 1000 + i);
    for (let i = 0; i < 200; i++) net.send(d, 'up', 1250, rec, i); // 1 ms each at 10 Mbps
    engine.run();
    return Array.from({ length: 200 }, (_, i) => rec.t(i));
  }

  it('never reorders, is >= 0, deterministic for a seed, per-device streams', () => {
    const a = run(42, false), b = run(42, false), c = run(43, false), e = run(42, true);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(a).toEqual(e); // another device (with its own draws) does not change this device's jitter
    for (let i = 0; i < a.length; i++) {
      expect(a[i]).toBeGreaterThanOrEqual((i + 1) * 0.001 + 0.010 - 1e-12);
      if (i > 0) expect(a[i]).toBeGreaterThanOrEqual(a[i - 1]);
    }
    // Some jitter actually happened: mean extra delay of a half-normal(20 ms) ~ 16 ms.
    const extra = a.map((t, i) => t - ((i + 1) * 0.001 + 0.010));
    expect(Math.max(...extra)).toBeGreaterThan(0.01);
  });
});

describe('Traces: CSV', () => {
  const csv = { format: 'csv' as const, path: `${FIX}step.csv`, offsetS: 0, randomOffset: false };

  it('parses piecewise rates, loops after last time + last step', () => {
    const t = loadLinkTrace(csv);
    expect(t.up.binned.periodS).toBe(4);
    expect(t.up.binned.capacityAt(0.5)).toBe(1e6);
    expect(t.up.binned.capacityAt(2.5)).toBe(4e6);
    expect(t.up.binned.capacityAt(3.5)).toBe(0);
    expect(t.up.binned.capacityAt(4.5)).toBe(1e6);
    expect(t.up.binned.meanBps).toBe(6e6 / 4);
    expect(t.down.binned.capacityAt(3.2)).toBe(5e5);
    expect(loadLinkTrace(csv)).toBe(t); // cached
  });

  it('gives hand-computable transfer times on a lone traced link (incl. outage and loop)', () => {
    const { engine, net, rec } = setup([
      { link: link({ trace: csv, latencyMs: 10 }), via: [] },
      { link: link({ trace: { ...csv, offsetS: 1 }, latencyMs: 0 }), via: [] },
    ]);
    net.send(0, 'up', 500_000, rec, 1); // 4e6 bits: 2e6 in [0,2) at 1 Mbps, 2e6 at 4 Mbps -> 2.5 s
    net.send(0, 'up', 1_000_000, rec, 2); // starts 2.5: 8e6 bits: 2e6 in [2.5,3), outage [3,4), 2e6 in [4,6), 4e6 in [6,7) -> 7 s
    net.send(1, 'up', 500_000, rec, 3); // trace time from 1: 1e6 in [1,2), 3e6 at 4 Mbps -> 0.75 s: t = 1.75
    engine.run();
    expect(rec.t(1)).toBeCloseTo(2.5 + 0.01, 9);
    expect(rec.t(2)).toBeCloseTo(7 + 0.01, 9);
    expect(rec.t(3)).toBeCloseTo(1.75, 9);
  });

  it('traced flows through a shared link: capacity changes trigger recomputes', () => {
    const tl = link({ trace: csv, latencyMs: 0 });
    const { engine, net, rec } = setup(
      [{ link: tl, via: ['ap'] }, { link: tl, via: ['ap'] }],
      [{ name: 'ap', uplinkMbps: 3, downlinkMbps: 3 }],
    );
    // [0,2): each capped at 1 Mbps (sum 2 < 3) -> 2e6 bits each. [2,3): caps 4 Mbps, shared 3 -> 1.5 each.
    // 2.5e6 bits each: 0.5e6 left at 1.5 Mbps -> 1/3 s -> 2.3333 s.
    net.send(0, 'up', 312_500, rec, 1);
    net.send(1, 'up', 312_500, rec, 2);
    engine.run();
    expect(rec.t(1)).toBeCloseTo(2 + 1 / 3, 9);
    expect(rec.t(2)).toBeCloseTo(2 + 1 / 3, 9);
    const s2 = setup([{ link: tl, via: ['ap'] }], [{ name: 'ap', uplinkMbps: 100, downlinkMbps: 100 }]);
    s2.net.send(0, 'up', 1_000_000, s2.rec, 1);
    let idleMs = NaN;
    s2.engine.schedule(6.5, { fire: () => { idleMs = s2.net.idleTransferMs(0, 'up', 125_000); } });
    s2.engine.run();
    expect(s2.rec.t(1)).toBeCloseTo(6, 9); // 2e6 + 4e6 in [0,3), outage [3,4), 2e6 at 1 Mbps -> 6 s
    expect(idleMs).toBeCloseTo(250, 6); // t = 6.5 is trace time 2.5: 4 Mbps
  });

  it('reports bad CSV files with file, line and fix', () => {
    expect(() => parseCsvTrace('time_s,uplink_bps\n0,1\n', 'x.csv')).toThrow(/x\.csv:1: header/);
    expect(() => parseCsvTrace('time_s,uplink_bps,downlink_bps\n0,1,1\n0.5,abc,1\n', 'x.csv')).toThrow(/x\.csv:3: uplink_bps/);
    expect(() => parseCsvTrace('time_s,uplink_bps,downlink_bps\n0,1,1\n2,1,1\n1,1,1\n', 'x.csv')).toThrow(/x\.csv:4: .*strictly increasing/);
    expect(() => parseCsvTrace('time_s,uplink_bps,downlink_bps\n1,1,1\n', 'x.csv')).toThrow(/time_s 0/);
    expect(() => parseCsvTrace('time_s,uplink_bps,downlink_bps\n', 'x.csv')).toThrow(/no data rows/);
    expect(() => parseCsvTrace('', 'x.csv')).toThrow(/empty/);
    expect(() => parseCsvTrace('time_s,uplink_bps,downlink_bps\n0,0,1\n1,0,1\n', 'x.csv')).toThrow(/zero over the whole trace/);
    expect(() => loadLinkTrace({ format: 'csv', path: `${FIX}missing.csv`, offsetS: 0, randomOffset: false }))
      .toThrow(/missing\.csv.*check the trace path/);
  });
});

describe('Traces: Mahimahi', () => {
  const tiny = { format: 'mahimahi' as const, path: `${FIX}tiny`, offsetS: 0, randomOffset: false };

  it('converts packets per ms to capacity; exact cumulative for a lone flow', () => {
    const t = loadLinkTrace(tiny);
    // 7 packets per 20 ms period (the stamp at 20 wraps to 0): ms0: 3 packets, ms5: 1, ms10: 3
    expect(t.up.exact.periodS).toBeCloseTo(0.02, 15);
    expect(t.up.exact.meanBps).toBeCloseTo(7 * MAHIMAHI_PACKET_BITS / 0.02, 6);
    expect(t.up.binned.meanBps).toBeCloseTo(7 * MAHIMAHI_PACKET_BITS / 0.02, 6);
    expect(t.up.exact.capacityAt(0.0005)).toBeCloseTo(3 * 12000 / 0.001, 6);
    const { engine, net, rec } = setup([{ link: link({ trace: tiny, latencyMs: 0 }), via: [] }]);
    net.send(0, 'up', 4500, rec, 1); // 3 packets: all of ms 0 -> 1 ms
    net.send(0, 'up', 1500, rec, 2); // next opportunity: ms 5 -> ends at 6 ms
    net.send(0, 'up', 3000, rec, 3); // ms 10 (2 of 3 packets) -> 10 + 2/3 ms
    net.send(0, 'up', 1500 * 5, rec, 4); // 1 left in ms 10, 3 in ms 20, 1 at ms 25 -> 26 ms
    engine.run();
    expect(rec.t(1)).toBeCloseTo(0.001, 12);
    expect(rec.t(2)).toBeCloseTo(0.006, 12);
    expect(rec.t(3)).toBeCloseTo(0.010 + 2 / 3 * 0.001, 12);
    expect(rec.t(4)).toBeCloseTo(0.026, 12);
  });

  it('bin size option: binned capacity over DEFAULT_MAHIMAHI_BIN_S bins', () => {
    expect(DEFAULT_MAHIMAHI_BIN_S).toBe(0.1);
    const d = parseMahimahi('0\n0\n5\n10\n10\n10\n20\n', 'tiny.up', 0.01);
    // bins [0,10) ms: 3 + 1 packets; [10,20): 3 packets
    expect(d.binned.capacityAt(0.005)).toBeCloseTo(4 * 12000 / 0.01, 6);
    expect(d.binned.capacityAt(0.015)).toBeCloseTo(3 * 12000 / 0.01, 6);
  });

  it('reports bad Mahimahi files with file, line and fix', () => {
    expect(() => loadLinkTrace({ ...tiny, path: `${FIX}bad` })).toThrow(/bad\.up:3: expected one integer/);
    expect(() => parseMahimahi('1\n5\n3\n', 'm.up')).toThrow(/m\.up:3: .*non-decreasing/);
    expect(() => parseMahimahi('\n\n', 'm.up')).toThrow(/m\.up: no delivery opportunities/);
    expect(() => parseMahimahi('0\n0\n', 'm.up')).toThrow(/must be > 0/);
    expect(() => parseMahimahi('1 2\n', 'm.up')).toThrow(/m\.up:1/);
    expect(() => loadLinkTrace({ ...tiny, path: `${FIX}nothere` })).toThrow(InputError);
    expect(() => loadLinkTrace({ ...tiny, path: `${FIX}nothere` })).toThrow(/nothere\.up/);
  });

  it.skipIf(!existsSync(`${TMOBILE}.up`))('a real trace: mean capacity = packets*1500*8/duration', () => {
    clearTraceCache();
    const t = loadLinkTrace({ format: 'mahimahi', path: TMOBILE, offsetS: 0, randomOffset: false });
    for (const dir of ['up', 'down'] as const) {
      const stamps = readFileSync(`${TMOBILE}.${dir}`, 'utf8').split('\n').filter((l) => l.trim() !== '').map(Number);
      const durationS = stamps[stamps.length - 1] / 1000;
      const mean = stamps.length * 1500 * 8 / durationS;
      expect(t[dir].exact.meanBps).toBeCloseTo(mean, 3);
      expect(t[dir].binned.meanBps).toBeCloseTo(mean, 3);
      expect(t[dir].binned.periodS).toBeCloseTo(durationS, 12);
    }
    // A lone flow of exactly 3 periods' worth of bits ends within the last period's tail.
    const { engine, net, rec } = setup([{ link: link({ trace: { format: 'mahimahi', path: TMOBILE, offsetS: 0, randomOffset: false }, latencyMs: 0 }), via: [] }]);
    const up = t.up.exact;
    net.send(0, 'up', 3 * up.bitsPerPeriod / 8, rec, 1);
    engine.run();
    expect(rec.t(1)).toBeLessThanOrEqual(3 * up.periodS + 1e-9);
    expect(rec.t(1)).toBeGreaterThan(3 * up.periodS - 1);
    expect(up.cumulativeBits(rec.t(1))).toBeCloseTo(3 * up.bitsPerPeriod, 0);
  });

  it.skipIf(!existsSync(`${TMOBILE}.up`))('random offsets: seeded, per device', () => {
    const spec = { format: 'mahimahi' as const, path: TMOBILE, offsetS: 0, randomOffset: true };
    const finish = (seed: number, devs: number): number[] => {
      const devices: NetworkDevice[] = Array.from({ length: devs }, () => ({ link: link({ trace: spec, latencyMs: 0 }), via: [] }));
      const { engine, net, rec } = setup(devices, [], seed);
      for (let d = 0; d < devs; d++) net.send(d, 'down', 1_000_000, rec, d);
      engine.run();
      return Array.from({ length: devs }, (_, d) => rec.t(d));
    };
    const a = finish(5, 3), b = finish(5, 3), c = finish(6, 3), e = finish(5, 4);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    expect(e.slice(0, 3)).toEqual(a);
    expect(new Set(a).size).toBe(3); // different offsets per device
  });
});

describe('CapacityTrace', () => {
  it('cumulative function and its inverse agree across loops', () => {
    const c = new CapacityTrace([0, 1, 2.5], [2, 0, 4], 3);
    expect(c.bitsPerPeriod).toBe(2 + 0 + 2);
    expect(c.cumulativeBits(1.5)).toBe(2);
    expect(c.cumulativeBits(7.75)).toBe(2 * 4 + 2); // 7.75 = 2 loops + 1.75 (in the outage)
    expect(c.timeForCumulativeBits(2)).toBe(1); // earliest time, not the end of the outage
    expect(c.timeForCumulativeBits(3)).toBe(2.75);
    expect(c.timeForCumulativeBits(8)).toBe(3 + 3); // 2 periods' worth ends at the end of the second period
    expect(c.timeForCumulativeBits(9)).toBe(6.5);
    expect(c.nextChangeS(0.5)).toBe(1);
    expect(c.nextChangeS(2.7)).toBe(3);
    expect(c.nextChangeS(4)).toBe(5.5);
  });
});

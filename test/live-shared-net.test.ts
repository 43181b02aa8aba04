/**
 * Live shaping of shared bottlenecks (src/live/shared-net.ts): the simulator's network driven
 * by a clock. With a fake clock, every message's network time equals the batch simulator's for
 * the same sends (same code, same jitter streams), the max-min closed form holds on the shared
 * access point, and OrderedRelease never lets a frame overtake one queued before it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Engine, type Handler } from '../src/core/engine.js';
import { RngStreams } from '../src/core/rng.js';
import { Network } from '../src/network/network.js';
import { LiveSharedNetwork, OrderedRelease, shapesAtServer } from '../src/live/shared-net.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, deviceLink, deviceNetwork } from '../src/sim/run.js';

const SHARED = 'scenarios/validation/tiny-4dev-shared.yaml';
const PLAIN = 'scenarios/validation/tiny-4dev-shaped.yaml';

class FakeClock { ms = 1000; nowMs(): number { return this.ms; } }

const nets: LiveSharedNetwork[] = [];
afterEach(() => { for (const n of nets.splice(0)) n.close(); });

interface Send { atMs: number; path: number; dir: 'up' | 'down'; bytes: number }

/** Network ms of each send, live (fake clock stepped by 0.25 ms) and in a batch engine. */
function both(file: string, sends: Send[], overrides: string[] = []): { live: number[]; sim: number[] } {
  const s = loadScenario(file, overrides);
  const tb = buildTestbed(s);
  const compiled = deviceNetwork(tb);
  const clock = new FakeClock();
  const t0 = clock.ms;
  const net = new LiveSharedNetwork(compiled, s.seed, t0, clock);
  nets.push(net);
  const live: number[] = new Array(sends.length).fill(NaN);
  const order = sends.map((x, i) => ({ ...x, i })).sort((a, b) => a.atMs - b.atMs);
  let k = 0;
  for (let t = 0; t <= 5000; t += 0.25) {
    clock.ms = t0 + t;
    net.poll();
    while (k < order.length && order[k].atMs <= t) {
      const x = order[k++];
      net.send(x.path, x.dir, x.bytes, (ms) => { live[x.i] = ms; });
    }
  }
  const engine = new Engine();
  const streams = new RngStreams(s.seed);
  const sim = new Network(engine, compiled.devices, compiled.shared, (name) => streams.get(name));
  const out: number[] = new Array(sends.length).fill(NaN);
  for (const x of order) {
    const done: Handler = { fire: (e) => { out[x.i] = (e.nowS - x.atMs / 1000) * 1000; } };
    engine.schedule(x.atMs / 1000, { fire: () => sim.send(x.path, x.dir, x.bytes, done, 0) }, 0, 1);
  }
  engine.run();
  return { live, sim: out };
}

describe('LiveSharedNetwork', () => {
  it('gives every message the batch simulator network time (shared access point, both directions)', () => {
    const sends: Send[] = [
      { atMs: 0, path: 0, dir: 'up', bytes: 30_000 }, { atMs: 0, path: 1, dir: 'up', bytes: 30_000 },
      { atMs: 10, path: 2, dir: 'up', bytes: 8_000 }, { atMs: 12.5, path: 0, dir: 'down', bytes: 20_000 },
      { atMs: 13, path: 3, dir: 'down', bytes: 5_000 }, { atMs: 40, path: 0, dir: 'up', bytes: 1_000 },
      { atMs: 250, path: 1, dir: 'down', bytes: 64 },
    ];
    const { live, sim } = both(SHARED, sends);
    expect(live.every((x) => Number.isFinite(x))).toBe(true);
    for (let i = 0; i < sends.length; i++) expect(live[i]).toBeCloseTo(sim[i], 9);
  });

  it('max-min closed form: two equal flows from t = 0 share the 3 Mbit/s point and finish together', () => {
    const { live } = both(SHARED, [{ atMs: 0, path: 0, dir: 'up', bytes: 30_000 }, { atMs: 0, path: 1, dir: 'up', bytes: 30_000 }]);
    const shareMs = (2 * 30_000 * 8) / 3e6 * 1000; // 160 ms for both at 1.5 Mbit/s each
    expect(live[0]).toBeCloseTo(shareMs + 20, 6);
    expect(live[1]).toBeCloseTo(shareMs + 20, 6);
    // Alone, the same message takes 30,000 B at 3 Mbit/s (the point is below its 20 Mbit/s link).
    const alone = both(SHARED, [{ atMs: 0, path: 0, dir: 'up', bytes: 30_000 }]).live[0];
    expect(alone).toBeCloseTo((30_000 * 8) / 3e6 * 1000 + 20, 6);
  });

  it('jitter comes from the simulator streams, in message order', () => {
    const sends: Send[] = Array.from({ length: 12 }, (_, i) => ({ atMs: i * 7, path: i % 4, dir: i % 3 === 0 ? 'down' : 'up', bytes: 2_000 + 500 * i }));
    const { live, sim } = both(SHARED, sends, ['devices.0.link.jitterMs=3']);
    for (let i = 0; i < sends.length; i++) expect(live[i]).toBeCloseTo(sim[i], 9);
    expect(new Set(live.map((x) => x.toFixed(6))).size).toBeGreaterThan(6);
  });

  it('is used only when some device crosses a shared link', () => {
    const shared = buildTestbed(loadScenario(SHARED));
    expect(shapesAtServer(shared)).toBe(true);
    expect(shared.devices.map((d) => deviceLink(shared, d).path)).toEqual([0, 1, 2, 3]);
    expect(shapesAtServer(buildTestbed(loadScenario(PLAIN)))).toBe(false);
  });
});

describe('OrderedRelease', () => {
  it('releases in queue order: a ready frame waits for a held one ahead of it', () => {
    const r = new OrderedRelease();
    const out: string[] = [];
    const a = r.hold(() => out.push('a'));
    r.now(() => out.push('ctl'));
    const b = r.hold(() => out.push('b'));
    expect(out).toEqual([]);
    b();
    expect(out).toEqual([]);
    a();
    expect(out).toEqual(['a', 'ctl', 'b']);
    r.now(() => out.push('late'));
    expect(out).toEqual(['a', 'ctl', 'b', 'late']);
    const c = r.hold(() => out.push('c'));
    r.close();
    c();
    expect(out).toEqual(['a', 'ctl', 'b', 'late']);
    expect(r.pending).toBe(0);
  });
});

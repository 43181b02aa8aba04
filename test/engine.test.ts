import { describe, expect, it } from 'vitest';
import { Engine, Prio, type Handler } from '../src/core/engine.js';
import { Rng, RngStreams } from '../src/core/rng.js';

describe('engine', () => {
  it('fires events in time order, then priority, then insertion order', () => {
    const e = new Engine(2); // small capacity: exercises growth
    const fired: string[] = [];
    const h = (name: string): Handler => ({ fire: (eng) => { fired.push(`${name}@${eng.nowS}`); } });
    e.schedule(2, h('c'));
    e.schedule(1, h('b-arrival'), 0, Prio.arrival);
    e.schedule(1, h('a-completion'), 0, Prio.completion);
    e.schedule(1, h('b2-arrival'), 0, Prio.arrival);
    e.schedule(0.5, h('first'));
    e.run();
    expect(fired).toEqual(['first@0.5', 'a-completion@1', 'b-arrival@1', 'b2-arrival@1', 'c@2']);
    expect(e.eventCount).toBe(5);
  });

  it('refuses to schedule an event in the past (causality)', () => {
    const e = new Engine();
    e.schedule(5, { fire: (eng) => expect(() => eng.schedule(4, { fire() {} })).toThrow(/causality/) });
    e.run();
  });

  it('matches a sorted reference on 50,000 random events and stops at the horizon', () => {
    const rng = new Rng(1, 'engine-test');
    const e = new Engine(16);
    const times: number[] = [];
    const seen: number[] = [];
    const h: Handler = { fire: (eng) => { seen.push(eng.nowS); } };
    for (let i = 0; i < 50000; i++) { const t = rng.uniform() * 100; times.push(t); e.schedule(t, h); }
    e.run(50);
    const expected = times.filter((t) => t <= 50).sort((a, b) => a - b);
    expect(seen).toEqual(expected);
    expect(e.pending).toBe(50000 - expected.length);
  });

  it('fires ties by priority, then insertion order, with events scheduled while it runs (vs a sorted reference)', () => {
    const rng = new Rng(2, 'engine-ties');
    const e = new Engine(4);
    const all: { t: number; prio: number; seq: number }[] = [];
    const fired: number[] = [];
    const add = (t: number): void => {
      const ev = { t, prio: Math.floor(rng.uniform() * 4), seq: all.length };
      all.push(ev);
      e.schedule(t, h, ev.seq, ev.prio);
    };
    // Integer times (many ties at every time and priority); each event schedules 0-2 more, later than now,
    // so the fired order must be the sort of all events by (time, priority, insertion).
    const h: Handler = { fire: (eng, tag) => { fired.push(tag); if (all.length < 20000) for (let k = Math.floor(rng.uniform() * 3); k > 0; k--) add(eng.nowS + 1 + Math.floor(rng.uniform() * 5)); } };
    for (let i = 0; i < 300; i++) add(Math.floor(rng.uniform() * 10));
    e.run();
    expect(all.length).toBeGreaterThan(5000);
    expect(fired).toEqual([...all].sort((a, b) => a.t - b.t || a.prio - b.prio || a.seq - b.seq).map((x) => x.seq));
  });

  it('tags let a handler drop stale events (generation counter)', () => {
    const e = new Engine();
    let gen = 0;
    const fired: number[] = [];
    const h: Handler = { fire: (_eng, tag) => { if (tag === gen) fired.push(tag); } };
    e.schedule(1, h, gen);
    gen++; // reschedule: the first event is now stale
    e.schedule(2, h, gen);
    e.run();
    expect(fired).toEqual([1]);
  });
});

describe('seeded random streams', () => {
  it('a named stream is reproducible and independent of other streams', () => {
    const a = new RngStreams(42), b = new RngStreams(42);
    b.get('device/9/arrivals').uniform(); // touching another stream changes nothing for device 0
    const xs = Array.from({ length: 5 }, () => a.get('device/0/arrivals').uniform());
    const ys = Array.from({ length: 5 }, () => b.get('device/0/arrivals').uniform());
    expect(ys).toEqual(xs);
    expect(new RngStreams(43).get('device/0/arrivals').uniform()).not.toBe(xs[0]);
    expect(a.get('device/1/arrivals').uniform()).not.toBe(new RngStreams(42).get('device/0/arrivals').uniform());
  });

  it('distributions have the right means', () => {
    const r = new Rng(5, 'dist');
    const n = 100000;
    let u = 0, ex = 0, g = 0, ln = 0, nm = 0, nv = 0;
    for (let i = 0; i < n; i++) {
      u += r.uniform(); ex += r.exponential(4); g += r.gamma(2.5, 2); ln += r.lognormalMeanCv(100, 0.5);
      const z = r.normal(); nm += z; nv += z * z;
    }
    expect(u / n).toBeCloseTo(0.5, 2);
    expect(ex / n).toBeCloseTo(0.25, 2);
    expect(g / n / 5).toBeCloseTo(1, 1);
    expect(ln / n / 100).toBeCloseTo(1, 1);
    expect(nm / n).toBeCloseTo(0, 1);
    expect(nv / n).toBeCloseTo(1, 1);
  });

  it('rejects a seed that is not a non-negative integer', () => {
    expect(() => new RngStreams(-1)).toThrow(/seed/);
    expect(() => new RngStreams(1.5)).toThrow(/seed/);
  });
});

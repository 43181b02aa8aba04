/**
 * The discrete-event engine: a simulated clock and a heap of events (4-ary: half the
 * levels of a binary heap, so fewer moves per pop).
 *
 * An event is (timeS, prio, seq, handler, tag). Events fire in order of time,
 * then priority (lower first), then insertion order (seq), so two runs of the
 * same scenario fire the same events in the same order. Handlers are objects
 * with a `fire` method (no closure per event on the hot path); `tag` is a
 * small integer the handler interprets, typically a generation counter so a
 * handler can drop events made stale by a later reschedule.
 *
 * The engine knows nothing about devices, links or models.
 */

export interface Handler {
  fire(engine: Engine, tag: number): void;
}

/** Priorities for events at the same instant: lower fires first. */
export const Prio = {
  /** Completions (compute done, bytes delivered) settle state first... */
  completion: 0,
  /** ...then processes resume and issue new work... */
  resume: 1,
  /** ...then new arrivals are admitted. */
  arrival: 2,
  /** Observers (samplers) see the settled state. */
  observe: 3,
} as const;

export class Engine {
  /** Current simulated time in seconds. */
  nowS = 0;
  /** Number of events fired so far. */
  eventCount = 0;
  /** The `untilS` of the current `run` (events after it never fire): Infinity outside a run. */
  untilS = Infinity;
  // Heap stored as parallel arrays: fewer allocations than one object per event. The heap
  // moves (time, key, slot) only; an event's handler and tag sit in its slot, written once
  // when it is scheduled (a handler is usually a young object: storing it into the heap at
  // every level would hit the garbage collector's write barrier each time).
  private times: Float64Array;
  private keys: Float64Array; // prio * 2^44 + seq: one comparison for the tie-break
  private slots: Int32Array;
  private handlers: (Handler | undefined)[];
  private tags: Int32Array;
  /** Free slots, a stack: `free[0..nFree)`. */
  private free: Int32Array;
  private nFree: number;
  private size = 0;
  private seq = 0;
  private stopped = false;

  constructor(initialCapacity = 1024) {
    const cap = Math.max(1, initialCapacity);
    this.times = new Float64Array(cap);
    this.keys = new Float64Array(cap);
    this.slots = new Int32Array(cap);
    this.handlers = new Array<Handler | undefined>(cap).fill(undefined);
    this.tags = new Int32Array(cap);
    this.free = new Int32Array(cap);
    for (let k = 0; k < cap; k++) this.free[k] = cap - 1 - k;
    this.nFree = cap;
  }

  get pending(): number { return this.size; }

  /** Time (s) of the next event, or Infinity when none is queued (a realtime driver's timer target). */
  get nextS(): number { return this.size > 0 ? this.times[0] : Infinity; }

  /** Schedule `handler.fire(engine, tag)` at absolute time `atS` (>= now). */
  schedule(atS: number, handler: Handler, tag = 0, prio: number = Prio.completion): void {
    if (!(atS >= this.nowS)) {
      throw new RangeError(`causality: event scheduled at ${atS}s before now ${this.nowS}s`);
    }
    if (this.size === this.times.length) this.grow();
    const key = prio * 17592186044416 + this.seq++;
    const slot = this.free[--this.nFree];
    this.handlers[slot] = handler; this.tags[slot] = tag;
    const times = this.times, keys = this.keys, slots = this.slots;
    // sift up (4-ary heap: parent of i is (i - 1) >> 2)
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 2;
      const pt = times[p];
      if (pt < atS || (pt === atS && keys[p] < key)) break;
      times[i] = pt; keys[i] = keys[p]; slots[i] = slots[p];
      i = p;
    }
    times[i] = atS; keys[i] = key; slots[i] = slot;
  }

  /** Schedule after a delay in seconds. */
  after(delayS: number, handler: Handler, tag = 0, prio: number = Prio.completion): void {
    this.schedule(this.nowS + delayS, handler, tag, prio);
  }

  /** Stop the loop after the current event. */
  stop(): void { this.stopped = true; }

  /** Run until the heap is empty, `stop()` is called, or the next event is after `untilS`. */
  run(untilS = Infinity): void {
    this.stopped = false;
    this.untilS = untilS;
    while (this.size > 0 && !this.stopped) {
      const t = this.times[0];
      if (t > untilS) break;
      const slot = this.slots[0];
      const h = this.handlers[slot]!;
      const tag = this.tags[slot];
      this.handlers[slot] = undefined;
      this.free[this.nFree++] = slot;
      this.popTop();
      this.nowS = t;
      this.eventCount++;
      h.fire(this, tag);
    }
    this.untilS = Infinity;
  }

  /** Remove the heap's root (its slot already freed by the caller). */
  private popTop(): void {
    const n = --this.size;
    const times = this.times, keys = this.keys, slots = this.slots;
    const t = times[n], k = keys[n], s = slots[n];
    if (n === 0) return;
    // sift down: the earliest of up to four children (children of i: 4i+1 .. 4i+4)
    let i = 0;
    for (;;) {
      const l = 4 * i + 1;
      if (l >= n) break;
      let c = l, ct = times[l], ck = keys[l];
      const end = l + 4 < n ? l + 4 : n;
      for (let j = l + 1; j < end; j++) {
        const tj = times[j];
        if (tj < ct || (tj === ct && keys[j] < ck)) { c = j; ct = tj; ck = keys[j]; }
      }
      if (t < ct || (t === ct && k < ck)) break;
      times[i] = ct; keys[i] = ck; slots[i] = slots[c];
      i = c;
    }
    times[i] = t; keys[i] = k; slots[i] = s;
  }

  private grow(): void {
    const old = this.times.length, cap = old * 2;
    const t = new Float64Array(cap); t.set(this.times); this.times = t;
    const k = new Float64Array(cap); k.set(this.keys); this.keys = k;
    const sl = new Int32Array(cap); sl.set(this.slots); this.slots = sl;
    const g = new Int32Array(cap); g.set(this.tags); this.tags = g;
    for (let x = old; x < cap; x++) this.handlers.push(undefined);
    // Every slot is in use when the heap is full: the new ones are the free ones.
    const f = new Int32Array(cap);
    for (let x = cap - 1; x >= old; x--) f[this.nFree++] = x;
    this.free = f;
  }
}

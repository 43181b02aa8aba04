/**
 * The discrete-event engine: a simulated clock and a binary heap of events.
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
  // Heap stored as parallel arrays: fewer allocations than one object per event.
  private times: Float64Array;
  private keys: Float64Array; // prio * 2^44 + seq: one comparison for the tie-break
  private handlers: (Handler | undefined)[];
  private tags: Int32Array;
  private size = 0;
  private seq = 0;
  private stopped = false;

  constructor(initialCapacity = 1024) {
    this.times = new Float64Array(initialCapacity);
    this.keys = new Float64Array(initialCapacity);
    this.handlers = new Array(initialCapacity);
    this.tags = new Int32Array(initialCapacity);
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
    // sift up
    let i = this.size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const pt = this.times[p];
      if (pt < atS || (pt === atS && this.keys[p] < key)) break;
      this.times[i] = pt; this.keys[i] = this.keys[p]; this.handlers[i] = this.handlers[p]; this.tags[i] = this.tags[p];
      i = p;
    }
    this.times[i] = atS; this.keys[i] = key; this.handlers[i] = handler; this.tags[i] = tag;
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
      const h = this.handlers[0]!;
      const tag = this.tags[0];
      this.popTop();
      this.nowS = t;
      this.eventCount++;
      h.fire(this, tag);
    }
    this.untilS = Infinity;
  }

  private popTop(): void {
    const n = --this.size;
    const t = this.times[n], k = this.keys[n], h = this.handlers[n], g = this.tags[n];
    this.handlers[n] = undefined;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && (this.times[r] < this.times[l] || (this.times[r] === this.times[l] && this.keys[r] < this.keys[l]))) c = r;
      const ct = this.times[c];
      if (t < ct || (t === ct && k < this.keys[c])) break;
      this.times[i] = ct; this.keys[i] = this.keys[c]; this.handlers[i] = this.handlers[c]; this.tags[i] = this.tags[c];
      i = c;
    }
    this.times[i] = t; this.keys[i] = k; this.handlers[i] = h; this.tags[i] = g;
  }

  private grow(): void {
    const cap = this.times.length * 2;
    const t = new Float64Array(cap); t.set(this.times); this.times = t;
    const k = new Float64Array(cap); k.set(this.keys); this.keys = k;
    const g = new Int32Array(cap); g.set(this.tags); this.tags = g;
    this.handlers.length = cap;
  }
}

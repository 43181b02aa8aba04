/**
 * The command vocabulary a system's protocol speaks.
 *
 * Ops are immutable values (readonly fields): a protocol may build a
 * loop-invariant op once and yield it many times, and drivers only read them.
 *
 * A protocol is a generator function: it yields one `Op` at a time and is
 * resumed with the op's result. The simulator (sim/driver.ts) executes ops
 * against simulated devices, links and GPUs; the live runner executes the same
 * ops with real ONNX Runtime calls and sockets. Protocols and policies import
 * nothing from either driver.
 *
 * Ops are written from the request's point of view: `up` and `down` are
 * messages on the device's link, `cloud` is work on the cloud replica serving
 * this request, `compute` is work on the device's own processor.
 */
import type { SubmodelId } from '../model/types.js';

/** Device-side work: a submodel, or "slm" = one drafting step (input + adapter + output with logits). */
export type DeviceWork = 'input' | 'adapter' | 'output' | 'slm' | 'drafter';
export type CloudWork = Extract<SubmodelId, 'middle' | 'full'>;

export interface ComputeOp {
  readonly op: 'compute';
  readonly work: DeviceWork;
  /** New tokens processed in one pass. */
  readonly tokens: number;
  /** Past context length (tokens already in this submodel's KV cache). */
  readonly ctx: number;
  /** Positions whose logits the LM head computes (output / slm / drafter). */
  readonly logits: number;
  /** Sequential repetitions (autoregressive drafting): pass i has ctx + i*tokens context. */
  readonly repeat: number;
  /**
   * Background work (e.g. building the adapter's KV cache during prefill) runs
   * only when no foreground work is queued on the device; it is never
   * preempted once started.
   */
  readonly background: boolean;
  readonly label: string;
}

export interface UpOp {
  readonly op: 'up';
  /** Payload bytes (hidden states and/or raw tokens); the driver adds the header. */
  readonly hiddenBytes: number;
  readonly rawTokenBytes: number;
  readonly label: string;
}

export interface DownOp {
  readonly op: 'down';
  readonly hiddenBytes: number;
  readonly rawTokenBytes: number;
  readonly label: string;
}

export interface CloudOp {
  readonly op: 'cloud';
  readonly work: CloudWork;
  readonly tokens: number;
  readonly ctx: number;
  readonly logits: number;
  readonly label: string;
}

/**
 * Verify `drafted` draft tokens: resumes with the number accepted (a prefix, 0..drafted).
 * `rate`: i.i.d. per-token acceptance; `rates` (when given): measured conditional acceptance
 * per draft position, position 1 first (beyond its end, the last one).
 */
export interface AcceptOp { readonly op: 'accept'; readonly drafted: number; readonly rate: number; readonly rates: readonly number[] | null }
/** `tokens` output tokens are now available to the user at the device. */
export interface EmitOp { readonly op: 'emit'; readonly tokens: number }
/** Start a concurrent branch; resumes with a handle for `join`. */
export interface ForkOp { readonly op: 'fork'; readonly body: Proto }
/** Wait until every listed branch has finished. */
export interface JoinOp { readonly op: 'join'; readonly handles: readonly number[] }
/** Snapshot of the cloud replica that serves (or would serve) this request. */
export interface CloudLoadOp { readonly op: 'cloudLoad' }
/** Current time in ms since the run started (simulated or real). */
export interface NowOp { readonly op: 'now' }
/** Record a per-request fact for the results (e.g. the chosen chunk size). */
export interface NoteOp { readonly op: 'note'; readonly key: 'chunkTokens'; readonly value: number }

// ---- Ops that name places (topology/types.ts) ----------------------------------------
// Nodes are indices into the topology's node list (ProtocolEnv.topology). The HAT family's
// ops above are the special case "my device" (compute), "my device's link to its server"
// (up/down) and "my server" (cloud).

/**
 * A part of the model: which components a pass runs (composition rules as in
 * compute/submodel.ts). `key` names it (for the batching of a server node, which hosts
 * one part, and for describe).
 */
export interface PartSpec {
  readonly key: string;
  readonly embedding: boolean;
  readonly layers: number;
  readonly adapter: boolean;
  readonly lmHead: boolean;
}

/**
 * Work on a node: one pass of `part` over `tokens` new tokens after `ctx` past tokens.
 * The node's processor model decides how it runs: FIFO on a `single` or `workers` node,
 * continuous batching (with other requests' work) on a `batching` node.
 */
export interface ExecOp {
  readonly op: 'exec';
  readonly node: number;
  readonly part: PartSpec;
  readonly tokens: number;
  readonly ctx: number;
  readonly logits: number;
  readonly label: string;
}

/** Send a message from node `from` to node `to` along its route (payload bytes; the driver adds the header). */
export interface SendOp {
  readonly op: 'send';
  readonly from: number;
  readonly to: number;
  readonly hiddenBytes: number;
  readonly rawTokenBytes: number;
  readonly label: string;
}

/** A uniform draw in [0, 1) from the device's decision stream (a policy picking a node, an exit): read it with `count`. */
export interface DrawOp { readonly op: 'draw' }

/** Load of a node now: jobs waiting + in service (join-shortest-queue and similar policies): read it with `count`. */
export interface NodeLoadOp { readonly op: 'nodeLoad'; readonly node: number }

/** Record a per-request fact for the results: the stage a task exited at (staged systems). */
export interface MarkOp { readonly op: 'mark'; readonly key: 'exitStage' | 'correct'; readonly value: number }

export type Op = ComputeOp | UpOp | DownOp | CloudOp | AcceptOp | EmitOp | ForkOp | JoinOp | CloudLoadOp | NowOp | NoteOp
  | ExecOp | SendOp | DrawOp | NodeLoadOp | MarkOp;

export interface CloudLoad {
  replica: number;
  /** Tokens waiting in the replica's queue (not yet processed). */
  queuedTokens: number;
  /** Requests currently assigned to the replica (including this one once assigned). */
  activeRequests: number;
}

/** What a protocol is resumed with: a count (accept), a handle (fork), a load snapshot, a time, or nothing. */
export type Resume = number | CloudLoad | undefined;
export type Proto = Generator<Op, void, Resume>;

// ---- Constructors and typed readers ---------------------------------------------------
// Every op is built by a plain function: `yield compute(...)`. An op that resumes with a
// value is read back through a typed reader that checks it: `const k = count(yield accept(g, a))`.
// (Plain objects, not generator helpers: these run once per verification round or per token,
// and a helper generator per call showed up in the simulator's allocation profile.)

export function compute(work: DeviceWork, tokens: number, ctx: number, logits: number, label: string, repeat = 1, background = false): ComputeOp {
  return { op: 'compute', work, tokens, ctx, logits, repeat, background, label };
}
export function up(hiddenBytes: number, rawTokenBytes: number, label: string): UpOp {
  return { op: 'up', hiddenBytes, rawTokenBytes, label };
}
export function down(hiddenBytes: number, rawTokenBytes: number, label: string): DownOp {
  return { op: 'down', hiddenBytes, rawTokenBytes, label };
}
export function cloud(work: CloudWork, tokens: number, ctx: number, logits: number, label: string): CloudOp {
  return { op: 'cloud', work, tokens, ctx, logits, label };
}
export function emit(tokens: number): EmitOp {
  return tokens >= 0 && tokens < EMITS.length && (tokens | 0) === tokens ? EMITS[tokens] : { op: 'emit', tokens };
}
/** emit ops of up to 64 tokens, shared (a verification round emits a few tokens). */
const EMITS: readonly EmitOp[] = Array.from({ length: 65 }, (_, tokens) => ({ op: 'emit', tokens }));
export function join(handles: number[]): JoinOp {
  return { op: 'join', handles };
}
export function note(key: NoteOp['key'], value: number): NoteOp {
  return { op: 'note', key, value };
}
/** A branch that runs a single op (e.g. a background compute pass). */
export function* only(op: Op): Proto {
  yield op;
}
/**
 * A branch that runs a fixed list of ops and ignores what they resume with: a plain
 * Generator (any driver runs it like a generator function's), but its ops can be read
 * before it runs (`ops`), so the simulator can settle a message-then-emit branch in closed
 * form without a delivery event (sim/driver.ts). One object per branch, no generator frame.
 */
export class OpSequence implements Generator<Op, void, Resume> {
  private i = 0;
  constructor(readonly ops: readonly Op[]) {}
  next(): IteratorResult<Op, void> {
    return this.i < this.ops.length ? { done: false, value: this.ops[this.i++] } : (this.i = this.ops.length, { done: true, value: undefined });
  }
  return(): IteratorResult<Op, void> { this.i = this.ops.length; return { done: true, value: undefined }; }
  throw(e: unknown): IteratorResult<Op, void> { this.i = this.ops.length; throw e; }
  [Symbol.iterator](): Generator<Op, void, Resume> { return this; }
}
/**
 * A request's protocol as a hand-written generator (any driver runs it like a generator
 * function's, see OpSequence): the ops of a prefill generator, then those of `decode`, a
 * state machine written by the subclass (protocol/systems/hat.ts, sd.ts, ushape.ts). It
 * spares each op of a decode loop a generator resume, the largest per-op cost in the
 * simulator's profile. The result object is reused: read it before the next call (as both
 * drivers do).
 */
export abstract class PrefillThenLoop implements Generator<Op, void, Resume> {
  private inPrefill = true;
  private over = false;
  private readonly res: { done: false; value: Op } = { done: false, value: NOW };
  constructor(private readonly prefill: Generator<Op, void, Resume>) {}

  /** The loop's next op, given what its previous op resumed with (undefined for the first); null: the request is done. */
  protected abstract decode(value: Resume): Op | null;

  next(value?: Resume): IteratorResult<Op, void> {
    if (this.inPrefill) {
      const r = this.prefill.next(value);
      if (!r.done) return r;
      this.inPrefill = false;
      value = undefined;
    }
    const op = this.over ? null : this.decode(value);
    if (op === null) { this.over = true; return { done: true, value: undefined }; }
    this.res.value = op;
    return this.res;
  }
  return(): IteratorResult<Op, void> { this.inPrefill = false; this.over = true; this.prefill.return(); return { done: true, value: undefined }; }
  throw(e: unknown): IteratorResult<Op, void> { this.return(); throw e; }
  [Symbol.iterator](): Generator<Op, void, Resume> { return this; }
}

/** A branch of fixed ops (see OpSequence); `ops` is not copied (build it once, reuse it). */
export function sequence(ops: readonly Op[]): OpSequence {
  return new OpSequence(ops);
}
/** `fork(sequence(ops))` as one object: the fork op is its own body (one allocation per fork, not two). */
class SequenceFork extends OpSequence implements ForkOp {
  readonly op = 'fork' as const;
  get body(): Proto { return this; }
}
/** Fork a branch of fixed ops: resumes with the branch's handle, like `fork(sequence(ops))`. */
export function forkSequence(ops: readonly Op[]): ForkOp {
  return new SequenceFork(ops);
}
/** Context lengths and keys an OpCache keeps (beyond them it builds the op each time). */
const OP_CACHE_MAX_CTX = 1 << 16, OP_CACHE_MAX_KEY = 1 << 10;

/**
 * Ops by (a small key, a context length), built once and then shared: ops are immutable,
 * and a protocol's hot loop yields the same few ops at every context length (one per
 * draft length and position), so a cached op saves an object per op on the simulator's
 * hot path. `make` must depend on its two arguments only (labels and sizes fixed when
 * the cache is made).
 */
export class OpCache<T extends Op> {
  private readonly rows: (T | undefined)[][] = [];
  constructor(private readonly make: (key: number, ctx: number) => T) {}
  get(key: number, ctx: number): T {
    const known = this.rows[key]?.[ctx]; // the common case: built before
    if (known !== undefined) return known;
    if (!(key >= 0 && key < OP_CACHE_MAX_KEY && ctx >= 0 && ctx < OP_CACHE_MAX_CTX) || (key | 0) !== key || (ctx | 0) !== ctx) return this.make(key, ctx);
    const rows = this.rows;
    while (rows.length <= key) rows.push([]);
    const row = rows[key];
    while (row.length <= ctx) row.push(undefined);
    return row[ctx] ??= this.make(key, ctx);
  }
}

/** Resumes with the number of draft tokens accepted: read it with `count`. */
export function accept(drafted: number, rate: number, rates: readonly number[] | null = null): AcceptOp {
  return { op: 'accept', drafted, rate, rates };
}
/** Resumes with the branch's handle: read it with `count`. */
export function fork(body: Proto): ForkOp {
  return { op: 'fork', body };
}
/** Resumes with a load snapshot: read it with `load`. */
export function cloudLoad(): CloudLoadOp {
  return CLOUD_LOAD;
}
/** Resumes with the time in ms: read it with `count`. */
export function now(): NowOp {
  return NOW;
}
export function exec(node: number, part: PartSpec, tokens: number, ctx: number, logits: number, label: string): ExecOp {
  return { op: 'exec', node, part, tokens, ctx, logits, label };
}
export function send(from: number, to: number, hiddenBytes: number, rawTokenBytes: number, label: string): SendOp {
  return { op: 'send', from, to, hiddenBytes, rawTokenBytes, label };
}
/** Resumes with a uniform in [0, 1): read it with `count`. */
export function draw(): DrawOp { return DRAW; }
/** Resumes with the node's jobs waiting + in service: read it with `count`. */
export function nodeLoad(node: number): NodeLoadOp { return { op: 'nodeLoad', node }; }
export function mark(key: MarkOp['key'], value: number): MarkOp { return { op: 'mark', key, value }; }
const DRAW: DrawOp = { op: 'draw' };
const CLOUD_LOAD: CloudLoadOp = { op: 'cloudLoad' };
const NOW: NowOp = { op: 'now' };

/** The number an `accept`, `fork`, `now`, `draw` or `nodeLoad` op resumed with. */
export function count(v: Resume): number {
  if (typeof v !== 'number') throw new TypeError(`protocol: expected the op to resume with a number, got ${typeof v} (driver bug)`);
  return v;
}
/** The snapshot a `cloudLoad` op resumed with. */
export function load(v: Resume): CloudLoad {
  if (typeof v !== 'object' || v === null) throw new TypeError(`protocol: expected a cloud load snapshot, got ${v === null ? 'null' : typeof v} (driver bug)`);
  return v;
}

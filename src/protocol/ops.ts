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

/** Verify `drafted` draft tokens: resumes with the number accepted (a prefix, 0..drafted). */
export interface AcceptOp { readonly op: 'accept'; readonly drafted: number; readonly rate: number }
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

export type Op = ComputeOp | UpOp | DownOp | CloudOp | AcceptOp | EmitOp | ForkOp | JoinOp | CloudLoadOp | NowOp | NoteOp;

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
  return tokens === 1 ? EMIT_ONE : { op: 'emit', tokens };
}
const EMIT_ONE: EmitOp = { op: 'emit', tokens: 1 };
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
/** Resumes with the number of draft tokens accepted: read it with `count`. */
export function accept(drafted: number, rate: number): AcceptOp {
  return { op: 'accept', drafted, rate };
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
const CLOUD_LOAD: CloudLoadOp = { op: 'cloudLoad' };
const NOW: NowOp = { op: 'now' };

/** The number an `accept`, `fork` or `now` op resumed with. */
export function count(v: Resume): number {
  if (typeof v !== 'number') throw new TypeError(`protocol: expected the op to resume with a number, got ${typeof v} (driver bug)`);
  return v;
}
/** The snapshot a `cloudLoad` op resumed with. */
export function load(v: Resume): CloudLoad {
  if (typeof v !== 'object' || v === null) throw new TypeError(`protocol: expected a cloud load snapshot, got ${v === null ? 'null' : typeof v} (driver bug)`);
  return v;
}

/**
 * HAT: the LLM is cut into input / middle / output submodels; input + adapter +
 * output form a drafting SLM on the device, the middle layers run in the cloud.
 * Only hidden states cross the network.
 *
 * Prefill: split prefill (protocol/systems/split-prefill.ts), chunked by the
 * chunk policy (`hat`) or as one chunk (`hat-nochunk`); the adapter builds its
 * KV cache for the prompt alongside.
 *
 * Decode, one verification round:
 *  1. The SLM drafts g tokens on the device (g passes of input+adapter+output);
 *     the pending token (newest accepted) is the first pass's input.
 *  2. The last draft token goes through the input submodel, so the input-layer
 *     hidden states of g+1 positions (pending token + g drafts) are known.
 *  3. They go up; the cloud runs the middle submodel over the g+1 positions in
 *     one pass (batched with other devices' work); the hidden states come back.
 *  4. The device runs the output submodel over the g+1 positions, accepts the
 *     longest correct prefix k and emits k+1 tokens (k drafts + the corrected
 *     or bonus token, which becomes the next pending token).
 * Parallel drafting (option): while a verification is in flight the device
 * keeps drafting past the last draft; if every draft is accepted and the first
 * extra draft equals the bonus token, the remaining extra drafts are reused by
 * the next round.
 */
import { makeDraftPolicy } from '../../policy/draft.js';
import type { ChunkPolicySpec, PolicySpec, SystemId } from '../../scenario/types.js';
import type { ProtocolEnv, RequestInfo, SystemDef } from '../context.js';
import { accept, cloud, compute, count, down, emit, fork, join, now, OpCache, up, type AcceptOp, type DownOp, type Op, type Resume, type UpOp } from '../ops.js';
import { DraftRounds, type DraftDevice } from './draft-rounds.js';
import { splitPrefill } from './split-prefill.js';

// A verification round's ops by (draft length or tokens, context), shared by every device and
// request (ops are immutable): no op object per round on the hot path.
const DRAFT = new OpCache((fresh, ctx) => compute('slm', 1, ctx, 1, 'draft', fresh));
const INPUT_LAST = new OpCache((_, ctx) => compute('input', 1, ctx, 0, 'input last draft'));
const MIDDLE_VERIFY = new OpCache((positions, ctx) => cloud('middle', positions, ctx, 0, 'middle verify'));
const OUTPUT_VERIFY = new OpCache((positions, ctx) => compute('output', positions, ctx, positions, 'output verify'));

/** The hidden-state messages of a round by its positions (per device: the sizes depend on the model). */
interface VerifyMessages { up: UpOp[]; down: DownOp[] }

function verifyUp(m: VerifyMessages, positions: number, hb: number): UpOp {
  return m.up[positions] ??= up(positions * hb, 0, 'hidden verify');
}
function verifyDown(m: VerifyMessages, positions: number, hb: number): DownOp {
  return m.down[positions] ??= down(positions * hb, 0, 'hidden verify');
}

function* verifyRoundTrip(env: ProtocolEnv, m: VerifyMessages, positions: number, pos: number, state: { arrived: boolean }): Generator<Op, void, Resume> {
  const hb = env.hiddenBytesPerToken;
  yield verifyUp(m, positions, hb);
  yield MIDDLE_VERIFY.get(positions, pos);
  yield verifyDown(m, positions, hb);
  state.arrived = true;
}

/** What a device's requests share: the draft policy, the context hint its cost model reads, cached ops. */
interface HatDevice extends DraftDevice {
  readonly spec: PolicySpec['hat'];
  readonly hb: number;
  readonly messages: VerifyMessages;
  readonly acceptOps: AcceptOp[];
}

/** The prefill of a hat request: split prefill, the first token, then the adapter's side work joined. */
function* hatPrefill(req: RequestInfo, env: ProtocolEnv, chunkSpec: ChunkPolicySpec): Generator<Op, void, Resume> {
  const side = yield* splitPrefill(req, env, chunkSpec, true);
  yield emit(1);
  yield join(side);
}

// HatRequest's states (after its draft): the op it yields next.
const S_INPUT = 1, S_UP = 2, S_MIDDLE = 3, S_DOWN = 4, S_OUTPUT = 5, S_ACCEPT = 6, S_EMIT = 7, S_END = 8;

/**
 * One hat request without parallel drafting (DraftRounds): the prefill generator's ops, then
 * the decode loop of `hatRequest` below with `parallelDrafting` off, the same ops in the same
 * order, as a state machine (about 400 ops per request, no generator resume each).
 */
class HatRequest extends DraftRounds<HatDevice> {
  protected decode(value: Resume): Op | null {
    const d = this.d;
    switch (this.state) {
      case S_INPUT: return this.afterDraft();
      case S_UP: this.state = S_MIDDLE; return verifyUp(d.messages, this.g + 1, d.hb);
      case S_MIDDLE: this.state = S_DOWN; return MIDDLE_VERIFY.get(this.g + 1, this.pos);
      case S_DOWN: this.state = S_OUTPUT; return verifyDown(d.messages, this.g + 1, d.hb);
      case S_OUTPUT: this.state = S_ACCEPT; return OUTPUT_VERIFY.get(this.g + 1, this.pos);
      case S_ACCEPT: this.state = S_EMIT; return d.acceptOps[this.g] ??= accept(this.g, d.spec.acceptance, d.spec.acceptanceRates);
      case S_EMIT: this.k = count(value); this.state = S_END; return emit(this.roundTokens);
      case S_END: return this.endRound();
      default: return this.roundHead();
    }
  }

  protected draft(g: number): Op { this.state = S_INPUT; return DRAFT.get(g, this.pos); }

  /** The input pass over the last draft. */
  protected afterDraft(): Op { this.state = S_UP; return INPUT_LAST.get(0, this.pos + this.g); }
}

function makeHat(id: Extract<SystemId, 'hat' | 'hat-nochunk'>): SystemDef {
  return {
    id,
    cloudWork: 'middle',
    deviceWork: ['input', 'adapter', 'output', 'slm'],
    sendsRawTokens: false,
    createDevice(env) {
      const spec = env.policies.hat, p = env.predictor, hb = env.hiddenBytesPerToken;
      const chunkSpec: ChunkPolicySpec = id === 'hat' ? spec.chunk : { kind: 'none' };
      const maxPreDraft = spec.draft.kind === 'fixed' ? spec.draft.gamma : spec.draft.maxGamma;
      const hint = { ctx: 512 };
      const roundCostMs = (g: number): number =>
        g * p.deviceMs('slm', 1, hint.ctx, 1) + p.deviceMs('input', 1, hint.ctx, 0)
        + p.txMs('up', (g + 1) * hb) + p.latencyMs('up') + p.cloudMs('middle', g + 1, hint.ctx, 0, null)
        + p.txMs('down', (g + 1) * hb) + p.latencyMs('down') + p.deviceMs('output', g + 1, hint.ctx, g + 1);
      const policy = makeDraftPolicy(spec.draft, spec.acceptance, roundCostMs);
      /** Predicted time from sending g+1 hidden states up until they are back on the device. */
      const verifyRoundTripMs = (positions: number): number =>
        p.txMs('up', positions * hb) + p.latencyMs('up') + p.cloudMs('middle', positions, hint.ctx, 0, null)
        + p.txMs('down', positions * hb) + p.latencyMs('down');
      const messages: VerifyMessages = { up: [], down: [] };
      /** accept ops by draft length (the acceptance spec is this device's). */
      const acceptOps: AcceptOp[] = [];
      if (!spec.parallelDrafting) {
        // The common case as a state machine (HatRequest): the same ops as hatRequest below.
        const device: HatDevice = { policy, hint, spec, hb, messages, acceptOps };
        return (req) => new HatRequest(hatPrefill(req, env, chunkSpec), device, req.outputTokens, req.promptTokens);
      }

      // With parallel drafting: a generator (fork, now and join per round).
      return function* hatRequest(req) {
        const O = req.outputTokens;
        yield* hatPrefill(req, env, chunkSpec);
        let pos = req.promptTokens, emitted = 1, carried = 0;
        while (emitted < O) {
          hint.ctx = pos;
          const remaining = O - emitted;
          let g = policy.next(remaining);
          if (carried > 0) g = Math.min(Math.max(g, carried), remaining - 1);
          const fresh = Math.max(0, g - carried);
          if (fresh > 0) yield DRAFT.get(fresh, pos + (g - fresh));
          carried = 0;
          yield INPUT_LAST.get(0, pos + g);
          // Parallel drafting (this generator runs only with it on; HatRequest otherwise).
          let pre = 0;
          const state = { arrived: false };
          // Draft ahead while the verification is in flight, but start a draft pass only if it is
          // predicted to end before the verification comes back: a pass in progress would delay
          // the output pass, which is on the critical path.
          const startMs = count(yield now());
          const replyAtMs = startMs + verifyRoundTripMs(g + 1);
          const stepMs = p.deviceMs('slm', 1, pos + g + 1, 1);
          const h = count(yield fork(verifyRoundTrip(env, messages, g + 1, pos, state)));
          while (!state.arrived && pre < maxPreDraft && count(yield now()) + stepMs <= replyAtMs) {
            yield compute('slm', 1, pos + g + 1 + pre, 1, 'parallel draft');
            pre++;
          }
          yield join([h]);
          yield OUTPUT_VERIFY.get(g + 1, pos);
          const rates = spec.acceptanceRates;
          const k = count(yield (acceptOps[g] ??= accept(g, spec.acceptance, rates)));
          // The first extra draft is draft position g + 1 of the round.
          if (pre > 0 && k === g && count(yield accept(1, spec.acceptance, rates === null ? null : rates.slice(Math.min(g, rates.length - 1)))) === 1) carried = pre - 1;
          const n = Math.min(k + 1, remaining);
          yield emit(n);
          policy.observe(g, k);
          emitted += n;
          pos += k + 1;
        }
      };
    },
  };
}

export const hat = makeHat('hat');
export const hatNoChunk = makeHat('hat-nochunk');

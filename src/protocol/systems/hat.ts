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
import type { ChunkPolicySpec, SystemId } from '../../scenario/types.js';
import type { ProtocolEnv, SystemDef } from '../context.js';
import { accept, cloud, compute, count, down, emit, fork, join, now, OpCache, up, type AcceptOp, type DownOp, type Op, type Resume, type UpOp } from '../ops.js';
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
      let ctxHint = 512;
      const roundCostMs = (g: number): number =>
        g * p.deviceMs('slm', 1, ctxHint, 1) + p.deviceMs('input', 1, ctxHint, 0)
        + p.txMs('up', (g + 1) * hb) + p.latencyMs('up') + p.cloudMs('middle', g + 1, ctxHint, 0, null)
        + p.txMs('down', (g + 1) * hb) + p.latencyMs('down') + p.deviceMs('output', g + 1, ctxHint, g + 1);
      const policy = makeDraftPolicy(spec.draft, spec.acceptance, roundCostMs);
      /** Predicted time from sending g+1 hidden states up until they are back on the device. */
      const verifyRoundTripMs = (positions: number): number =>
        p.txMs('up', positions * hb) + p.latencyMs('up') + p.cloudMs('middle', positions, ctxHint, 0, null)
        + p.txMs('down', positions * hb) + p.latencyMs('down');
      const messages: VerifyMessages = { up: [], down: [] };
      /** accept ops by draft length (the acceptance spec is this device's). */
      const acceptOps: AcceptOp[] = [];

      return function* hatRequest(req) {
        const O = req.outputTokens;
        const side = yield* splitPrefill(req, env, chunkSpec, true);
        yield emit(1);
        yield join(side);
        let pos = req.promptTokens, emitted = 1, carried = 0;
        while (emitted < O) {
          ctxHint = pos;
          const remaining = O - emitted;
          let g = policy.next(remaining);
          if (carried > 0) g = Math.min(Math.max(g, carried), remaining - 1);
          const fresh = Math.max(0, g - carried);
          if (fresh > 0) yield DRAFT.get(fresh, pos + (g - fresh));
          carried = 0;
          yield INPUT_LAST.get(0, pos + g);
          let pre = 0;
          if (spec.parallelDrafting) {
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
          } else {
            // verifyRoundTrip inline: no generator per round on the common path.
            yield verifyUp(messages, g + 1, hb);
            yield MIDDLE_VERIFY.get(g + 1, pos);
            yield verifyDown(messages, g + 1, hb);
          }
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

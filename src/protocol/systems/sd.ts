/**
 * sd: device-cloud speculative decoding with an independent small draft model
 * on the device. The cloud runs the whole LLM and verifies raw draft tokens.
 * Prefill: the prompt's raw tokens go up and the cloud returns the first
 * token, while the device prefills its drafter in parallel. Each round: the
 * device drafts g tokens, sends their ids up, the cloud verifies g+1
 * positions (the newest accepted token plus the drafts) in one pass and
 * returns the number accepted plus its own next token.
 */
import { makeDraftPolicy } from '../../policy/draft.js';
import type { SystemDef } from '../context.js';
import { accept, cloud, compute, count, down, emit, fork, join, OpCache, only, up, type AcceptOp, type UpOp } from '../ops.js';

// A round's ops by (draft length, context), shared by every device and request (ops are immutable).
const DRAFT = new OpCache((g, ctx) => compute('drafter', 1, ctx, 1, 'draft', g));
const VERIFY = new OpCache((positions, ctx) => cloud('full', positions, ctx, positions, 'verify'));

export const sd: SystemDef = {
  id: 'sd',
  cloudWork: 'full',
  deviceWork: ['drafter'],
  sendsRawTokens: true,
  createDevice(env) {
    const spec = env.policies.sd, tb = env.tokenBytes, p = env.predictor;
    let ctxHint = 512;
    const roundCostMs = (g: number): number =>
      g * p.deviceMs('drafter', 1, ctxHint, 1) + p.txMs('up', g * tb) + p.latencyMs('up')
      + p.cloudMs('full', g + 1, ctxHint, g + 1, null) + p.txMs('down', 2 * tb) + p.latencyMs('down');
    const policy = makeDraftPolicy(spec.draft, spec.acceptance, roundCostMs);
    // Per device, by draft length: the draft-token messages and accept ops; the verdict's message.
    const draftUps: UpOp[] = [], acceptOps: AcceptOp[] = [];
    const verdict = down(0, 2 * tb, 'verdict');
    return function* sdRequest(req) {
      const P = req.promptTokens, O = req.outputTokens;
      const drafterPrefill = count(yield fork(only(compute('drafter', P, 0, 0, 'drafter prefill'))));
      yield up(0, P * tb, 'prompt tokens');
      yield cloud('full', P, 0, 1, 'prefill');
      yield down(0, tb, 'first token');
      yield emit(1);
      yield join([drafterPrefill]);
      let pos = P, emitted = 1;
      while (emitted < O) {
        ctxHint = pos;
        const g = policy.next(O - emitted);
        if (g > 0) yield DRAFT.get(g, pos);
        yield (draftUps[g] ??= up(0, g * tb, 'draft tokens'));
        yield VERIFY.get(g + 1, pos);
        const k = count(yield (acceptOps[g] ??= accept(g, spec.acceptance, spec.acceptanceRates)));
        // Accepted count + the verifier's own next token.
        yield verdict;
        const n = Math.min(k + 1, O - emitted);
        yield emit(n);
        policy.observe(g, k);
        emitted += n;
        pos += k + 1;
      }
    };
  },
};

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
import { accept, cloud, compute, count, down, emit, fork, join, only, up } from '../ops.js';

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
        if (g > 0) yield compute('drafter', 1, pos, 1, 'draft', g);
        yield up(0, g * tb, 'draft tokens');
        yield cloud('full', g + 1, pos, g + 1, 'verify');
        const k = count(yield accept(g, spec.acceptance, spec.acceptanceRates));
        // Accepted count + the verifier's own next token.
        yield down(0, 2 * tb, 'verdict');
        const n = Math.min(k + 1, O - emitted);
        yield emit(n);
        policy.observe(g, k);
        emitted += n;
        pos += k + 1;
      }
    };
  },
};

/**
 * ushape: U-shaped split inference with HAT's split and no speculation. Prefill
 * as split prefill (unchunked by default); then one device-cloud round trip
 * per generated token. Only hidden states cross the network.
 */
import type { SystemDef } from '../context.js';
import { cloud, compute, down, emit, OpCache, up } from '../ops.js';
import { splitPrefill } from './split-prefill.js';

// A token's ops by context, shared by every device and request (ops are immutable).
const INPUT = new OpCache((_, ctx) => compute('input', 1, ctx, 0, 'input'));
const MIDDLE = new OpCache((_, ctx) => cloud('middle', 1, ctx, 0, 'middle'));
const OUTPUT = new OpCache((_, ctx) => compute('output', 1, ctx, 1, 'output'));

export const ushape: SystemDef = {
  id: 'ushape',
  cloudWork: 'middle',
  deviceWork: ['input', 'output'],
  sendsRawTokens: false,
  createDevice(env) {
    const hb = env.hiddenBytesPerToken;
    return function* ushapeRequest(req) {
      yield* splitPrefill(req, env, env.policies.ushape.chunk, false);
      yield emit(1);
      // `pos` = tokens already in every submodel's KV cache; the newest output token is not yet.
      let pos = req.promptTokens;
      const upHidden = up(hb, 0, 'hidden'), downHidden = down(hb, 0, 'hidden'); // loop-invariant ops
      for (let i = 1; i < req.outputTokens; i++) {
        yield INPUT.get(0, pos);
        yield upHidden;
        yield MIDDLE.get(0, pos);
        yield downHidden;
        yield OUTPUT.get(0, pos);
        yield emit(1);
        pos++;
      }
    };
  },
};

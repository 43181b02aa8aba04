/**
 * ushape: U-shaped split inference with HAT's split and no speculation. Prefill
 * as split prefill (unchunked by default); then one device-cloud round trip
 * per generated token. Only hidden states cross the network.
 */
import type { SystemDef } from '../context.js';
import { cloud, compute, down, emit, up } from '../ops.js';
import { splitPrefill } from './split-prefill.js';

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
        yield compute('input', 1, pos, 0, 'input');
        yield upHidden;
        yield cloud('middle', 1, pos, 0, 'middle');
        yield downHidden;
        yield compute('output', 1, pos, 1, 'output');
        yield emit(1);
        pos++;
      }
    };
  },
};

/**
 * cloud: the whole LLM runs on the server. The device uploads the prompt's raw
 * token ids; the server prefills, then generates token after token, streaming
 * each token id down as soon as it is produced (no per-token uplink).
 */
import type { SystemDef } from '../context.js';
import { cloud as cloudStep, count, down, emit, forkSequence, join, up, type CloudOp } from '../ops.js';

/**
 * Decode steps by context length, shared by every device and request (ops are immutable):
 * no op object per generated token. Bounded by the longest context simulated.
 */
const decodeSteps: CloudOp[] = [];
const decodeStep = (ctx: number): CloudOp => (decodeSteps[ctx] ??= cloudStep('full', 1, ctx, 1, 'decode'));

export const cloudOnly: SystemDef = {
  id: 'cloud',
  cloudWork: 'full',
  deviceWork: [],
  sendsRawTokens: true,
  createDevice(env) {
    const tb = env.tokenBytes;
    const deliverOps = [down(0, tb, 'token'), emit(1)]; // ops are immutable: built once
    // Each token: a branch that sends it down, then emits it (a fixed sequence: the simulator
    // knows its delivery time when it is sent on a fixed-rate link and needs no event for it).
    const deliver = (): ReturnType<typeof forkSequence> => forkSequence(deliverOps);
    return function* cloudRequest(req) {
      const P = req.promptTokens;
      yield up(0, P * tb, 'prompt tokens');
      yield cloudStep('full', P, 0, 1, 'prefill');
      const deliveries: number[] = [count(yield deliver())];
      for (let i = 1; i < req.outputTokens; i++) {
        yield decodeStep(P + i - 1);
        deliveries.push(count(yield deliver()));
      }
      yield join(deliveries);
    };
  },
};

/**
 * device-only: the whole (possibly pruned) model runs on the device; nothing
 * crosses the network. Prefill the prompt in one pass (first token), then one
 * decode pass per further token. The on-device model is the device's whole-model
 * slot ('drafter' work, the slot sd drafts with), bound to
 * `policies.deviceOnly.model` (default: the scenario's model; a pruned model
 * declared under `models:` fits where the unpruned one does not). cloudWork is
 * nominal: no cloud op is ever issued, so no server is needed to hold anything
 * (the memory check skips it).
 */
import type { SystemDef } from '../context.js';
import { compute, emit } from '../ops.js';

export const deviceOnly: SystemDef = {
  id: 'device-only',
  cloudWork: 'full',
  deviceWork: ['drafter'],
  sendsRawTokens: false,
  serverless: true,
  wholeModel: (s) => s.policies.deviceOnly.model ?? s.model,
  createDevice() {
    const emitOne = emit(1);
    return function* deviceOnlyRequest(req) {
      const P = req.promptTokens;
      yield compute('drafter', P, 0, 1, 'prefill');
      yield emitOne;
      for (let i = 1; i < req.outputTokens; i++) {
        yield compute('drafter', 1, P + i - 1, 1, 'decode');
        yield emitOne;
      }
    };
  },
};

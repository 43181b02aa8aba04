/**
 * device-only: the whole (possibly pruned) model runs on the device; nothing
 * crosses the network. Prefill the prompt in one pass (first token), then one
 * decode pass per further token. The on-device model is the device's whole
 * model slot ('drafter' work: an independent whole LLM on the device, the
 * same slot sd drafts with), so a scenario chooses it as it chooses sd's
 * drafter [assumption: until a scenario hook names the device model, e.g. a
 * pruned model from model/pruning.ts]. cloudWork is nominal: no cloud op is
 * ever issued.
 */
import type { SystemDef } from '../context.js';
import { compute, emit } from '../ops.js';
import type { SystemId } from '../../scenario/types.js';

export const deviceOnly: SystemDef = {
  // Not yet in SYSTEM_IDS (scenario/types.ts): registration is the lead's merge step (see docs/PRUNING.md).
  id: 'device-only' as SystemId,
  cloudWork: 'full',
  deviceWork: ['drafter'],
  sendsRawTokens: false,
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

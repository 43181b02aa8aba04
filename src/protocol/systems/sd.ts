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
import type { PolicySpec } from '../../scenario/types.js';
import type { RequestInfo, SystemDef } from '../context.js';
import { DraftRounds, type DraftDevice } from './draft-rounds.js';
import { accept, cloud, compute, count, down, emit, fork, join, OpCache, only, up, type AcceptOp, type DownOp, type Op, type Resume, type UpOp } from '../ops.js';

// A round's ops by (draft length, context), shared by every device and request (ops are immutable).
const DRAFT = new OpCache((g, ctx) => compute('drafter', 1, ctx, 1, 'draft', g));
const VERIFY = new OpCache((positions, ctx) => cloud('full', positions, ctx, positions, 'verify'));

/** What a device's requests share: the draft policy, the context hint its cost model reads, cached ops. */
interface SdDevice extends DraftDevice {
  readonly spec: PolicySpec['sd'];
  readonly tb: number;
  readonly draftUps: UpOp[];
  readonly acceptOps: AcceptOp[];
  readonly verdict: DownOp;
}

/** The prefill: the drafter prefills in parallel while the prompt goes up and the first token comes back. */
function* sdPrefill(req: RequestInfo, tb: number): Generator<Op, void, Resume> {
  const P = req.promptTokens;
  const drafterPrefill = count(yield fork(only(compute('drafter', P, 0, 0, 'drafter prefill'))));
  yield up(0, P * tb, 'prompt tokens');
  yield cloud('full', P, 0, 1, 'prefill');
  yield down(0, tb, 'first token');
  yield emit(1);
  yield join([drafterPrefill]);
}

// SdRequest's states (after its draft): the op it yields next.
const S_UP = 1, S_VERIFY = 2, S_ACCEPT = 3, S_VERDICT = 4, S_EMIT = 5, S_END = 6;

/**
 * One sd request (DraftRounds, as hat's HatRequest): the prefill generator's ops, then each
 * round: draft g tokens (none when g = 0), send them up, verify g + 1 positions, accept k,
 * the verdict comes down, emit k + 1 tokens.
 */
class SdRequest extends DraftRounds<SdDevice> {
  protected decode(value: Resume): Op | null {
    const d = this.d;
    switch (this.state) {
      case S_UP: return this.afterDraft();
      case S_VERIFY: this.state = S_ACCEPT; return VERIFY.get(this.g + 1, this.pos);
      case S_ACCEPT: this.state = S_VERDICT; return d.acceptOps[this.g] ??= accept(this.g, d.spec.acceptance, d.spec.acceptanceRates);
      case S_VERDICT: this.k = count(value); this.state = S_EMIT; return d.verdict; // the accepted count + the verifier's own next token
      case S_EMIT: this.state = S_END; return emit(this.roundTokens);
      case S_END: return this.endRound();
      default: return this.roundHead();
    }
  }

  protected draft(g: number): Op { this.state = S_UP; return DRAFT.get(g, this.pos); }

  /** The draft tokens' message. */
  protected afterDraft(): Op { this.state = S_VERIFY; return this.d.draftUps[this.g] ??= up(0, this.g * this.d.tb, 'draft tokens'); }
}

export const sd: SystemDef = {
  id: 'sd',
  cloudWork: 'full',
  deviceWork: ['drafter'],
  sendsRawTokens: true,
  createDevice(env) {
    const spec = env.policies.sd, tb = env.tokenBytes, p = env.predictor;
    const hint = { ctx: 512 };
    const roundCostMs = (g: number): number =>
      g * p.deviceMs('drafter', 1, hint.ctx, 1) + p.txMs('up', g * tb) + p.latencyMs('up')
      + p.cloudMs('full', g + 1, hint.ctx, g + 1, null) + p.txMs('down', 2 * tb) + p.latencyMs('down');
    // Per device, by draft length: the draft-token messages and accept ops; the verdict's message.
    const device: SdDevice = {
      policy: makeDraftPolicy(spec.draft, spec.acceptance, roundCostMs), hint, spec, tb,
      draftUps: [], acceptOps: [], verdict: down(0, 2 * tb, 'verdict'),
    };
    return (req) => new SdRequest(sdPrefill(req, tb), device, req.outputTokens, req.promptTokens);
  },
};

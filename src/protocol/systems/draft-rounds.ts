/**
 * The decode loop of the speculative systems (hat, sd) as a state machine (see
 * PrefillThenLoop in protocol/ops.ts): rounds of "draft g tokens (none when g = 0), verify
 * g + 1 positions, accept k, emit min(k + 1, tokens left)", the draft length chosen by the
 * device's draft policy, which learns from each round. A subclass yields its round's ops.
 */
import type { DraftPolicy } from '../../policy/draft.js';
import { PrefillThenLoop, type Op, type Resume } from '../ops.js';

/** What the requests of one device share: its draft policy and the context hint its cost model reads. */
export interface DraftDevice {
  readonly policy: DraftPolicy;
  readonly hint: { ctx: number };
}

export abstract class DraftRounds<D extends DraftDevice> extends PrefillThenLoop {
  /** The subclass's state (0: the loop's head). */
  protected state = 0;
  /** Tokens in the KV cache, tokens emitted (the first by the prefill), this round's draft length and accepted drafts. */
  protected pos: number;
  protected emitted = 1;
  protected g = 0;
  protected k = 0;

  constructor(prefill: Generator<Op, void, Resume>, protected readonly d: D, protected readonly outputTokens: number, promptTokens: number) {
    super(prefill);
    this.pos = promptTokens;
  }

  /** The round's draft op (g > 0); sets the state. */
  protected abstract draft(g: number): Op;
  /** The round's first op after drafting; sets the state. */
  protected abstract afterDraft(): Op;

  /** Tokens this round emits: the accepted drafts and the verifier's own token, at most those left. */
  protected get roundTokens(): number { return Math.min(this.k + 1, this.outputTokens - this.emitted); }

  /** The loop's head: done (null), or the next round's first op. */
  protected roundHead(): Op | null {
    this.state = 0;
    if (this.emitted >= this.outputTokens) return null;
    this.d.hint.ctx = this.pos;
    const g = this.g = this.d.policy.next(this.outputTokens - this.emitted);
    return g > 0 ? this.draft(g) : this.afterDraft();
  }

  /** The round's tokens are emitted: the policy learns from it; the next round starts (or the request ends: null). */
  protected endRound(): Op | null {
    this.d.policy.observe(this.g, this.k);
    this.emitted += this.roundTokens;
    this.pos += this.k + 1;
    return this.roundHead();
  }
}

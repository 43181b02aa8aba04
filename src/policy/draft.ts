/**
 * Draft-length policies for speculative decoding. Pure: no simulator imports.
 */
import type { DraftPolicySpec } from '../scenario/types.js';

export interface DraftPolicy {
  /** Draft length for the next round, given how many output tokens are still needed (>= 1). */
  next(remainingTokens: number): number;
  /** Report a finished round: `drafted` tokens proposed, `accepted` of them kept. */
  observe(drafted: number, accepted: number): void;
}

/** Expected tokens emitted per verification with i.i.d. acceptance a and draft length g: (1 - a^(g+1)) / (1 - a). */
export function expectedTokensPerRound(acceptance: number, gamma: number): number {
  if (acceptance >= 1) return gamma + 1;
  return (1 - Math.pow(acceptance, gamma + 1)) / (1 - acceptance);
}

/** Never draft more than the tokens still needed minus the one the verifier adds itself. */
function cap(gamma: number, remainingTokens: number): number {
  return Math.max(0, Math.min(gamma, remainingTokens - 1));
}

export class FixedDraft implements DraftPolicy {
  constructor(private readonly gamma: number) {}
  next(remainingTokens: number): number { return cap(this.gamma, remainingTokens); }
  observe(): void { /* fixed: nothing to learn */ }
}

/**
 * Adaptive: keeps an exponentially weighted estimate of the per-token
 * acceptance rate and picks the g in [min, max] maximising expected tokens
 * per unit of time, E(g) / cost(g), where cost(g) is the predicted time of a
 * round with g drafts (drafting + verification round trip), supplied by the
 * caller from its latency predictor.
 */
export class AdaptiveDraft implements DraftPolicy {
  private acceptEstimate: number;
  constructor(
    private readonly spec: Extract<DraftPolicySpec, { kind: 'adaptive' }>,
    private readonly roundCostMs: (gamma: number) => number,
    priorAcceptance: number,
  ) {
    this.acceptEstimate = priorAcceptance;
  }
  get acceptance(): number { return this.acceptEstimate; }
  next(remainingTokens: number): number {
    let best = this.spec.minGamma, bestRate = -1;
    for (let g = this.spec.minGamma; g <= this.spec.maxGamma; g++) {
      const rate = expectedTokensPerRound(this.acceptEstimate, g) / this.roundCostMs(g);
      if (rate > bestRate + 1e-12) { bestRate = rate; best = g; }
    }
    return cap(best, remainingTokens);
  }
  observe(drafted: number, accepted: number): void {
    if (drafted <= 0) return;
    // Per-round MLE of a geometric-prefix acceptance: accepted / (accepted + 1 rejection if any).
    const trials = accepted + (accepted < drafted ? 1 : 0);
    const roundEstimate = accepted / trials;
    const w = this.spec.emaWeight;
    this.acceptEstimate = Math.min(0.999, Math.max(0.001, (1 - w) * this.acceptEstimate + w * roundEstimate));
  }
}

export function makeDraftPolicy(spec: DraftPolicySpec, priorAcceptance: number, roundCostMs: (gamma: number) => number): DraftPolicy {
  switch (spec.kind) {
    case 'fixed': return new FixedDraft(spec.gamma);
    case 'adaptive': return new AdaptiveDraft(spec, roundCostMs, priorAcceptance);
  }
}

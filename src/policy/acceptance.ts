/**
 * Seeded acceptance of draft tokens: each draft token is accepted with
 * probability `rate`, independently, and verification keeps the longest
 * accepted prefix. The simulator and the live runner both call this with the
 * device's `accept/<device>` stream, in the same order, so they accept the
 * same drafts.
 */
export interface UniformSource {
  uniform(): number;
}

/** Number of accepted draft tokens (0..drafted): one uniform draw per token up to the first rejection. */
export function drawAccepted(rng: UniformSource, drafted: number, rate: number): number {
  let k = 0;
  while (k < drafted && rng.uniform() < rate) k++;
  return k;
}

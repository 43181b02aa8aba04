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

/**
 * Number of accepted draft tokens (0..drafted): one uniform draw per token up to the first
 * rejection. With `rates` (a measured acceptance file: the conditional acceptance of draft
 * position i given positions before it were accepted), token k+1 is accepted with rates[k]
 * (the last rate beyond the table's end) instead of the i.i.d. `rate`.
 */
export function drawAccepted(rng: UniformSource, drafted: number, rate: number, rates: readonly number[] | null = null): number {
  let k = 0;
  if (rates === null) {
    while (k < drafted && rng.uniform() < rate) k++;
    return k;
  }
  const last = rates.length - 1;
  while (k < drafted && rng.uniform() < rates[k < last ? k : last]) k++;
  return k;
}

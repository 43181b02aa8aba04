/**
 * Decision draws (the `draw` op): one seeded stream per request, `decide/<device>/<request>`,
 * so a request's k-th draw is the same wherever it is made: in the simulator, or in
 * whichever node process holds the task in a live run (live/node.ts).
 */
import { Rng } from '../core/rng.js';

export function decideStream(seed: number, device: number, request: number): Rng {
  return new Rng(seed, `decide/${device}/${request}`);
}

/** The k-th (0-based) draw of a request's stream. */
export function decideDraw(seed: number, device: number, request: number, k: number): number {
  const r = decideStream(seed, device, request);
  for (let i = 0; i < k; i++) r.nextU32();
  return r.uniform();
}

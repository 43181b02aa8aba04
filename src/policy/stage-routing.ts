/**
 * Routing between pipeline stages (staged systems): which next-stage node a task goes to.
 * Pure: the simulator and the live runner call the same objects. A choice of node is
 * always a policy call that returns a node; the driver never decides.
 */
import type { StageRoutingSpec } from '../scenario/types.js';

export interface StageRouter {
  /** Whether `pick` needs the candidates' loads (jobs waiting + in service). */
  readonly needsLoads: boolean;
  /** Whether `pick` needs a uniform draw. */
  readonly needsDraw: boolean;
  /**
   * The next node for a task at node `from` among `candidates` (node indices, in topology
   * order). `u` is a uniform in [0, 1) when `needsDraw`, `loads[i]` the load of
   * candidates[i] when `needsLoads`.
   */
  pick(from: number, candidates: readonly number[], u: number, loads: readonly number[] | null): number;
}

/** Inverse-CDF pick over `weights` (summing to about 1) with a uniform `u`. */
export function pickWeighted(candidates: readonly number[], weights: readonly number[], u: number): number {
  let acc = 0;
  for (let i = 0; i < candidates.length; i++) {
    acc += weights[i];
    if (u < acc) return candidates[i];
  }
  // Rounding left u >= the sum: the last candidate with a positive weight.
  for (let i = candidates.length - 1; i >= 0; i--) if (weights[i] > 0) return candidates[i];
  return candidates[candidates.length - 1];
}

export function makeStageRouter(
  spec: StageRoutingSpec,
  nodeNames: readonly string[],
  routeLatencyMs: (from: number, to: number) => number,
): StageRouter {
  switch (spec.kind) {
    case 'uniform':
      return {
        needsLoads: false, needsDraw: true,
        pick: (_from, c, u) => c[Math.min(c.length - 1, Math.floor(u * c.length))],
      };
    case 'shortest-queue':
      return {
        needsLoads: true, needsDraw: false,
        pick: (_from, c, _u, loads) => {
          let best = 0;
          for (let i = 1; i < c.length; i++) if (loads![i] < loads![best]) best = i;
          return c[best];
        },
      };
    case 'nearest':
      return {
        needsLoads: false, needsDraw: false,
        pick: (from, c) => {
          let best = 0, bestMs = routeLatencyMs(from, c[0]);
          for (let i = 1; i < c.length; i++) { const ms = routeLatencyMs(from, c[i]); if (ms < bestMs) { best = i; bestMs = ms; } }
          return c[best];
        },
      };
    case 'fixed': {
      const rows = new Map<number, Map<number, number>>();
      const index = new Map(nodeNames.map((n, i) => [n, i]));
      for (const [from, row] of Object.entries(spec.fractions)) {
        const m = new Map<number, number>();
        for (const [to, p] of Object.entries(row)) m.set(index.get(to)!, p);
        rows.set(index.get(from)!, m);
      }
      return {
        needsLoads: false, needsDraw: true,
        pick: (from, c, u) => {
          const row = rows.get(from);
          if (row === undefined) return c[Math.min(c.length - 1, Math.floor(u * c.length))];
          return pickWeighted(c, c.map((x) => row.get(x) ?? 0), u);
        },
      };
    }
  }
}

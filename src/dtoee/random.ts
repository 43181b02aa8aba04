/**
 * Seeded random DTO-EE problems (tests, benchmarks, sweeps): S stages with a
 * given number of nodes each, heterogeneous service rates, each node linked
 * to a random non-empty subset of the next stage, hop delays from feature
 * bytes over a random bandwidth plus a latency, and device input at stage-1
 * nodes scaled so that the whole system runs at a target utilisation.
 */
import { Rng } from '../core/rng.js';
import { defaultProfile, type ExitProfile } from './profile.js';
import type { AccuracyGoal, DtoNodeSpec, DtoProblemSpec, SojournModel } from './problem.js';

export interface RandomProblemOptions {
  seed: number;
  /** Nodes per stage, e.g. [3, 3, 2]. */
  nodesPerStage: number[];
  /** Total input / the smallest stage capacity (every task crosses every stage with tau = 1). Default 0.6. */
  load?: number;
  /** Service rates uniform in [muMin, muMax] tasks/s. Default 20..60. */
  muMin?: number;
  muMax?: number;
  /** Probability of each extra link beyond the first. Default 0.6. */
  linkProb?: number;
  featureBytes?: number;
  sojourn?: SojournModel;
  accuracy?: AccuracyGoal;
  profile?: ExitProfile;
}

export function randomProblem(o: RandomProblemOptions): DtoProblemSpec {
  const rng = new Rng(o.seed, 'dtoee/random-problem');
  const S = o.nodesPerStage.length;
  const muMin = o.muMin ?? 20, muMax = o.muMax ?? 60, linkProb = o.linkProb ?? 0.6, bytes = o.featureBytes ?? 8192;
  const ids = o.nodesPerStage.map((k, s) => Array.from({ length: k }, (_, i) => `s${s + 1}n${i + 1}`));
  const nodes: DtoNodeSpec[] = [];
  ids.forEach((stageIds, s) => stageIds.forEach((id) => {
    const node: DtoNodeSpec = { id, stage: s + 1, serviceRatePerS: muMin + (muMax - muMin) * rng.uniform() };
    if (s + 1 < S) {
      const nextIds = ids[s + 1];
      const first = rng.int(nextIds.length);
      node.next = nextIds.filter((_, j) => j === first || rng.uniform() < linkProb).map((to) => ({
        to, featureBytes: bytes, bandwidthBps: 20e6 + 180e6 * rng.uniform(), latencyS: 0.001 + 0.009 * rng.uniform(),
      }));
    }
    nodes.push(node);
  }));
  const stage1 = nodes.filter((n) => n.stage === 1);
  const capOf = (s: number): number => nodes.filter((n) => n.stage === s).reduce((a, n) => a + (n.serviceRatePerS ?? 0), 0);
  const cap = Math.min(...ids.map((_, s) => capOf(s + 1)));
  const weights = stage1.map(() => 0.5 + rng.uniform());
  const wsum = weights.reduce((a, b) => a + b, 0);
  stage1.forEach((n, i) => { n.inputRatePerS = ((o.load ?? 0.6) * cap * weights[i]) / wsum; });
  return {
    stages: S, nodes, sojourn: o.sojourn ?? 'mm1', accuracy: o.accuracy ?? { mode: 'weight', beta: 0.2 },
    profile: o.profile ?? defaultProfile({ stages: S, layers: 8 * S }),
  };
}

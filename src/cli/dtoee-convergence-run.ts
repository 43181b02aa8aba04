/**
 * The heavy part of `hatsim dtoee-convergence` (scenario loader, simulator testbed, solvers),
 * loaded only when the command runs (start-up stays light: issue 15).
 */
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { convergenceCsv, measureConvergence, type ConvergenceResult } from '../dtoee/convergence.js';
import { compileProblem, type DtoProblemSpec } from '../dtoee/problem.js';
import { dtoeeAssumptions } from '../dtoee/index.js';
import { hiddenStateBytesPerToken } from '../model/catalog.js';
import type { ProtocolEnv } from '../protocol/context.js';
import { dtoeeProblem } from '../protocol/systems/dtoee.js';
import { loadScenario } from '../scenario/load.js';
import { buildTestbed, topologyView } from '../sim/run.js';

/** The DTO-EE problem a scenario's dtoee system optimises (the same spec its policy is built from). */
export function scenarioDtoeeProblem(file: string, overrides: string[]): { spec: DtoProblemSpec; name: string; fixedThreshold: number } {
  const s = loadScenario(file, overrides);
  const tb = buildTestbed(s);
  const view = topologyView(tb, tb.devices[0], -1);
  // dtoeeProblem reads only these fields of the protocol environment (no predictor: no run here).
  const env = { hiddenBytesPerToken: hiddenStateBytesPerToken(tb.model), tokenBytes: s.network.tokenBytes, policies: s.policies, topology: view };
  const { spec } = dtoeeProblem(env as unknown as ProtocolEnv, view, tb.devices.map((d) => d.node.index));
  return { spec, name: s.name, fixedThreshold: s.policies.dtoee.fixedThreshold };
}

/** Measure and write convergence.csv and convergence.json into `out`. */
export function writeConvergence(scenario: string, overrides: string[], starts: number[], out: string | undefined): { out: string; name: string; spec: DtoProblemSpec; res: ConvergenceResult; wallMs: number } {
  const { spec, name, fixedThreshold } = scenarioDtoeeProblem(scenario, overrides);
  const t0 = performance.now();
  const res = measureConvergence(spec, starts);
  const wallMs = performance.now() - t0;
  const dir = out ?? join('results', `${name}-convergence`);
  const P = compileProblem(spec);
  writeFileAtomic(join(dir, 'convergence.csv'), convergenceCsv(res));
  writeFileAtomic(join(dir, 'convergence.json'), JSON.stringify({
    format: 'hatsim-dtoee-convergence/1', scenario, overrides,
    nodes: spec.nodes.length, stages: spec.stages, links: spec.nodes.reduce((a, n) => a + (n.next?.length ?? 0), 0),
    centralised: { objective: res.centralisedObjective, meanDelayS: res.centralisedMeanDelayS, meanAccuracy: res.centralisedMeanAccuracy },
    runs: res.runs.map((r) => ({ startTau: r.startTau, iterations: r.iterations, messages: r.messages, bytes: r.bytes, finalGapPct: r.finalGapPct, iterationsWithin1Pct: r.within1Pct, iterationsWithin01Pct: r.within01Pct })),
    wallMs, assumptions: dtoeeAssumptions(P, { fixedThreshold }),
  }, null, 2) + '\n');
  return { out: dir, name, spec, res, wallMs };
}

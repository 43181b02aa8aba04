/**
 * `hatsim dtoee-convergence <scenario>`: the distributed DTO-EE algorithm's objective per
 * iteration against the centralised optimum on the scenario's own problem (the one the
 * dtoee system optimises before its run: service times from the nodes' latency models, the
 * devices' rates, hop delays), written as convergence.csv + convergence.json + figures.
 * See docs/DTOEE.md "Convergence".
 */
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { convergenceCsv, measureConvergence } from '../dtoee/convergence.js';
import { compileProblem, type DtoProblemSpec } from '../dtoee/problem.js';
import { dtoeeAssumptions } from '../dtoee/index.js';
import { hiddenStateBytesPerToken } from '../model/catalog.js';
import type { ProtocolEnv } from '../protocol/context.js';
import { dtoeeProblem } from '../protocol/systems/dtoee.js';
import { loadScenario } from '../scenario/load.js';
import { buildTestbed, topologyView } from '../sim/run.js';
import { overridesFrom, scenarioOptions, type ScenarioArgs } from './common.js';

interface ConvergenceArgs extends ScenarioArgs {
  out?: string;
  starts: string;
  format?: string[];
  quiet: boolean;
}

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

export function parseStarts(text: string): number[] {
  const v = text.split(',').map((x) => x.trim()).filter(Boolean).map(Number);
  if (v.length === 0 || v.some((x) => !Number.isFinite(x) || x < 0 || x > 1)) {
    throw new InputError(`--starts ${text}: give comma-separated starting thresholds in [0, 1], e.g. --starts 0.5,1`, 'starts');
  }
  return v;
}

export const dtoeeConvergenceCommand: CommandModule<object, ConvergenceArgs> = {
  command: 'dtoee-convergence <scenario>',
  describe: "DTO-EE: the distributed algorithm's objective per iteration against the centralised optimum on the scenario's problem (convergence.csv + figures)",
  builder: (y: Argv) => scenarioOptions(y)
    .option('out', { type: 'string', describe: 'output directory (default results/<scenario name>-convergence)' })
    .option('starts', { type: 'string', default: '0.5,1', describe: 'starting thresholds of the distributed runs (comma-separated, in [0, 1])' })
    .option('format', { type: 'string', array: true, describe: 'figure formats (svg, png, html, vl); default svg,png' })
    .option('quiet', { type: 'boolean', default: false, describe: 'print nothing but errors' }) as unknown as Argv<ConvergenceArgs>,
  handler: async (args) => {
    const starts = parseStarts(args.starts);
    const { parseFormats, renderFigures } = await import('../plot/index.js');
    const formats = parseFormats(args.format);
    const { spec, name, fixedThreshold } = scenarioDtoeeProblem(args.scenario, overridesFrom(args));
    const t0 = performance.now();
    const res = measureConvergence(spec, starts);
    const wallMs = performance.now() - t0;
    const out = args.out ?? join('results', `${name}-convergence`);
    const P = compileProblem(spec);
    writeFileAtomic(join(out, 'convergence.csv'), convergenceCsv(res));
    writeFileAtomic(join(out, 'convergence.json'), JSON.stringify({
      format: 'hatsim-dtoee-convergence/1', scenario: args.scenario, overrides: overridesFrom(args),
      nodes: spec.nodes.length, stages: spec.stages, links: spec.nodes.reduce((a, n) => a + (n.next?.length ?? 0), 0),
      centralised: { objective: res.centralisedObjective, meanDelayS: res.centralisedMeanDelayS, meanAccuracy: res.centralisedMeanAccuracy },
      runs: res.runs.map((r) => ({ startTau: r.startTau, iterations: r.iterations, messages: r.messages, bytes: r.bytes, finalGapPct: r.finalGapPct, iterationsWithin1Pct: r.within1Pct, iterationsWithin01Pct: r.within01Pct })),
      wallMs, assumptions: dtoeeAssumptions(P, { fixedThreshold }),
    }, null, 2) + '\n');
    const fig = await renderFigures(out, { formats, outDir: join(out, 'figures') });
    if (args.quiet) return;
    const lines = res.runs.map((r) => `  from tau ${r.startTau}: ${r.iterations} iterations, ${r.messages} messages (${(r.bytes / 1024).toFixed(1)} KiB), final gap ${r.finalGapPct.toFixed(4)} %, `
      + `within 1 % from iteration ${r.within1Pct ?? 'never'}, within 0.1 % from ${r.within01Pct ?? 'never'}`);
    process.stdout.write(`${name}: ${spec.nodes.length} nodes in ${spec.stages} stages; centralised objective ${res.centralisedObjective.toPrecision(6)} `
      + `(mean delay ${(res.centralisedMeanDelayS * 1000).toFixed(1)} ms, accuracy ${res.centralisedMeanAccuracy.toFixed(4)}); ${wallMs.toFixed(0)} ms\n${lines.join('\n')}\n`
      + `convergence.csv, convergence.json and ${fig.figures.length} figures written to ${out}\n`);
  },
};

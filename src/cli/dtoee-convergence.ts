/**
 * `hatsim dtoee-convergence <scenario>`: the distributed DTO-EE algorithm's objective per
 * iteration against the centralised optimum on the scenario's own problem (the one the
 * dtoee system optimises before its run: service times from the nodes' latency models, the
 * devices' rates, hop delays), written as convergence.csv + convergence.json + figures.
 * See docs/DTOEE.md "Convergence on a scenario".
 */
import { join } from 'node:path';
import type { Argv, CommandModule } from 'yargs';
import { InputError } from '../core/errors.js';
import { overridesFrom, scenarioOptions, type ScenarioArgs } from './common.js';

interface ConvergenceArgs extends ScenarioArgs {
  out?: string;
  starts: string;
  format?: string[];
  quiet: boolean;
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
    const { writeConvergence } = await import('./dtoee-convergence-run.js'); // simulator, solvers: only here
    const { out, name, spec, res, wallMs } = writeConvergence(args.scenario, overridesFrom(args), starts, args.out);
    const fig = await renderFigures(out, { formats, outDir: join(out, 'figures') });
    if (args.quiet) return;
    const lines = res.runs.map((r) => `  from tau ${r.startTau}: ${r.iterations} iterations, ${r.messages} messages (${(r.bytes / 1024).toFixed(1)} KiB), final gap ${r.finalGapPct.toFixed(4)} %, `
      + `within 1 % from iteration ${r.within1Pct ?? 'never'}, within 0.1 % from ${r.within01Pct ?? 'never'}`);
    process.stdout.write(`${name}: ${spec.nodes.length} nodes in ${spec.stages} stages; centralised objective ${res.centralisedObjective.toPrecision(6)} `
      + `(mean delay ${(res.centralisedMeanDelayS * 1000).toFixed(1)} ms, accuracy ${res.centralisedMeanAccuracy.toFixed(4)}); ${wallMs.toFixed(0)} ms\n${lines.join('\n')}\n`
      + `convergence.csv, convergence.json and ${fig.figures.length} figures written to ${out}\n`);
  },
};

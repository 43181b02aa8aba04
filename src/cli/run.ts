/** `hatsim run <scenario>`: simulate every system of a scenario and write the results directory. */
import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import type { SummaryRecord } from '../results/types.js';
import { table } from './table.js';
import { scenarioOptions, overridesFrom, type ScenarioArgs } from './common.js';

export function summaryTable(rows: readonly SummaryRecord[]): string {
  return table(
    ['system', 'reqs', 'TTFT mean', 'TTFT p50', 'TTFT p99', 'TBT mean', 'TBT p99', 'tok/s', 'KB up/req', 'raw tok B up', 'GPU util', 'source'],
    rows.map((r) => [r.system, r.requests, r.ttft_mean_ms, r.ttft_p50_ms, r.ttft_p99_ms, r.tbt_mean_ms, r.tbt_p99_ms,
      r.throughput_tok_s, r.bytes_up_per_request / 1024, r.raw_token_bytes_up, r.gpu_util_mean, r.latency_source]),
    2,
  );
}

interface RunArgs extends ScenarioArgs { out?: string; quiet?: boolean; parquet?: boolean }

export const runCommand: CommandModule<object, RunArgs> = {
  command: 'run <scenario>',
  describe: 'Simulate the systems of a scenario; write requests.csv, summary.csv, timeline.csv, gpu_util.csv, run.json',
  builder: (y) => scenarioOptions(y)
    .option('out', { type: 'string', describe: 'results directory (default results/<scenario name>)' })
    .option('quiet', { type: 'boolean', default: false, describe: 'print nothing but errors' })
    .option('parquet', { type: 'boolean', default: false, describe: 'also write requests.parquet and summary.parquet (Arrow types; docs/OUTPUTS.md)' }) as never,
  handler: async (args) => {
    const { isFedSpineFile } = await import('../fedspine/scenario.js');
    if (isFedSpineFile(args.scenario)) { // kind: fedspine
      const { runFedSpineCli } = await import('./fedspine.js');
      runFedSpineCli(args);
      return;
    }
    // Loaded here, not at start-up, so that `hatsim --help` and other commands stay fast (issue 15).
    const [{ loadScenario }, { runScenario }, { runOutputs }, { writeRunOutputs }] = await Promise.all([
      import('../scenario/load.js'), import('../sim/run.js'), import('../sim/outputs.js'), import('../results/write.js')]);
    const scenario = loadScenario(args.scenario, overridesFrom(args));
    const out = resolve(args.out ?? `results/${scenario.name}`);
    const result = runScenario(scenario, { spillDir: out }); // requests stream to disk as they finish (issue 15)
    writeRunOutputs(out, runOutputs(result));
    if (args.parquet) (await import('../results/parquet.js')).writeRunParquet(out); // Arrow loads only then
    if (args.quiet) return;
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
    const unfinished = result.systems.reduce((a, s) => a + s.summary.unfinished, 0);
    process.stdout.write(`${scenario.name}: ${result.systems.length} systems, ${result.eventCount} events in ${(result.wallMs / 1000).toFixed(2)} s\n`);
    process.stdout.write('times in ms; tok/s = output tokens per simulated second; source = worst latency source used\n\n');
    process.stdout.write(summaryTable(result.systems.map((s) => s.summary)) + '\n\n');
    if (unfinished > 0) process.stdout.write(`warning: ${unfinished} requests did not finish before horizonS=${scenario.horizonS}\n`);
    process.stdout.write(`results written to ${out}\n`);
  },
};

/** `hatsim run <fedspine scenario>`: the FedSpine branch of the run command (dispatched on `kind: fedspine`). */
import { resolve } from 'node:path';
import { loadFedSpineScenario } from '../fedspine/scenario.js';
import { simulateFedSpine } from '../fedspine/rounds.js';
import { writeFedSpineOutputs } from '../fedspine/outputs.js';
import { table } from './table.js';
import { overridesFrom, type ScenarioArgs } from './common.js';

export function runFedSpineCli(args: ScenarioArgs & { out?: string; quiet?: boolean }): void {
  // --systems picks FedSpine methods.
  const overrides = overridesFrom(args).map((o) => (o.startsWith('systems=') ? `methods=${o.slice('systems='.length)}` : o));
  const { config, parsed } = loadFedSpineScenario(args.scenario, overrides);
  const result = simulateFedSpine(config);
  const out = resolve(args.out ?? `results/${config.name}`);
  writeFedSpineOutputs(out, config, result, parsed);
  if (args.quiet) return;
  process.stdout.write(`${config.name}: FedSpine, ${config.devices.length} devices, ${config.methods.length} methods in ${(result.wallMs / 1000).toFixed(2)} s\n`);
  process.stdout.write(`times in simulated s; target loss ${config.rounds.targetLoss}; under hatsim's model of FedSpine (assumptions in run.json)\n\n`);
  process.stdout.write(table(
    ['method', 'rounds', 'time to target s', 'final loss', 'mean round s', 'mean wait s', 'GB total', 'mean ratio', 'mean rank', 'dropped', 'late'],
    result.summaries.map((s) => [s.method, s.rounds, s.time_to_target_s, s.final_loss, s.mean_round_s, s.mean_wait_s, s.total_bytes / 1e9, s.mean_ratio, s.mean_rank, s.dropped, s.late]),
    3,
  ) + '\n\n');
  process.stdout.write(`results written to ${out}\n`);
}

/** `hatsim run <fedspine scenario>`: the FedSpine branch of the run command (dispatched on `kind: fedspine`). */
import { resolve } from 'node:path';
import { loadFedSpineScenario } from '../fedspine/scenario.js';
import { buildCostModels, simulateFedSpine } from '../fedspine/rounds.js';
import { FEDSPINE_ASSUMPTIONS, writeFedSpineOutputs } from '../fedspine/outputs.js';
import { table } from './table.js';
import { overridesFrom, type ScenarioArgs } from './common.js';

/** The scenario flags as overrides; --systems picks FedSpine methods. */
function fedOverrides(args: ScenarioArgs): string[] {
  return overridesFrom(args).map((o) => (o.startsWith('systems=') ? `methods=${o.slice('systems='.length)}` : o));
}

export function runFedSpineCli(args: ScenarioArgs & { out?: string; quiet?: boolean }): void {
  const { config, parsed } = loadFedSpineScenario(args.scenario, fedOverrides(args));
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

/** `hatsim describe <fedspine scenario>`: per hardware, step time, memory, feasibility and bytes at corner configurations; the assumptions. */
export function describeFedSpine(args: ScenarioArgs): string {
  const { config } = loadFedSpineScenario(args.scenario, fedOverrides(args));
  const costs = buildCostModels(config);
  const sp = config.space;
  const out: string[] = [];
  out.push(`${config.name}: FedSpine (under hatsim's model), ${config.devices.length} devices, model ${config.model.id}, methods ${config.methods.join(', ')}`);
  out.push(`training: batch ${config.training.batch} x ${config.training.seqLen} tokens, logits ${config.training.logits}, LoRA on ${config.training.loraTargets.join(',')}, K = ${config.rounds.localSteps} local steps; space ratio ${sp.ratioMin}..${sp.ratioMax} step ${sp.ratioStep}, rank ${sp.rankMin}..${sp.rankMax}`);
  out.push('', 'Per hardware, at the space corners (step ms | memory GiB | feasible | LoRA MB on the wire):');
  const corners: [number, number][] = [[sp.ratioMin, sp.rankMax], [sp.ratioMin, sp.rankMin], [sp.ratioMax, sp.rankMax], [sp.ratioMax, sp.rankMin]];
  const seen = new Set<string>();
  const rows: unknown[][] = [];
  config.devices.forEach((d, i) => {
    const key = `${d.hardwareId}/${d.memoryBytes}`;
    if (seen.has(key)) return;
    seen.add(key);
    for (const [p, r] of corners) {
      const c = costs[i].cost(p, r);
      rows.push([d.hardwareId, p, r, c.stepMs, c.memory.totalBytes / 1024 ** 3, c.feasible ? 'yes' : 'NO', c.loraWireBytes / 1e6, costs[i].latencySource]);
    }
  });
  out.push(table(['hardware', 'ratio', 'rank', 'step ms', 'mem GiB', 'fits', 'LoRA MB', 'forward from'], rows, 2));
  out.push('', 'Assumptions (also in run.json):', ...FEDSPINE_ASSUMPTIONS.map((a) => `  - ${a}`), '');
  return out.join('\n');
}

/** Options shared by the commands that take a scenario. */
import type { Argv } from 'yargs';
import { InputError } from '../core/errors.js';

export interface ScenarioArgs {
  scenario: string;
  seed?: number;
  set?: string[];
  systems?: string;
}

export function scenarioOptions<T>(y: Argv<T>): Argv<T & ScenarioArgs> {
  return y
    .positional('scenario', { type: 'string', demandOption: true, describe: 'scenario YAML file' })
    .option('seed', { type: 'number', describe: 'override the scenario seed' })
    .option('set', { type: 'string', array: true, describe: 'override a field: --set path=value (repeatable), e.g. --set cloud.gpus=4' })
    .option('systems', { type: 'string', describe: 'comma-separated subset of systems, e.g. hat,ushape' }) as unknown as Argv<T & ScenarioArgs>;
}

/** The --seed / --systems / --set flags as scenario overrides (applied in that order, --set last). */
export function overridesFrom(args: ScenarioArgs): string[] {
  const out: string[] = [];
  if (args.seed !== undefined) {
    if (!Number.isSafeInteger(args.seed) || args.seed < 0) throw new InputError(`--seed: ${args.seed} is not allowed; give a non-negative integer`, 'seed');
    out.push(`seed=${args.seed}`);
  }
  if (args.systems !== undefined) out.push(`systems=[${args.systems}]`);
  for (const s of args.set ?? []) out.push(s);
  return out;
}

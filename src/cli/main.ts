#!/usr/bin/env node
/**
 * The `hatsim` command. Each subcommand lives in its own file in this folder.
 * Input errors (InputError) print one clear message and exit 2, never a stack.
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { InputError } from '../core/errors.js';
import { commands } from './commands.js';

function fail(message: string): never {
  process.stderr.write(`hatsim: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let cli = yargs(hideBin(process.argv))
    .scriptName('hatsim')
    .strict()
    .demandCommand(1, 'give a command: run, sweep, merge, describe, calibrate, plot, report')
    .recommendCommands()
    .help()
    .version(false)
    .wrap(Math.min(110, process.stdout.columns || 100))
    .fail((msg, err) => {
      if (err) throw err;
      const first = hideBin(process.argv)[0];
      const prefix = /^Did you mean/.test(msg) ? `unknown command '${first}'. ` : '';
      fail(`${prefix}${msg}\nRun 'hatsim --help' for usage.`);
    });
  for (const c of commands) cli = cli.command(c);
  await cli.parseAsync();
}

main().catch((e: unknown) => {
  if (e instanceof InputError) fail(e.message);
  // Anything else is a bug: keep the stack.
  console.error(e);
  process.exit(1);
});

/** The registry of `hatsim` subcommands. */
import type { CommandModule } from 'yargs';
import { runCommand } from './run.js';

// Each module's argument type differs; yargs accepts them all as CommandModule<object, never>.
export const commands: CommandModule<object, never>[] = [
  runCommand as unknown as CommandModule<object, never>,
];

/** `hatsim merge <dir...> --out DIR`: combine the shard directories of a sweep. See docs/SWEEPS.md. */
import type { CommandModule } from 'yargs';
import { displayPath } from './sweep.js';

interface MergeArgs {
  dirs: string[];
  out: string;
  'allow-missing'?: boolean;
  quiet?: boolean;
}

export const mergeCommand: CommandModule<object, MergeArgs> = {
  command: 'merge <dirs..>',
  describe: 'Merge the shard directories of a sweep (or a directory holding shard-i-of-N subdirectories) into one sweep directory',
  builder: (y) => y
    .positional('dirs', { type: 'string', array: true, demandOption: true, describe: 'sweep directories (shards) to merge' })
    .option('out', { type: 'string', demandOption: true, requiresArg: true, describe: 'merged sweep directory' })
    .option('allow-missing', { type: 'boolean', default: false, describe: 'merge even when some grid points were not finished by any shard' })
    .option('quiet', { type: 'boolean', default: false, describe: 'print nothing but errors' }) as never,
  handler: async (args) => {
    const { mergeSweeps } = await import('../sweep/merge.js'); // not at start-up (issue 15)
    const r = mergeSweeps(args.dirs, args.out, { allowMissing: args['allow-missing'] === true });
    if (args.quiet) return;
    const shown = displayPath(r.out);
    process.stdout.write(`merged ${r.sources.length} director${r.sources.length === 1 ? 'y' : 'ies'}: ${r.points} points -> ${shown}/sweep.csv\n`);
    if (r.missing.length > 0) {
      process.stderr.write(`warning: ${r.missing.length} points missing: ${r.missing.slice(0, 20).join(', ')}${r.missing.length > 20 ? ', ...' : ''}\n`
        + `(running the unsharded sweep command with --out ${shown} computes only those)\n`);
    }
  },
};

/** `hatsim fit-learning <results dir>`: fit FedSpine's learning-model parameters from a run's rounds.csv. */
import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';

interface FitArgs { results: string; method?: string; start?: string; out?: string }

export const fitLearningCommand: CommandModule<object, FitArgs> = {
  command: 'fit-learning <results>',
  describe: 'Fit the FedSpine learning-model parameters (least squares) from a results directory (rounds.csv + run.json)',
  builder: (y) => y
    .positional('results', { type: 'string', demandOption: true, describe: 'results directory of a FedSpine run' })
    .option('method', { type: 'string', describe: 'only this method\'s rounds (default: all)' })
    .option('start', { type: 'string', describe: 'learning JSON file to start from (default: built-in defaults)' })
    .option('out', { type: 'string', describe: 'write the fitted parameters to this JSON file' }) as never,
  handler: async (args) => {
    // Loaded here: start-up stays light (issue 15).
    const [{ learningRowsFromResults }, { DEFAULT_LEARNING, fitLearning, loadLearning }] = await Promise.all([import('../fedspine/fitlog.js'), import('../fedspine/learning.js')]);
    const rows = learningRowsFromResults(resolve(args.results), args.method);
    const fit = fitLearning(rows, args.start ? loadLearning(args.start) : DEFAULT_LEARNING);
    const json = JSON.stringify(fit.params, null, 2) + '\n';
    if (args.out) writeFileAtomic(resolve(args.out), json);
    process.stdout.write(`${rows.length} rounds fitted, rmse ${fit.rmse.toExponential(3)} (loss units), ${fit.iterations} iterations\n${json}`);
  },
};

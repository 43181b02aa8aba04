/** The registry of `hatsim` subcommands. */
import type { CommandModule } from 'yargs';
import { runCommand } from './run.js';
import { describeCommand } from './describe.js';
import { calibrateCommand } from './calibrate.js';
import { sweepCommand } from './sweep.js';
import { mergeCommand } from './merge.js';
import { plotCommand } from './plot.js';
import { reportCommand } from './report.js';
import { liveCommand } from './live.js';
import { validateCommand } from './validate.js';
import { exitProfileCommand } from './exit-profile.js';
import { fitLearningCommand } from './fedspine-fit.js';
import { pruneCommand } from './prune.js';
import { trainCommand, exportModelCommand, generateCommand, lmEvalCommand, exitFeaturesCommand } from './train.js';
import { dtoeeConvergenceCommand } from './dtoee-convergence.js';

// Each module's argument type differs; yargs accepts them all as CommandModule<object, never>.
export const commands: CommandModule<object, never>[] = [
  runCommand as unknown as CommandModule<object, never>,
  describeCommand as unknown as CommandModule<object, never>,
  calibrateCommand as unknown as CommandModule<object, never>,
  sweepCommand as unknown as CommandModule<object, never>,
  mergeCommand as unknown as CommandModule<object, never>,
  plotCommand as unknown as CommandModule<object, never>,
  reportCommand as unknown as CommandModule<object, never>,
  liveCommand as unknown as CommandModule<object, never>,
  validateCommand as unknown as CommandModule<object, never>,
  exitProfileCommand as unknown as CommandModule<object, never>,
  fitLearningCommand as unknown as CommandModule<object, never>,
  pruneCommand as unknown as CommandModule<object, never>,
  trainCommand as unknown as CommandModule<object, never>,
  exportModelCommand as unknown as CommandModule<object, never>,
  generateCommand as unknown as CommandModule<object, never>,
  lmEvalCommand as unknown as CommandModule<object, never>,
  exitFeaturesCommand as unknown as CommandModule<object, never>,
  dtoeeConvergenceCommand as unknown as CommandModule<object, never>,
];

/** `hatsim exit-profile <features-dir> --out FILE`: measure a DTO-EE exit profile from ONNX exit heads. See docs/DTOEE.md. */
import type { CommandModule } from 'yargs';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import type { ConfidenceKind } from '../dtoee/profile.js';

interface ExitProfileArgs {
  features: string;
  out: string;
  confidence: string;
  'grid-step': number;
  batch: number;
  threads: number;
  quiet?: boolean;
}

export const exitProfileCommand: CommandModule<object, ExitProfileArgs> = {
  command: 'exit-profile <features>',
  describe: 'Measure a DTO-EE exit profile: run ONNX exit heads over the stage outputs of a labelled set (hatsim-exit-features/1)',
  builder: (y) => y
    .positional('features', { type: 'string', demandOption: true, describe: 'directory with manifest.json, labels, stage outputs and exit heads' })
    .option('out', { type: 'string', demandOption: true, requiresArg: true, describe: 'profile JSON to write (hatsim-exit-profile/1)' })
    .option('confidence', { type: 'string', default: 'max-softmax', describe: 'max-softmax or margin (top1 - top2 probability)' })
    .option('grid-step', { type: 'number', default: 0.05, describe: 'threshold grid step (divides 1)' })
    .option('batch', { type: 'number', default: 64, describe: 'samples per head run' })
    .option('threads', { type: 'number', default: 1, describe: 'ONNX Runtime intra-op threads' })
    .option('quiet', { type: 'boolean', default: false, describe: 'print nothing but errors' }) as never,
  handler: async (args) => {
    // ONNX Runtime loads only here (start-up stays light: issue 15).
    const [{ measureExitProfile, readExitFeatures }, { profileToJson }] = await Promise.all([import('../dtoee/exit-measure.js'), import('../dtoee/profile.js')]);
    if (args.confidence !== 'max-softmax' && args.confidence !== 'margin') {
      throw new InputError(`--confidence ${args.confidence}: must be max-softmax or margin`, 'confidence');
    }
    if (!Number.isInteger(args.threads) || args.threads < 1) throw new InputError(`--threads ${args.threads}: must be a positive integer`, 'threads');
    const features = readExitFeatures(args.features);
    const profile = await measureExitProfile(features, {
      confidence: args.confidence as ConfidenceKind, gridStep: args['grid-step'], batch: args.batch, threads: args.threads,
      command: `hatsim exit-profile ${args.features} --confidence ${args.confidence} --grid-step ${args['grid-step']}`,
    });
    writeFileAtomic(args.out, profileToJson(profile));
    if (args.quiet) return;
    const rows = profile.stages.map((s) => {
      const k = profile.thresholds.findIndex((t) => t >= 0.5);
      return `  stage ${s.stage} (layers ${s.layers[0]}-${s.layers[1]}): exit share at tau ${profile.thresholds[k]} = ${s.exitProb[k].toFixed(3)}, accuracy ${s.exitAccuracy[k].toFixed(3)}`;
    });
    process.stdout.write(`exit profile of ${profile.model} from ${features.samples} samples (${profile.confidence}) -> ${args.out}\n${rows.join('\n')}\n`
      + `  final (layers ${profile.finalLayers[0]}-${profile.finalLayers[1]}): accuracy ${profile.finalAccuracy.toFixed(3)}\n`);
  },
};

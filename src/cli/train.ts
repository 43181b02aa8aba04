/**
 * `hatsim train`, `hatsim export-model`, `hatsim generate`, `hatsim lm-eval`:
 * the small model trained in this project (src/train/, docs/TRAINED-MODEL.md).
 */
import type { CommandModule } from 'yargs';
import { InputError } from '../core/errors.js';
import { getModel } from '../model/catalog.js';
import { ADAPTER_DEFAULTS, EXIT_HEAD_DEFAULTS, TRAIN_DEFAULTS } from '../train/defaults.js';
// The training code (TensorFlow.js) loads in the handlers, not at start-up (issue 15).
const commands = () => import('../train/commands.js');

const DEFAULT_DIR = 'models/brown-small';

function boundaries(v: string): number[] {
  const out = v.split(',').map((x) => Number(x.trim()));
  if (out.some((x) => !Number.isInteger(x) || x < 1)) throw new InputError(`--exit-after: "${v}" must be comma-separated layer counts >= 1`, 'exit-after');
  return out;
}

function posInt(v: number | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < 1) throw new InputError(`--${flag}: ${v} is not allowed; give a positive integer`, flag);
  return v;
}

interface TrainArgs { dir: string; model: string; part: string; steps?: number; 'stop-after'?: number; finalize: boolean; seed?: number; 'exit-after': string; head: string }

export const trainCommand: CommandModule<object, TrainArgs> = {
  command: 'train',
  describe: 'Train the small LLaMA-family model on the Brown Corpus (base, or HAT adapter by distillation); resumes from <dir>/ckpt',
  builder: (y) => y
    .option('dir', { type: 'string', default: DEFAULT_DIR, describe: 'model folder (tokenizer, weights, manifest, checkpoints)' })
    .option('model', { type: 'string', default: 'brown-small', describe: 'catalog model id (dims)' })
    .option('part', { type: 'string', default: 'base', choices: ['base', 'adapter', 'exits'], describe: 'base model, HAT adapter distilled from the trained base, or DTO-EE exit heads (frozen base)' })
    .option('exit-after', { type: 'string', default: '1,2,3', describe: 'exits: stage boundaries (layer counts) that get a trained head' })
    .option('head', { type: 'string', default: 'lens', choices: ['lens', 'full'], describe: 'exits: own norm + H x H lens before the frozen LM head, or own norm + a full H x V head' })
    .option('steps', { type: 'number', describe: `training steps (base default ${TRAIN_DEFAULTS.steps}, adapter ${ADAPTER_DEFAULTS.steps})` })
    .option('stop-after', { type: 'number', describe: 'base: stop this invocation after N steps (checkpoint; run again to resume)' })
    .option('finalize', { type: 'boolean', default: false, describe: 'base: write weights + manifest from wherever the run stops (steps < planned is recorded)' })
    .option('seed', { type: 'number', describe: 'seed of init and batches' }) as never,
  handler: async (args) => {
    const m = getModel(args.model);
    const steps = posInt(args.steps, 'steps');
    const seed = args.seed;
    if (seed !== undefined && (!Number.isSafeInteger(seed) || seed < 0)) throw new InputError(`--seed: ${seed} is not allowed; give a non-negative integer`, 'seed');
    if (args.part === 'exits') {
      const cfg = { ...EXIT_HEAD_DEFAULTS, head: args.head as 'lens' | 'full', ...(steps ? { steps } : {}), ...(seed !== undefined ? { seed } : {}) };
      const man = await (await commands()).trainExitHeadsFolder(args.dir, boundaries(args['exit-after']), cfg, (l) => { if (l.step % 50 === 0) console.log(JSON.stringify(l)); });
      for (const h of man.exitHeads!.heads) {
        console.log(`exit head after ${h.boundary} layers: validation loss ${h.initialValidationLoss.toFixed(4)} -> ${h.validationLoss.toFixed(4)} nats, top-1 ${h.initialValidationAccuracy.toFixed(3)} -> ${h.validationAccuracy.toFixed(3)} (${(h.trainMs / 1000).toFixed(1)} s)`);
      }
      console.log(`exit heads: ${man.exitHeads!.trainTimeS} s training; written ${args.dir}/exit-heads.json`);
      return;
    }
    if (args.part === 'adapter') {
      const man = await (await commands()).trainAdapterFolder(args.dir, { ...ADAPTER_DEFAULTS, ...(steps ? { steps } : {}), ...(seed !== undefined ? { seed } : {}) }, (l) => console.log(JSON.stringify(l)));
      console.log(`adapter: validation KL ${man.adapter!.initialValidationKl.toFixed(4)} -> ${man.adapter!.validationKl.toFixed(4)} nats in ${man.adapter!.trainTimeS} s`);
      return;
    }
    const cfg = { ...TRAIN_DEFAULTS, ...(steps ? { steps } : {}), ...(seed !== undefined ? { seed } : {}) };
    const man = await (await import('../train/pipeline.js')).trainModelFolder(m, args.dir, cfg, (l) => console.log(JSON.stringify(l)), { stopAfterSteps: args['stop-after'] === 0 ? 0 : posInt(args['stop-after'], 'stop-after'), finalize: args.finalize });
    console.log(`${man.model}: ${man.steps}/${cfg.steps} steps, validation loss ${man.validationLoss.toFixed(4)} nats, ${man.trainTimeS} s training`);
  },
};

interface ExportArgs { dir: string; out: string }

export const exportModelCommand: CommandModule<object, ExportArgs> = {
  command: 'export-model',
  describe: 'Write a trained model folder as ONNX parts (the --onnx-dir contract of calibrate and live, plus layer.<i>.onnx)',
  builder: (y) => y
    .option('dir', { type: 'string', default: DEFAULT_DIR, describe: 'model folder' })
    .option('out', { type: 'string', demandOption: true, describe: 'output directory' }) as never,
  handler: async (args) => {
    const files = (await commands()).exportFolder(args.dir, args.out);
    for (const [k, f] of Object.entries(files)) console.log(`${k}\t${f}`);
  },
};

interface GenerateArgs { dir: string; prompt: string; tokens: number; temperature: number; 'top-k': number; seed: number; seeded: boolean }

export const generateCommand: CommandModule<object, GenerateArgs> = {
  command: 'generate',
  describe: 'Generate text with the trained model through its ONNX parts (or the seeded graphs: --seeded)',
  builder: (y) => y
    .option('dir', { type: 'string', default: DEFAULT_DIR, describe: 'model folder' })
    .option('prompt', { type: 'string', demandOption: true })
    .option('tokens', { type: 'number', default: 40 })
    .option('temperature', { type: 'number', default: 0.8, describe: '0 = greedy' })
    .option('top-k', { type: 'number', default: 40 })
    .option('seed', { type: 'number', default: 1 })
    .option('seeded', { type: 'boolean', default: false, describe: "the project's seeded-weight graphs instead of the trained weights" }) as never,
  handler: async (args) => {
    posInt(args.tokens, 'tokens');
    posInt(args['top-k'], 'top-k');
    if (!(args.temperature >= 0)) throw new InputError('--temperature: give a number >= 0', 'temperature');
    const r = await (await commands()).generate(args.dir, { prompt: args.prompt, tokens: args.tokens, temperature: args.temperature, topK: args['top-k'], seed: args.seed, seeded: args.seeded });
    console.log(args.prompt + r.text);
  },
};

interface LmEvalArgs { dir: string; windows: number; seq: number; 'exit-profile'?: string; 'exit-after'?: string; 'exit-windows': number; acceptance?: string; 'draft-len': number; contexts: number; 'context-len': number; temperature: number; seed: number }

export const lmEvalCommand: CommandModule<object, LmEvalArgs> = {
  command: 'lm-eval',
  describe: 'Test perplexity of the trained model vs a unigram model; with --acceptance FILE, HAT draft acceptance per position (greedy and sampled)',
  builder: (y) => y
    .option('dir', { type: 'string', default: DEFAULT_DIR, describe: 'model folder' })
    .option('windows', { type: 'number', default: 200, describe: 'test windows (evenly spaced, non-overlapping)' })
    .option('seq', { type: 'number', default: 128, describe: 'window length (tokens)' })
    .option('acceptance', { type: 'string', describe: 'write the acceptance file here (docs/ACCEPTANCE.md)' })
    .option('exit-profile', { type: 'string', describe: 'write a DTO-EE exit profile (validation split, hatsim-exit-profile/1) here' })
    .option('exit-after', { type: 'string', default: '2', describe: 'comma-separated stage boundaries (layer counts) with an exit' })
    .option('exit-windows', { type: 'number', default: 64, describe: 'validation windows for the exit profile' })
    .option('draft-len', { type: 'number', default: 8 })
    .option('contexts', { type: 'number', default: 256 })
    .option('context-len', { type: 'number', default: 64 })
    .option('temperature', { type: 'number', default: 1, describe: 'temperature of the sampled drafts and verification' })
    .option('seed', { type: 'number', default: 1 }) as never,
  handler: async (args) => {
    for (const k of ['windows', 'seq', 'draft-len', 'contexts', 'context-len'] as const) posInt(args[k], k);
    if (!(args.temperature > 0)) throw new InputError('--temperature: give a number > 0', 'temperature');
    const command = `hatsim ${process.argv.slice(2).join(' ')}`;
    const r = await (await commands()).lmEval(args.dir, {
      windows: args.windows, seq: args.seq,
      ...(args['exit-profile'] ? { exitProfile: { out: args['exit-profile'], boundaries: boundaries(args['exit-after'] ?? '2'), windows: posInt(args['exit-windows'], 'exit-windows')!, confidence: 'max-softmax' as const } } : {}),
      ...(args.acceptance ? { acceptance: { out: args.acceptance, draftLen: args['draft-len'], contexts: args.contexts, contextLen: args['context-len'], temperature: args.temperature, seed: args.seed, batch: 32 } } : {}),
    }, command);
    const p = r.ppl;
    console.log(`test split: ${p.windows} windows x ${p.seq} tokens`);
    console.log(`model   loss ${p.modelLoss.toFixed(4)} nats/token  perplexity ${p.modelPerplexity.toFixed(1)}`);
    console.log(`unigram loss ${p.unigramLoss.toFixed(4)} nats/token  perplexity ${p.unigramPerplexity.toFixed(1)}`);
    if (r.exitProfile) {
      for (const s of r.exitProfile.stages) console.log(`exit after layers [${s.layers.join(', ')}): accuracy at tau=0 ${s.exitAccuracy[0].toFixed(3)}, P(exit) at tau=0.5 ${s.exitProb[10].toFixed(3)} (${s.samples} tasks)`);
      console.log(`final accuracy ${r.exitProfile.finalAccuracy.toFixed(3)}`);
    }
    if (r.acceptance) {
      console.log('position\tgreedy\tsampled\tsampled (1-TV)');
      r.acceptance.greedy.positions.forEach((g, i) => {
        const s = r.acceptance!.sampled.positions[i];
        console.log(`${g.position}\t${g.rate.toFixed(3)} (${g.accepted}/${g.reached})\t${s.rate.toFixed(3)} (${s.accepted}/${s.reached})\t${s.expectedRate!.toFixed(3)}`);
      });
      console.log(`mean accepted per round of ${r.acceptance.draftLen}: greedy ${r.acceptance.greedy.meanAcceptedPerRound.toFixed(3)}, sampled ${r.acceptance.sampled.meanAcceptedPerRound.toFixed(3)}`);
    }
  },
};

interface ExitFeaturesArgs { dir: string; out: string; heads: string; 'exit-after': string; windows: number; seq: number }

export const exitFeaturesCommand: CommandModule<object, ExitFeaturesArgs> = {
  command: 'exit-features',
  describe: 'Write the validation split\'s exit features (boundary hidden states, labels, ONNX exit heads) of a trained folder for hatsim exit-profile',
  builder: (y) => y
    .option('dir', { type: 'string', default: DEFAULT_DIR, describe: 'model folder' })
    .option('out', { type: 'string', demandOption: true, requiresArg: true, describe: 'features directory to write (hatsim-exit-features/1)' })
    .option('heads', { type: 'string', default: 'trained', choices: ['trained', 'shared'], describe: 'trained exit heads (hatsim train --part exits) or the model\'s own head at each boundary' })
    .option('exit-after', { type: 'string', default: '2', describe: 'comma-separated stage boundaries (layer counts) with an exit' })
    .option('windows', { type: 'number', default: 32, describe: 'validation windows' })
    .option('seq', { type: 'number', default: 128, describe: 'window length (tokens)' }) as never,
  handler: async (args) => {
    posInt(args.windows, 'windows');
    posInt(args.seq, 'seq');
    const r = await (await commands()).exitFeaturesFolder(args.dir, args.out, { heads: args.heads as 'trained' | 'shared', boundaries: boundaries(args['exit-after']), windows: args.windows, seq: args.seq }, `hatsim ${process.argv.slice(2).join(' ')}`);
    console.log(`${r.samples} samples -> ${r.dir} (measure: hatsim exit-profile ${r.dir} --out FILE)`);
  },
};

/**
 * `hatsim prune`: COMP post-training structured pruning of a LLaMA-family
 * model (catalog id with seeded weights, or --onnx-dir exports), and its
 * baselines. One method and ratio per run; comma-separated lists run a grid,
 * each point in its own process (so each point's peak memory is its own),
 * into <out>/<method>-r<ratio>/ with <out>/summary.csv (and figures with --plot).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CommandModule } from 'yargs';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { HARDWARE, hasHardware } from '../compute/hardware.js';
import { getModel } from '../model/catalog.js';
import { DEFAULT_OPTIONS, METHODS, type CountMode, type Method } from '../prune/options.js';
import type { PruneResult } from '../prune/run.js';
import type { ModelSource } from '../prune/weights.js';

export interface PruneArgs {
  model?: string;
  'onnx-dir'?: string;
  trained?: string;
  seed: number;
  tokens?: string;
  sequences: number;
  'seq-len': number;
  'held-out': number;
  ratio: string;
  method: string;
  count: string;
  'layer-share': number;
  'neuron-allocation': string;
  'max-neuron-fraction': number;
  ridge: number;
  'scale-range': string;
  'max-scale-variance': number;
  'guard-retries': number;
  'min-tokens': number;
  out?: string;
  plot: boolean;
  'plot-hardware': string;
  'front-hardware'?: string;
  'calibration-dir': string;
  replot?: boolean;
  quiet: boolean;
}

function list(value: string, flag: string): string[] {
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new InputError(`--${flag} is empty`, flag);
  return items;
}

function ratios(value: string): number[] {
  return list(value, 'ratio').map((s) => {
    const r = Number(s);
    if (!(r > 0 && r < 1)) throw new InputError(`--ratio ${s} is outside (0, 1); give the fraction of parameters to remove, e.g. 0.2`, 'ratio');
    return r;
  });
}

function methods(value: string): Method[] {
  return list(value, 'method').map((m) => {
    if (!(METHODS as readonly string[]).includes(m)) throw new InputError(`--method "${m}" is unknown; allowed: ${METHODS.join(', ')}`, 'method');
    return m as Method;
  });
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: 'prune',
  describe: 'Structured pruning (COMP and baselines) of a LLaMA-family model: pruned ONNX, pruning.json, quality report',
  builder: (y) =>
    y
      .option('model', { type: 'string', describe: 'catalog model id (dims, head counts); with no --onnx-dir its weights are seeded' })
      .option('trained', { type: 'string', describe: 'a model folder trained here (e.g. models/brown-small): its weights, and real-text calibration from its corpus (validation split; held-out: test split)' })
      .option('onnx-dir', { type: 'string', describe: 'folder with embedding.onnx, decoder.onnx, lmHead.onnx (contract: docs/PRUNING.md)' })
      .option('seed', { type: 'number', default: 1, describe: 'seed of the seeded weights, generated tokens and random baseline' })
      .option('tokens', { type: 'string', describe: 'calibration token file (ids separated by whitespace or commas, cut into --seq-len windows); default: generated' })
      .option('sequences', { type: 'number', default: 16, describe: 'calibration sequences' })
      .option('seq-len', { type: 'number', default: 64, describe: 'tokens per sequence' })
      .option('held-out', { type: 'number', default: 4, describe: 'held-out sequences for the quality measures' })
      .option('ratio', { type: 'string', demandOption: true, describe: 'fraction of counted parameters to remove, in (0,1); comma list for a grid' })
      .option('method', { type: 'string', default: 'comp', describe: `${METHODS.join(' | ')}; comma list for a grid` })
      .option('count', { type: 'string', default: DEFAULT_OPTIONS.count, choices: ['decoder', 'all'], describe: 'parameters the ratio counts: decoder layers, or all (embedding and LM head too, never pruned)' })
      .option('layer-share', { type: 'number', default: DEFAULT_OPTIONS.layerShare, describe: '[assumption] comp: share of the budget removed as whole layers' })
      .option('neuron-allocation', { type: 'string', default: DEFAULT_OPTIONS.neuronAllocation, choices: ['score', 'uniform'], describe: '[assumption] comp: per-layer neuron ratio by layer score or uniform' })
      .option('max-neuron-fraction', { type: 'number', default: DEFAULT_OPTIONS.maxNeuronFraction, describe: '[assumption] most of one FFN that may be removed' })
      .option('ridge', { type: 'number', default: DEFAULT_OPTIONS.ridge, describe: '[assumption] least-squares ridge, relative to mean diag of the system' })
      .option('scale-range', { type: 'string', default: `${DEFAULT_OPTIONS.scaleMin},${DEFAULT_OPTIONS.scaleMax}`, describe: '[assumption] variance guard: allowed mask scales min,max' })
      .option('max-scale-variance', { type: 'number', default: DEFAULT_OPTIONS.maxScaleVariance, describe: '[assumption] variance guard: largest variance of the scales' })
      .option('guard-retries', { type: 'number', default: DEFAULT_OPTIONS.guardRetries, describe: '[assumption] variance guard: retries with ridge x10 before falling back to no tuning' })
      .option('min-tokens', { type: 'number', default: DEFAULT_OPTIONS.minTokens, describe: '[assumption] fewest calibration tokens for the least squares' })
      .option('out', { type: 'string', describe: 'output folder (default prune/<model>-<method>-r<ratio>)' })
      .option('plot', { type: 'boolean', default: false, describe: 'grid: also write quality/latency/memory-vs-ratio figures' })
      .option('plot-hardware', { type: 'string', default: 'jetson-orin-nx-16gb', describe: 'data-sheet hardware of the roofline latency figure' })
      .option('front-hardware', { type: 'string', describe: 'data-sheet devices of front.svg, comma-separated (default jetson-agx-orin-64gb,jetson-orin-nx-16gb,jetson-tx2)' })
      .option('replot', { type: 'boolean', default: false, describe: 'grid: do not prune; re-write summary.csv and the figures from the points\' report.json in --out (e.g. after calibrating the pruned models)' })
      .option('calibration-dir', { type: 'string', default: 'calibration', describe: 'front.svg: measured facets from <dir>/<hw>/<model>-<method>-r<ratio>/model.json where present' })
      .option('quiet', { type: 'boolean', default: false, describe: 'no progress lines' })
      .example('$0 prune --model tiny-test --ratio 0.2 --method comp --out out/tiny-comp', 'one run on seeded weights')
      .example('$0 prune --model tiny-test --ratio 0.1,0.2,0.3 --method comp,comp-notune,magnitude,random,layers --out out/grid --plot', 'the README grid') as never,
  handler: async (args) => {
    // The pruning code (ONNX Runtime, plotting) loads here, not at start-up (issue 15).
    const [{ checkOptions, makeCalibration, runPrune }, { OnnxDirSource }, { SeededSource, archOf }, { summaryCsv, writePrunePlots }] = await Promise.all([
      import('../prune/run.js'), import('../prune/onnx.js'), import('../prune/weights.js'), import('../prune/plots.js')]);
    const trained = args.trained !== undefined ? (await import('../prune/trained.js')).loadTrained(args.trained) : null;
    if (args.model === undefined && trained === null) throw new InputError('--model is required (the catalog id whose dims and head counts the model has), or --trained DIR', 'model');
    const model = trained ? trained.folder.model : getModel(args.model!);
    const rs = ratios(args.ratio);
    const ms = methods(args.method);
    const range = list(args['scale-range'], 'scale-range').map(Number);
    if (range.length !== 2 || range.some((v) => !Number.isFinite(v))) throw new InputError(`--scale-range "${args['scale-range']}": give min,max, e.g. 0,3`, 'scale-range');
    const base = {
      ...DEFAULT_OPTIONS,
      count: args.count as CountMode,
      layerShare: args['layer-share'],
      neuronAllocation: args['neuron-allocation'] as 'score' | 'uniform',
      maxNeuronFraction: args['max-neuron-fraction'],
      ridge: args.ridge,
      scaleMin: range[0],
      scaleMax: range[1],
      maxScaleVariance: args['max-scale-variance'],
      guardRetries: args['guard-retries'],
      minTokens: args['min-tokens'],
      seed: args.seed,
    };
    for (const method of ms) for (const ratio of rs) checkOptions({ ...base, method, ratio });
    const frontHardware = args['front-hardware'] !== undefined ? list(args['front-hardware'], 'front-hardware') : undefined;
    for (const h of frontHardware ?? []) {
      if (!hasHardware(h)) throw new InputError(`--front-hardware "${h}" is not a data-sheet hardware id; known: ${Object.keys(HARDWARE).join(', ')}`, 'front-hardware');
    }
    if (!Number.isSafeInteger(args.seed) || args.seed < 0) throw new InputError(`--seed ${args.seed}: give a non-negative integer`, 'seed');
    const log = args.quiet ? () => {} : (line: string) => process.stderr.write(`prune: ${line}\n`);
    if (rs.length === 1 && ms.length === 1) {
      const out = args.out ?? join('prune', `${model.id}-${ms[0]}-r${rs[0]}`);
      const src: ModelSource = trained ?? (args['onnx-dir'] !== undefined ? new OnnxDirSource(args['onnx-dir'], archOf(model)) : new SeededSource(model, args.seed));
      const cal = trained && args.tokens === undefined
        ? (await import('../prune/trained.js')).trainedCalibration(trained, { sequences: args.sequences, heldOut: args['held-out'], seqLen: args['seq-len'] })
        : makeCalibration({ tokensFile: args.tokens, sequences: args.sequences, heldOut: args['held-out'], seqLen: args['seq-len'], vocab: model.vocabSize, seed: args.seed });
      const r = runPrune(src, cal, { ...base, method: ms[0], ratio: rs[0], outDir: out, log });
      process.stdout.write(oneLine(r) + `\nwritten: ${out}/ (model/*.onnx, pruning.json, report.md, report.json)\n`);
      return;
    }
    // grid: each point in its own process
    if (args.out === undefined) throw new InputError('a grid (several --ratio or --method values) needs --out', 'out');
    const results: PruneResult[] = [];
    const skipped: string[] = [];
    const passThrough = process.argv.slice(2).filter((_a, i, all) => !isGridFlag(all, i));
    for (const method of ms) {
      for (const ratio of rs) {
        const dir = join(args.out, `${method}-r${ratio}`);
        if (args.replot) {
          if (existsSync(join(dir, 'report.json'))) results.push(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as PruneResult);
          else skipped.push(`${method}@${ratio}`);
          continue;
        }
        log(`grid point ${method} ratio ${ratio} -> ${dir}`);
        const child = spawnSync(process.execPath, [process.argv[1], ...passThrough, '--method', method, '--ratio', String(ratio), '--out', dir], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8' });
        if (child.status === 2) {
          // e.g. layers-only at a ratio below half a layer: the point does not exist; the others still run
          log(`grid point ${method} ratio ${ratio} skipped (input error above)`);
          skipped.push(`${method}@${ratio}`);
          continue;
        }
        if (child.status !== 0) throw new Error(`grid point ${method} ratio ${ratio} exited with ${String(child.status)}`);
        process.stdout.write(child.stdout.split('\n')[0] + '\n');
        results.push(JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as PruneResult);
      }
    }
    if (results.length === 0) {
      throw args.replot
        ? new InputError(`--replot: no grid point of --out ${args.out} has a report.json (${skipped.join(', ')}); run the grid first`, 'replot')
        : new InputError(`every grid point was refused (${skipped.join(', ')})`, 'ratio');
    }
    writeFileAtomic(join(args.out, 'summary.csv'), summaryCsv(results));
    if (skipped.length > 0) process.stdout.write(`skipped grid points (${args.replot ? 'no report.json' : 'input errors'}): ${skipped.join(', ')}\n`);
    if (args.plot) for (const f of await writePrunePlots(args.out, results, model, args['plot-hardware'], { frontHardware, calibrationDir: args['calibration-dir'] })) log(`figure ${f}`);
    process.stdout.write(`written: ${join(args.out, 'summary.csv')}${existsSync(join(args.out, 'quality.svg')) ? ', figures' : ''}\n`);
  },
};

/** argv entries that the grid parent sets per point (--ratio/--method/--out/--plot with their values). */
function isGridFlag(all: string[], i: number): boolean {
  const flags = ['--ratio', '--method', '--out'];
  const a = all[i];
  if (flags.includes(a) || a === '--plot' || a === '--no-plot') return true;
  if (flags.some((f) => a.startsWith(`${f}=`))) return true;
  if (a.startsWith('--plot=')) return true;
  return i > 0 && flags.includes(all[i - 1]);
}

function oneLine(r: PruneResult): string {
  const q = r.quality;
  return (
    `${r.method} ratio ${r.ratio} (achieved ${r.achievedRatio.toFixed(3)}): layers kept ${r.layers.filter((l) => l.kept).length}/${r.layers.length}, ` +
    `final hidden rel. err ${q.finalHiddenRelErr.toExponential(3)}, top-1 ${(100 * q.top1Match).toFixed(1)} %, KL ${q.meanKl.toExponential(3)}, ` +
    `peak RSS ${(r.memory.peakRssBytes / 1e6).toFixed(0)} MB (model fp32 ${(r.memory.modelBytesFp32 / 1e6).toFixed(0)} MB), ${(r.durationMs / 1000).toFixed(1)} s`
  );
}

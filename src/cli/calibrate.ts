/**
 * `hatsim calibrate [run]`: profile a catalog model's parts with ONNX Runtime on
 * this machine and write calibration/<hardware-id>/<model-id>/.
 * `hatsim calibrate import-vidur`: turn Vidur's GPU operator timings into a
 * calibration file (source "imported").
 */
import type { CommandModule } from 'yargs';
import { InputError } from '../core/errors.js';
import { DEFAULT_VIDUR_DIR } from '../calibrate/vidur-dir.js';

export interface CalibrateArgs {
  'from-live'?: string;
  'host-out'?: string;
  cores?: number;
  action?: string;
  model?: string;
  parts?: string;
  'hardware-id'?: string;
  ep?: string;
  threads?: number;
  quick?: boolean;
  out?: string;
  resume?: boolean;
  'onnx-dir'?: string;
  ops?: string;
  'layer-scaling'?: boolean;
  'held-out'?: number;
  progress?: boolean;
  gpu?: string;
  'model-id'?: string;
  'vidur-dir'?: string;
  'roofline-hardware'?: string;
  'as-model-id'?: string;
  pruning?: string;
}

function need(value: string | undefined, flag: string, action: string): string {
  if (value === undefined || value === '') throw new InputError(`hatsim calibrate ${action}: --${flag} is required`, flag);
  return value;
}

export const calibrateCommand: CommandModule<object, CalibrateArgs> = {
  command: 'calibrate [action]',
  describe: 'Measure latency models with ONNX Runtime on this machine (action "run", default), or import Vidur GPU profiles ("import-vidur")',
  builder: (y) =>
    y
      .positional('action', { type: 'string', choices: ['run', 'import-vidur'], default: 'run', describe: 'run: profile here; import-vidur: import Vidur timings' })
      .option('model', { type: 'string', describe: 'run: catalog model id (e.g. tinyllama-1.1b); import-vidur: Vidur model folder (e.g. Llama-2-7b-hf)' })
      .option('parts', { type: 'string', describe: 'comma-separated subset of embedding,decoderLayer,adapter,lmHead (default all)' })
      .option('hardware-id', { type: 'string', describe: 'name of this hardware; the simulator looks calibrations up by it' })
      .option('ep', { type: 'string', default: 'cpu', describe: 'ONNX Runtime execution provider' })
      .option('threads', { type: 'number', default: 1, describe: 'intraOpNumThreads' })
      .option('quick', { type: 'boolean', default: false, describe: 'small grid and few repeats (about a minute for tiny-test)' })
      .option('out', { type: 'string', default: 'calibration', describe: 'calibration root folder' })
      .option('resume', { type: 'boolean', default: false, describe: 'continue an interrupted run from samples.csv' })
      .option('onnx-dir', { type: 'string', describe: 'use your own exports <dir>/<part>.onnx instead of generated graphs' })
      .option('ops', { type: 'string', default: 'auto', choices: ['auto', 'fused', 'standard'], describe: 'generated graph operators' })
      .option('layer-scaling', { type: 'boolean', default: true, describe: 'also time 2 and 4 stacked layers' })
      .option('held-out', { type: 'number', describe: 'held-out random shapes per part (default 20, quick 8)' })
      .option('statistic', { type: 'string', default: 'p10', choices: ['p10', 'median'], describe: "a point's latency: 10th percentile (repeatable on shared machines) or median of its repeats" })
      .option('progress', { type: 'boolean', describe: 'progress bar (default: when stderr is a terminal)' })
      .option('as-model-id', { type: 'string', describe: 'run: write the file under this model id (a pruned variant of --model profiled from --onnx-dir, e.g. brown-small-comp-r0.2)' })
      .option('pruning', { type: 'string', describe: 'run: pruning.json of the profiled model, recorded in meta.pruning (default with --as-model-id: <onnx-dir>/../pruning.json if present)' })
      .option('gpu', { type: 'string', describe: 'import-vidur: GPU folder (a40, a100, h100)' })
      .option('model-id', { type: 'string', describe: 'import-vidur: hatsim catalog model id to write (e.g. llama2-7b)' })
      .option('vidur-dir', { type: 'string', default: DEFAULT_VIDUR_DIR, describe: 'import-vidur: root of the Vidur profiles' })
      .option('from-live', { type: 'string', describe: 'fit host costs (dispatch per op, cost per message) from hatsim validate --hosts none folders (comma-separated, one live runner); writes --host-out' })
      .option('host-out', { type: 'string', describe: 'from-live: where to write the hatsim-host-fit/1 JSON (default <dir>/host-fit.json)' })
      .option('cores', { type: 'number', describe: 'from-live: cores of the host (default: this machine\'s)' })
      .option('roofline-hardware', { type: 'string', describe: 'import-vidur: data-sheet profile for the attention estimate (default: --hardware-id)' })
      .example('$0 calibrate --model tiny-test --hardware-id my-laptop --quick', 'one-minute check')
      .example('$0 calibrate --model tinyllama-1.1b --hardware-id jetson-orin-nx-16gb --threads 4', 'full calibration')
      .example('$0 calibrate --model brown-small --hardware-id ci-cpu-2core --onnx-dir out/prune-brown/comp-r0.2/model --parts embedding,decoderLayer,lmHead --as-model-id brown-small-comp-r0.2', 'a pruned model (hatsim prune output)')
      .example('$0 calibrate import-vidur --gpu a40 --model Llama-2-7b-hf --hardware-id a40 --model-id llama2-7b', 'import Vidur timings') as never,
  handler: async (args) => {
    const action = args.action ?? 'run';
    if (args['from-live'] !== undefined) {
      const [{ fitHost, runnerOfValidation }, { writeFileAtomic }, { cpus }, { join }] = await Promise.all([import('../live/suite.js'), import('../core/atomic.js'), import('node:os'), import('node:path')]);
      const cores = args.cores ?? cpus().length;
      if (!Number.isInteger(cores) || cores < 1) throw new InputError('--cores: give an integer >= 1', 'cores');
      // One or more validate folders (comma-separated) of one live runner.
      const dirs = args['from-live'].split(',').filter((x) => x !== '');
      const runners = new Set(dirs.map(runnerOfValidation));
      if (runners.size !== 1) throw new InputError('--from-live: the folders mix the topology and the device-cloud runner; fit each runner on its own', 'from-live');
      const fit = fitHost([...runners][0], dirs, cores);
      const out = args['host-out'] ?? join(dirs[0], 'host-fit.json');
      writeFileAtomic(out, JSON.stringify(fit, null, 2) + '\n');
      const f = (x: number) => x.toFixed(3);
      if (fit.host.shareBatching) {
        process.stdout.write(`host ${fit.host.name} (device-cloud runner, cloud steps on the host): ${fit.host.cores} cores, background load ${fit.host.backgroundLoad ?? 0}, dispatch ${f(fit.host.dispatchMs)} ms/op (${fit.samples.visits} passes and steps), message ${f(fit.host.messageMs)} ms (fitted through the simulator on ${fit.samples.requests} scenarios); live runs' load ${(fit.liveLoadAvg1m ?? []).map((x) => x.toFixed(2)).join(', ')}\nwritten: ${out} (hatsim validate --hosts ${out})\n`);
        return;
      }
      process.stdout.write(`host ${fit.host.name}: ${fit.host.cores} cores, dispatch ${f(fit.host.dispatchMs)} ms/op (p10 ${f(fit.dispatch.p10Ms)}, p90 ${f(fit.dispatch.p90Ms)}; ${fit.samples.visits} visits), message ${f(fit.host.messageMs)} ms (p10 ${f(fit.message.p10Ms)}, p90 ${f(fit.message.p90Ms)}; ${fit.samples.requests} requests); load ${fit.loadAvg1mAtFit.toFixed(2)}\nwritten: ${out} (hatsim validate --hosts ${out})\n`);
      return;
    }
    if (action === 'import-vidur') {
      if (args['as-model-id'] !== undefined || args.pruning !== undefined) {
        throw new InputError(`hatsim calibrate import-vidur: --${args['as-model-id'] !== undefined ? 'as-model-id' : 'pruning'} is for "run"; import-vidur names its model with --model-id`, args['as-model-id'] !== undefined ? 'as-model-id' : 'pruning');
      }
      const { importVidur } = await import('../calibrate/vidur.js'); // not at start-up (issue 15)
      const r = importVidur({
        gpu: need(args.gpu, 'gpu', action),
        vidurModel: need(args.model, 'model', action),
        hardwareId: need(args['hardware-id'], 'hardware-id', action),
        modelId: need(args['model-id'], 'model-id', action),
        rooflineHardwareId: args['roofline-hardware'],
        vidurDir: args['vidur-dir'],
        outDir: args.out,
      });
      process.stdout.write(r.report + '\n');
      process.stdout.write(`written: ${r.modelPath}, ${r.samplesPath}, ${r.reportPath}\n`);
      return;
    }
    const controller = new AbortController();
    const onSigint = (): void => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\ninterrupt: finishing the current point (Ctrl-C again to quit now)...\n');
      controller.abort();
    };
    process.on('SIGINT', onSigint);
    try {
      const { runCalibration } = await import('../calibrate/run.js'); // ONNX Runtime: only here (issue 15)
      const r = await runCalibration({
        modelId: need(args.model, 'model', action),
        hardwareId: need(args['hardware-id'], 'hardware-id', action),
        parts: args.parts?.split(',').filter((p) => p.trim() !== ''),
        ep: args.ep,
        threads: args.threads,
        quick: args.quick,
        outDir: args.out,
        resume: args.resume,
        onnxDir: args['onnx-dir'],
        variant: args.ops as 'auto' | 'fused' | 'standard' | undefined,
        layerScaling: args['layer-scaling'],
        heldOutPoints: args['held-out'],
        statistic: args.statistic as 'p10' | 'median' | undefined,
        progress: args.progress,
        signal: controller.signal,
        asModelId: args['as-model-id'],
        pruningFile: args.pruning,
      });
      process.stdout.write(r.report + '\n');
      if (r.interrupted) {
        process.exitCode = 130;
        return;
      }
      process.stdout.write(`written: ${r.modelPath}, ${r.samplesPath}, ${r.reportPath} (${(r.durationMs / 1000).toFixed(0)} s)\n`);
    } finally {
      process.off('SIGINT', onSigint);
    }
  },
};

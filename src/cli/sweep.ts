/** `hatsim sweep <scenario> --grid path=v1,v2,...`: run a scenario over a parameter grid. See docs/SWEEPS.md. */
import type { CommandModule } from 'yargs';
import { join, relative, resolve } from 'node:path';
import type cliProgress from 'cli-progress';
import { defaultJobs } from '../sweep/jobs.js';
import type { SweepProgress } from '../sweep/sweep.js';
import { scenarioOptions, overridesFrom, type ScenarioArgs } from './common.js';

interface SweepArgs extends ScenarioArgs {
  grid: string | string[];
  out?: string;
  jobs?: number;
  shard?: string;
  'timeline-requests'?: number;
  quiet?: boolean;
  parquet?: boolean;
}

const seconds = (ms: number): string => (ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms < 3_600_000 ? `${Math.round(ms / 1000)} s` : `${(ms / 3_600_000).toFixed(1)} h`);

/** Relative to the current directory when inside it, else absolute. */
export function displayPath(abs: string): string {
  const rel = relative(process.cwd(), abs);
  return rel === '' ? '.' : rel.startsWith('..') ? abs : rel;
}

function shellQuote(arg: string): string {
  return /^[A-Za-z0-9_\-./=:,@%+]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** Progress on stderr: a bar with ETA on a terminal, else one line per finished point. */
function progressReporter(quiet: boolean, cliProgress: typeof import('cli-progress')): { onProgress: (e: SweepProgress) => void; stop: () => void } {
  if (quiet) return { onProgress: () => undefined, stop: () => undefined };
  const tty = process.stderr.isTTY === true;
  let bar: cliProgress.SingleBar | undefined;
  let t0 = 0;
  return {
    onProgress: (e) => {
      if (e.kind === 'start') {
        t0 = performance.now();
        const resumed = e.skipped > 0 ? `, ${e.skipped} already finished (resumed)` : '';
        process.stderr.write(`sweep: ${e.total} points${resumed}, running ${e.toRun} with ${e.jobs} job${e.jobs === 1 ? '' : 's'} -> ${e.out}\n`);
        if (tty && e.toRun > 0) {
          bar = new cliProgress.SingleBar({
            stream: process.stderr,
            format: 'sweep [{bar}] {value}/{total} | {point} | {duration_formatted} elapsed | ETA {eta_formatted}',
            hideCursor: true,
            etaBuffer: 20,
            etaAsynchronousUpdate: true,
          }, cliProgress.Presets.shades_classic);
          bar.start(e.total, e.skipped, { point: '' });
        }
        return;
      }
      const finished = e.skipped + e.done;
      if (bar) {
        bar.update(finished, { point: e.id });
        return;
      }
      const elapsed = performance.now() - t0;
      const eta = e.done < e.toRun ? `, ETA ${seconds((elapsed / e.done) * (e.toRun - e.done))}` : '';
      process.stderr.write(`[${finished}/${e.total}] ${e.id} done in ${seconds(e.wallMs)}${eta}\n`);
    },
    stop: () => { bar?.stop(); bar = undefined; },
  };
}

export const sweepCommand: CommandModule<object, SweepArgs> = {
  command: 'sweep <scenario>',
  describe: 'Run a scenario over a parameter grid (cartesian product); resumable, shardable; writes points/*/ and sweep.csv',
  builder: (y) => scenarioOptions(y)
    .option('grid', {
      type: 'string', demandOption: true, requiresArg: true,
      describe: 'grid axis path=v1,v2,... (repeatable; first axis outermost), e.g. --grid devices.0.link.uplinkMbps=10,20,40',
    })
    .option('out', { type: 'string', describe: 'sweep directory (default results/<scenario name>-sweep; with --shard, <out>/shard-i-of-N)' })
    .option('jobs', { type: 'number', describe: `points run in parallel in worker threads (default ${defaultJobs()} here: min(2, cores)); 1 runs inline` })
    .option('shard', { type: 'string', describe: 'run only shard i of N (1-based), e.g. --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT' })
    .option('timeline-requests', { type: 'number', describe: 'requests of device 0 whose spans go to each point\'s timeline.csv' })
    .option('quiet', { type: 'boolean', default: false, describe: 'no progress, print nothing but errors' })
    .option('parquet', { type: 'boolean', default: false, describe: 'also write sweep.parquet and each point\'s requests.parquet, summary.parquet (docs/OUTPUTS.md)' }) as never,
  handler: async (args) => {
    // Loaded here, not at start-up (issue 15).
    const [{ default: cliProgress }, { loadScenario }, { parseShard }, { runSweep }] = await Promise.all([
      import('cli-progress'), import('../scenario/load.js'), import('../sweep/grid.js'), import('../sweep/sweep.js')]);
    const grid = ([] as string[]).concat(args.grid);
    const shard = args.shard !== undefined ? parseShard(args.shard) : null;
    const overrides = overridesFrom(args);
    let out: string;
    if (args.out !== undefined) out = args.out;
    else out = join('results', `${loadScenario(args.scenario, overrides).name}-sweep`);
    if (shard) out = join(out, `shard-${shard.index}-of-${shard.count}`);

    const abort = new AbortController();
    let signals = 0;
    const onSignal = (sig: NodeJS.Signals): void => {
      signals++;
      if (signals > 1) process.exit(130);
      process.stderr.write(`\n${sig}: stopping; finished points are kept (send again to quit at once)\n`);
      abort.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    const progress = progressReporter(args.quiet === true, cliProgress);
    let result;
    try {
      result = await runSweep({
        scenario: args.scenario, grid, overrides, out, shard,
        ...(args.jobs !== undefined ? { jobs: args.jobs } : {}),
        ...(args['timeline-requests'] !== undefined ? { timelineRequests: args['timeline-requests'] } : {}),
        ...(args.parquet ? { parquet: true } : {}),
        signal: abort.signal,
        onProgress: progress.onProgress,
      });
    } finally {
      progress.stop();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
    const shown = displayPath(result.out);
    if (result.interrupted) {
      const cmd = ['hatsim', ...process.argv.slice(2)].map(shellQuote).join(' ');
      process.stderr.write(`interrupted: ${result.ran + result.skipped} of ${result.points.length} points finished (kept in ${shown}/points, ${shown}/sweep.csv is up to date).\n`
        + `Resume by running the same command again:\n  ${cmd}\n`);
      process.exitCode = 130;
      return;
    }
    if (args.quiet) return;
    const shardNote = result.shard ? ` (shard ${result.shard.index}/${result.shard.count}; merge the shards with 'hatsim merge ${displayPath(resolve(result.out, '..'))} --out DIR')` : '';
    process.stdout.write(`sweep: ${result.points.length} points (${result.ran} run, ${result.skipped} resumed) in ${seconds(result.wallMs)}${shardNote}\n`);
    process.stdout.write(`results written to ${shown}/sweep.csv and ${shown}/points/\n`);
  },
};

/** `hatsim validate <scenario>`: run live, simulate the same scenario and seed, print and write the error table. */
import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { table } from './table.js';

interface ValidateArgs { scenario?: string; suite?: string; 'fit-half'?: string; reuse?: string; only?: string[]; 'speed-from-live'?: boolean; method?: string; set?: string[]; 'sim-set'?: string[]; 'max-error-pct': number; out?: string; 'live-dir'?: string; emulate?: string; calibrate: boolean; hosts?: string }

export const validateCommand: CommandModule<object, ValidateArgs> = {
  command: 'validate [scenario]',
  describe: 'Run a scenario (or the validation suite) live and in the simulator (same seed); write validation.csv (suite.csv); exit 1 above the error threshold',
  builder: (y) => y
    .positional('scenario', { type: 'string', describe: 'scenario YAML file (or --suite)' })
    .option('suite', { type: 'string', describe: 'run the validation suite of this folder (its suite.yaml; default scenarios/validation): one table, suite.csv + suite.json' })
    .option('fit-half', { type: 'string', choices: ['a', 'b'], describe: 'suite: fit the host costs on this half of the suite, report the other half as held out' })
    .option('reuse', { type: 'string', describe: 'suite: reuse the live runs of an earlier suite output folder' })
    .option('only', { type: 'string', array: true, describe: 'suite: only these scenario files of the suite' })
    .option('set', { type: 'string', array: true, describe: 'override a scenario field for both runs: --set path=value' })
    .option('sim-set', { type: 'string', array: true, describe: 'override a field for the simulator only (e.g. to check that a wrong model fails)' })
    .option('max-error-pct', { type: 'number', default: 10, describe: 'threshold on the median over systems of |error| of mean TTFT and of mean TBT' })
    .option('out', { type: 'string', describe: 'directory (default results/<scenario>-validate)' })
    .option('speed-from-live', { type: 'boolean', describe: 'FedSpine scenarios: also simulate with the calibration scaled to the machine speed measured in the live run, and gate on that' })
    .option('method', { type: 'string', describe: 'FedSpine scenarios: the policy to run live (default the scenario\'s first)' })
    .option('live-dir', { type: 'string', describe: 'reuse a live results directory instead of running live' })
    .option('emulate', { type: 'string', describe: 'live compute padded to this hardware id' })
    .option('calibrate', { type: 'boolean', default: false, describe: 'calibrate this machine first (quick) and simulate with that instead of the shipped calibration' })
    .option('hosts', { type: 'string', describe: 'a hatsim-host-fit/1 file (hatsim calibrate --from-live): simulate every node on that host (its cores, dispatch and message costs); default <calibrationDir>/<hardware>/host-fit.json when every node has that one hardware id and the scenario declares no hosts; "none": no host model' }) as never,
  handler: async (args) => {
    if (!(args['max-error-pct'] > 0)) throw new InputError('--max-error-pct: give a positive number', 'max-error-pct');
    const { isFedSpineFile } = await import('../fedspine/scenario.js');
    if (args.scenario !== undefined && args.suite === undefined && isFedSpineFile(args.scenario)) {
      const { validateFedSpineCli } = await import('./fedspine-live.js');
      process.exitCode = await validateFedSpineCli({ ...args, scenario: args.scenario });
      return;
    }
    // The live runner loads only here (issue 15).
    const [{ loadScenario }, { killChildren }, { runValidation, VALIDATION_METRICS }] = await Promise.all([
      import('../scenario/load.js'), import('../live/local.js'), import('../live/validate.js')]);
    if (args.suite !== undefined) { await runSuiteCommand(args); return; }
    if (args.scenario === undefined) throw new InputError('hatsim validate: give a scenario file, or --suite [DIR]', 'scenario');
    if (args['fit-half'] !== undefined || args.reuse !== undefined || args.only !== undefined) throw new InputError('--fit-half, --reuse and --only go with --suite', 'suite');
    const loaded = loadScenario(args.scenario, args.set ?? []);
    const name = loaded.name;
    const simSet = [...(args['sim-set'] ?? [])];
    const { defaultHostFit, readHostFit } = await import('../calibrate/host-fit.js');
    const { SYSTEMS } = await import('../protocol/registry.js');
    const hostFile = args.hosts === 'none' ? null : args.hosts ?? defaultHostFit(loaded, loaded.systems.every((id) => SYSTEMS[id].pairs !== undefined));
    if (hostFile !== null) {
      process.stderr.write(`validate: simulating every node on the host fitted in ${hostFile} (--hosts none: no host model)\n`);
    }
    const out = resolve(args.out ?? `results/${name}-validate`);
    const onSig = (): void => { killChildren('SIGTERM'); process.exit(130); };
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const r = await runValidation({
      scenarioPath: args.scenario!, overrides: args.set, simOverrides: simSet, outDir: out,
      maxErrorPct: args['max-error-pct'], liveDir: args['live-dir'], emulate: args.emulate, calibrate: args.calibrate,
      hostFit: hostFile === null ? undefined : readHostFit(hostFile),
    });
    const systems = [...new Set(r.rows.map((x) => x.system))];
    const rows: unknown[][] = [];
    for (const s of systems) {
      for (const m of VALIDATION_METRICS) {
        const x = r.rows.find((y) => y.system === s && y.metric === m)!;
        rows.push([s, m, x.live, x.sim, x.error_pct]);
      }
    }
    process.stdout.write(`${name}: live vs simulated (error = (sim - live) / live)\n\n${table(['system', 'metric', 'live', 'sim', 'error %'], rows, 2)}\n\n`);
    if (r.attribution.length > 0) {
      process.stdout.write(`live attribution (mean ms per request; every ms of a request in one part; check: max |sum - e2e|, max logged outside the request):\n\n${table(['system', 'requests', 'e2e', 'compute', 'queueing', 'wire', 'host', 'max |sum-e2e|', 'max outside', 'reply excess p50', 'p90'], r.attribution.map((x) => [x.system, x.requests, x.e2e_ms, x.compute_ms, x.queueing_ms, x.wire_ms, x.host_ms, x.max_sum_error_ms, x.max_outside_ms, x.reply_excess_p50_ms, x.reply_excess_p90_ms]), 2)}\n\n`);
    }
    const rp = r.replay;
    process.stdout.write(`replay (the live arrivals, request by request; |error| over requests):\n\n${table(['system', 'metric', 'requests', 'median err %', 'p50 |err| %', 'p90 |err| %', 'max |err| %'], rp.rows.map((x) => [x.system, x.metric, x.requests, x.median_error_pct, x.abs_p50_pct, x.abs_p90_pct, x.abs_max_pct]), 2)}\n`);
    process.stdout.write(`replay: acceptance draws differ on ${rp.acceptMismatches} requests; largest arrival difference ${rp.maxArrivalDiffS.toExponential(1)} s; load average ${r.loadAvg1m.before.toFixed(2)} -> ${r.loadAvg1m.after.toFixed(2)}\n\n`);
    for (const w of r.warnings) process.stdout.write(`warning: ${w}\n`);
    if (r.liveErrors.length > 0) process.stdout.write(`live errors: ${r.liveErrors.length} (see run.json)\n`);
    const med = r.verdict.medianAbsErrorPct;
    process.stdout.write(`median |error| over systems: TTFT mean ${med.ttft_mean_ms.toFixed(2)} %, TBT mean ${med.tbt_mean_ms.toFixed(2)} % (threshold ${r.verdict.maxErrorPct} %): ${r.verdict.pass ? 'PASS' : 'FAIL'}\n`);
    process.stdout.write(`written to ${out}/validation.csv\n`);
    process.exitCode = r.verdict.pass ? 0 : 1;
  },
};

async function runSuiteCommand(args: ValidateArgs): Promise<void> {
  const { runSuite } = await import('../live/suite.js');
  const { killChildren } = await import('../live/local.js');
  if (args.scenario !== undefined) throw new InputError('--suite runs the scenarios of its suite.yaml; give no scenario file with it', 'suite');
  if (args.set !== undefined || args['sim-set'] !== undefined || args['live-dir'] !== undefined || args.calibrate || args.emulate !== undefined) {
    throw new InputError('--suite: --set, --sim-set, --live-dir, --calibrate and --emulate apply to one scenario (a suite entry may say emulate: HW)', 'suite');
  }
  const dir = args.suite === '' ? 'scenarios/validation' : args.suite!;
  const out = resolve(args.out ?? 'results/validation-suite');
  const onSig = (): void => { killChildren('SIGTERM'); process.exit(130); };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const r = await runSuite({ dir, outDir: out, fitHalf: args['fit-half'] as 'a' | 'b' | undefined, hosts: args.hosts, reuse: args.reuse, only: args.only });
  const shown = r.rows.filter((x) => x.metric === 'ttft_mean_ms' || x.metric === 'tbt_mean_ms');
  process.stdout.write(`validation suite ${dir}: live vs simulated (error = (sim - live) / live; "no host" = the simulator without the host model)\n\n`);
  process.stdout.write(`${table(['scenario', 'half', 'role', 'system', 'metric', 'live', 'simulated', 'error %', 'no host', 'error no host %'], shown.map((x) => [x.scenario, x.half, x.role, x.system, x.metric, x.live, x.sim, x.error_pct, x.sim_nohost, x.error_nohost_pct]), 2)}\n\n`);
  process.stdout.write(`per scenario: median over systems of |error| (mean TTFT / mean TBT), with host model | without; load average before -> after\n\n`);
  const f = (x: number): string => (Number.isFinite(x) ? x.toFixed(2) : '-');
  process.stdout.write(`${table(['scenario', 'half', 'role', 'TTFT %', 'TBT %', 'TTFT no host %', 'TBT no host %', 'load'], r.scenarios.map((x) => [x.scenario, x.half, x.role, f(x.medianAbsErrorPct.ttft_mean_ms), f(x.medianAbsErrorPct.tbt_mean_ms), f(x.medianAbsErrorNohostPct.ttft_mean_ms), f(x.medianAbsErrorNohostPct.tbt_mean_ms), `${x.loadAvg1m.before.toFixed(2)} -> ${x.loadAvg1m.after.toFixed(2)}`]), 2)}\n\n`);
  for (const [g, m] of Object.entries(r.summary)) {
    process.stdout.write(`${g}: TTFT median ${f(m.ttft_mean_ms.scenarioMedian)} % max ${f(m.ttft_mean_ms.scenarioMax)} % (no host ${f(m.ttft_mean_ms.nohostScenarioMedian)} / ${f(m.ttft_mean_ms.nohostScenarioMax)}); TBT median ${f(m.tbt_mean_ms.scenarioMedian)} % max ${f(m.tbt_mean_ms.scenarioMax)} % (no host ${f(m.tbt_mean_ms.nohostScenarioMedian)} / ${f(m.tbt_mean_ms.nohostScenarioMax)})\n`);
  }
  for (const [runner, h] of Object.entries(r.hosts)) process.stdout.write(`host (${runner} runner): ${h === null ? 'none' : `${h.cores} cores, dispatch ${h.dispatchMs.toFixed(3)} ms/op, message ${h.messageMs.toFixed(3)} ms${h.shareBatching ? ', cloud steps on the host' : ''}`}\n`);
  process.stdout.write(`load average (1 min): ${r.loadAvg1m.samples.map((x) => x.toFixed(2)).join(', ')}\nwritten to ${out}/suite.csv, suite-replay.csv, suite.json\n`);
  const gate = r.summary['held-out'] ?? r.summary.all;
  const pass = gate !== undefined && THRESH.every((m) => gate[m].scenarioMedian <= args['max-error-pct']);
  process.stdout.write(`${r.summary['held-out'] ? 'held-out' : 'all'} scenarios, median of the scenarios' statistics: ${pass ? 'PASS' : 'FAIL'} at ${args['max-error-pct']} %\n`);
  process.exitCode = pass ? 0 : 1;
}

const THRESH = ['ttft_mean_ms', 'tbt_mean_ms'] as const;

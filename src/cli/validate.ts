/** `hatsim validate <scenario>`: run live, simulate the same scenario and seed, print and write the error table. */
import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { table } from './table.js';

interface ValidateArgs { 'speed-from-live'?: boolean; method?: string; scenario: string; set?: string[]; 'sim-set'?: string[]; 'max-error-pct': number; out?: string; 'live-dir'?: string; emulate?: string; calibrate: boolean; hosts?: string }

export const validateCommand: CommandModule<object, ValidateArgs> = {
  command: 'validate <scenario>',
  describe: 'Run a scenario live and in the simulator (same seed); write validation.csv; exit 1 above the error threshold',
  builder: (y) => y
    .positional('scenario', { type: 'string', demandOption: true, describe: 'scenario YAML file' })
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
    if (isFedSpineFile(args.scenario)) {
      const { validateFedSpineCli } = await import('./fedspine-live.js');
      process.exitCode = await validateFedSpineCli(args);
      return;
    }
    // The live runner loads only here (issue 15).
    const [{ loadScenario }, { killChildren }, { runValidation, VALIDATION_METRICS }] = await Promise.all([
      import('../scenario/load.js'), import('../live/local.js'), import('../live/validate.js')]);
    if (!(args['max-error-pct'] > 0)) throw new InputError('--max-error-pct: give a positive number', 'max-error-pct');
    const loaded = loadScenario(args.scenario, args.set ?? []);
    const name = loaded.name;
    const simSet = [...(args['sim-set'] ?? [])];
    const { defaultHostFit, readHostFit, hostOverride } = await import('../calibrate/host-fit.js');
    const { SYSTEMS } = await import('../protocol/registry.js');
    const hostFile = args.hosts === 'none' ? null : args.hosts ?? defaultHostFit(loaded, loaded.systems.every((id) => SYSTEMS[id].pairs !== undefined));
    if (hostFile !== null) {
      simSet.unshift(hostOverride(readHostFit(hostFile), [...new Set(loaded.topology.nodes.filter((n) => !n.name.startsWith('sw:')).map((n) => n.group))]));
      process.stderr.write(`validate: simulating every node on the host fitted in ${hostFile} (--hosts none: no host model)\n`);
    }
    const out = resolve(args.out ?? `results/${name}-validate`);
    const onSig = (): void => { killChildren('SIGTERM'); process.exit(130); };
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const r = await runValidation({
      scenarioPath: args.scenario, overrides: args.set, simOverrides: simSet, outDir: out,
      maxErrorPct: args['max-error-pct'], liveDir: args['live-dir'], emulate: args.emulate, calibrate: args.calibrate,
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
    for (const w of r.warnings) process.stdout.write(`warning: ${w}\n`);
    if (r.liveErrors.length > 0) process.stdout.write(`live errors: ${r.liveErrors.length} (see run.json)\n`);
    const med = r.verdict.medianAbsErrorPct;
    process.stdout.write(`median |error| over systems: TTFT mean ${med.ttft_mean_ms.toFixed(2)} %, TBT mean ${med.tbt_mean_ms.toFixed(2)} % (threshold ${r.verdict.maxErrorPct} %): ${r.verdict.pass ? 'PASS' : 'FAIL'}\n`);
    process.stdout.write(`written to ${out}/validation.csv\n`);
    process.exitCode = r.verdict.pass ? 0 : 1;
  },
};

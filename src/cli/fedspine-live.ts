/**
 * `hatsim live fedspine <scenario>` (a live federated run: this process is the server, one
 * process per device), `hatsim live fed-device` (one device; started by the former, or by hand
 * against a server elsewhere) and `hatsim live fed-calibrate <scenario>` (real training-step
 * times of this machine -> <calibrationDir>/<hardware>/<model>/train.json). docs/LIVE.md.
 */
import type { CommandModule } from 'yargs';
import { resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { METHOD_IDS, type MethodId } from '../fedspine/policies.js';
import { table } from './table.js';

interface FedLiveArgs { scenario: string; set?: string[]; method?: string; out?: string; token?: string; 'timeout-s': number; 'round-timeout-s': number }
interface FedDeviceArgs { scenario: string; set?: string[]; server: string; device: number; token?: string }
interface FedCalArgs { 'ab-reps'?: number; scenario: string; set?: string[]; reps: number; ranks?: string; concurrency?: number; out?: string; worker?: number }

function pickMethod(m: string | undefined, methods: readonly MethodId[]): MethodId {
  const id = (m ?? methods[0]) as MethodId;
  if (!METHOD_IDS.includes(id)) throw new InputError(`--method ${m}: allowed ${METHOD_IDS.join(', ')}`, 'method');
  return id;
}

export const fedLiveCmd: CommandModule<object, FedLiveArgs> = {
  command: 'fedspine <scenario>',
  describe: 'Run a FedSpine scenario live: a server (this process) and one training process per device, LoRA tensors over the shaped wire',
  builder: (y) => y
    .positional('scenario', { type: 'string', demandOption: true, describe: 'FedSpine scenario YAML (kind: fedspine)' })
    .option('set', { type: 'string', array: true, describe: 'override a scenario field: --set path=value (repeatable)' })
    .option('method', { type: 'string', describe: `the policy to run live (${METHOD_IDS.join(', ')}; default the scenario's first)` })
    .option('out', { type: 'string', describe: 'results directory (default results/<scenario name>-live)' })
    .option('token', { type: 'string', describe: 'shared secret (default: env HATSIM_TOKEN)' })
    .option('timeout-s', { type: 'number', default: 900, describe: 'stop everything after this long' })
    .option('round-timeout-s', { type: 'number', default: 300, describe: 'a device that has not delivered by then is dropped for the round' }) as never,
  handler: async (args) => {
    const [{ loadFedSpineScenario }, { runFedLive }, { killChildren }] = await Promise.all([import('../fedspine/scenario.js'), import('../live/fed-server.js'), import('../live/local.js')]);
    const { config, parsed } = loadFedSpineScenario(args.scenario, args.set ?? []);
    const method = pickMethod(args.method, config.methods);
    const out = resolve(args.out ?? `results/${config.name}-live`);
    const onSig = (): void => { killChildren('SIGTERM'); process.exit(130); };
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const r = await runFedLive({
      cfg: config, scenarioPath: args.scenario, overrides: args.set ?? [], method, outDir: out, resolved: parsed,
      token: args.token ?? process.env.HATSIM_TOKEN, timeoutS: args['timeout-s'], roundTimeoutS: args['round-timeout-s'],
    });
    const s = r.summary;
    process.stdout.write(`${config.name} (live, ${method}): ${config.devices.length} device processes, ${s.rounds} rounds in ${(r.wallMs / 1000).toFixed(1)} s wall\n\n`);
    process.stdout.write(table(['rounds', 'mean round s', 'download s', 'compute s', 'upload s', 'wait s', 'loss before', 'loss after', 'MB', 'dropped'],
      [[s.rounds, s.mean_round_s, s.mean_download_s, s.mean_compute_s, s.mean_upload_s, s.mean_wait_s, s.loss_initial, s.final_loss, s.total_bytes / 1e6, s.dropped]], 3) + '\n\n');
    if (r.errors.length > 0) process.stdout.write(`${r.errors.length} errors (run.json):\n${r.errors.slice(0, 10).map((e) => `  ${e}`).join('\n')}\n`);
    process.stdout.write(`results written to ${out}\n`);
  },
};

export const fedDeviceCmd: CommandModule<object, FedDeviceArgs> = {
  command: 'fed-device',
  describe: 'Run one device of a live FedSpine run against its server',
  builder: (y) => y
    .option('scenario', { type: 'string', demandOption: true, describe: 'FedSpine scenario YAML' })
    .option('set', { type: 'string', array: true, describe: 'override a scenario field: --set path=value' })
    .option('server', { type: 'string', demandOption: true, describe: 'HOST:PORT of the server' })
    .option('device', { type: 'number', demandOption: true, describe: 'index of the device in the scenario (0-based)' })
    .option('token', { type: 'string', describe: 'shared secret (default: env HATSIM_TOKEN)' }) as never,
  handler: async (args) => {
    if (!/^[^:]+:\d+$/.test(args.server)) throw new InputError(`--server: give HOST:PORT (got '${args.server}')`, 'server');
    const [{ loadFedSpineScenario }, { runFedDevice }] = await Promise.all([import('../fedspine/scenario.js'), import('../live/fed-device.js')]);
    const { config } = loadFedSpineScenario(args.scenario, args.set ?? []);
    if (process.send) process.once('disconnect', () => { process.stderr.write('fed-device: orchestrator gone; exiting\n'); process.exit(1); });
    const r = await runFedDevice({ cfg: config, device: args.device, server: args.server, token: args.token ?? process.env.HATSIM_TOKEN });
    process.stderr.write(`device ${args.device}: ${r.rounds} rounds, ${r.dropped} frames dropped\n`);
    process.exit(0);
  },
};

export const fedCalibrateCmd: CommandModule<object, FedCalArgs> = {
  command: 'fed-calibrate <scenario>',
  describe: "Time real LoRA training steps of the scenario's model on this machine (forward vs forward + backward), fit the step factors, write train.json",
  builder: (y) => y
    .positional('scenario', { type: 'string', demandOption: true, describe: 'FedSpine scenario YAML (its model, batch, seqLen, LoRA targets, live.modelDir; the hardware of its first device)' })
    .option('set', { type: 'string', array: true, describe: 'override a scenario field: --set path=value' })
    .option('reps', { type: 'number', default: 6, describe: 'timed rounds per rank and process' })
    .option('ab-reps', { type: 'number', describe: 'timed single steps (forward vs forward + backward, interleaved) per rank and process (default --reps)' })
    .option('ranks', { type: 'string', describe: 'comma-separated ranks (default rankMin, the middle, rankMax)' })
    .option('concurrency', { type: 'number', describe: "processes timing at once (default the scenario's device count: the cores are shared as in the live run)" })
    .option('out', { type: 'string', describe: 'write here instead of <calibrationDir>/<hardware>/<model>/train.json' })
    .option('worker', { type: 'number', hidden: true, describe: 'internal: time in this process as worker N and print JSON' }) as never,
  handler: async (args) => {
    const [{ loadFedSpineScenario }, { runFedCalibrate, calibrateWorker, defaultRanks }] = await Promise.all([import('../fedspine/scenario.js'), import('../live/fed-calibrate.js')]);
    const { config } = loadFedSpineScenario(args.scenario, args.set ?? []);
    const ranks = args.ranks?.split(',').map((x) => Number(x.trim()));
    if (ranks?.some((r) => !Number.isInteger(r) || r < 1)) throw new InputError(`--ranks ${args.ranks}: give integers >= 1`, 'ranks');
    if (!(Number.isInteger(args.reps) && args.reps >= 1)) throw new InputError('--reps: give an integer >= 1', 'reps');
    if (args['ab-reps'] !== undefined && !(Number.isInteger(args['ab-reps']) && args['ab-reps'] >= 1)) throw new InputError('--ab-reps: give an integer >= 1', 'ab-reps');
    if (args.worker !== undefined) {
      // Lock-step with the parent: "ready" out, "go" in, per round; the result last.
      const { createInterface } = await import('node:readline');
      const rl = createInterface({ input: process.stdin });
      const pending: string[] = [];
      let wake: (() => void) | null = null;
      rl.on('line', (l) => { pending.push(l); wake?.(); });
      const barrier = async (): Promise<void> => {
        process.stdout.write('ready\n');
        while (pending.shift() !== 'go') await new Promise<void>((r) => { wake = r; });
      };
      const res = await calibrateWorker(config, args.worker, ranks ?? defaultRanks(config), args.reps, args['ab-reps'] ?? args.reps, barrier);
      process.stdout.write(`result ${JSON.stringify(res)}\n`);
      rl.close();
      return;
    }
    const r = await runFedCalibrate({ cfg: config, scenarioPath: args.scenario, overrides: args.set ?? [], reps: args.reps, abReps: args['ab-reps'], ranks, concurrency: args.concurrency, out: args.out });
    const c = r.calibration;
    process.stdout.write(table(['rank', 'LoRA FLOP share', 'base fwd ms', 'fwd+LoRA ms', 'A/B step ms', 'A/B step / fwd', 'in-round step ms', 'in-round / fwd'],
      c.points.map((p) => [p.rank, p.loraFlopShare, p.baseForwardMs, p.forwardMs, p.abStepMs, p.abStepMs / p.baseForwardMs, p.stepMs, p.stepMs / p.baseForwardMs]), 4) + '\n\n');
    const fit = (f: typeof c.fit) => `frozenStepFactor ${f.frozenStepFactor.toFixed(3)}, loraStepFactor ${f.loraStepFactor.toFixed(3)} (std err ${f.bStdErr.toFixed(3)}), rmse ${f.rmse.toFixed(4)}`;
    process.stdout.write(`backward factor (A/B single steps): ${fit(c.abFit)}\nin-round fit (what the cost model reads): ${fit(c.fit)}\n${c.concurrency} processes; load ${c.measured.loadAvgBefore.map((x) => x.toFixed(2)).join(' ')} -> ${c.measured.loadAvgAfter.map((x) => x.toFixed(2)).join(' ')}\n`);
    process.stdout.write(`written to ${r.file}\n`);
  },
};

/** `hatsim validate <fedspine scenario>` (dispatched from cli/validate.ts): live vs simulated round times; returns the exit code. */
export async function validateFedSpineCli(args: { 'speed-from-live'?: boolean; scenario: string; set?: string[]; 'sim-set'?: string[]; 'max-error-pct': number; out?: string; 'live-dir'?: string; calibrate: boolean; method?: string }): Promise<number> {
  const [{ loadFedSpineScenario }, { runFedValidation }, { killChildren }] = await Promise.all([import('../fedspine/scenario.js'), import('../live/fed-validate.js'), import('../live/local.js')]);
  const { config } = loadFedSpineScenario(args.scenario, args.set ?? []);
  const method = pickMethod(args.method, config.methods);
  const out = resolve(args.out ?? `results/${config.name}-validate`);
  const onSig = (): void => { killChildren('SIGTERM'); process.exit(130); };
  process.once('SIGINT', onSig);
  process.once('SIGTERM', onSig);
  const r = await runFedValidation({
    scenarioPath: args.scenario, overrides: args.set, simOverrides: args['sim-set'], method, outDir: out,
    maxErrorPct: args['max-error-pct'], liveDir: args['live-dir'], calibrate: args.calibrate, speedFromLive: args['speed-from-live'],
  });
  process.stdout.write(`${config.name}: live vs simulated round times, ${method} (error = (sim - live) / live; wait: relative to the live round time)\n\n`);
  process.stdout.write(table(['simulated with', 'metric', 'live s', 'sim s', 'error %', 'within', 'gates'],
    r.rows.map((x) => [x.variant === 'calibrated' ? 'calibration' : `calibration x ${r.speedScale!.toFixed(3)} (live speed)`, x.metric, x.live, x.sim, x.error_pct, x.within ? 'yes' : 'NO', x.variant === r.gatedVariant && x.gated ? 'yes' : 'no']), 3) + '\n\n');
  if (r.liveErrors.length > 0) process.stdout.write(`live errors: ${r.liveErrors.length} (see ${r.liveDir}/run.json)\n`);
  process.stdout.write(`threshold ${args['max-error-pct']} % on the gated metrics (round, download, upload): ${r.pass ? 'PASS' : 'FAIL'}\nwritten to ${out}/validation.csv\n`);
  return r.pass ? 0 : 1;
}

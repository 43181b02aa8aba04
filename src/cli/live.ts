/**
 * `hatsim live cloud|device|local`: the live runner (docs/LIVE.md).
 */
import type { Argv, CommandModule } from 'yargs';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { summaryTable } from './run.js';

interface CommonArgs { set?: string[]; emulate?: string; token?: string; 'max-frame-mb'?: number }

function common<T>(y: Argv<T>): Argv<T & CommonArgs> {
  return y
    .option('set', { type: 'string', array: true, describe: 'override a scenario field: --set path=value (repeatable)' })
    .option('emulate', { type: 'string', describe: 'pad each compute pass to the latency this hardware id predicts' })
    .option('token', { type: 'string', describe: 'shared secret (default: env HATSIM_TOKEN)' })
    .option('max-frame-mb', { type: 'number', default: 64, describe: 'largest accepted frame (MiB)' }) as unknown as Argv<T & CommonArgs>;
}

function hostPort(s: string, flag: string): { host: string; port: number } {
  const m = /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new InputError(`${flag}: give HOST:PORT, e.g. 127.0.0.1:7070 (got '${s}')`, flag);
  return { host: m[1], port: Number(m[2]) };
}

interface CloudArgs extends CommonArgs { scenario: string; listen: string; out?: string; devices?: number }
interface DeviceArgs extends CommonArgs { scenario: string; server: string; device: number; out?: string; 'system-timeout-s': number }
interface LocalArgs extends CommonArgs { scenario: string; out?: string; 'timeout-s': number }

const cloudCmd: CommandModule<object, CloudArgs> = {
  command: 'cloud',
  describe: 'Serve the cloud part (middle or full model) to devices over WebSocket',
  builder: (y) => common(y)
    .option('scenario', { type: 'string', demandOption: true, describe: 'scenario YAML file' })
    .option('listen', { type: 'string', default: '127.0.0.1:7070', describe: 'HOST:PORT to listen on (port 0 = any free port)' })
    .option('out', { type: 'string', describe: 'write steps-cloud.csv and cloud.json here' })
    .option('devices', { type: 'number', describe: 'devices that must join before a system starts (default: the scenario\'s)' }) as never,
  handler: async (args) => {
    // The live runner (ws, ONNX Runtime) loads only in its own commands (issue 15).
    const [{ loadScenario }, { CloudServer }] = await Promise.all([import('../scenario/load.js'), import('../live/server.js')]);
    const scenario = loadScenario(args.scenario, args.set ?? []);
    const { host, port } = hostPort(args.listen, 'listen');
    if (args.out) mkdirSync(args.out, { recursive: true });
    const server = new CloudServer({
      scenario, host, port, token: args.token ?? process.env.HATSIM_TOKEN, emulate: args.emulate, devices: args.devices,
      maxFrameBytes: Math.round((args['max-frame-mb'] ?? 64) * 1024 * 1024),
      stepsPath: args.out ? join(args.out, 'steps-cloud.csv') : undefined,
    });
    const bound = await server.start();
    process.stdout.write(`hatsim cloud listening on ${host}:${bound}\n`);
    await new Promise<void>((done) => {
      const stop = (sig: string): void => {
        process.stderr.write(`cloud: ${sig}: shutting down\n`);
        void server.close().then(() => {
          if (args.out) writeFileSync(join(args.out, 'cloud.json'), JSON.stringify({ busyMsBySystem: Object.fromEntries(server.busyMsBySystem), rejections: server.rejections }, null, 2));
          done();
        });
      };
      process.once('SIGINT', () => stop('SIGINT'));
      process.once('SIGTERM', () => stop('SIGTERM'));
      // Started by `live local`: stop when the orchestrator goes away.
      if (process.send) process.once('disconnect', () => stop('orchestrator gone'));
    });
    process.exit(0);
  },
};

const deviceCmd: CommandModule<object, DeviceArgs> = {
  command: 'device',
  describe: 'Run one device of a scenario against a cloud server',
  builder: (y) => common(y)
    .option('scenario', { type: 'string', demandOption: true, describe: 'scenario YAML file' })
    .option('server', { type: 'string', demandOption: true, describe: 'HOST:PORT of the cloud server' })
    .option('device', { type: 'number', demandOption: true, describe: 'index of the device in the scenario (0-based)' })
    .option('out', { type: 'string', describe: 'directory for device-<i>.jsonl and steps' })
    .option('system-timeout-s', { type: 'number', default: 300, describe: 'give up on a system this long after its last arrival' }) as never,
  handler: async (args) => {
    const [{ loadScenario }, { runDevice }] = await Promise.all([import('../scenario/load.js'), import('../live/device.js')]);
    const scenario = loadScenario(args.scenario, args.set ?? []);
    hostPort(args.server, 'server');
    if (process.send) process.once('disconnect', () => { process.stderr.write('device: orchestrator gone; exiting\n'); process.exit(1); });
    const r = await runDevice({
      scenario, deviceIndex: args.device, server: args.server, outDir: resolve(args.out ?? `results/${scenario.name}-live`),
      token: args.token, emulate: args.emulate, maxFrameBytes: Math.round((args['max-frame-mb'] ?? 64) * 1024 * 1024),
      systemTimeoutS: args['system-timeout-s'],
    });
    process.stderr.write(`device ${args.device}: ${r.finished} requests finished, ${r.unfinished} unfinished\n`);
    process.exit(0);
  },
};

const localCmd: CommandModule<object, LocalArgs> = {
  command: 'local <scenario>',
  describe: 'Run a scenario live on this machine: one cloud + N device processes over loopback',
  builder: (y) => common(y)
    .positional('scenario', { type: 'string', demandOption: true, describe: 'scenario YAML file' })
    .option('out', { type: 'string', describe: 'results directory (default results/<scenario name>-live)' })
    .option('timeout-s', { type: 'number', default: 900, describe: 'kill everything after this long' }) as never,
  handler: async (args) => {
    const [{ loadScenario }, { killChildren, runLiveLocal }] = await Promise.all([import('../scenario/load.js'), import('../live/local.js')]);
    const name = loadScenario(args.scenario, args.set ?? []).name;
    const out = resolve(args.out ?? `results/${name}-live`);
    const onSig = (): void => { killChildren('SIGTERM'); process.exit(130); };
    process.once('SIGINT', onSig);
    process.once('SIGTERM', onSig);
    const r = await runLiveLocal({ scenarioPath: args.scenario, overrides: args.set, outDir: out, emulate: args.emulate, token: args.token, timeoutS: args['timeout-s'] });
    process.stdout.write(`${name} (live): ${(r.wallMs / 1000).toFixed(1)} s wall\n\n${summaryTable(r.summary)}\n\n`);
    if (r.errors.length > 0) process.stdout.write(`${r.errors.length} errors (run.json):\n${r.errors.slice(0, 10).map((e) => `  ${e}`).join('\n')}\n`);
    process.stdout.write(`results written to ${out}\n`);
  },
};

export const liveCommand: CommandModule<object, object> = {
  command: 'live <command>',
  describe: 'Live runner: the same protocols over real processes, sockets and ONNX compute',
  builder: (y) => y
    .command(cloudCmd as unknown as CommandModule<object, never>)
    .command(deviceCmd as unknown as CommandModule<object, never>)
    .command(localCmd as unknown as CommandModule<object, never>)
    .demandCommand(1, 'give a live command: cloud, device, local'),
  handler: () => undefined,
};

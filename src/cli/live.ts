/**
 * `hatsim live cloud|device|local`: the live runner (docs/LIVE.md).
 */
import type { Argv, CommandModule } from 'yargs';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { InputError } from '../core/errors.js';
import { summaryTable } from './run.js';
import { fedCalibrateCmd, fedDeviceCmd, fedLiveCmd } from './fedspine-live.js';

interface CommonArgs { set?: string[]; emulate?: string; token?: string; 'max-frame-mb'?: number }

function common<T>(y: Argv<T>): Argv<T & CommonArgs> {
  return y
    .option('set', { type: 'string', array: true, describe: 'override a scenario field: --set path=value (repeatable)' })
    .option('emulate', { type: 'string', describe: 'pad each compute pass to the latency this hardware id predicts' })
    .option('token', { type: 'string', describe: 'shared secret (default: env HATSIM_TOKEN)' })
    .option('max-frame-mb', { type: 'number', default: 64, describe: 'largest accepted frame (MiB)' }) as unknown as Argv<T & CommonArgs>;
}

interface RealArgs { 'onnx-dir'?: string; 'real-acceptance'?: string; temperature: number }

/** --onnx-dir, --real-acceptance, --temperature (cloud takes only --onnx-dir). */
function realFlags<T>(y: Argv<T>, withAcceptance: boolean): Argv<T & RealArgs> {
  const z = y.option('onnx-dir', { type: 'string', describe: 'ONNX parts to run instead of the seeded graphs: an export of a trained model (hatsim export-model --out DIR)' });
  if (!withAcceptance) return z as unknown as Argv<T & RealArgs>;
  return z
    .option('real-acceptance', { type: 'string', describe: 'greedy | sampled: drafts of the trained SLM verified by the full model\'s real logits (hat, hat-nochunk, sd; needs --onnx-dir)' })
    .option('temperature', { type: 'number', default: 1, describe: 'temperature of --real-acceptance sampled' }) as unknown as Argv<T & RealArgs>;
}

/** The real-acceptance options of the flags (null: seeded draws). */
function realOptions(a: RealArgs): { mode: 'greedy' | 'sampled'; temperature: number } | undefined {
  const m = a['real-acceptance'];
  if (m === undefined) return undefined;
  if (m !== 'greedy' && m !== 'sampled') throw new InputError(`--real-acceptance ${m}: give greedy or sampled`, 'real-acceptance');
  if (!(a.temperature > 0)) throw new InputError(`--temperature ${a.temperature}: give a number > 0`, 'temperature');
  return { mode: m, temperature: a.temperature };
}

function hostPort(s: string, flag: string): { host: string; port: number } {
  const m = /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new InputError(`${flag}: give HOST:PORT, e.g. 127.0.0.1:7070 (got '${s}')`, flag);
  return { host: m[1], port: Number(m[2]) };
}

interface CloudArgs extends CommonArgs, RealArgs { scenario: string; listen: string; out?: string; devices?: number }
interface DeviceArgs extends CommonArgs, RealArgs { scenario: string; server: string; device: number; out?: string; 'system-timeout-s': number }
interface LocalArgs extends CommonArgs, RealArgs { scenario: string; out?: string; 'timeout-s': number }

const cloudCmd: CommandModule<object, CloudArgs> = {
  command: 'cloud',
  describe: 'Serve the cloud part (middle or full model) to devices over WebSocket',
  builder: (y) => realFlags(common(y), false)
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
      stepsPath: args.out ? join(args.out, 'steps-cloud.csv') : undefined, onnxDir: args['onnx-dir'],
    });
    const bound = await server.start();
    process.stdout.write(`hatsim cloud listening on ${host}:${bound}\n`);
    await new Promise<void>((done) => {
      const stop = (sig: string): void => {
        process.stderr.write(`cloud: ${sig}: shutting down\n`);
        void server.close().then(() => {
          if (args.out) writeFileSync(join(args.out, 'cloud.json'), JSON.stringify({ busyMsBySystem: Object.fromEntries(server.busyMsBySystem), rejections: server.rejections, sharedShaping: server.sharedMode }, null, 2));
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
  builder: (y) => realFlags(common(y), true)
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
      systemTimeoutS: args['system-timeout-s'], onnxDir: args['onnx-dir'], realAcceptance: realOptions(args),
    });
    process.stderr.write(`device ${args.device}: ${r.finished} requests finished, ${r.unfinished} unfinished\n`);
    process.exit(0);
  },
};

interface NodeArgs extends CommonArgs {
  scenario: string; name: string; system: string; listen: string; peer?: string[]; out?: string;
  't0-epoch-ms'?: number; 'max-connections': number; 'hello-timeout-ms': number;
}

const nodeCmd: CommandModule<object, NodeArgs> = {
  command: 'node',
  describe: 'Run one node of a topology scenario (a device, an edge box, a server) on this machine',
  builder: (y) => common(y)
    .option('scenario', { type: 'string', demandOption: true, describe: 'scenario YAML file' })
    .option('name', { type: 'string', demandOption: true, describe: 'the node this process is (a node name of the scenario)' })
    .option('system', { type: 'string', demandOption: true, describe: 'the system to run (one that declares node pairs, e.g. staged)' })
    .option('listen', { type: 'string', default: '127.0.0.1:0', describe: 'HOST:PORT to listen on for peer nodes (port 0 = any free port)' })
    .option('peer', { type: 'string', array: true, describe: 'where another node listens: NAME=HOST:PORT (repeatable)' })
    .option('out', { type: 'string', describe: 'directory for device-<name>.jsonl and node-<name>.json' })
    .option('t0-epoch-ms', { type: 'number', describe: 'shared start of the run, ms since the epoch (default: 3 s from now; live local sends it)' })
    .option('max-connections', { type: 'number', default: 64, describe: 'cap on incoming connections' })
    .option('hello-timeout-ms', { type: 'number', default: 2000, describe: 'drop a peer that has not said hello by then' }) as never,
  handler: async (args) => {
    const { loadScenario } = await import('../scenario/load.js');
    const scenario = loadScenario(args.scenario, args.set ?? []);
    const { host, port } = hostPort(args.listen, 'listen');
    const peers: Record<string, string> = {};
    for (const p of args.peer ?? []) {
      const m = /^([^=]+)=(.+)$/.exec(p);
      if (!m) throw new InputError(`--peer: give NAME=HOST:PORT (got '${p}')`, 'peer');
      hostPort(m[2], `peer ${m[1]}`);
      peers[m[1]] = m[2];
    }
    const system = args.system;
    if (!scenario.systems.includes(system as never)) throw new InputError(`--system: '${system}' is not a system of the scenario (${scenario.systems.join(', ')})`, 'system');
    const { NodeRuntime, epochNowMs } = await import('../live/node.js');
    const out = resolve(args.out ?? `results/${scenario.name}-live`);
    let t0 = args['t0-epoch-ms'] ?? epochNowMs() + 3000;
    const rt = new NodeRuntime({
      scenario, name: args.name, system: system as never, host, port, peers, token: args.token ?? process.env.HATSIM_TOKEN,
      outDir: out, t0EpochMs: t0, emulate: args.emulate, maxConnections: args['max-connections'], helloTimeoutMs: args['hello-timeout-ms'],
      maxFrameBytes: Math.round((args['max-frame-mb'] ?? 64) * 1024 * 1024),
    });
    const bound = await rt.start();
    process.stdout.write(`hatsim node ${args.name} listening on ${host}:${bound}\n`);
    const stop = async (why: string, code: number): Promise<never> => {
      process.stderr.write(`node ${args.name}: ${why}\n`);
      await rt.close();
      process.exit(code);
    };
    process.once('SIGINT', () => void stop('SIGINT', 130));
    process.once('SIGTERM', () => void stop('SIGTERM', 0));
    if (process.send) {
      // Started by `live local`: peers and the start time come over IPC once every node listens.
      process.once('disconnect', () => void stop('orchestrator gone', 1));
      const go = await new Promise<{ peers: Record<string, string>; t0EpochMs: number }>((r) => process.on('message', (m) => r(m as never)));
      rt.setPeers(go.peers, go.t0EpochMs);
      t0 = go.t0EpochMs;
    }
    await rt.connectAll();
    process.send?.({ connected: true });
    if (rt.isDeviceNode) {
      await rt.runDevice();
      await stop('all requests done', 0);
    }
    await new Promise<never>(() => undefined);
  },
};

const localCmd: CommandModule<object, LocalArgs> = {
  command: 'local <scenario>',
  describe: 'Run a scenario live on this machine: one cloud + N device processes over loopback',
  builder: (y) => realFlags(common(y), true)
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
    const r = await runLiveLocal({ scenarioPath: args.scenario, overrides: args.set, outDir: out, emulate: args.emulate, token: args.token, timeoutS: args['timeout-s'],
      onnxDir: args['onnx-dir'], realAcceptance: realOptions(args) });
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
    .command(nodeCmd as unknown as CommandModule<object, never>)
    .command(fedLiveCmd as unknown as CommandModule<object, never>)
    .command(fedDeviceCmd as unknown as CommandModule<object, never>)
    .command(fedCalibrateCmd as unknown as CommandModule<object, never>)
    .demandCommand(1, 'give a live command: cloud, device, node, local, fedspine, fed-device, fed-calibrate'),
  handler: () => undefined,
};

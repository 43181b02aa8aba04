/**
 * `hatsim live local`: one cloud process and N device processes on this
 * machine (child processes of the built CLI, loopback, a free port chosen by
 * the cloud), every system of the scenario end to end; merges the devices'
 * records into the simulator's output contract plus steps.csv.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, type WriteStream } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { SYSTEMS } from '../protocol/registry.js';
import { getModel } from '../model/catalog.js';
import { summarize } from '../results/summary.js';
import type { RequestRecord, SummaryRecord } from '../results/types.js';
import { VERSION, writeRunOutputs } from '../results/write.js';
import { loadScenario } from '../scenario/load.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import { expandDevices } from '../sim/run.js';
import { ensureGraphs } from './compute.js';
import { deviceNeeds, type DeviceLine } from './device.js';
import { STEP_COLUMNS } from './steps.js';
import { checkLiveModels } from './models.js';
import { checkRealAcceptance, mergeRealAcceptance, realAcceptanceTable } from './device-real.js';
import type { SpecMode } from '../train/speculative.js';

export interface LiveLocalOptions {
  scenarioPath: string;
  /** Scenario overrides (--set path=value), passed to every child. */
  overrides?: string[];
  outDir: string;
  emulate?: string;
  token?: string;
  /** Kill everything after this long (s). */
  timeoutS?: number;
  /** ONNX parts for the cloud and the devices (an export: hatsim export-model). */
  onnxDir?: string;
  /** Real speculative decoding on the devices (device-real.ts); needs onnxDir of a trained export. */
  realAcceptance?: { mode: SpecMode; temperature: number };
  log?: (line: string) => void;
}

export interface LiveResult {
  scenario: Scenario;
  records: RequestRecord[];
  summary: SummaryRecord[];
  errors: string[];
  wallMs: number;
  runInfo: Record<string, unknown>;
}

const CLI = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const children = new Set<ChildProcess>();

/** Kill every child of live runs in this process (Ctrl-C, failures). */
export function killChildren(signal: NodeJS.Signals = 'SIGTERM'): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
}

export function startChild(args: string[], logStream: WriteStream, name: string): { child: ChildProcess; exited: Promise<number> } {
  // An IPC channel only so that a child notices when this process dies (even by SIGKILL) and exits.
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  children.add(child);
  const prefix = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) if (line.length > 0) logStream.write(`[${name}] ${line}\n`);
  };
  child.stderr!.on('data', prefix);
  child.stdout!.on('data', prefix);
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code, sig) => { children.delete(child); resolve(code ?? (sig ? 128 : 1)); });
    child.on('error', () => { children.delete(child); resolve(1); });
  });
  return { child, exited };
}

function waitForPort(child: ChildProcess, exited: Promise<number>, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`cloud did not start listening within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /listening on [\d.]+:(\d+)/.exec(buf);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    void exited.then((code) => { clearTimeout(t); reject(new Error(`cloud exited with code ${code} before listening`)); });
  });
}

export function withExitTimeout(p: Promise<number>, ms: number): Promise<number | null> {
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(null), ms);
    void p.then((c) => { clearTimeout(t); resolve(c); });
  });
}

export async function runLiveLocal(opts: LiveLocalOptions): Promise<LiveResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const overrides = opts.overrides ?? [];
  const scenario = loadScenario(opts.scenarioPath, overrides);
  checkLiveModels(scenario);
  if (opts.realAcceptance) checkRealAcceptance(scenario, { onnxDir: opts.onnxDir, ...opts.realAcceptance });
  const topo = scenario.systems.filter((id) => SYSTEMS[id].pairs !== undefined);
  if (topo.length > 0) {
    if (topo.length !== scenario.systems.length) {
      throw new InputError(`systems: ${topo.join(', ')} run on the topology runner and ${scenario.systems.filter((x) => !topo.includes(x)).join(', ')} on the device-cloud runner; run them live in separate scenarios (--set systems=[...])`, 'systems');
    }
    const { runTopologyLocal } = await import('./topology-local.js');
    return runTopologyLocal(opts, scenario);
  }
  const devices = expandDevices(scenario);
  mkdirSync(opts.outDir, { recursive: true });
  for (const f of ['steps-cloud.csv', 'cloud.json']) rmSync(join(opts.outDir, f), { force: true });
  // Build the ONNX graphs once, before the children race for them.
  const model = getModel(scenario.model);
  ensureGraphs(model, ['embedding', 'decoderLayer', 'adapter', 'lmHead']);
  if (deviceNeeds(scenario).drafter) ensureGraphs(getModel(scenario.policies.sd.drafterModel), ['embedding', 'decoderLayer', 'lmHead']);

  const loadBefore = os.loadavg();
  const logPath = join(opts.outDir, 'live.log');
  const logStream = createWriteStream(logPath);
  const common = [opts.scenarioPath, ...overrides.flatMap((o) => ['--set', o])];
  const extra = [...(opts.emulate ? ['--emulate', opts.emulate] : []), ...(opts.token ? ['--token', opts.token] : []), ...(opts.onnxDir ? ['--onnx-dir', opts.onnxDir] : [])];
  const real = opts.realAcceptance ? ['--real-acceptance', opts.realAcceptance.mode, '--temperature', String(opts.realAcceptance.temperature)] : [];
  const errors: string[] = [];
  const cloud = startChild(['live', 'cloud', '--scenario', ...common, '--listen', '127.0.0.1:0', '--out', opts.outDir, ...extra], logStream, 'cloud');
  const timeoutMs = (opts.timeoutS ?? 900) * 1000;
  try {
    const port = await waitForPort(cloud.child, cloud.exited, 120_000);
    log(`live: cloud listening on 127.0.0.1:${port}; starting ${devices.length} devices`);
    const devs = devices.map((d) => startChild(['live', 'device', '--scenario', ...common, '--server', `127.0.0.1:${port}`, '--device', String(d.index), '--out', opts.outDir, ...extra, ...real], logStream, `device-${d.index}`));
    const codes = await Promise.all(devs.map((d) => withExitTimeout(d.exited, timeoutMs)));
    codes.forEach((c, i) => {
      if (c === null) { errors.push(`device ${i} did not finish within ${timeoutMs / 1000} s; killed`); devs[i].child.kill('SIGKILL'); }
      else if (c !== 0) errors.push(`device ${i} exited with code ${c}`);
    });
  } catch (e) {
    errors.push(e instanceof Error ? e.message : String(e));
  } finally {
    cloud.child.kill('SIGTERM');
    const code = await withExitTimeout(cloud.exited, 10_000);
    if (code === null) { errors.push('cloud did not exit within 10 s of SIGTERM; killed'); cloud.child.kill('SIGKILL'); }
    else if (code !== 0) errors.push(`cloud exited with code ${code}`);
    killChildren('SIGKILL');
    await new Promise<void>((resolve) => logStream.end(resolve));
  }
  const loadAfter = os.loadavg();

  // Merge.
  const records: RequestRecord[] = [];
  const unfinished = new Map<SystemId, number>();
  const deviceInfo: unknown[] = [];
  for (const d of devices) {
    const path = join(opts.outDir, `device-${d.index}.jsonl`);
    if (!existsSync(path)) { errors.push(`device ${d.index} wrote no records`); continue; }
    for (const line of readFileSync(path, 'utf8').split('\n')) {
      if (!line) continue;
      const l = JSON.parse(line) as DeviceLine;
      if (l.kind === 'record' && l.record) records.push(l.record);
      else if (l.kind === 'unfinished' && l.system) {
        unfinished.set(l.system, (unfinished.get(l.system) ?? 0) + 1);
        errors.push(`device ${d.index} ${l.system} request ${l.request}: ${l.reason}`);
      } else if (l.kind === 'info') deviceInfo.push({ device: d.index, system: l.system, ...l.info });
    }
  }
  // Requests that never ran (device died early) count as unfinished.
  for (const sys of scenario.systems) {
    const expected = devices.length * scenario.workload.requestsPerDevice;
    const got = records.filter((r) => r.system === sys).length + (unfinished.get(sys) ?? 0);
    if (got < expected) unfinished.set(sys, (unfinished.get(sys) ?? 0) + expected - got);
  }
  let cloudInfo: { busyMsBySystem?: Record<string, number>; rejections?: string[]; sharedShaping?: boolean } = {};
  const cloudJson = join(opts.outDir, 'cloud.json');
  if (existsSync(cloudJson)) cloudInfo = JSON.parse(readFileSync(cloudJson, 'utf8')) as typeof cloudInfo;
  for (const r of cloudInfo.rejections ?? []) errors.push(`cloud rejected: ${r}`);
  const source = opts.emulate ? `live-emulated:${opts.emulate}` : 'live';
  const summary = scenario.systems.map((system) => {
    const rs = records.filter((r) => r.system === system);
    let first = Infinity, last = 0;
    for (const r of rs) { first = Math.min(first, r.arrival_s); last = Math.max(last, r.arrival_s + r.e2e_ms / 1000); }
    return summarize(records, {
      system, unfinished: unfinished.get(system) ?? 0, spanS: rs.length > 0 ? last - first : 0,
      gpuBusyMs: cloudInfo.busyMsBySystem?.[system] ?? 0, gpus: scenario.topology.nodes.reduce((a, n) => a + (n.processor.kind === 'batching' ? n.processor.gpus : 0), 0), latencySource: source,
    });
  });
  // steps.csv = cloud steps + every device's steps.
  const stepParts: string[] = [STEP_COLUMNS.join(',') + '\n'];
  for (const f of ['steps-cloud.csv', ...devices.map((d) => `steps-device-${d.index}.csv`)]) {
    const p = join(opts.outDir, f);
    if (!existsSync(p)) continue;
    const text = readFileSync(p, 'utf8');
    stepParts.push(text.slice(text.indexOf('\n') + 1));
    rmSync(p);
  }
  writeFileAtomic(join(opts.outDir, 'steps.csv'), stepParts.join(''));
  const wallMs = performance.now() - t0;
  const runInfo: Record<string, unknown> = {
    tool: 'hatsim', version: VERSION, mode: 'live', scenario, seed: scenario.seed, wallMs: Math.round(wallMs),
    host: { cpus: os.cpus().length, loadAvgBefore: loadBefore, loadAvgAfter: loadAfter, platform: `${os.platform()} ${os.arch()}`, node: process.version },
    emulation: opts.emulate ? { hardware: opts.emulate, note: 'every compute pass padded to the predicted latency of this hardware; steps.csv target_ms < real_ms marks passes slower than the target' } : null,
    processes: { cloud: 1, devices: devices.length, transport: 'WebSocket over 127.0.0.1', shaping: cloudInfo.sharedShaping === true ? 'user space, at the cloud server: every device and direction jointly (shared bottlenecks, live/shared-net.ts)' : 'user space, per device and direction' },
    perSystem: summary.map((s) => ({ system: s.system, requests: s.requests, unfinished: s.unfinished, gpuBusyMs: cloudInfo.busyMsBySystem?.[s.system] ?? 0 })),
    devices: deviceInfo,
    errors,
    log: 'live.log',
  };
  if (opts.realAcceptance) {
    const ra = mergeRealAcceptance(opts.outDir, scenario, dirname(opts.scenarioPath), devices.length, { onnxDir: opts.onnxDir!, ...opts.realAcceptance });
    runInfo.realAcceptance = { file: 'real-acceptance.json', mode: ra.mode, temperature: ra.temperature, onnxDir: ra.onnxDir, perDevice: 'real-acceptance-device-<i>.jsonl (prompt and generated text per request)' };
    log(realAcceptanceTable(ra));
  }
  writeRunOutputs(opts.outDir, { requests: records, summary, spans: [], gpuUtil: [], runInfo });
  return { scenario, records, summary, errors, wallMs, runInfo };
}

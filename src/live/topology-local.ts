/**
 * `hatsim live local` for systems on the topology (live/node.ts): one process per node
 * that takes part (every device, and every node a system's paths end at; switches carry
 * no process: a path is shaped end to end by its sender), on loopback. Per system: start
 * the nodes, tell each where the others listen and when the run starts (IPC), wait for
 * the devices to finish their requests, stop the rest, merge the devices' records into
 * the simulator's output contract (requests.csv, summary.csv, hops.csv, run.json).
 */
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { InputError } from '../core/errors.js';
import { getModel } from '../model/catalog.js';
import { SYSTEMS } from '../protocol/registry.js';
import { summarize } from '../results/summary.js';
import type { DtoeeNodeRecord, DtoeeRoundRecord, HopRecord, RequestRecord } from '../results/types.js';
import { VERSION, writeRunOutputs } from '../results/write.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import { buildTestbed, systemTopology } from '../sim/run.js';
import { compileNetwork } from '../topology/paths.js';
import { ensureGraphs } from './compute.js';
import { killChildren, startChild, withExitTimeout, type LiveLocalOptions, type LiveResult } from './local.js';
import { epochNowMs } from './node.js';
import { mergeDtoeeRows } from './dtoee-live.js';
import type { DtoeeTokenFact } from '../protocol/systems/dtoee.js';
import { dtoeeTokenRows } from '../sim/dtoee-control.js';

function waitListening(child: ChildProcess, exited: Promise<number>, name: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error(`node ${name} did not start listening within ${timeoutMs} ms`)), timeoutMs);
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      const m = /listening on ([\d.]+:\d+)/.exec(buf);
      if (m) { clearTimeout(t); resolve(m[1]); }
    });
    void exited.then((code) => { clearTimeout(t); reject(new Error(`node ${name} exited with code ${code} before listening`)); });
  });
}

export async function runTopologyLocal(opts: LiveLocalOptions, scenario: Scenario): Promise<LiveResult> {
  const pol = scenario.policies.dtoee;
  if (scenario.systems.includes('dtoee') && pol.policy === 'jsq' && pol.jsqLoad !== 'reported') {
    throw new InputError('policies.dtoee.jsqLoad: jsq live compares the loads a node last heard from its neighbours; set jsqLoad: reported (the simulator models the same reports)', 'policies.dtoee.jsqLoad');
  }
  const wall0 = performance.now();
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const overrides = opts.overrides ?? [];
  const tb = buildTestbed(scenario);
  mkdirSync(opts.outDir, { recursive: true });
  ensureGraphs(getModel(scenario.model), ['embedding', 'decoderLayer', 'lmHead']);
  const loadBefore = os.loadavg();
  const logStream = createWriteStream(join(opts.outDir, 'live.log'));
  const common = ['--scenario', opts.scenarioPath, ...overrides.flatMap((o) => ['--set', o])];
  const extra = [...(opts.emulate ? ['--emulate', opts.emulate] : []), ...(opts.token ? ['--token', opts.token] : [])];
  const errors: string[] = [];
  const records: RequestRecord[] = [];
  const hops: HopRecord[] = [];
  const unfinished = new Map<SystemId, number>();
  const perSystem: unknown[] = [];
  const dtoeeNodes: DtoeeNodeRecord[] = [];
  const dtoeeRounds: DtoeeRoundRecord[] = [];
  const tokenFacts: { system: SystemId; f: DtoeeTokenFact }[] = [];
  const timeoutMs = (opts.timeoutS ?? 900) * 1000;
  for (const system of scenario.systems) {
    const def = SYSTEMS[system];
    const compiled = compileNetwork(tb.topology, tb.routes, def.pairs!(systemTopology(tb)).map(([from, to]) => ({ from, to })));
    const involved = new Set<number>(tb.devices.map((d) => d.node.index));
    for (const p of compiled.paths) { involved.add(p.a); involved.add(p.b); }
    const names = [...involved].sort((a, b) => a - b).map((i) => tb.topology.nodes[i].name);
    for (const n of names) for (const f of [`device-${n}.jsonl`, `dtoee-${n}.jsonl`]) rmSync(join(opts.outDir, f), { force: true });
    log(`live: ${system}: starting ${names.length} node processes (${names.join(', ')})`);
    const procs = names.map((name) => ({ name, ...startChild(['live', 'node', ...common, '--name', name, '--system', system, '--out', opts.outDir, ...extra], logStream, name) }));
    try {
      const addrs = await Promise.all(procs.map((p) => waitListening(p.child, p.exited, p.name, 120_000)));
      const peers = Object.fromEntries(names.map((n, i) => [n, addrs[i]]));
      const t0EpochMs = epochNowMs() + 1500;
      for (const p of procs) p.child.send({ peers, t0EpochMs });
      const devNames = new Set(tb.devices.map((d) => d.name));
      const devs = procs.filter((p) => devNames.has(p.name));
      const codes = await Promise.all(devs.map((d) => withExitTimeout(d.exited, timeoutMs)));
      codes.forEach((c, i) => {
        if (c === null) { errors.push(`${system}: device ${devs[i].name} did not finish within ${timeoutMs / 1000} s; killed`); devs[i].child.kill('SIGKILL'); }
        else if (c !== 0) errors.push(`${system}: device ${devs[i].name} exited with code ${c}`);
      });
    } catch (e) {
      errors.push(`${system}: ${e instanceof Error ? e.message : String(e)}`);
    } finally {
      for (const p of procs) if (p.child.exitCode === null) p.child.kill('SIGTERM');
      for (const p of procs) {
        const code = await withExitTimeout(p.exited, 10_000);
        if (code === null) { errors.push(`${system}: node ${p.name} did not exit within 10 s of SIGTERM; killed`); p.child.kill('SIGKILL'); }
      }
    }
    let got = 0;
    for (const d of tb.devices) {
      const path = join(opts.outDir, `device-${d.name}.jsonl`);
      if (!existsSync(path)) { errors.push(`${system}: device ${d.name} wrote no records`); continue; }
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (!line) continue;
        const l = JSON.parse(line) as { kind: string; record?: RequestRecord; hops?: HopRecord[]; tokens?: DtoeeTokenFact[]; request?: number; reason?: string };
        if (l.kind === 'record' && l.record) { records.push(l.record); hops.push(...(l.hops ?? [])); tokenFacts.push(...(l.tokens ?? []).map((f) => ({ system, f }))); got++; }
        else if (l.kind === 'unfinished') errors.push(`${system}: device ${d.name} request ${l.request}: ${l.reason}`);
      }
      rmSync(path);
    }
    const expected = tb.workload.reduce((a, w) => a + w.length, 0);
    unfinished.set(system, expected - got);
    const nodeInfo: unknown[] = [];
    for (const n of names) {
      const p = join(opts.outDir, `node-${n}.json`);
      if (!existsSync(p)) continue;
      const j = JSON.parse(readFileSync(p, 'utf8')) as { rejections?: string[] };
      nodeInfo.push(j);
      for (const r of j.rejections ?? []) errors.push(`${system}: node ${n} rejected: ${r}`);
      rmSync(p);
    }
    // Online DTO-EE: each edge node's rows over time (live/dtoee-live.ts), merged into the simulator's schema.
    const rows = names.filter((n) => existsSync(join(opts.outDir, `dtoee-${n}.jsonl`))).map((n) => {
      const path = join(opts.outDir, `dtoee-${n}.jsonl`);
      const lines = readFileSync(path, 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l) as { kind: string; row: DtoeeNodeRecord & DtoeeRoundRecord });
      rmSync(path);
      return { node: n, nodes: lines.filter((l) => l.kind === 'node').map((l) => l.row), rounds: lines.filter((l) => l.kind === 'round').map((l) => l.row) };
    });
    if (rows.length > 0) {
      const merged = mergeDtoeeRows(rows, tb.topology.nodes.map((n) => n.name));
      dtoeeNodes.push(...merged.nodes);
      dtoeeRounds.push(...merged.rounds);
    }
    perSystem.push({ system, processes: names.length, requests: got, unfinished: expected - got, nodes: nodeInfo });
  }
  killChildren('SIGKILL');
  await new Promise<void>((resolve) => logStream.end(resolve));
  const source = opts.emulate ? `live-emulated:${opts.emulate}` : 'live';
  const summary = scenario.systems.map((system) => {
    const rs = records.filter((r) => r.system === system);
    let first = Infinity, last = 0;
    for (const r of rs) { first = Math.min(first, r.arrival_s); last = Math.max(last, r.arrival_s + r.e2e_ms / 1000); }
    return summarize(records, { system, unfinished: unfinished.get(system) ?? 0, spanS: rs.length > 0 ? last - first : 0, gpuBusyMs: 0, gpus: 0, latencySource: source });
  });
  const wallMs = performance.now() - wall0;
  const runInfo: Record<string, unknown> = {
    tool: 'hatsim', version: VERSION, mode: 'live', runner: 'topology', scenario: { ...scenario, topology: undefined }, seed: scenario.seed, wallMs: Math.round(wallMs),
    host: { cpus: os.cpus().length, loadAvgBefore: loadBefore, loadAvgAfter: os.loadavg(), platform: `${os.platform()} ${os.arch()}`, node: process.version },
    processes: { perNode: true, transport: 'WebSocket over 127.0.0.1', shaping: 'user space, per path direction (shared bottlenecks and traces not shaped live)' },
    perSystem, errors, log: 'live.log',
  };
  // Per-token tasks: one row per token, in time order as the simulator writes them.
  const dtoeeTokens = scenario.systems.flatMap((sys) => dtoeeTokenRows(sys, tokenFacts.filter((x) => x.system === sys).map((x) => x.f).sort((a, b) => a.timeS - b.timeS)));
  writeRunOutputs(opts.outDir, { requests: records, summary, spans: [], gpuUtil: [], hops, runInfo, ...(dtoeeNodes.length > 0 ? { dtoeeNodes, dtoeeRounds } : {}), ...(dtoeeTokens.length > 0 ? { dtoeeTokens } : {}) });
  return { scenario, records, summary, errors, wallMs, runInfo };
}

/**
 * `npm run bench -- --baseline DIR`: the same workloads on a baseline build (DIR = a checkout
 * of an earlier commit with `npm ci && npm run build` done, e.g. made by
 * scripts/bench-baseline.sh REV) and on this build, in one process, alternating A/B/A/B so the
 * machine's drift hits both alike; prints both medians and the ratio. Results must also be
 * identical (the same requests.csv rows), which it checks on the way.
 */
import { loadavg } from 'node:os';
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem } from '../src/sim/run.js';
import type { SystemId } from '../src/scenario/types.js';

type Load = typeof loadScenario;
type Build = typeof buildTestbed;
type Sim = typeof simulateSystem;

interface Impl { label: string; load: Load; build: Build; sim: Sim }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function workload(impl: Impl, overrides: string[], systems: SystemId[]): { s: number; fingerprint: string } {
  const t0 = performance.now();
  const tb = impl.build(impl.load('scenarios/hat-testbed.yaml', overrides));
  let fp = 0;
  for (const sys of systems) {
    const r = impl.sim(tb, sys, { timelineRequests: 0 });
    for (const q of r.requests) fp = (fp * 31 + Math.round(q.ttft_ms * 1000) + Math.round(q.e2e_ms * 1000)) % 1_000_000_007;
  }
  return { s: (performance.now() - t0) / 1000, fingerprint: String(fp) };
}

/** `--isolate`: each run in its own process (bench/compare-child.ts), the builds never share a heap. */
function isolated(root: string, c: { overrides: string[]; systems: SystemId[] }): { s: number; fingerprint: string } {
  const child = join(dirname(fileURLToPath(import.meta.url)), 'compare-child.js');
  const r = spawnSync(process.execPath, [child, root, JSON.stringify(c)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`bench child for ${root} failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { s: number; fingerprint: string };
}

export async function compareWithBaseline(dir: string, reps: number, isolate = false): Promise<void> {
  const base = resolve(dir);
  const imp = async (p: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(base, 'dist/src', p)).href) as Promise<Record<string, unknown>>;
  const old: Impl = { label: 'baseline', load: (await imp('scenario/load.js')).loadScenario as Load, build: (await imp('sim/run.js')).buildTestbed as Build, sim: (await imp('sim/run.js')).simulateSystem as Sim };
  const cur: Impl = { label: 'this build', load: loadScenario, build: buildTestbed, sim: simulateSystem };
  const all: SystemId[] = ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat'];
  const cases: { name: string; overrides: string[]; systems: SystemId[] }[] = [
    { name: 'testbed (five systems, 10,050 requests)', overrides: ['workload.requestsPerDevice=67'], systems: all },
    { name: 'devices-1000 (hat + cloud, 5,000 requests each)', overrides: ['devices.0.count=334', 'devices.1.count=333', 'devices.2.count=333', 'cloud.gpus=32', 'workload.requestsPerDevice=5'], systems: ['hat', 'cloud'] },
  ];
  console.log(`\nbaseline comparison against ${base} (${reps} alternating runs each${isolate ? ', each in its own process' : ', in this process'}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  console.log('workload                                           baseline s   this build s   ratio (this/baseline)   same results');
  for (const c of cases) {
    const a: number[] = [], b: number[] = [];
    let same = true;
    for (let i = 0; i < reps; i++) {
      const order = i % 2 === 0 ? [old, cur] : [cur, old];
      const fps: Record<string, string> = {};
      for (const impl of order) {
        const r = isolate ? isolated(impl === old ? base : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..'), c) : workload(impl, c.overrides, c.systems);
        (impl === old ? a : b).push(r.s);
        fps[impl.label] = r.fingerprint;
      }
      if (fps.baseline !== fps['this build']) same = false;
    }
    console.log(`${c.name.padEnd(50)} ${median(a).toFixed(3).padStart(10)}   ${median(b).toFixed(3).padStart(12)}   ${(median(b) / median(a)).toFixed(3).padStart(21)}   ${same ? 'yes' : 'NO'}`);
  }
}

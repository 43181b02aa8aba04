/**
 * One timed workload of bench/compare.ts in a fresh process (`--isolate`): loads the build at
 * ROOT (its dist/src), runs the case, prints {"s": seconds, "fingerprint": "..."}. A fresh
 * process per run keeps the two builds from sharing a heap, JIT state and GC pressure.
 *
 *   node dist/bench/compare-child.js ROOT CASE_JSON
 */
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

interface Case { overrides: string[]; systems: string[] }

const [root, caseJson] = process.argv.slice(2);
const c = JSON.parse(caseJson) as Case;
const imp = async (p: string): Promise<Record<string, unknown>> => import(pathToFileURL(join(root, 'dist/src', p)).href) as Promise<Record<string, unknown>>;
// The builds' own types differ between commits: call through a minimal shape.
type AnyFn = (...args: unknown[]) => unknown;
const load = (await imp('scenario/load.js')).loadScenario as AnyFn;
const build = (await imp('sim/run.js')).buildTestbed as AnyFn;
const sim = (await imp('sim/run.js')).simulateSystem as AnyFn;
process.chdir(root);
const t0 = performance.now();
const tb = build(load('scenarios/hat-testbed.yaml', c.overrides));
let fp = 0;
for (const sys of c.systems) {
  const r = sim(tb, sys, { timelineRequests: 0 }) as { requests: { ttft_ms: number; e2e_ms: number }[] };
  for (const q of r.requests) fp = (fp * 31 + Math.round(q.ttft_ms * 1000) + Math.round(q.e2e_ms * 1000)) % 1_000_000_007;
}
process.stdout.write(JSON.stringify({ s: (performance.now() - t0) / 1000, fingerprint: String(fp) }) + '\n');

/**
 * Child process of the bench against inference-lab (bench/peer.ts): runs the peer simulator
 * (npm @doublewordai/inference-lab 0.2.1, Rust compiled to WebAssembly) once on the workload
 * given as a JSON config in argv[2] and prints one JSON line: its simulation wall and CPU time and metrics.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { initSync, run_simulation } from '@doublewordai/inference-lab';

interface PeerMetrics { ttft_mean: number; e2e_mean: number; completed_requests: number; total_time: number }

const require = createRequire(import.meta.url);
const wasmPath = require.resolve('@doublewordai/inference-lab').replace(/inference_lab\.js$/, 'inference_lab_bg.wasm');
initSync({ module: readFileSync(wasmPath) });
const t0 = performance.now(), c0 = process.cpuUsage();
// run_simulation returns an untyped JS object (wasm-bindgen `any`); only the metrics are read.
const result = run_simulation(process.argv[2]) as { metrics: PeerMetrics };
const simMs = performance.now() - t0;
const cpu = process.cpuUsage(c0);
const simCpuMs = (cpu.user + cpu.system) / 1000;
const m = result.metrics;
process.stdout.write(JSON.stringify({ simMs, simCpuMs, completed: m.completed_requests, ttftMeanMs: m.ttft_mean, e2eMeanMs: m.e2e_mean, simEndS: m.total_time }) + '\n');

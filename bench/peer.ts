/**
 * The bench against the peer simulator inference-lab (issue 15), run by `npm run bench`:
 * the same cloud-only workload, one A6000 serving LLaMA-2-7B, Poisson arrivals at 5 requests/s
 * in total, 512-token prompts and 128 output tokens, at 1k, 10k and 100k requests. Both run as
 * child processes of the bench (the same process tree, one after the other, one core each):
 *  - inference-lab 0.2.1 (npm, WebAssembly): bench/peer-child.ts; its simulation time is measured
 *    around run_simulation inside the child, its process time around the whole child;
 *  - hatsim: the built CLI, `hatsim run bench/peer-cloud-only.yaml`, with 1,000 devices fed
 *    round-robin from one seeded Poisson trace of N arrivals (so the offered load is the same
 *    Poisson 5/s process as the peer's, spread over devices); its simulation time is run.json's
 *    wallMs (testbed set-up + simulation), its process time the whole `hatsim run` process
 *    (start-up, scenario and trace loading, simulation, writing the results).
 * Ratios: at 1k, the peer's simulation time over hatsim's whole process (issue 15: "faster at
 * 1,000 requests counting hatsim's whole process"); at 10k and 100k, simulation over simulation.
 * The peer's time grows about with N^2 (REFERENCE.md §4): past --peer-timeout-s (default 600 s)
 * its child is stopped and the ratio is printed as a lower bound (">").
 * --scale adds the scaling row: 10,000 devices, 1,000,000 requests, cloud-only and hat, wall time
 * and peak RSS of each `hatsim run` process (issue 15: < 60 s and < 120 s, < 2 GB each).
 * The two simulators' models differ (the peer assumes 100 % of peak FLOPs and bandwidth and has no
 * network); their mean TTFT is printed only to show both simulate the same regime.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Rng } from '../src/core/rng.js';
import { getHardware } from '../src/compute/hardware.js';
import { getModel } from '../src/model/catalog.js';

const HERE = dirname(fileURLToPath(import.meta.url)); // dist/bench
const REPO = resolve(HERE, '..', '..');
/** The `hatsim` bin (the bundled CLI, scripts/bundle.mjs): what a user's process runs. */
const CLI = join(REPO, 'dist', 'cli', 'main.js');
const PEER_CHILD = join(HERE, 'peer-child.js');
const RSS_HOOK = join(HERE, 'rss-hook.js');
const SCENARIO = join(REPO, 'bench', 'peer-cloud-only.yaml');

export const PEER_WORKLOAD = { ratePerS: 5, promptTokens: 512, outputTokens: 128, seed: 1, devices: 1000 } as const;
/** LLaMA-2-7B's parameter count (the published 6.74 B; the peer sizes weights and FLOPs from it). */
const LLAMA2_7B_PARAMS = 6_738_415_616;

/** A trace of n Poisson arrivals at `ratePerS` (seeded, our generator), fixed lengths; the format of src/workload/trace.ts. */
export function writeTrace(file: string, n: number): void {
  const rng = new Rng(PEER_WORKLOAD.seed, 'bench/peer/arrivals');
  const lines = ['arrived_at,num_prefill_tokens,num_decode_tokens'];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t += rng.exponential(PEER_WORKLOAD.ratePerS);
    lines.push(`${t},${PEER_WORKLOAD.promptTokens},${PEER_WORKLOAD.outputTokens}`);
  }
  writeFileSync(file, lines.join('\n') + '\n');
}

/** The peer's configuration (its TOML schema as JSON) for the same workload and hardware. */
export function peerConfig(n: number): string {
  const hw = getHardware('a6000');
  const m = getModel('llama2-7b');
  return JSON.stringify({
    hardware: { name: hw.name, compute_flops: hw.peakFlops, memory_bandwidth: hw.memBandwidthBps, memory_capacity: hw.memoryBytes, gpu_memory_utilization: 0.9, bytes_per_param: m.weightBytesPerElem },
    model: { name: m.name, num_parameters: LLAMA2_7B_PARAMS, num_layers: m.numLayers, hidden_dim: m.hiddenSize, num_heads: m.numHeads, num_kv_heads: m.numKvHeads, max_seq_len: m.maxContext },
    // hatsim's cloud defaults: token budget 2048 per step, at most 256 sequences, FCFS, chunked prefill.
    scheduler: { max_num_batched_tokens: 2048, max_num_seqs: 256, policy: 'fcfs', enable_chunked_prefill: true, block_size: 16 },
    workload: {
      arrival_pattern: 'poisson', arrival_rate: PEER_WORKLOAD.ratePerS, num_requests: n, seed: PEER_WORKLOAD.seed,
      input_len_dist: { type: 'fixed', value: PEER_WORKLOAD.promptTokens }, output_len_dist: { type: 'fixed', value: PEER_WORKLOAD.outputTokens },
    },
    simulation: { log_interval: 1_000_000_000 },
  });
}

interface PeerRun { simS: number; /** CPU time (user + system) of its simulation. */ simCpuS: number; procS: number; ttftMeanMs: number; completed: number; timedOut: boolean }

function runPeer(n: number, timeoutS: number): PeerRun {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [PEER_CHILD, peerConfig(n)], { encoding: 'utf8', timeout: timeoutS * 1000, maxBuffer: 1 << 20 });
  const procS = (performance.now() - t0) / 1000;
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT' || r.signal === 'SIGTERM') {
    return { simS: procS, simCpuS: NaN, procS, ttftMeanMs: NaN, completed: NaN, timedOut: true };
  }
  if (r.status !== 0) throw new Error(`inference-lab child failed (${r.status}): ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { simMs: number; simCpuMs: number; ttftMeanMs: number; completed: number };
  return { simS: out.simMs / 1000, simCpuS: out.simCpuMs / 1000, procS, ttftMeanMs: out.ttftMeanMs, completed: out.completed, timedOut: false };
}

interface HatsimRun { simS: number; procS: number; rssMB: number; /** CPU time (user + system) of the whole process. */ cpuS: number; ttftMeanMs: number; requests: number; unfinished: number; failed?: string }

function runHatsim(n: number, devices: number, system: string, tmp: string, timeoutS: number): HatsimRun {
  if (n % devices !== 0) throw new Error(`bench: ${n} requests do not split evenly over ${devices} devices`);
  const trace = join(tmp, `trace-${n}.csv`);
  if (!existsSync(trace)) writeTrace(trace, n);
  const out = join(tmp, `hatsim-${system}-${n}-${devices}`);
  const rssFile = join(tmp, `rss-${system}-${n}-${devices}`);
  const args = ['--import', RSS_HOOK, CLI, 'run', SCENARIO, '--out', out, '--quiet',
    '--set', `devices.0.count=${devices}`, '--set', `workload.requestsPerDevice=${n / devices}`,
    '--set', `workload.arrival={kind: trace, path: ${trace}}`, '--set', `systems=[${system}]`];
  const t0 = performance.now();
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: timeoutS * 1000, env: { ...process.env, HATSIM_BENCH_RSS_FILE: rssFile } });
  const procS = (performance.now() - t0) / 1000;
  const [rssKiB, cpuUs] = existsSync(rssFile) ? readFileSync(rssFile, 'utf8').split(' ').map(Number) : [NaN, NaN];
  const rssMB = rssKiB / 1024, cpuS = cpuUs / 1e6;
  if (r.status !== 0) {
    const why = r.signal ? `killed (${r.signal}) after ${procS.toFixed(0)} s` : (r.stderr.split('\n').find((l) => /Error|error:/.test(l)) ?? `exit ${r.status}`);
    return { simS: NaN, procS, rssMB, cpuS, ttftMeanMs: NaN, requests: 0, unfinished: NaN, failed: why.slice(0, 120) };
  }
  const info = JSON.parse(readFileSync(join(out, 'run.json'), 'utf8')) as { wallMs: number };
  const [header, row] = readFileSync(join(out, 'summary.csv'), 'utf8').trim().split('\n').map((l) => l.split(','));
  const col = (name: string): number => Number(row[header.indexOf(name)]);
  rmSync(out, { recursive: true, force: true });
  return { simS: info.wallMs / 1000, procS, rssMB, cpuS, ttftMeanMs: col('ttft_mean_ms'), requests: col('requests'), unfinished: col('unfinished') };
}

const f = (x: number, d = 2): string => (Number.isFinite(x) ? x.toFixed(d) : '-');

export interface PeerBenchOptions {
  sizes: readonly number[];
  peerTimeoutS: number;
  /** Add the scaling row (10k devices, 1M requests, cloud and hat). */
  scale: boolean;
  scaleTimeoutS: number;
  /** Systems of the scaling row (--scale-systems cloud,hat; default both). */
  scaleSystems: readonly ('cloud' | 'hat')[];
}

export interface PeerBenchRow {
  n: number; peer: PeerRun; hatsim: HatsimRun; ratio: number; ratioIsBound: boolean; target: number;
  /** The peer's simulation CPU time over hatsim's whole process's CPU time (NaN if the peer was stopped). */
  cpuRatio: number;
}

export function peerBench(opts: PeerBenchOptions): PeerBenchRow[] {
  if (!existsSync(PEER_CHILD) || !existsSync(CLI)) throw new Error('bench: dist/ is missing; run `npm run build` (npm run bench does)');
  const tmp = mkdtempSync(join(tmpdir(), 'hatsim-bench-peer-'));
  const rows: PeerBenchRow[] = [];
  try {
    console.log(`\npeer: inference-lab 0.2.1 vs hatsim, cloud-only, 1 x A6000, LLaMA-2-7B, Poisson ${PEER_WORKLOAD.ratePerS} req/s, ${PEER_WORKLOAD.promptTokens}/${PEER_WORKLOAD.outputTokens} tokens`);
    console.log(`(hatsim: ${PEER_WORKLOAD.devices} devices fed round-robin from one Poisson trace; sim = simulation wall time, proc = whole process; peer stopped after ${opts.peerTimeoutS} s)`);
    console.log('(CPU ratio = the peer\'s simulation CPU time over the CPU time of hatsim\'s whole process: what two free cores would show; wall ratios move with the load)');
    console.log('requests  peer sim s  peer proc s  hatsim sim s  hatsim proc s  hatsim RSS MB  ratio (target)         peer CPU s  hatsim CPU s  CPU ratio  peer TTFT ms  hatsim TTFT ms');
    for (const n of opts.sizes) {
      const peer = runPeer(n, opts.peerTimeoutS);
      const hatsim = runHatsim(n, PEER_WORKLOAD.devices, 'cloud', tmp, 1800);
      if (hatsim.failed) throw new Error(`bench: hatsim run failed at ${n} requests: ${hatsim.failed}`);
      if (hatsim.requests !== n || hatsim.unfinished !== 0) throw new Error(`bench: hatsim finished ${hatsim.requests} of ${n} requests (${hatsim.unfinished} unfinished)`);
      if (!peer.timedOut && peer.completed !== n) throw new Error(`bench: inference-lab completed ${peer.completed} of ${n} requests`);
      // At 1k: peer simulation vs hatsim's whole process; above: simulation vs simulation.
      const wholeProcess = n <= 1000;
      const ratio = peer.simS / (wholeProcess ? hatsim.procS : hatsim.simS);
      const target = n <= 1000 ? 1 : n <= 10_000 ? 30 : 100;
      const cpuRatio = peer.simCpuS / hatsim.cpuS;
      rows.push({ n, peer, hatsim, ratio, ratioIsBound: peer.timedOut, target, cpuRatio });
      const ratioText = `${peer.timedOut ? '>' : ''}${f(ratio, 1)}x ${wholeProcess ? 'vs proc' : 'vs sim'} (${target}x) ${ratio >= target ? 'ok' : peer.timedOut ? 'bound' : 'MISSED'}`;
      console.log(`${String(n).padStart(8)}  ${(peer.timedOut ? '>' : '') + f(peer.simS)}`.padEnd(20) + `  ${f(peer.procS).padStart(11)}  ${f(hatsim.simS).padStart(12)}  ${f(hatsim.procS).padStart(13)}  ${f(hatsim.rssMB, 0).padStart(13)}  ${ratioText.padEnd(22)} ${f(peer.simCpuS).padStart(10)}  ${f(hatsim.cpuS).padStart(12)}  ${(Number.isFinite(cpuRatio) ? `${f(cpuRatio, 1)}x` : '-').padStart(9)}  ${f(peer.ttftMeanMs, 1).padStart(12)}  ${f(hatsim.ttftMeanMs, 1).padStart(14)}`);
    }
    if (opts.scale) {
      const n = 1_000_000, devices = 10_000;
      console.log(`\nscaling: ${devices} devices, ${n} requests, one A6000, the same workload; whole \`hatsim run\` process (targets: cloud < 60 s, hat < 120 s, each < 2048 MB; timeout ${opts.scaleTimeoutS} s)`);
      console.log('(wall = the process\'s wall time, CPU = its user + system time: on a shared machine the CPU time is what one free core would take)');
      console.log('system  wall s  CPU s  sim s  peak RSS MB  TTFT mean ms  load avg  verdict');
      for (const [system, limitS] of ([['cloud', 60], ['hat', 120]] as const).filter(([sys]) => opts.scaleSystems.includes(sys))) {
        const r = runHatsim(n, devices, system, tmp, opts.scaleTimeoutS);
        const fits = !r.failed && r.rssMB < 2048 && r.requests === n;
        const verdict = r.failed ? `FAILED: ${r.failed}`
          : !fits ? 'MISSED (memory or requests)'
          : r.procS < limitS ? 'ok' : r.cpuS < limitS ? `ok in CPU time, not in wall time (load)` : 'MISSED';
        console.log(`${system.padEnd(6)}  ${f(r.procS, 1).padStart(6)}  ${f(r.cpuS, 1).padStart(5)}  ${f(r.simS, 1).padStart(5)}  ${f(r.rssMB, 0).padStart(11)}  ${f(r.ttftMeanMs, 1).padStart(12)}  ${loadavg()[0].toFixed(2).padStart(8)}  ${verdict}${r.failed ? '' : ` (${r.requests} requests, ${r.unfinished} unfinished)`}`);
      }
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}

/** --sizes N,N,..., --peer-timeout-s S, --scale, --scale-timeout-s S, --scale-systems cloud,hat from a command line. */
export function peerArgs(argv: readonly string[]): PeerBenchOptions {
  const num = (flag: string, dflt: number): number => {
    const i = argv.indexOf(flag);
    if (i < 0) return dflt;
    const x = Number(argv[i + 1]);
    if (!(x > 0)) {
      console.error(`bench: ${flag} must be a positive number of seconds, got ${argv[i + 1]}`);
      process.exit(2);
    }
    return x;
  };
  const si = argv.indexOf('--sizes');
  const sizes = si < 0 ? [1000, 10_000, 100_000] : (argv[si + 1] ?? '').split(',').map(Number);
  if (sizes.some((n) => !Number.isSafeInteger(n) || n < PEER_WORKLOAD.devices || n % PEER_WORKLOAD.devices !== 0)) {
    console.error(`bench: --sizes takes comma-separated request counts, multiples of ${PEER_WORKLOAD.devices}, got ${argv[si + 1]}`);
    process.exit(2);
  }
  const ssi = argv.indexOf('--scale-systems');
  const scaleSystems = ssi < 0 ? ['cloud', 'hat'] as const : (argv[ssi + 1] ?? '').split(',');
  if (scaleSystems.length === 0 || scaleSystems.some((x) => x !== 'cloud' && x !== 'hat')) {
    console.error(`bench: --scale-systems takes cloud, hat or cloud,hat, got ${argv[ssi + 1]}`);
    process.exit(2);
  }
  return { sizes, peerTimeoutS: num('--peer-timeout-s', 600), scale: argv.includes('--scale'), scaleTimeoutS: num('--scale-timeout-s', 1800), scaleSystems: scaleSystems as ('cloud' | 'hat')[] };
}

// `node dist/bench/peer.js [--scale] [--peer-timeout-s S]` (npm run bench:peer): this part alone.
if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  console.log(`hatsim bench (peer), load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  peerBench(peerArgs(process.argv));
}

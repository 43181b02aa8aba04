/**
 * Start-up (issue 15): heavy modules load only in the commands that need them.
 * Each case runs the built CLI with a module-tracing hook (test/support/trace-imports.mjs)
 * and checks which modules the process loaded.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO } from './helpers.js';

const CLI = join(REPO, 'dist/src/cli/main.js');
const HOOK = join(REPO, 'test/support/trace-imports.mjs');

/** Runs `hatsim args...` and returns the exit status and the set of loaded module URLs / require requests. */
function traced(...args: string[]): { status: number | null; modules: string[] } {
  const dir = mkdtempSync(join(tmpdir(), 'hatsim-trace-'));
  const file = join(dir, 'modules.txt');
  const r = spawnSync(process.execPath, ['--import', HOOK, CLI, ...args], {
    cwd: REPO, encoding: 'utf8', timeout: 120_000, env: { ...process.env, HATSIM_TRACE_IMPORTS: file },
  });
  if (r.status !== 0) throw new Error(`hatsim ${args.join(' ')} failed: ${r.stderr}`);
  return { status: r.status, modules: [...new Set(readFileSync(file, 'utf8').split('\n').filter(Boolean))] };
}

const loaded = (modules: readonly string[], what: RegExp): string[] => modules.filter((m) => what.test(m));

// Packages and folders of ours that only some commands need.
const ONNX = /onnxruntime-node|onnx-proto/;
const PLOT = /node_modules\/(vega|vega-lite|@resvg)\/|dist\/src\/plot\//;
const LIVE = /node_modules\/ws\/|dist\/src\/live\//;
const CALIBRATE = /dist\/src\/calibrate\/(?!vidur-dir\.js)/;
const WORKERS = /^node:worker_threads$|dist\/src\/sweep\/(pool|worker)\.js/;
// (sim/latency.js, a small latency helper, is light and used by describe's module.)
const SCENARIO = /node_modules\/(zod|yaml)\/|dist\/src\/scenario\/|dist\/src\/sim\/(run|driver|cloud|outputs)\.js/;

describe.skipIf(!existsSync(CLI))('start-up: lazy loading of heavy modules', () => {
  it('hatsim --help loads no scenario schema, simulator, ONNX Runtime, vega, live runner or worker threads', () => {
    const { modules } = traced('--help');
    expect(modules.some((m) => m.includes('dist/src/cli/main.js'))).toBe(true); // the trace works
    for (const heavy of [ONNX, PLOT, LIVE, CALIBRATE, WORKERS, SCENARIO]) expect(loaded(modules, heavy)).toEqual([]);
  });

  it('hatsim run of a 1-device scenario loads the simulator but not ONNX Runtime, vega, the live runner or worker threads', () => {
    const out = mkdtempSync(join(tmpdir(), 'hatsim-trace-run-'));
    const { modules } = traced('run', 'scenarios/tiny-local.yaml', '--out', out, '--quiet');
    expect(loaded(modules, /dist\/src\/sim\/run\.js/).length).toBe(1);
    for (const heavy of [ONNX, PLOT, LIVE, CALIBRATE, WORKERS]) expect(loaded(modules, heavy)).toEqual([]);
    expect(existsSync(join(out, 'run.json'))).toBe(true);
  });

  it('each command still loads what it needs: plot loads vega, calibrate --help stays light', () => {
    const out = mkdtempSync(join(tmpdir(), 'hatsim-trace-plot-'));
    expect(traced('run', 'scenarios/tiny-local.yaml', '--out', out, '--quiet').status).toBe(0);
    const plot = traced('plot', out, '--format', 'vl');
    expect(loaded(plot.modules, /node_modules\/vega-lite\//).length).toBeGreaterThan(0);
    const cal = traced('calibrate', '--help');
    expect(loaded(cal.modules, ONNX)).toEqual([]);
  });
});

// The bundled CLI (scripts/bundle.mjs, dist/cli/: the `hatsim` bin) is the same program as
// tsc's output: same help, same errors and exit codes, byte-identical results, working worker
// threads (sweep) and child processes (live local), and still lazy.
const BUNDLE = join(REPO, 'dist/cli/main.js');
const hatsim = (cli: string, ...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { cwd: REPO, encoding: 'utf8', timeout: 180_000 });

describe.skipIf(!existsSync(BUNDLE) || !existsSync(CLI))('start-up: the bundled CLI', () => {
  it('prints the same help and the same errors with the same exit codes', () => {
    for (const args of [['--help'], ['run', '--help'], ['live', 'node', '--help'], ['run', 'no-such.yaml'], ['frob'], ['run', 'scenarios/tiny-local.yaml', '--bogus']]) {
      const a = hatsim(CLI, ...args);
      const b = hatsim(BUNDLE, ...args);
      expect({ args, status: b.status, out: b.stdout, err: b.stderr }).toEqual({ args, status: a.status, out: a.stdout, err: a.stderr });
    }
  });

  it('writes byte-identical results for a run and a sweep with worker threads', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-bundle-'));
    for (const [name, cli] of [['a', CLI], ['b', BUNDLE]] as const) {
      expect(hatsim(cli, 'run', 'scenarios/hat-testbed.yaml', '--out', join(dir, `run-${name}`), '--quiet').status).toBe(0);
      expect(hatsim(cli, 'sweep', 'scenarios/sweep-bandwidth.yaml', '--grid', 'devices.0.link.uplinkMbps=5,80', '--jobs', '2', '--out', join(dir, `sweep-${name}`), '--quiet').status).toBe(0);
    }
    const files = readdirSync(join(dir, 'run-a')).filter((f) => f.endsWith('.csv'));
    expect(files).toContain('requests.csv');
    for (const f of files) expect(readFileSync(join(dir, 'run-b', f), 'utf8')).toBe(readFileSync(join(dir, 'run-a', f), 'utf8'));
    expect(readFileSync(join(dir, 'sweep-b', 'sweep.csv'), 'utf8')).toBe(readFileSync(join(dir, 'sweep-a', 'sweep.csv'), 'utf8'));
  });

  it('runs a live scenario: its child processes and ONNX worker threads start from dist/cli', () => {
    const out = mkdtempSync(join(tmpdir(), 'hatsim-bundle-live-'));
    const r = hatsim(BUNDLE, 'live', 'local', 'scenarios/live-tiny.yaml', '--out', out, '--set', 'workload.requestsPerDevice=1', '--set', 'systems=[hat]');
    expect(r.status, r.stderr).toBe(0);
    const rows = readFileSync(join(out, 'requests.csv'), 'utf8').trim().split('\n');
    expect(rows.length).toBeGreaterThan(1);
  }, 120_000);

  it('a 1-device run through the bundle loads neither ONNX Runtime, vega nor ws', () => {
    const dir = mkdtempSync(join(tmpdir(), 'hatsim-bundle-trace-'));
    const file = join(dir, 'modules.txt');
    const r = spawnSync(process.execPath, ['--import', HOOK, BUNDLE, 'run', 'scenarios/tiny-local.yaml', '--out', join(dir, 'out'), '--quiet'], {
      cwd: REPO, encoding: 'utf8', timeout: 120_000, env: { ...process.env, HATSIM_TRACE_IMPORTS: file },
    });
    expect(r.status, r.stderr).toBe(0);
    const modules = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(modules.some((m) => m.includes('dist/cli/main.js'))).toBe(true);
    for (const heavy of [ONNX, PLOT, /node_modules\/ws\//, WORKERS]) expect(loaded(modules, heavy)).toEqual([]);
  });
});


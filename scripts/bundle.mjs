// Bundles the built CLI (dist/src, tsc's output) into dist/cli/ with esbuild (issue 15,
// start-up). Why: Node's ESM loader resolves, reads and compiles each of the ~370 modules a
// 1-device `hatsim run` loads (zod alone is 95 files) and that, not our code, is most of a
// small run's time. The bundle keeps every lazy `await import()` as its own chunk (code
// splitting), so `--help` still loads no simulator and `run` no ONNX Runtime.
//
// Layout: dist/cli/main.js (the `hatsim` bin), dist/cli/worker.js (sweep worker threads,
// found as ./worker.js next to the chunk that starts them) and dist/cli/compute-worker.js
// (the live runner's ONNX worker); `hatsim live local` spawns ../cli/main.js from its chunk,
// which is dist/cli/main.js again. dist/src stays the tested library and a working CLI.
//
// Bundled: the pure-JS packages on the start-up path. External (loaded from node_modules
// at run time): packages with native code, WebAssembly or data files, and the big lazy ones.
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';

const BUNDLED = new Set(['zod', 'yaml', 'yargs', 'csv-parse', 'simple-statistics', 'cli-progress']);
const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
const external = Object.keys(pkg.dependencies).filter((d) => !BUNDLED.has(d)).flatMap((d) => [d, `${d}/*`]);

const outdir = new URL('../dist/cli/', import.meta.url).pathname;
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: {
    main: 'dist/src/cli/main.js',
    worker: 'dist/src/sweep/worker.js',
    'compute-worker': 'dist/src/live/compute-worker.js',
  },
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  outdir,
  external,
  // CommonJS packages inside an ES module bundle call require() for Node's built-ins.
  banner: { js: "import { createRequire as __hatsimRequire } from 'node:module'; const require = __hatsimRequire(import.meta.url);" },
  logLevel: 'warning',
});

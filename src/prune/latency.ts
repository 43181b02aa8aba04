/**
 * Measured latency of pruned models from calibration files (`hatsim calibrate
 * --onnx-dir <prune-out>/model --parts decoderLayer`): whole-model pass =
 * embedding + layers x decoderLayer + lmHead, the embedding and LM head from
 * the unpruned model's calibration (pruning leaves them alone). For a model
 * whose kept layers differ in width the profiled layer is the median-width
 * one (model/decoderLayer.onnx), so K x its latency approximates the stack.
 *
 *   node dist/src/prune/latency.js BASE_CAL_JSON LABEL=CAL_JSON:LAYERS [...]
 */
import { pathToFileURL } from 'node:url';
import { calibratedComponent, loadCalibration } from '../compute/calibration.js';
import { singleShape, type BatchShape } from '../compute/types.js';
import { InputError } from '../core/errors.js';

export interface StackLatency {
  label: string;
  layers: number;
  decodeMs: number;
  prefillMs: number;
}

export const DECODE_SHAPE: BatchShape = singleShape(1, 512);
export const PREFILL_SHAPE: BatchShape = singleShape(256, 0);

export function stackLatency(basePath: string, layerPath: string, layers: number, label: string): StackLatency {
  const base = loadCalibration(basePath);
  const file = loadCalibration(layerPath);
  const emb = calibratedComponent(base, 'embedding', basePath);
  const head = calibratedComponent(base, 'lmHead', basePath);
  const layer = calibratedComponent(file, 'decoderLayer', layerPath);
  const ms = (s: BatchShape): number => emb.batchMs(s) + layers * layer.batchMs(s) + head.batchMs(s);
  return { label, layers, decodeMs: ms(DECODE_SHAPE), prefillMs: ms(PREFILL_SHAPE) };
}

function main(argv: string[]): void {
  const [basePath, ...specs] = argv;
  if (!basePath || specs.length === 0) throw new InputError('usage: latency.js BASE_CAL_JSON LABEL=CAL_JSON:LAYERS ...');
  const rows = specs.map((s) => {
    const m = /^([^=]+)=(.+):(\d+)$/.exec(s);
    if (!m) throw new InputError(`"${s}": expected LABEL=CAL_JSON:LAYERS`);
    return stackLatency(basePath, m[2], Number(m[3]), m[1]);
  });
  const ref = rows[0];
  process.stdout.write('| model | layers | decode 1 tok @512 (ms) | prefill 256 tok (ms) | decode vs first | prefill vs first |\n|---|---|---|---|---|---|\n');
  for (const r of rows) {
    process.stdout.write(`| ${r.label} | ${r.layers} | ${r.decodeMs.toFixed(3)} | ${r.prefillMs.toFixed(2)} | ${(r.decodeMs / ref.decodeMs).toFixed(3)} | ${(r.prefillMs / ref.prefillMs).toFixed(3)} |\n`);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  try {
    main(process.argv.slice(2));
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`latency: ${e.message}\n`);
      process.exit(2);
    }
    throw e;
  }
}

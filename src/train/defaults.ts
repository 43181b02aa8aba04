/**
 * Default training settings: a light module (no TensorFlow.js), so the `hatsim train` option
 * list loads at start-up without the training code (issue 15).
 */
import type { AdapterConfig } from './adapter.js';
import type { ExitHeadConfig } from './exit-heads.js';
import type { TrainConfig } from './train.js';

export const TRAIN_DEFAULTS: TrainConfig = { seed: 1, steps: 160, batch: 8, seq: 128, lrMax: 5e-3, warmup: 10, minLrFrac: 0.1, evalEvery: 80, evalWindows: 32, ckptEvery: 20 };
export const ADAPTER_DEFAULTS: AdapterConfig = { seed: 1, steps: 200, batch: 8, seq: 64, lrMax: 3e-3, warmup: 3, minLrFrac: 0.1, inputLayers: 1, outputLayers: 1, evalWindows: 8 };
export const EXIT_HEAD_DEFAULTS: ExitHeadConfig = { seed: 1, steps: 200, batch: 256, seq: 128, lrMax: 1e-3, warmup: 10, minLrFrac: 0.1, trainWindows: 256, valWindows: 32, head: 'lens' };

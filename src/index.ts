/**
 * hatsim's library API (what notebooks and scripts import). The CLI is a thin
 * layer over these functions.
 */
export { loadScenario, parseScenarioObject } from './scenario/load.js';
export type { Scenario, SystemId } from './scenario/types.js';
export { SYSTEM_IDS } from './scenario/types.js';
export { runScenario, buildTestbed, simulateSystem, type RunResult, type SystemRun, type Testbed, type RunOptions } from './sim/run.js';
export { runOutputs } from './sim/outputs.js';
export { writeRunOutputs } from './results/write.js';
export { summarize } from './results/summary.js';
export type { RequestRecord, SummaryRecord, SpanRecord, GpuUtilRecord } from './results/types.js';
export { toCsv } from './results/csv.js';
export { runSweep, mergeSweeps } from './sweep/index.js';
export { MODELS, getModel, componentSize, hiddenStateBytesPerToken, makeSplitPlan } from './model/catalog.js';
export { HARDWARE, getHardware } from './compute/hardware.js';
export { loadCalibration, findCalibration, evalPieces } from './compute/calibration.js';
export { resolveLatency } from './compute/resolve.js';
export { singleShape } from './compute/types.js';
export { runCalibration } from './calibrate/run.js';
export { expectedTokensPerRound } from './policy/draft.js';
export { chooseChunkTokens, predictPipelineMs, splitPrompt } from './policy/chunk.js';
export { planFigures, renderFigures, writeReport, readRequests, readSummary, readSweep, SYSTEM_COLORS, SYSTEM_ORDER } from './plot/index.js';
export { runLiveLocal } from './live/local.js';
export { runValidation, compareSummaries } from './live/validate.js';

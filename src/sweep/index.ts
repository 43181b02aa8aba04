/** Parameter sweeps: library API (for notebooks and scripts). See docs/SWEEPS.md. */
export { defaultJobs } from './jobs.js';
export { runSweep, type SweepOptions, type SweepResult, type SweepProgress, type SweepPointStatus } from './sweep.js';
export { mergeSweeps, type MergeOptions, type MergeResult } from './merge.js';
export { parseGrid, parseGridArg, expandGrid, parseShard, inShard, type GridAxis, type GridPoint, type Shard } from './grid.js';
export { readManifest, type SweepManifest, type SweepPointInfo } from './files.js';

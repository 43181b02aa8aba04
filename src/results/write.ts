/**
 * Writes a run's results directory: requests.csv, summary.csv, timeline.csv,
 * gpu_util.csv, nodes.csv, links.csv, hops.csv (when tasks visit nodes), run.json. Each file is written atomically (temp + rename);
 * run.json is written last, so its presence marks a complete directory.
 */
import { rmSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, writeFileAtomicWith } from '../core/atomic.js';
import { copyPartsTo, type RequestPart } from './request-store.js';
import { toCsv } from './csv.js';
import { DTOEE_NODE_COLUMNS, DTOEE_ROUND_COLUMNS, DTOEE_TOKEN_COLUMNS, GPU_UTIL_COLUMNS, HOP_COLUMNS, LINK_COLUMNS, NODE_COLUMNS, REQUEST_COLUMNS, SPAN_COLUMNS, SUMMARY_COLUMNS, TASK_COLUMNS, TASK_SUMMARY_COLUMNS } from './types.js';
import type { DtoeeNodeRecord, DtoeeRoundRecord, DtoeeTokenRecord, GpuUtilRecord, HopRecord, LinkRecord, NodeRecord, RequestRecord, SpanRecord, SummaryRecord, TaskRecord, TaskSummaryRecord } from './types.js';

export const VERSION = '0.1.0';

export interface RunOutputs {
  requests: RequestRecord[];
  /** Streamed runs (RunOptions.spillDir): requests.csv's rows are these files, in order (then `requests` is empty); removed once written. */
  requestParts?: RequestPart[];
  summary: SummaryRecord[];
  spans: SpanRecord[];
  gpuUtil: GpuUtilRecord[];
  /** Per node and per link direction (topology), and per node visit (systems that route tasks; may be empty). */
  nodes?: NodeRecord[];
  links?: LinkRecord[];
  hops?: HopRecord[];
  /** Systems that mark exits (staged, dtoee): per task, and per system. */
  tasks?: TaskRecord[];
  taskSummary?: TaskSummaryRecord[];
  /** dtoee online / monitor (policies.dtoee): per-node rows over time, online rounds. */
  dtoeeNodes?: DtoeeNodeRecord[];
  dtoeeRounds?: DtoeeRoundRecord[];
  /** dtoee per-token tasks: one row per generated token. */
  dtoeeTokens?: DtoeeTokenRecord[];
  /** Everything for run.json (resolved scenario, seed, version, wall time, event count, provenance...). */
  runInfo: Record<string, unknown>;
}

export function writeRunOutputs(dir: string, out: RunOutputs): void {
  const marker = join(dir, 'run.json');
  if (existsSync(marker)) rmSync(marker); // the directory is incomplete until run.json is back
  if (out.requestParts) {
    const parts = out.requestParts;
    writeFileAtomicWith(join(dir, 'requests.csv'), (fd) => copyPartsTo(fd, REQUEST_COLUMNS.join(',') + '\n', parts));
    for (const p of parts) rmSync(p.file, { force: true });
  } else {
    writeFileAtomic(join(dir, 'requests.csv'), toCsv(out.requests, REQUEST_COLUMNS));
  }
  writeFileAtomic(join(dir, 'summary.csv'), toCsv(out.summary, SUMMARY_COLUMNS));
  writeFileAtomic(join(dir, 'timeline.csv'), toCsv(out.spans, SPAN_COLUMNS));
  writeFileAtomic(join(dir, 'gpu_util.csv'), toCsv(out.gpuUtil, GPU_UTIL_COLUMNS));
  if (out.nodes) writeFileAtomic(join(dir, 'nodes.csv'), toCsv(out.nodes, NODE_COLUMNS));
  if (out.links) writeFileAtomic(join(dir, 'links.csv'), toCsv(out.links, LINK_COLUMNS));
  if (out.hops && out.hops.length > 0) writeFileAtomic(join(dir, 'hops.csv'), toCsv(out.hops, HOP_COLUMNS));
  else if (existsSync(join(dir, 'hops.csv'))) rmSync(join(dir, 'hops.csv'));
  for (const [f, rows, cols] of [['tasks.csv', out.tasks, TASK_COLUMNS], ['task_summary.csv', out.taskSummary, TASK_SUMMARY_COLUMNS],
    ['dtoee_nodes.csv', out.dtoeeNodes, DTOEE_NODE_COLUMNS], ['dtoee_rounds.csv', out.dtoeeRounds, DTOEE_ROUND_COLUMNS], ['dtoee_tokens.csv', out.dtoeeTokens, DTOEE_TOKEN_COLUMNS]] as const) {
    if (rows && rows.length > 0) writeFileAtomic(join(dir, f), toCsv(rows as readonly object[], cols as readonly never[]));
    else if (existsSync(join(dir, f))) rmSync(join(dir, f));
  }
  writeFileAtomic(marker, JSON.stringify(out.runInfo, null, 2) + '\n');
}

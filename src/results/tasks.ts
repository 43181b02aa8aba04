/** Summary of the tasks of a system that marks exits (task_summary.csv). */
import type { PolicySpec } from '../scenario/types.js';
import { mean, quantileSorted, sortedCopy } from './stats.js';
import type { TaskRecord, TaskSummaryRecord } from './types.js';

export function taskSummary(system: string, tasks: readonly TaskRecord[], policies: PolicySpec): TaskSummaryRecord {
  const d = sortedCopy(tasks.map((t) => t.delay_ms));
  const judged = tasks.filter((t) => t.correct >= 0);
  const S = tasks.reduce((a, t) => Math.max(a, t.exit_stage), 0);
  const shares = Array.from({ length: S }, (_, s) => tasks.filter((t) => t.exit_stage === s + 1).length / tasks.length);
  return {
    system,
    policy: system === 'dtoee' ? policies.dtoee.policy : '',
    tasks: tasks.length,
    delay_mean_ms: mean(d),
    delay_p50_ms: quantileSorted(d, 0.5),
    delay_p99_ms: quantileSorted(d, 0.99),
    accuracy: judged.length > 0 ? judged.filter((t) => t.correct === 1).length / judged.length : NaN,
    exit_shares: shares.map((x) => x.toFixed(4)).join(';'),
  };
}

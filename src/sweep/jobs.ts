/** The default number of sweep worker threads; a module of its own so the CLI's option list loads no simulator (issue 15). */
import { availableParallelism } from 'node:os';

export function defaultJobs(): number {
  return Math.max(1, Math.min(2, availableParallelism()));
}

/**
 * Convergence of the distributed algorithm against the centralised optimum (docs/DTOEE.md
 * "Convergence"): the objective after every iteration of `DtoeeDistributed.run({ trace })`
 * beside `solveCentralised`'s objective of the same problem, as rows for convergence.csv
 * and its figure. Pure: no files, no simulator.
 */
import { DtoeeDistributed, type DistributedOptions } from './distributed.js';
import { solveCentralised, type CentralisedOptions } from './centralised.js';
import type { DtoProblemSpec } from './problem.js';

/** One row of convergence.csv. */
export interface ConvergenceRow {
  /** The thresholds every node started from (the distributed run's initialTau). */
  start_tau: number;
  /** 1-based iteration (one message per link each way). */
  iteration: number;
  /** 1-based outer (penalty) round the iteration belongs to. */
  round: number;
  /** Objective after the iteration, at the final penalty weight. */
  objective: number;
  centralised_objective: number;
  /** (objective - centralised) / centralised x 100. */
  gap_pct: number;
}

export const CONVERGENCE_COLUMNS = ['start_tau', 'iteration', 'round', 'objective', 'centralised_objective', 'gap_pct'] as const;

/**
 * Rows of one distributed run: `trace[i]` is the objective after iteration i + 1,
 * `roundIterations[k]` the iterations of round k + 1 (they sum to trace.length).
 */
export function convergenceRows(startTau: number, trace: readonly number[], roundIterations: readonly number[], centralisedObjective: number): ConvergenceRow[] {
  const total = roundIterations.reduce((a, b) => a + b, 0);
  if (total !== trace.length) throw new Error(`convergenceRows: rounds hold ${total} iterations but the trace has ${trace.length} (bug)`);
  const rows: ConvergenceRow[] = [];
  let round = 0, left = roundIterations[0] ?? 0;
  trace.forEach((objective, i) => {
    while (left === 0) left = roundIterations[++round];
    left--;
    rows.push({
      start_tau: startTau, iteration: i + 1, round: round + 1, objective, centralised_objective: centralisedObjective,
      gap_pct: ((objective - centralisedObjective) / centralisedObjective) * 100,
    });
  });
  return rows;
}

/**
 * The first iteration from which the gap stays within `pct` percent (|gap| <= pct for it and
 * every later iteration), or null when the last iteration is still outside.
 */
export function iterationsWithin(rows: readonly ConvergenceRow[], pct: number): number | null {
  let first: number | null = null;
  for (const r of rows) {
    if (Math.abs(r.gap_pct) <= pct) first ??= r.iteration;
    else first = null;
  }
  return first;
}

export interface ConvergenceRun {
  startTau: number;
  rows: ConvergenceRow[];
  iterations: number;
  messages: number;
  bytes: number;
  finalGapPct: number;
  /** Iterations until the gap stays within 1 % and 0.1 % (null: never). */
  within1Pct: number | null;
  within01Pct: number | null;
}

export interface ConvergenceResult {
  centralisedObjective: number;
  centralisedMeanDelayS: number;
  centralisedMeanAccuracy: number;
  runs: ConvergenceRun[];
}

/** Run the distributed algorithm from each start (with its trace) and the centralised solver once. */
export function measureConvergence(spec: DtoProblemSpec, starts: readonly number[], o: { distributed?: DistributedOptions; centralised?: CentralisedOptions } = {}): ConvergenceResult {
  const c = solveCentralised(spec, o.centralised);
  const Jc = c.evaluation.objective;
  const runs = starts.map((startTau) => {
    const r = new DtoeeDistributed(spec, { ...o.distributed, initialTau: startTau, trace: true }).run();
    const rows = convergenceRows(startTau, r.trace, r.roundIterations, Jc);
    return {
      startTau, rows, iterations: r.iterations, messages: r.messages, bytes: r.bytes,
      finalGapPct: ((r.evaluation.objective - Jc) / Jc) * 100,
      within1Pct: iterationsWithin(rows, 1), within01Pct: iterationsWithin(rows, 0.1),
    };
  });
  return { centralisedObjective: Jc, centralisedMeanDelayS: c.evaluation.meanDelayS, centralisedMeanAccuracy: c.evaluation.meanAccuracy, runs };
}

/** convergence.csv text (columns CONVERGENCE_COLUMNS, one row per start and iteration). */
export function convergenceCsv(result: ConvergenceResult): string {
  const lines = [CONVERGENCE_COLUMNS.join(',')];
  for (const run of result.runs) {
    for (const r of run.rows) lines.push([r.start_tau, r.iteration, r.round, r.objective.toPrecision(10), r.centralised_objective.toPrecision(10), r.gap_pct.toPrecision(6)].join(','));
  }
  return lines.join('\n') + '\n';
}

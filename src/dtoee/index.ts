/** DTO-EE's model, optimiser and baselines (docs/DTOEE.md): the folder's public API. */
export * from './profile.js';
export * from './problem.js';
export * from './distributed.js';
export * from './centralised.js';
export * from './baselines.js';
export { randomProblem, type RandomProblemOptions } from './random.js';
export { OnlineDtoee, type OnlineOptions } from './online.js';
export { LOAD_REPORT_BYTES, LoadBoard, NodeRound, NodeWindow, PolicyTape, roundTraffic, type NodeCounters, type Outgoing, type RoundProgress, type WindowMeasure } from './round.js';

import { DEFAULT_FIXED_THRESHOLD, type PolicyOptions } from './baselines.js';
import { MESSAGE_HEADER_BYTES } from './distributed.js';
import type { Problem } from './problem.js';

/**
 * The modelling choices in force for a problem and policy options, one line
 * each, marked [assumption] where they go beyond the paper's abstract: for
 * `describe` output and run.json.
 */
export function dtoeeAssumptions(P: Problem, o: PolicyOptions = {}): string[] {
  const pen = P.penalty, acc = P.accuracy;
  return [
    `exit profile ${P.profile.model}: ${P.profile.source === 'measured' ? 'measured' : '[assumption] not measured'} (${P.profile.confidence}); `
      + '[assumption] a stage\'s exit probability depends only on its own threshold',
    `[assumption] optimiser queue model ${P.sojourn === 'mm1' ? 'M/M/1' : 'M/D/1'} per node (the simulator simulates the real queue)`,
    acc.mode === 'weight'
      ? `objective: mean delay + beta (1 - mean accuracy), beta ${acc.beta} s`
      : `objective: mean delay + ${acc.weight} max(0, ${acc.floor} - mean accuracy)^2 (accuracy floor); `
        + '[assumption] the distributed multiplier uses the broadcast mean accuracy',
    `[assumption] exterior penalty above utilisation ${pen.utilisationCap}: weight ${pen.initialWeight} x ${pen.growth}^k over ${pen.rounds} outer rounds`,
    '[assumption] the result\'s return to the device is not in the optimiser\'s objective',
    `[assumption] algorithm messages: ${MESSAGE_HEADER_BYTES}-byte header + 8 bytes per number`,
    `[assumption] fixed threshold of the fixed-threshold baselines ${o.fixedThreshold ?? DEFAULT_FIXED_THRESHOLD}`,
  ];
}

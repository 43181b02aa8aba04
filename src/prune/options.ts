/**
 * `hatsim prune` options and their defaults: a light module (no ONNX Runtime, no plotting), so
 * the command's option list loads at start-up without the pruning code (issue 15).
 */
export const METHODS = ['comp', 'comp-notune', 'magnitude', 'random', 'layers'] as const;
export type Method = (typeof METHODS)[number];

export type CountMode = 'decoder' | 'all';

export interface PruneOptions {
  method: Method;
  /** Fraction of the counted parameters to remove, in (0, 1). */
  ratio: number;
  /** What the ratio counts: decoder-layer parameters (default) or all (embedding and LM head too, never pruned). */
  count: CountMode;
  /** comp: share of the budget spent on whole layers [assumption: 0.5]. */
  layerShare: number;
  /** comp: per-layer neuron ratio by layer score or uniform [assumption: score]. */
  neuronAllocation: 'score' | 'uniform';
  /** Most of one layer's FFN neurons that may be removed [assumption: 0.9]. */
  maxNeuronFraction: number;
  /** Ridge of the least squares, relative to mean diag(G) [assumption: 1e-2]. */
  ridge: number;
  /** Variance guard [assumption: scales in [0, 3], variance <= 1, 4 retries with ridge x10]. */
  scaleMin: number;
  scaleMax: number;
  maxScaleVariance: number;
  guardRetries: number;
  /** Least calibration tokens for the least squares [assumption: 64]. */
  minTokens: number;
  seed: number;
}

export const DEFAULT_OPTIONS: Omit<PruneOptions, 'method' | 'ratio'> = {
  count: 'decoder',
  layerShare: 0.5,
  neuronAllocation: 'score',
  maxNeuronFraction: 0.9,
  ridge: 1e-2,
  scaleMin: 0,
  scaleMax: 3,
  maxScaleVariance: 1,
  guardRetries: 4,
  minTokens: 64,
  seed: 1,
};


/**
 * S-UCB ("smooth UCB") per device over the continuous (pruning ratio, LoRA
 * rank) space, refined as it learns. Pure policy code (no simulator or
 * network imports): the live runner uses the same class. Our reconstruction
 * [assumption throughout, every constant an option]:
 *
 * - The space [ratioMin, ratioMax] x [rankMin, rankMax] is the root cell of a
 *   tree; leaves partition it.
 * - Selection at time t (this device's selections so far + 1): among leaves
 *   not known to be infeasible, the highest
 *     index = mean reward + exploration sqrt(2 ln t / n) + smoothness diam
 *   where n = the leaf's visits, diam = the larger normalised side of the cell
 *   (1 for the root, 0 for one grid point). An unvisited leaf has index +inf
 *   (first in tree order wins ties). The configuration played is a seeded
 *   uniform grid point of the cell (ratios on ratioStep, integer ranks).
 * - Feasibility: the caller's predicate (memory) is asked for the point; if it
 *   is infeasible, up to feasibilityTries more points, then the cell's
 *   cheapest corner (highest ratio, lowest rank) are tried; a cell with no
 *   feasible point found is marked infeasible and never selected again. An
 *   infeasible configuration is therefore never returned.
 * - Refinement: a leaf of depth d splits in two (along its wider normalised
 *   side, at the midpoint) once visited splitVisits x (d + 1) times; children
 *   start unvisited. The space is continuous up to its grid (ratioStep, one
 *   rank): a leaf holding one grid point is an arm and no longer splits;
 *   nor does a leaf past maxDepth.
 */
import type { Rng } from '../core/rng.js';
import { InputError } from '../core/errors.js';

export interface ConfigSpace {
  ratioMin: number;
  ratioMax: number;
  rankMin: number;
  rankMax: number;
  /** Ratios are rounded to multiples of this [assumption: 0.05]. */
  ratioStep: number;
}

export interface SucbOptions {
  exploration: number;
  smoothness: number;
  splitVisits: number;
  maxDepth: number;
  feasibilityTries: number;
}

/** [assumption] chosen on the synthetic test problem (rewards in [0, 1]), not on any scenario's outcome. */
export const DEFAULT_SUCB: SucbOptions = { exploration: 0.2, smoothness: 0.1, splitVisits: 2, maxDepth: 24, feasibilityTries: 4 };

export interface Choice {
  ratio: number;
  rank: number;
  /** The leaf played (pass back to update). */
  cell: number;
}

/** A cell: inclusive ranges of ratio-grid indices (ratio = ratioMin + i ratioStep) and of ranks. */
interface Cell {
  i0: number; i1: number; r0: number; r1: number;
  depth: number;
  n: number;
  sum: number;
  leaf: boolean;
  infeasible: boolean;
}

export function checkSpace(s: ConfigSpace): void {
  if (!(s.ratioMin >= 0 && s.ratioMax < 1 && s.ratioMin <= s.ratioMax)) {
    throw new InputError(`space: ratioMin ${s.ratioMin} .. ratioMax ${s.ratioMax} is outside its range: need 0 <= ratioMin <= ratioMax < 1`, 'space.ratioMax');
  }
  if (!(Number.isInteger(s.rankMin) && Number.isInteger(s.rankMax) && s.rankMin >= 1 && s.rankMin <= s.rankMax)) {
    throw new InputError(`space: rankMin ${s.rankMin} .. rankMax ${s.rankMax} is outside its range: need integers 1 <= rankMin <= rankMax`, 'space.rankMin');
  }
  if (!(s.ratioStep > 0)) throw new InputError(`space.ratioStep must be > 0, got ${s.ratioStep}`, 'space.ratioStep');
}

/** Number of grid ratios: ratioMin, ratioMin + step, ... <= ratioMax. */
function ratioCount(s: ConfigSpace): number {
  return Math.floor((s.ratioMax - s.ratioMin) / s.ratioStep + 1e-9) + 1;
}

function ratioAt(s: ConfigSpace, i: number): number {
  return Number((s.ratioMin + i * s.ratioStep).toFixed(10));
}

/** Round to the grid of the space: ratio to the nearest grid ratio, rank to an integer, both within bounds. */
export function snap(s: ConfigSpace, ratio: number, rank: number): { ratio: number; rank: number } {
  const i = Math.min(ratioCount(s) - 1, Math.max(0, Math.round((ratio - s.ratioMin) / s.ratioStep)));
  const r = Math.min(s.rankMax, Math.max(s.rankMin, Math.round(rank)));
  return { ratio: ratioAt(s, i), rank: r };
}

export type Feasible = (ratio: number, rank: number) => boolean;

export class SmoothUcb {
  private readonly cells: Cell[] = [];
  private readonly nRatios: number;
  private t = 0;

  constructor(readonly space: ConfigSpace, readonly opts: SucbOptions, private readonly rng: Rng) {
    checkSpace(space);
    this.nRatios = ratioCount(space);
    this.cells.push({ i0: 0, i1: this.nRatios - 1, r0: space.rankMin, r1: space.rankMax, depth: 0, n: 0, sum: 0, leaf: true, infeasible: false });
  }

  get selections(): number { return this.t; }
  get leafCount(): number { return this.cells.filter((c) => c.leaf).length; }

  /** Normalised widths of a cell (0 for a single grid value). */
  private widths(c: Cell): [number, number] {
    const sp = this.space;
    const wp = this.nRatios > 1 ? (c.i1 - c.i0) / (this.nRatios - 1) : 0;
    const wr = sp.rankMax > sp.rankMin ? (c.r1 - c.r0) / (sp.rankMax - sp.rankMin) : 0;
    return [wp, wr];
  }

  private index(c: Cell, t: number): number {
    if (c.n === 0) return Infinity;
    const [wp, wr] = this.widths(c);
    return c.sum / c.n + this.opts.exploration * Math.sqrt((2 * Math.log(t)) / c.n) + this.opts.smoothness * Math.max(wp, wr);
  }

  /** A feasible grid point of the cell, or null (the cell is then marked infeasible). */
  private pointIn(c: Cell, feasible: Feasible): { ratio: number; rank: number } | null {
    for (let k = 0; k <= this.opts.feasibilityTries; k++) {
      const i = c.i0 + this.rng.int(c.i1 - c.i0 + 1);
      const r = c.r0 + this.rng.int(c.r1 - c.r0 + 1);
      const q = { ratio: ratioAt(this.space, i), rank: r };
      if (feasible(q.ratio, q.rank)) return q;
    }
    // The cheapest corner: highest ratio, lowest rank.
    const corner = { ratio: ratioAt(this.space, c.i1), rank: c.r0 };
    return feasible(corner.ratio, corner.rank) ? corner : null;
  }

  /** Pick a configuration; null when no feasible configuration exists. */
  select(feasible: Feasible): Choice | null {
    const t = this.t + 1;
    for (;;) {
      let best = -1, bestIdx = -Infinity;
      for (let i = 0; i < this.cells.length; i++) {
        const c = this.cells[i];
        if (!c.leaf || c.infeasible) continue;
        const v = this.index(c, t);
        if (v > bestIdx) { bestIdx = v; best = i; }
      }
      if (best < 0) return null;
      const q = this.pointIn(this.cells[best], feasible);
      if (q === null) { this.cells[best].infeasible = true; continue; }
      this.t = t;
      return { ratio: q.ratio, rank: q.rank, cell: best };
    }
  }

  /** Record the reward of a choice; split the leaf once visited enough. */
  update(cell: number, reward: number): void {
    const c = this.cells[cell];
    if (c === undefined) throw new RangeError(`unknown cell ${cell}`);
    if (!Number.isFinite(reward)) throw new RangeError(`reward must be finite, got ${reward}`);
    c.n++; c.sum += reward;
    if (c.leaf && c.depth < this.opts.maxDepth && c.n >= this.opts.splitVisits * (c.depth + 1)) this.split(cell);
  }

  private split(k: number): void {
    const c = this.cells[k];
    const [wp, wr] = this.widths(c);
    const canP = c.i1 > c.i0, canR = c.r1 > c.r0;
    if (!canP && !canR) return;
    const alongP = canP && (!canR || wp >= wr);
    c.leaf = false;
    const child = (i0: number, i1: number, r0: number, r1: number): Cell => ({ i0, i1, r0, r1, depth: c.depth + 1, n: 0, sum: 0, leaf: true, infeasible: c.infeasible });
    if (alongP) {
      const m = Math.floor((c.i0 + c.i1) / 2);
      this.cells.push(child(c.i0, m, c.r0, c.r1), child(m + 1, c.i1, c.r0, c.r1));
    } else {
      const m = Math.floor((c.r0 + c.r1) / 2);
      this.cells.push(child(c.i0, c.i1, c.r0, m), child(c.i0, c.i1, m + 1, c.r1));
    }
  }
}

// --- reward --------------------------------------------------------------

export interface RewardWeights {
  loss: number;
  pruning: number;
  importance: number;
  time: number;
}

/** [assumption] equal-ish weights, loss first. */
export const DEFAULT_REWARD_WEIGHTS: RewardWeights = { loss: 0.4, pruning: 0.2, importance: 0.1, time: 0.3 };

export interface RewardInputs {
  /** This device's loss improvement this round. */
  lossImprovement: number;
  /** The largest loss improvement among this round's participants. */
  maxLossImprovement: number;
  /** This device's ratio / the target (final) ratio, capped at 1. */
  pruningProgress: number;
  /** Share of the update's importance kept, in [0, 1]. */
  importance: number;
  /** This device's round time and the fastest and slowest participants'. */
  timeS: number;
  minTimeS: number;
  maxTimeS: number;
}

/**
 * reward = w_loss dL/max dL + w_prune progress + w_imp importance
 *        + w_time (T_max - T_i)/(T_max - T_min)  (1 when all equal)
 * each term in [0, 1]; the reward in [0, sum of weights].
 */
export function fedspineReward(x: RewardInputs, w: RewardWeights): number {
  const loss = x.maxLossImprovement > 0 ? Math.max(0, x.lossImprovement) / x.maxLossImprovement : 0;
  const span = x.maxTimeS - x.minTimeS;
  const time = span > 0 ? (x.maxTimeS - x.timeS) / span : 1;
  const clamp = (v: number) => Math.min(1, Math.max(0, v));
  return w.loss * clamp(loss) + w.pruning * clamp(x.pruningProgress) + w.importance * clamp(x.importance) + w.time * clamp(time);
}

/**
 * Update importance kept by a (ratio, rank) choice [assumption]: structures
 * are removed least-important first, so removing the fraction p of them
 * removes p^importanceExponent of the importance mass; a rank-r update keeps
 * sqrt(r / rankMax) of the full-rank update's energy.
 */
export function updateImportance(ratio: number, rank: number, rankMax: number, importanceExponent = 2): number {
  return (1 - Math.pow(ratio, importanceExponent)) * Math.sqrt(rank / rankMax);
}

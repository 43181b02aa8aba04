/**
 * FedSpine results directory: rounds.csv, summary.csv, run.json (last, so its
 * presence marks a complete directory); each written atomically. Columns in
 * docs/OUTPUTS.md ("FedSpine runs").
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { toCsv } from '../results/csv.js';
import { VERSION } from '../results/write.js';
import { ROUND_COLUMNS, SUMMARY_COLUMNS, buildCostModels, type FedConfig, type FedResult } from './rounds.js';

/** Modelling choices users must see (run.json "assumptions"). */
export const FEDSPINE_ASSUMPTIONS: readonly string[] = [
  'our reconstruction of FedSpine (arXiv 2501.02438) from its abstract: every rule below is hatsim\'s model, not the paper\'s',
  'pruning: a ratio p removes round(p x heads) heads (whole KV groups) and p of the FFN channels in every layer; embedding and LM head kept',
  'training-step time = resolved forward of the unpruned model x (frozenStepFactor x frozen FLOP share + loraStepFactor x LoRA FLOP share)',
  'memory = pruned weights + stored activations (no checkpointing) + LoRA x loraBytesPerParam + reservedGiB, checked at the target configuration; a device whose current model does not fit prunes at once to the lowest grid ratio that fits',
  'pruning steps every pruning.stepsBetween local iterations raise the ratio by at most pruning.maxStep; a lower target is restored at once from the base model',
  'loss per round from the learning model (learning.ts) with parameters from the learning file; aggregation of zero-padded ranks is not simulated tensor by tensor',
  'reward = weighted mix of loss improvement, pruning progress, update importance and relative completion time; 0 for a dropped or late update',
  'hetlora ranks by relative step speed; the oracle plans once from idle-link times and the learning model; a late device stays busy until its upload ends',
  'the server learns of a dropout at once; availability is the same for every method (seeded per device)',
];

export function writeFedSpineOutputs(dir: string, cfg: FedConfig, result: FedResult, resolved: unknown): void {
  const marker = join(dir, 'run.json');
  if (existsSync(marker)) rmSync(marker);
  writeFileAtomic(join(dir, 'rounds.csv'), toCsv(result.rows, ROUND_COLUMNS));
  writeFileAtomic(join(dir, 'summary.csv'), toCsv(result.summaries, SUMMARY_COLUMNS));
  const costs = buildCostModels(cfg);
  const latency = [...new Map(cfg.devices.map((d, i) => [d.hardwareId, { hardware: d.hardwareId, fullForwardMs: costs[i].fullForwardMs, source: costs[i].latencySource }])).values()];
  const info = {
    tool: 'hatsim',
    version: VERSION,
    mode: 'simulation',
    kind: 'fedspine',
    seed: cfg.seed,
    scenario: resolved,
    devices: cfg.devices.map((d) => ({ name: d.name, hardware: d.hardwareId, memoryBytes: d.memoryBytes, dataSize: d.dataSize })),
    learning: cfg.learning,
    latency,
    assumptions: FEDSPINE_ASSUMPTIONS,
    wallMs: Math.round(result.wallMs),
  };
  writeFileAtomic(marker, JSON.stringify(info, null, 2) + '\n');
}

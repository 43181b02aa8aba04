/** FedSpine figures: a FedSpine results directory yields the four figure kinds, each a valid vega-lite spec. */
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileSpec, planFigures } from '../src/plot/index.js';
import { resolveFedSpine } from '../src/fedspine/scenario.js';
import { simulateFedSpine } from '../src/fedspine/rounds.js';
import { writeFedSpineOutputs } from '../src/fedspine/outputs.js';
import { SCENARIOS } from './helpers.js';

describe('FedSpine plots', () => {
  it('loss vs time, bytes per round, waiting, ratio and rank over rounds; specs compile without warnings', () => {
    const link = { uplinkMbps: 20, downlinkMbps: 50, latencyMs: 10 };
    const { config, parsed } = resolveFedSpine({
      kind: 'fedspine', model: 'roberta-base-sized', methods: ['fedspine', 'uniform'], training: { batch: 2, seqLen: 32 },
      rounds: { max: 6, localSteps: 4, targetLoss: 2 }, server: { uplinkMbps: 1000, downlinkMbps: 1000 },
      devices: [{ name: 'tx2', count: 2, hardware: 'jetson-tx2', link }, { name: 'agx', count: 1, hardware: 'jetson-agx-xavier-32gb', link }],
    }, 'plot test', SCENARIOS);
    const dir = mkdtempSync(join(tmpdir(), 'fedspine-plot-'));
    writeFedSpineOutputs(dir, config, simulateFedSpine(config), parsed);
    const plan = planFigures(dir);
    expect(plan.figures.map((f) => f.id)).toEqual(['fedspine-loss-time', 'fedspine-bytes-round', 'fedspine-wait', 'fedspine-ratio-rounds', 'fedspine-rank-rounds']);
    for (const f of plan.figures) {
      const { vega, warnings } = compileSpec(f.spec);
      expect(vega, f.id).toBeTruthy();
      expect(warnings, f.id).toEqual([]);
    }
    const loss = plan.figures[0].spec as { data: { values: { method: string; loss: number }[] } };
    expect(loss.data.values.filter((v) => v.method === 'uniform')).toHaveLength(6);
    expect(plan.tables[0].rows).toHaveLength(2);
  });
});

/** The shipped FedSpine scenario loads, states the published device mix, and overrides work like --set elsewhere. */
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { isFedSpineFile, loadFedSpineScenario } from '../src/fedspine/scenario.js';
import { ScenarioError } from '../src/scenario/load.js';
import { SCENARIOS } from './helpers.js';

const F80 = join(SCENARIOS, 'fedspine-80.yaml');

describe('scenarios/fedspine-80.yaml', () => {
  it('is a kind: fedspine file with 30 TX2, 40 Xavier NX and 10 AGX Xavier boards', () => {
    expect(isFedSpineFile(F80)).toBe(true);
    expect(isFedSpineFile(join(SCENARIOS, 'hat-testbed.yaml'))).toBe(false);
    const { config } = loadFedSpineScenario(F80);
    const count = (hw: string) => config.devices.filter((d) => d.hardwareId === hw).length;
    expect(count('jetson-tx2')).toBe(30);
    expect(count('jetson-xavier-nx')).toBe(40);
    expect(count('jetson-agx-xavier-32gb')).toBe(10);
    expect(config.methods).toEqual(['fedspine', 'hetlora', 'uniform', 'fixed', 'oracle']);
    expect(config.learning.lossInit).toBe(2.5);
    expect(new Set(config.devices.map((d) => d.dataSize)).size).toBeGreaterThan(40); // lognormal data sizes
  });
  it('--set overrides apply and are validated', () => {
    expect(loadFedSpineScenario(F80, ['rounds.deadlineS=20']).config.rounds.deadlineS).toBe(20);
    expect(() => loadFedSpineScenario(F80, ['space.rankMax=0'])).toThrow(ScenarioError);
    expect(() => loadFedSpineScenario(F80, ['space.nope=1'])).toThrow(/nope/);
  });
});

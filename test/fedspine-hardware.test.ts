/** FedSpine's Jetson profiles: REFERENCE §3 data-sheet figures, labelled as estimates. */
import { describe, expect, it } from 'vitest';
import { getHardware } from '../src/compute/hardware.js';

describe('FedSpine hardware profiles', () => {
  it('Jetson TX2 and AGX Xavier 32GB carry the REFERENCE §3 figures', () => {
    const tx2 = getHardware('jetson-tx2');
    expect(tx2.memBandwidthBps).toBe(59.7e9);
    expect(tx2.peakFlops).toBeCloseTo(1.3e12, -6);
    expect(tx2.memoryBytes).toBe(8 * 1024 ** 3);
    const agx = getHardware('jetson-agx-xavier-32gb');
    expect(agx.memBandwidthBps).toBe(136.5e9);
    expect(agx.peakFlops).toBeCloseTo(11e12, -6);
    expect(agx.memoryBytes).toBe(32 * 1024 ** 3);
    for (const hw of [tx2, agx]) {
      expect(hw.source).toBe('data sheet');
      expect(hw.notes).toMatch(/assumption/);
    }
    // The TX2 is the slowest Jetson of the list in both roofline limits.
    const nx = getHardware('jetson-xavier-nx');
    expect(tx2.peakFlops * tx2.computeEfficiency).toBeLessThan(nx.peakFlops * nx.computeEfficiency);
  });
});

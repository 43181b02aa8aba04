import { defineConfig } from 'vitest/config';

/**
 * Two projects. `unit` runs files in parallel (2 workers on this 2-core
 * machine). `timing` holds tests that measure real compute (calibration
 * against fresh ONNX Runtime timings, live runs): they run after `unit`
 * has finished and one file at a time, so other tests do not distort
 * their measurements.
 */
const TIMING = ['test/calibrate-quick.test.ts', 'test/**/*.timing.test.ts'];

export default defineConfig({
  test: {
    reporters: ['default', './test/support/plain-summary.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    projects: [
      { extends: true, test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: TIMING, maxWorkers: 2, sequence: { groupOrder: 0 } } },
      { extends: true, test: { name: 'timing', include: TIMING, fileParallelism: false, sequence: { groupOrder: 1 } } },
    ],
  },
});

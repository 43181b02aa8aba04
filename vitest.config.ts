import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', './test/support/plain-summary.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Two cores: run test files in two workers; the calibration tests time real ONNX runs.
    maxWorkers: 2,
  },
});

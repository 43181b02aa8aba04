/**
 * Errors caused by the user's input (scenario, calibration file, CLI flag,
 * network message). The CLI prints `message` without a stack trace and exits 2.
 * Anything else is a bug and keeps its stack.
 */
export class InputError extends Error {
  constructor(message: string, readonly field?: string) {
    super(message);
    this.name = 'InputError';
  }
}

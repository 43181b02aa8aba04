/** steps.csv: per-step timings of a live run (compute passes, frames sent and received, cloud steps). */
import { closeSync, openSync, writeSync } from 'node:fs';
import { toCsv } from '../results/csv.js';

export interface StepRow {
  system: string;
  /** device-<i> or cloud */
  role: string;
  /** Request index on its device; -1 for cloud steps (which serve several). */
  request: number;
  /** compute | compute-bg | send | recv | step */
  kind: string;
  label: string;
  tokens: number;
  ctx: number;
  /** ms since the system run's shared start, on this process's clock. */
  start_ms: number;
  end_ms: number;
  /** Wall time of the real ONNX work (ms). */
  real_ms: number;
  /** Emulated (padded-to) latency, 0 when not emulating. */
  target_ms: number;
  /** The simulator's latency model for this pass or step (ms; 0 for frames): live - sim per op is the host's dispatch cost (calibrate --from-live). */
  sim_ms: number;
  /** Payload bytes (frames) */
  bytes: number;
  /** Whole frame on the wire (64-byte header + payload). */
  frame_bytes: number;
}

export const STEP_COLUMNS: readonly (keyof StepRow)[] = [
  'system', 'role', 'request', 'kind', 'label', 'tokens', 'ctx', 'start_ms', 'end_ms', 'real_ms', 'target_ms', 'sim_ms', 'bytes', 'frame_bytes',
];

/** Appends rows in batches (bounded memory). */
export class StepLog {
  private fd: number;
  private buf: StepRow[] = [];

  constructor(path: string) {
    this.fd = openSync(path, 'w');
    writeSync(this.fd, STEP_COLUMNS.join(',') + '\n');
  }

  row(r: StepRow): void {
    if (this.fd < 0) return;
    this.buf.push(r);
    if (this.buf.length >= 500) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0 || this.fd < 0) return;
    const csv = toCsv(this.buf, STEP_COLUMNS);
    writeSync(this.fd, csv.slice(csv.indexOf('\n') + 1));
    this.buf = [];
  }

  close(): void {
    this.flush();
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

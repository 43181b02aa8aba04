/**
 * Where one system's finished request records go during a simulation (issue 15: memory
 * constant in the number of finished requests).
 *
 * A record is added when its request finishes, in finish order, with its request id (ids
 * number a system's requests device by device, request by request: the row order of
 * requests.csv). Two stores:
 *  - MemoryRequests keeps the records (the library API, tests, sweeps);
 *  - SpilledRequests writes each record at once as a fixed-width binary row (its numeric
 *    fields as float64, REQUEST_COLUMNS order) to a spill file, and keeps nothing per
 *    request. `finish` then reads the spill back in id windows of WINDOW_ROWS rows (one
 *    sequential pass over the file per window) and writes the CSV rows in id order to a part
 *    file, feeding the same SummaryAccumulator the in-memory summary uses in the same order,
 *    so requests.csv and summary.csv are byte-identical to the in-memory path.
 * Peak memory of the spilled path: the write buffer, one window (WINDOW_ROWS x 200 bytes),
 * and the accumulator's two sorted columns (TTFT and TBT: 16 bytes per request, needed for
 * exact quantiles and means over sorted values) during `finish` only.
 */
import { closeSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { csvLine } from './csv.js';
import { SummaryAccumulator, type SystemTotals } from './summary.js';
import { REQUEST_COLUMNS, type RequestRecord, type SummaryRecord } from './types.js';
import type { SystemId } from '../scenario/types.js';

export interface RequestStore {
  /** A finished request's record (any order; `id` fixes its row). */
  add(id: number, r: RequestRecord): void;
}

/** Records kept in memory, returned in id order. */
export class MemoryRequests implements RequestStore {
  private readonly slots: (RequestRecord | undefined)[];
  constructor(total: number) { this.slots = new Array<RequestRecord | undefined>(total); }
  add(id: number, r: RequestRecord): void { this.slots[id] = r; }
  records(): RequestRecord[] {
    const out: RequestRecord[] = [];
    for (const r of this.slots) if (r !== undefined) out.push(r);
    return out;
  }
}

/** The numeric columns of a record, in REQUEST_COLUMNS order (system and device are text). */
const NUMERIC = REQUEST_COLUMNS.filter((c) => c !== 'system' && c !== 'device');
/** Floats per spilled row: id, device index, then the numeric columns. */
const ROW = 2 + NUMERIC.length;
const WRITE_ROWS = 4096;
/** Rows per read-back window (about 50 MB). */
export const WINDOW_ROWS = 1 << 18;
const READ_ROWS = 8192;

/** A system's requests.csv rows (without header), written by SpilledRequests.finish. */
export interface RequestPart { file: string; rows: number }

export class SpilledRequests implements RequestStore {
  private readonly fd: number;
  private readonly buf = new Float64Array(WRITE_ROWS * ROW);
  private buffered = 0;
  private rows = 0;
  private readonly deviceIndex = new Map<string, number>();

  /**
   * `spillFile`: the binary spill (removed by `finish`); `deviceNames`: every device name
   * (records carry the name; the spill stores its index); `total`: requests of the system
   * (finished or not): ids are 0..total-1.
   */
  constructor(
    private readonly spillFile: string, private readonly system: SystemId, private readonly deviceNames: readonly string[], private readonly total: number,
    /** Rows per read-back window (tests make it small). */
    private readonly windowRows = WINDOW_ROWS,
  ) {
    deviceNames.forEach((n, i) => { if (!this.deviceIndex.has(n)) this.deviceIndex.set(n, i); });
    this.fd = openSync(spillFile, 'w');
  }

  add(id: number, r: RequestRecord): void {
    const b = this.buf;
    let o = this.buffered * ROW;
    b[o++] = id;
    b[o++] = this.deviceIndex.get(r.device)!;
    for (let k = 0; k < NUMERIC.length; k++) b[o++] = r[NUMERIC[k]] as number;
    this.rows++;
    if (++this.buffered === WRITE_ROWS) this.flush();
  }

  /** Drop the spill (a run that failed). */
  abort(): void {
    try { closeSync(this.fd); } catch { /* already closed */ }
    rmSync(this.spillFile, { force: true });
  }

  private flush(): void {
    if (this.buffered === 0) return;
    const bytes = new Uint8Array(this.buf.buffer, 0, this.buffered * ROW * 8);
    let off = 0;
    while (off < bytes.length) off += writeSync(this.fd, bytes, off, bytes.length - off);
    this.buffered = 0;
  }

  /**
   * Write the rows in id order to `partFile` (CSV, no header) and compute the summary from
   * them; removes the spill. Memory: one window and the summary's sorted columns.
   */
  finish(partFile: string, totals: SystemTotals): { part: RequestPart; summary: SummaryRecord } {
    this.flush();
    closeSync(this.fd);
    const acc = new SummaryAccumulator();
    const out = openSync(partFile, 'w');
    const rfd = openSync(this.spillFile, 'r');
    try {
      const win = Math.min(this.windowRows, Math.max(1, this.total));
      const slots = new Float64Array(win * ROW);
      const present = new Uint8Array(win);
      const chunk = new Float64Array(READ_ROWS * ROW);
      const chunkBytes = new Uint8Array(chunk.buffer);
      const pending: string[] = [];
      let pendingChars = 0;
      const emit = (line: string): void => {
        pending.push(line); pendingChars += line.length;
        if (pendingChars > 1 << 20) { writeSync(out, pending.join('')); pending.length = 0; pendingChars = 0; }
      };
      for (let lo = 0; lo < this.total; lo += win) {
        const hi = lo + win;
        present.fill(0);
        let pos = 0;
        for (;;) {
          const n = readFully(rfd, chunkBytes, pos);
          if (n === 0) break;
          pos += n;
          const rowsRead = n / (ROW * 8);
          for (let i = 0; i < rowsRead; i++) {
            const id = chunk[i * ROW];
            if (id < lo || id >= hi) continue;
            const s = id - lo;
            present[s] = 1;
            slots.set(chunk.subarray(i * ROW, (i + 1) * ROW), s * ROW);
          }
          if (n < chunkBytes.length) break;
        }
        for (let s = 0; s < win; s++) {
          if (present[s] === 0) continue;
          const r = this.recordAt(slots, s * ROW);
          acc.add(r);
          emit(csvLine(r, REQUEST_COLUMNS) + '\n');
        }
      }
      if (pending.length > 0) writeSync(out, pending.join(''));
    } finally {
      closeSync(rfd);
      closeSync(out);
      rmSync(this.spillFile, { force: true });
    }
    return { part: { file: partFile, rows: this.rows }, summary: acc.finish(totals) };
  }

  private recordAt(slots: Float64Array, o: number): RequestRecord {
    const r = { system: this.system, device: this.deviceNames[slots[o + 1]] } as Record<string, unknown>;
    for (let k = 0; k < NUMERIC.length; k++) r[NUMERIC[k]] = slots[o + 2 + k];
    return r as unknown as RequestRecord; // every column set above (text two, numeric the rest)
  }
}

/** Read up to buf.length bytes at `pos` (fewer only at the end of the file). */
function readFully(fd: number, buf: Uint8Array, pos: number): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, pos + got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Write `header`, then each part file's bytes, to `fd` (requests.csv of a streamed run). */
export function copyPartsTo(fd: number, header: string, parts: readonly RequestPart[]): void {
  writeSync(fd, header);
  const buf = new Uint8Array(1 << 20);
  for (const p of parts) {
    const src = openSync(p.file, 'r');
    try {
      let pos = 0;
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, pos);
        if (n === 0) break;
        pos += n;
        let off = 0;
        while (off < n) off += writeSync(fd, buf, off, n - off);
      }
    } finally { closeSync(src); }
  }
}

/**
 * Device availability for federated rounds: when each device is online.
 * Models [assumption, options]:
 * - always: every device online all the time;
 * - markov: alternating online / offline periods, exponential with means
 *   meanOnlineS / meanOfflineS; the first state is online with probability
 *   meanOnline / (meanOnline + meanOffline); one seeded stream per device
 *   (`fedspine/availability/<d>`), independent of the method, so every method
 *   sees the same availability;
 * - trace: a CSV file of online intervals, header `device,start_s,end_s`
 *   (device = name or 0-based index; a device absent from the file is never
 *   online). A bad file is an InputError naming the line and the field.
 */
import { readFileSync } from 'node:fs';
import { InputError } from '../core/errors.js';
import type { RngStreams } from '../core/rng.js';

export interface Availability {
  onlineAt(device: number, timeS: number): boolean;
  /** First time >= timeS at which the device is offline (Infinity if never). */
  nextOffline(device: number, timeS: number): number;
  /** First time >= timeS at which the device is online (Infinity if never). */
  nextOnline(device: number, timeS: number): number;
}

export type AvailabilitySpec =
  | { kind: 'always' }
  | { kind: 'markov'; meanOnlineS: number; meanOfflineS: number }
  | { kind: 'trace'; file: string };

/** Sorted, disjoint online intervals per device. */
class IntervalAvailability implements Availability {
  constructor(private readonly intervals: (d: number, untilS: number) => readonly [number, number][]) {}
  onlineAt(d: number, t: number): boolean {
    for (const [a, b] of this.intervals(d, t)) { if (t < a) return false; if (t < b) return true; }
    return false;
  }
  nextOffline(d: number, t: number): number {
    for (const [a, b] of this.intervals(d, t)) { if (t < a) return t; if (t < b) return b; }
    return t;
  }
  nextOnline(d: number, t: number): number {
    const list = this.intervals(d, t + 1e7);
    for (const [a, b] of list) { if (t < a) return a; if (t < b) return t; }
    return Infinity;
  }
}

export function alwaysAvailable(): Availability {
  return { onlineAt: () => true, nextOffline: () => Infinity, nextOnline: (_d, t) => t };
}

export function markovAvailability(devices: number, meanOnlineS: number, meanOfflineS: number, streams: RngStreams): Availability {
  const lists: [number, number][][] = [];
  const states: { online: boolean; t: number }[] = [];
  for (let d = 0; d < devices; d++) {
    const rng = streams.get(`fedspine/availability/${d}`);
    states.push({ online: rng.uniform() < meanOnlineS / (meanOnlineS + meanOfflineS), t: 0 });
    lists.push([]);
  }
  const extend = (d: number, untilS: number): readonly [number, number][] => {
    const rng = streams.get(`fedspine/availability/${d}`);
    const s = states[d];
    while (s.t <= untilS) {
      const dur = rng.exponential(1 / (s.online ? meanOnlineS : meanOfflineS));
      if (s.online) lists[d].push([s.t, s.t + dur]);
      s.t += dur; s.online = !s.online;
    }
    // The loop ends past untilS, so the period holding untilS is complete.
    return lists[d];
  };
  return new IntervalAvailability(extend);
}

/** Parse an availability trace (see the header comment); `names` maps device names to indices. */
export function parseAvailabilityTrace(text: string, file: string, names: readonly string[]): Availability {
  const lines = text.split(/\r?\n/);
  const header = lines[0]?.trim().split(',').map((s) => s.trim());
  if (!header || header.join(',') !== 'device,start_s,end_s') {
    throw new InputError(`${file}:1: header must be "device,start_s,end_s" (got "${lines[0] ?? ''}")`, 'availability.file');
  }
  const byDevice: [number, number][][] = names.map(() => []);
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const cells = line.split(',').map((s) => s.trim());
    if (cells.length !== 3) throw new InputError(`${file}:${i + 1}: expected 3 fields device,start_s,end_s, got ${cells.length}`, 'availability.file');
    const [dev, a, b] = cells;
    let d = names.indexOf(dev);
    if (d < 0 && /^\d+$/.test(dev)) d = Number(dev);
    if (d < 0 || d >= names.length) throw new InputError(`${file}:${i + 1}: field device: "${dev}" is not a device name or an index in [0, ${names.length - 1}]`, 'availability.file');
    const start = Number(a), end = Number(b);
    if (a === '' || !Number.isFinite(start) || start < 0) throw new InputError(`${file}:${i + 1}: field start_s: "${a}" is not a number >= 0`, 'availability.file');
    if (b === '' || !Number.isFinite(end) || end <= start) throw new InputError(`${file}:${i + 1}: field end_s: "${b}" must be a number > start_s (${start})`, 'availability.file');
    byDevice[d].push([start, end]);
  }
  for (const list of byDevice) {
    list.sort((x, y) => x[0] - y[0]);
    // Merge overlaps.
    for (let k = list.length - 1; k > 0; k--) if (list[k][0] <= list[k - 1][1]) { list[k - 1][1] = Math.max(list[k - 1][1], list[k][1]); list.splice(k, 1); }
  }
  return new IntervalAvailability((d) => byDevice[d]);
}

export function loadAvailability(spec: AvailabilitySpec, names: readonly string[], streams: RngStreams): Availability {
  switch (spec.kind) {
    case 'always': return alwaysAvailable();
    case 'markov': return markovAvailability(names.length, spec.meanOnlineS, spec.meanOfflineS, streams);
    case 'trace': {
      let text: string;
      try { text = readFileSync(spec.file, 'utf8'); } catch { throw new InputError(`availability.file: cannot read ${spec.file}; give an existing CSV file (device,start_s,end_s)`, 'availability.file'); }
      return parseAvailabilityTrace(text, spec.file, names);
    }
    default: {
      const never: never = spec;
      throw new InputError(`availability.kind: unknown ${JSON.stringify(never)}; allowed: always, markov, trace`, 'availability.kind');
    }
  }
}

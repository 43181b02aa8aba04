/** Helpers for comparing results directories file by file (sweep determinism, Parquet, Slurm tests). */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

/** Every file under `root` (relative paths, sorted). */
export function listFiles(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d).sort()) {
      const p = join(d, e);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(root, p));
    }
  };
  walk(root);
  return out;
}

/** run.json without what legitimately differs between identical runs: wall-clock times. */
function withoutWallTimes(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutWallTimes);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k]) => !/^wall/i.test(k)).map(([k, x]) => [k, withoutWallTimes(x)]));
  }
  return v;
}

/** The points of a sweep directory as path -> content: each file's bytes; run.json without wall times. */
export function pointFiles(sweepDir: string): Map<string, Buffer | string> {
  const out = new Map<string, Buffer | string>();
  for (const f of listFiles(join(sweepDir, 'points'))) {
    const p = join(sweepDir, 'points', f);
    out.set(f, f.endsWith('run.json') ? JSON.stringify(withoutWallTimes(JSON.parse(readFileSync(p, 'utf8')))) : readFileSync(p));
  }
  return out;
}

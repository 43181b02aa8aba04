/**
 * `mergeSweeps`: combine shard directories of one sweep (same scenario file,
 * grid, base overrides) into one sweep directory, as if the sweep had run
 * unsharded: points/ copied, sweep.csv rebuilt in point order, sweep.json
 * with shard null. Duplicated points are an error; missing points are an
 * error unless allowMissing (a later unsharded `hatsim sweep` on the merged
 * directory then runs only the missing points).
 */
import { cpSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { csvFileToParquet } from '../results/parquet.js';
import { InputError } from '../core/errors.js';
import { expandGrid } from './grid.js';
import {
  manifestDifferences, pointDir, readManifest, readPointStamp, sweepCsv, type SweepManifest,
} from './files.js';

export interface MergeOptions {
  /** Merge even when some points are missing (they are listed in the result). */
  allowMissing?: boolean;
}

export interface MergeResult {
  out: string;
  sweepCsv: string;
  /** The sweep directories merged (shard subdirectories expanded). */
  sources: string[];
  /** Points merged. */
  points: number;
  /** Ids of the grid points no source has finished. */
  missing: string[];
}

const SHARD_DIR = /^shard-(\d+)-of-(\d+)$/;

/**
 * A sweep directory itself, or the shard-i-of-N directories inside it. The
 * output directory is never a source of itself: given as a source (merging
 * into the shards' parent again), only its shard subdirectories are used.
 */
function expandSource(dir: string, outAbs: string): string[] {
  const abs = resolve(dir);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new InputError(`merge: ${dir} is not a directory`);
  if (abs !== outAbs && existsSync(join(abs, 'sweep.json'))) return [abs];
  const shards = readdirSync(abs)
    .map((name) => ({ name, m: SHARD_DIR.exec(name) }))
    .filter((x) => x.m && existsSync(join(abs, x.name, 'sweep.json')))
    .sort((a, b) => Number(a.m?.[1]) - Number(b.m?.[1]))
    .map((x) => join(abs, x.name));
  if (shards.length === 0) {
    if (abs === outAbs) throw new InputError(`merge: ${dir} is also --out and holds no shard-i-of-N subdirectories to merge; give another --out`);
    throw new InputError(`merge: ${dir} is not a sweep directory (no sweep.json, no shard-i-of-N subdirectories)`);
  }
  return shards;
}

export function mergeSweeps(dirs: readonly string[], out: string, opts: MergeOptions = {}): MergeResult {
  if (dirs.length === 0) throw new InputError('merge: give at least one sweep directory');
  const outAbs = resolve(out);
  const sources = [...new Set(dirs.flatMap((d) => expandSource(d, outAbs)))];
  const manifests = sources.map((s) => readManifest(s) as SweepManifest);
  const ref = manifests[0];
  manifests.forEach((m, i) => {
    const diff = manifestDifferences(ref, m, true);
    if (diff.length > 0) throw new InputError(`merge: ${sources[i]} is not from the same sweep as ${sources[0]}: ${diff.join('; ')}`);
  });

  const all = expandGrid(ref.grid);
  if (all.length !== ref.totalPoints) throw new InputError(`merge: ${sources[0]}/sweep.json lists ${ref.totalPoints} points but its grid has ${all.length}`);
  const byId = new Map(all.map((p) => [p.id, p]));
  const owner = new Map<number, string>();
  const problems: string[] = [];
  manifests.forEach((m, i) => {
    for (const info of m.points) {
      const p = byId.get(info.id);
      if (!p || p.index !== info.index) { problems.push(`${sources[i]}: point ${info.id} is not in the grid`); continue; }
      const stamp = readPointStamp(pointDir(sources[i], info.id));
      if (!stamp) continue; // not finished there
      if (JSON.stringify(stamp.baseOverrides) !== JSON.stringify(ref.baseOverrides) || stamp.scenarioSha256 !== ref.scenarioSha256) {
        problems.push(`${sources[i]}: point ${info.id} was computed with other settings (run.json differs from sweep.json)`);
        continue;
      }
      const prev = owner.get(p.index);
      if (prev !== undefined) { problems.push(`point ${info.id} is in both ${prev} and ${sources[i]}`); continue; }
      owner.set(p.index, sources[i]);
    }
  });
  if (problems.length > 0) throw new InputError(`merge: ${problems.length === 1 ? problems[0] : `\n  - ${problems.join('\n  - ')}`}`);

  const missing = all.filter((p) => !owner.has(p.index)).map((p) => p.id);
  if (missing.length > 0 && !opts.allowMissing) {
    const shown = missing.slice(0, 20).join(', ') + (missing.length > 20 ? `, ... (${missing.length - 20} more)` : '');
    throw new InputError(`merge: ${missing.length} of ${all.length} points are missing (not finished in any of the directories): ${shown}. `
      + 'Finish or rerun the shards that own them (re-running a shard command resumes it), or pass --allow-missing.');
  }

  const previous = readManifest(outAbs);
  if (previous) {
    const diff = manifestDifferences(ref, previous, true);
    if (diff.length > 0) throw new InputError(`merge: --out ${out} holds a different sweep: ${diff.join('; ')}. Use a new --out or delete it.`);
  }

  // Copy the points (each into a temp dir, then renamed into place) and collect their summaries.
  const summaries = new Map<number, string>();
  for (const p of all) {
    const src = owner.get(p.index);
    if (src === undefined) continue;
    const from = pointDir(src, p.id);
    const to = pointDir(outAbs, p.id);
    const tmp = pointDir(outAbs, `.${p.id}.${process.pid}.tmp`);
    rmSync(tmp, { recursive: true, force: true });
    cpSync(from, tmp, { recursive: true });
    rmSync(to, { recursive: true, force: true });
    renameSync(tmp, to);
    summaries.set(p.index, readFileSync(join(to, 'summary.csv'), 'utf8'));
  }

  const grid = (vals: unknown[]): Record<string, unknown> => Object.fromEntries(ref.grid.map((a, k) => [a.path, vals[k]]));
  const manifest: SweepManifest & { mergedFrom: string[] } = {
    ...ref,
    shard: null,
    points: all.map((p) => ({ index: p.index, id: p.id, grid: grid(p.values) })),
    mergedFrom: sources,
  };
  writeFileAtomic(join(outAbs, 'sweep.json'), JSON.stringify(manifest, null, 2) + '\n');
  writeFileAtomic(join(outAbs, 'sweep.csv'), sweepCsv(ref.grid, manifest.points, summaries));
  // Parquet (issue 15): when every source has sweep.parquet, so has the merge (points' files were copied above).
  if (sources.every((s) => existsSync(join(s, 'sweep.parquet')))) {
    csvFileToParquet(join(outAbs, 'sweep.csv'), join(outAbs, 'sweep.parquet'));
  }
  return { out: outAbs, sweepCsv: join(outAbs, 'sweep.csv'), sources, points: summaries.size, missing };
}

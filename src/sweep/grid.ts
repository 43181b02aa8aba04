/**
 * Sweep grids: `--grid path=v1,v2,...` axes, their cartesian product in a
 * deterministic order (first axis outermost), readable point ids, and the
 * `--shard i/N` selection.
 *
 * Values are kept as the text the user typed (so a point's override is exactly
 * `path=text`, parsed by the scenario loader like a `--set` value) and as the
 * parsed YAML value (for sweep.csv and run.json).
 */
import { InputError } from '../core/errors.js';
import { checkSchemaPath, parseOverride, parsePath, type PathSegment } from '../scenario/overrides.js';
import { ScenarioSchema } from '../scenario/schema.js';

export interface GridAxis {
  /**
   * Dotted path, e.g. `devices.0.link.uplinkMbps` (also the sweep.csv column name). For a
   * linked axis (several `paths`), its name: `boards` in `--grid 'boards:a.0.x+a.1.x=...'`,
   * else the paths joined by `+`.
   */
  path: string;
  /** The values as typed, e.g. ['10', '30', '100']. */
  values: string[];
  /**
   * Linked axis: the scenario fields every value sets (2 or more). A value is either one
   * YAML value (set on every path) or a list whose length divides `paths.length`, repeated
   * in order over the paths (`axisOverrides`). Absent for a one-path axis.
   */
  paths?: string[];
}

export interface GridPoint {
  /** 0-based position in the full grid (first axis outermost). */
  index: number;
  /** Readable, stable directory name, e.g. `p003_uplinkMbps-10_gpus-4`. */
  id: string;
  /** Value text per axis, in axis order. */
  texts: string[];
  /** Parsed (YAML) value per axis, in axis order. */
  values: unknown[];
  /** The point's scenario overrides, `path=text` per axis. */
  overrides: string[];
}

export interface Shard {
  /** 1-based shard number. */
  index: number;
  count: number;
}

/** Split `v1,v2,[a,b],{k: 1, j: 2},"x,y"` on the commas that are not inside brackets, braces or quotes. */
export function splitValues(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === quote) quote = undefined;
      continue;
    }
    if (c === '"' || c === "'") quote = c;
    else if (c === '[' || c === '{') depth++;
    else if (c === ']' || c === '}') depth = Math.max(0, depth - 1);
    else if (c === ',' && depth === 0) {
      out.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  out.push(text.slice(start).trim());
  return out;
}

function dotted(path: readonly PathSegment[]): string {
  return path.map(String).join('.');
}

/**
 * Parse one `--grid path=v1,v2,...` argument. The path must name a scenario
 * field (checked against the schema, with the loader's "did you mean" hint);
 * values are checked later, when each point's scenario is loaded.
 */
export function parseGridArg(text: string): GridAxis {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new InputError(`--grid ${text}: expected path=v1,v2,..., e.g. --grid devices.0.link.uplinkMbps=10,20,40`);
  // Linked axis: `[name:]path1+path2+...=v1,v2` sets every path from one value.
  const lhs = text.slice(0, eq);
  const named = /^\s*([A-Za-z][A-Za-z0-9_-]*)\s*:(.*)$/.exec(lhs);
  const pathTexts = (named ? named[2] : lhs).split('+');
  if (named && pathTexts.length < 2) throw new InputError(`--grid ${text}: a name (${named[1]}:) is for a linked axis of two or more paths joined by +, e.g. --grid 'bw:links.0.mbps+links.1.mbps=50,100'`, named[1]);
  const paths = pathTexts.map((pt) => {
    let segments: PathSegment[];
    try {
      segments = parsePath(pt);
    } catch (e) {
      if (e instanceof InputError) throw new InputError(e.message.replace(/^--set/, '--grid'), e.field);
      throw e;
    }
    const path = dotted(segments);
    const bad = checkSchemaPath(ScenarioSchema, segments);
    if (bad) throw new InputError(`--grid ${text}: unknown path ${path}: ${bad}`, path);
    return path;
  });
  if (new Set(paths).size !== paths.length) throw new InputError(`--grid ${text}: a path is listed twice in the linked axis`, paths.join('+'));
  const path = named ? named[1] : paths.join('+');
  const values = splitValues(text.slice(eq + 1));
  if (values.length === 0 || values.some((v) => v === '')) {
    throw new InputError(`--grid ${text}: empty value in the list; give comma-separated values, e.g. ${path}=10,20,40`, path);
  }
  const seen = new Set<string>();
  for (const v of values) {
    if (seen.has(v)) throw new InputError(`--grid ${text}: value "${v}" is listed twice`, path);
    seen.add(v);
  }
  if (paths.length === 1) return { path, values };
  const axis: GridAxis = { path, values, paths };
  for (const v of values) axisOverrides(axis, v); // a list of the wrong length fails here
  return axis;
}

/** The `--grid` text of an axis (its name, paths and values), as parseGridArg reads it. */
export function axisSpec(a: GridAxis): string {
  const lhs = a.paths === undefined ? a.path : `${a.path === a.paths.join('+') ? '' : `${a.path}:`}${a.paths.join('+')}`;
  return `${lhs}=${a.values.join(',')}`;
}

/**
 * The `path=value` overrides one value of an axis stands for: one for a plain axis; for a
 * linked axis one per path: a single value on every path, or a list of m entries (m dividing
 * the number of paths) repeated in order, entry i % m on path i (`[a, b, c]` over 9 paths:
 * a, b, c, a, b, c, a, b, c; a list of exactly one entry per path sets each path its own).
 */
export function axisOverrides(a: GridAxis, text: string): string[] {
  if (a.paths === undefined) return [`${a.path}=${text}`];
  const value = parseOverride(`${a.paths[0]}=${text}`).value;
  if (!Array.isArray(value)) return a.paths.map((p) => `${p}=${text}`);
  const k = a.paths.length;
  if (value.length === 0 || k % value.length !== 0) {
    throw new InputError(`--grid ${a.path}=${text}: the list has ${value.length} entries but the axis links ${k} paths (${a.paths.join(', ')}); give one value for all of them, or a list whose length divides ${k} (repeated in order)`, a.path);
  }
  return a.paths.map((p, i) => `${p}=${JSON.stringify(value[i % value.length])}`);
}

/** Parse all `--grid` arguments; a path given twice is an error. */
export function parseGrid(args: readonly string[]): GridAxis[] {
  if (args.length === 0) throw new InputError('--grid: give at least one grid axis, e.g. --grid devices.0.link.uplinkMbps=10,20,40');
  const axes = args.map(parseGridArg);
  const paths = new Set<string>();
  for (const a of axes) {
    for (const p of [a.path, ...(a.paths ?? [])]) {
      if (paths.has(p)) throw new InputError(`--grid: path ${p} is given twice; list all its values in one --grid`, p);
      paths.add(p);
    }
  }
  return axes;
}

/**
 * Short labels for the axes in point ids: the last path segment that is not
 * an index (`uplinkMbps`), extended to the left until the labels are unique
 * (`0.count`, `1.count`).
 */
export function axisLabels(axes: readonly GridAxis[]): string[] {
  const segs = axes.map((a) => a.path.split('.'));
  const take = segs.map((s) => {
    let n = 1;
    while (n < s.length && /^\d+$/.test(s[s.length - n])) n++;
    return n;
  });
  const label = (i: number): string => segs[i].slice(segs[i].length - take[i]).join('.');
  for (let guard = 0; guard < 64; guard++) {
    const labels = axes.map((_, i) => label(i));
    let changed = false;
    for (let i = 0; i < labels.length; i++) {
      if (labels.filter((l) => l === labels[i]).length > 1 && take[i] < segs[i].length) { take[i]++; changed = true; }
    }
    if (!changed) break;
  }
  return axes.map((_, i) => sanitize(label(i)));
}

/** Keep letters, digits, `.`, `+` and `-`; anything else becomes `_` (collapsed). */
export function sanitize(text: string, maxChars = 32): string {
  const s = text.replace(/[^A-Za-z0-9.+-]+/g, '_').replace(/^_+|_+$/g, '').slice(0, maxChars);
  return s === '' ? 'x' : s;
}

/** Every point of the grid, first axis outermost (the last axis varies fastest). */
export function expandGrid(axes: readonly GridAxis[]): GridPoint[] {
  const parsed = axes.map((a) => a.values.map((v) => parseOverride(`${a.paths?.[0] ?? a.path}=${v}`).value));
  const total = axes.reduce((n, a) => n * a.values.length, 1);
  const width = Math.max(3, String(Math.max(0, total - 1)).length);
  const labels = axisLabels(axes);
  const points: GridPoint[] = [];
  for (let index = 0; index < total; index++) {
    // Mixed-radix digits of index, last axis least significant.
    const pick = new Array<number>(axes.length);
    let rest = index;
    for (let k = axes.length - 1; k >= 0; k--) {
      pick[k] = rest % axes[k].values.length;
      rest = Math.floor(rest / axes[k].values.length);
    }
    const texts = axes.map((a, k) => a.values[pick[k]]);
    const parts = texts.map((t, k) => `${labels[k]}-${sanitize(t, 24)}`);
    points.push({
      index,
      id: `p${String(index).padStart(width, '0')}_${parts.join('_')}`.slice(0, 160),
      texts,
      values: parsed.map((vals, k) => vals[pick[k]]),
      overrides: axes.flatMap((a, k) => axisOverrides(a, texts[k])),
    });
  }
  return points;
}

/** Parse `--shard i/N` (1-based i). */
export function parseShard(text: string): Shard {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(text);
  if (!m) throw new InputError(`--shard ${text}: expected i/N with 1 <= i <= N, e.g. --shard 2/4 (or --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT)`, 'shard');
  const index = Number(m[1]);
  const count = Number(m[2]);
  if (count < 1 || index < 1 || index > count) {
    throw new InputError(`--shard ${text}: the shard number must be between 1 and the shard count (got ${index} of ${count}); Slurm array ids must start at 1 (--array=1-N)`, 'shard');
  }
  return { index, count };
}

/** Does point `index` belong to the shard? (index % N === i-1). */
export function inShard(index: number, shard: Shard | null | undefined): boolean {
  return !shard || index % shard.count === shard.index - 1;
}

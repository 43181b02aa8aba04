/**
 * `--set path=value` overrides applied to a raw (not yet validated) scenario
 * object, plus the "did you mean" helper used by all scenario error messages.
 *
 * Syntax: `a.b.c=value`, array elements by index `devices.0.link.uplinkMbps=10`
 * (`devices[0].link.uplinkMbps=10` is accepted too). The value is parsed as a
 * YAML scalar or flow collection: `10` is a number, `true` a boolean,
 * `llama2-7b` a string, `[hat, cloud]` a list, `{kind: fixed, tokens: 64}` a
 * mapping, `"10"` the string "10". A path must exist in the scenario schema,
 * otherwise the override is rejected with an error naming it.
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { InputError } from '../core/errors.js';

export type PathSegment = string | number;

export interface Override {
  /** The override as typed, e.g. `devices.0.link.uplinkMbps=10`. */
  text: string;
  path: PathSegment[];
  value: unknown;
}

/** Levenshtein edit distance (insert, delete, substitute; cost 1 each). */
export function levenshtein(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  let prev = new Array<number>(b.length + 1);
  let cur = new Array<number>(b.length + 1);
  for (let j = 0; j <= b.length; j++) prev[j] = j;
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a.charCodeAt(i - 1) === b.charCodeAt(j - 1) ? 0 : 1;
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
    }
    [prev, cur] = [cur, prev];
  }
  return prev[b.length];
}

/** The closest candidate when it is close enough to be a plausible typo, else undefined. */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  const lw = word.toLowerCase();
  for (const c of candidates) {
    const d = c.toLowerCase() === lw ? 0 : levenshtein(lw, c.toLowerCase());
    if (d < bestDist) { bestDist = d; best = c; }
  }
  if (best === undefined) return undefined;
  const limit = Math.max(2, Math.floor(word.length / 3));
  return bestDist <= limit ? best : undefined;
}

/** `devices[1].link.uplinkMbps` from ['devices', 1, 'link', 'uplinkMbps']. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out === '' ? '(root)' : out;
}

/** Split `devices.0.link.uplinkMbps` or `devices[0].link.uplinkMbps` into segments. */
export function parsePath(text: string): PathSegment[] {
  const normalized = text.trim().replace(/\[(\d+)\]/g, '.$1');
  if (normalized === '') throw new InputError(`--set: empty path in "${text}"`);
  return normalized.split('.').map((seg) => {
    if (seg === '') throw new InputError(`--set ${text}: empty path segment (use dots between names, e.g. devices.0.link.uplinkMbps)`);
    return /^\d+$/.test(seg) ? Number(seg) : seg;
  });
}

/** Parse one `path=value` override (value as YAML). */
export function parseOverride(text: string): Override {
  const eq = text.indexOf('=');
  if (eq <= 0) throw new InputError(`--set ${text}: expected path=value, e.g. devices.0.link.uplinkMbps=10`);
  const pathText = text.slice(0, eq);
  const valueText = text.slice(eq + 1);
  let value: unknown;
  if (valueText.trim() === '') {
    value = '';
  } else {
    try {
      value = parseYaml(valueText);
    } catch (err) {
      const msg = err instanceof Error ? err.message.split('\n')[0] : String(err);
      throw new InputError(`--set ${text}: cannot parse value "${valueText}" as YAML: ${msg}`);
    }
  }
  return { text, path: parsePath(pathText), value };
}

// --- schema walking -------------------------------------------------------

/** Schemas reachable through wrappers (default, optional, ...) and unions. */
function unwrap(schema: z.ZodType): z.ZodType[] {
  if (schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault || schema instanceof z.ZodOptional
    || schema instanceof z.ZodNullable || schema instanceof z.ZodNonOptional) {
    return unwrap(schema.unwrap() as z.ZodType);
  }
  if (schema instanceof z.ZodPipe) return unwrap(schema.in as z.ZodType);
  if (schema instanceof z.ZodUnion) return (schema.options as readonly z.ZodType[]).flatMap((o) => unwrap(o));
  return [schema];
}

/**
 * Check that `path` names a field of `root`. Returns undefined when it does,
 * else a message naming the first segment that does not exist.
 */
export function checkSchemaPath(root: z.ZodType, path: readonly PathSegment[]): string | undefined {
  let current: z.ZodType[] = unwrap(root);
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const where = i === 0 ? 'the scenario' : formatPath(path.slice(0, i));
    const next: z.ZodType[] = [];
    const keys = new Set<string>();
    let isList = false;
    for (const s of current) {
      if (s instanceof z.ZodObject) {
        const shape = s.shape as Record<string, z.ZodType>;
        for (const k of Object.keys(shape)) keys.add(k);
        if (typeof seg === 'string' && Object.prototype.hasOwnProperty.call(shape, seg)) next.push(...unwrap(shape[seg]));
      } else if (s instanceof z.ZodArray) {
        isList = true;
        if (typeof seg === 'number') next.push(...unwrap(s.element as z.ZodType));
      } else if (s instanceof z.ZodRecord || s instanceof z.ZodAny || s instanceof z.ZodUnknown) {
        return undefined; // free-form below this point
      }
    }
    if (next.length === 0) {
      if (isList && keys.size === 0) return `${where} is a list: use a numeric index instead of "${String(seg)}"`;
      if (keys.size === 0) return `${where} is a single value and has no field "${String(seg)}"`;
      const hint = typeof seg === 'string' ? didYouMean(seg, [...keys]) : undefined;
      return `${where} has no field "${String(seg)}"${hint ? ` (did you mean "${hint}"?)` : ''}; fields: ${[...keys].join(', ')}`;
    }
    current = next;
  }
  return undefined;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Set `value` at `path` inside `target`, creating missing mappings/lists on the way. */
export function setAtPath(target: Record<string, unknown>, path: readonly PathSegment[], value: unknown, label: string): void {
  let node: unknown = target;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    const last = i === path.length - 1;
    const here = formatPath(path.slice(0, i));
    if (typeof seg === 'number') {
      if (!Array.isArray(node)) throw new InputError(`--set ${label}: ${here} is not a list, cannot index it with ${seg}`);
      if (seg > node.length) throw new InputError(`--set ${label}: index ${seg} is out of range: ${here} has ${node.length} entries (use index ${node.length} to append one)`);
      if (last) { node[seg] = value; return; }
      if (node[seg] === undefined || node[seg] === null) node[seg] = typeof path[i + 1] === 'number' ? [] : {};
      node = node[seg];
    } else {
      if (!isPlainObject(node)) throw new InputError(`--set ${label}: ${here} is not a mapping, cannot set "${seg}" inside it`);
      if (last) { node[seg] = value; return; }
      if (node[seg] === undefined || node[seg] === null) node[seg] = typeof path[i + 1] === 'number' ? [] : {};
      node = node[seg];
    }
  }
}

/**
 * Apply `--set` overrides in order to a raw scenario object (mutated in place).
 * Each path is checked against `schema` first. Returns the parsed overrides.
 */
export function applyOverrides(target: Record<string, unknown>, overrides: readonly string[], schema: z.ZodType): Override[] {
  const parsed: Override[] = [];
  const problems: string[] = [];
  for (const text of overrides) {
    try {
      const ov = parseOverride(text);
      const bad = checkSchemaPath(schema, ov.path);
      if (bad) throw new InputError(`--set ${text}: unknown path ${formatPath(ov.path)}: ${bad}`, formatPath(ov.path));
      setAtPath(target, ov.path, ov.value, text);
      parsed.push(ov);
    } catch (err) {
      if (err instanceof InputError) problems.push(err.message);
      else throw err;
    }
  }
  if (problems.length === 1) throw new InputError(problems[0]);
  if (problems.length > 1) throw new InputError(`${problems.length} bad --set overrides:\n  - ${problems.join('\n  - ')}`);
  return parsed;
}

/**
 * Calibration files (`hatsim-calibration` v1, docs/calibration-format.md):
 * loading, validation and the piecewise-linear latency models they hold.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { InputError } from '../core/errors.js';
import { COMPONENT_IDS, type ComponentId } from '../model/types.js';
import type { BatchShape, ComponentLatencyModel } from './types.js';

export const CALIBRATION_FORMAT = 'hatsim-calibration';
export const CALIBRATION_VERSION = 1;
export const CALIBRATION_FILE_NAME = 'model.json';

const COEF = 'a finite number >= 0';
const coef = z.number({ error: COEF }).min(0, { error: COEF });
const nonEmpty = (what: string) => z.string({ error: what }).min(1, { error: what });
const count = (what: string) => z.number({ error: what }).int({ error: what }).min(0, { error: what });

const pieceSchema = z.strictObject(
  {
    maxTokens: z
      .number({ error: 'an integer >= 1, or null for the last piece' })
      .int({ error: 'an integer >= 1, or null for the last piece' })
      .min(1, { error: 'an integer >= 1, or null for the last piece' })
      .nullable(),
    c0Ms: coef,
    c1MsPerToken: coef,
    c2MsPerTokenCtx: coef,
    c3MsPerCtx: coef,
    c4MsPerSeq: coef.optional(),
    c5MsPerTokenSq: coef.optional(),
  },
  { error: 'an object with maxTokens, c0Ms, c1MsPerToken, c2MsPerTokenCtx, c3MsPerCtx and optional c4MsPerSeq, c5MsPerTokenSq' },
);

const pct = z.number({ error: 'a finite number (percent)' });

const fitSchema = z.looseObject(
  {
    samples: count('an integer >= 0'),
    r2: z.number({ error: 'a finite number' }),
    heldOutSamples: count('an integer >= 0'),
    heldOutMedianAbsPctErr: pct.min(0, { error: 'a finite number >= 0 (percent)' }),
    heldOutP90AbsPctErr: pct.min(0, { error: 'a finite number >= 0 (percent)' }),
    statistic: z.enum(['median', 'p10'], { error: '"median" or "p10"' }).optional(),
  },
  { error: 'an object with samples, r2, heldOutSamples, heldOutMedianAbsPctErr, heldOutP90AbsPctErr' },
);

const componentSchema = z.strictObject(
  {
    source: z.enum(['measured', 'imported'], { error: '"measured" or "imported" (estimates are never written to files)' }),
    pieces: z
      .array(pieceSchema, { error: 'a non-empty array of pieces' })
      .min(1, { error: 'a non-empty array of pieces' }),
    fit: fitSchema.optional(),
    samplesFile: z.string({ error: 'a file name (string)' }).optional(),
  },
  { error: 'an object with source, pieces and optional fit, samplesFile' },
);

const metaSchema = z.looseObject(
  {
    createdAt: nonEmpty('an ISO-8601 date string'),
    tool: nonEmpty('a non-empty string'),
    ortVersion: z.string({ error: 'a string or null' }).nullable().optional(),
    executionProvider: z.string({ error: 'a string or null' }).nullable().optional(),
    threads: z.number({ error: 'an integer >= 1 or null' }).int({ error: 'an integer >= 1 or null' }).min(1, { error: 'an integer >= 1 or null' }).nullable().optional(),
    cpuModel: z.string({ error: 'a string or null' }).nullable().optional(),
    gpuModel: z.string({ error: 'a string or null' }).nullable().optional(),
    loadAvg1m: z.number({ error: 'a finite number >= 0 or null' }).min(0, { error: 'a finite number >= 0 or null' }).nullable().optional(),
    notes: z.string({ error: 'a string' }).optional(),
  },
  { error: 'an object (createdAt, tool, ...)' },
);

const COMPONENTS_ALLOWED = `an object whose keys are among ${COMPONENT_IDS.join(', ')}`;

const calibrationSchema = z.strictObject(
  {
    format: z.literal(CALIBRATION_FORMAT, { error: `"${CALIBRATION_FORMAT}"` }),
    version: z.literal(CALIBRATION_VERSION, { error: String(CALIBRATION_VERSION) }),
    hardwareId: nonEmpty('a non-empty hardware id string'),
    modelId: nonEmpty('a non-empty model id string'),
    latencyUnit: z.literal('ms', { error: '"ms"' }),
    meta: metaSchema,
    components: z.strictObject(
      {
        embedding: componentSchema.optional(),
        decoderLayer: componentSchema.optional(),
        adapter: componentSchema.optional(),
        lmHead: componentSchema.optional(),
      },
      { error: COMPONENTS_ALLOWED },
    ),
    layerScaling: z
      .array(
        z.strictObject(
          {
            layers: z.number({ error: 'an integer >= 1' }).int({ error: 'an integer >= 1' }).min(1, { error: 'an integer >= 1' }),
            deviationPct: pct,
          },
          { error: 'an object with layers and deviationPct' },
        ),
        { error: 'an array of { layers, deviationPct }' },
      )
      .optional(),
  },
  { error: 'an object with format, version, hardwareId, modelId, latencyUnit, meta, components and optional layerScaling' },
);

export type LinearPiece = z.infer<typeof pieceSchema>;
export type CalibrationFit = z.infer<typeof fitSchema>;
export type CalibrationComponent = z.infer<typeof componentSchema>;
export type CalibrationMeta = z.infer<typeof metaSchema>;
export type CalibrationFile = z.infer<typeof calibrationSchema>;

type PathKey = PropertyKey;

function jsonPath(path: readonly PathKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(root)' : out;
}

function valueAt(root: unknown, path: readonly PathKey[]): unknown {
  let cur: unknown = root;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[key];
  }
  return cur;
}

function showValue(value: unknown): string {
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value === undefined) return 'undefined';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    text = String(value);
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

interface Problem {
  path: readonly PathKey[];
  text: string;
}

function problemText(root: unknown, path: readonly PathKey[], allowed: string): string {
  const where = jsonPath(path);
  const parent = valueAt(root, path.slice(0, -1));
  const isMissing =
    path.length > 0 &&
    parent !== null &&
    typeof parent === 'object' &&
    !Object.prototype.hasOwnProperty.call(parent, path[path.length - 1]);
  if (isMissing) return `${where} is missing; expected ${allowed}`;
  return `${where} = ${showValue(valueAt(root, path))} is invalid; expected ${allowed}`;
}

function fail(filePath: string, problems: Problem[]): never {
  const first = problems[0];
  const shown = problems.slice(0, 5).map((p) => p.text);
  const more = problems.length > 5 ? `\n  (and ${problems.length - 5} more problems)` : '';
  throw new InputError(
    `invalid calibration file ${filePath}: ${shown.join('\n  ')}${more}`,
    first ? jsonPath(first.path) : undefined,
  );
}

/** Checks that go beyond the schema: piece ordering. */
function checkPieces(file: CalibrationFile, root: unknown): Problem[] {
  const problems: Problem[] = [];
  for (const id of COMPONENT_IDS) {
    const comp = file.components[id];
    if (!comp) continue;
    const pieces = comp.pieces;
    let prev = 0;
    for (let i = 0; i < pieces.length; i++) {
      const path = ['components', id, 'pieces', i, 'maxTokens'];
      const maxTokens = pieces[i].maxTokens;
      const isLast = i === pieces.length - 1;
      if (isLast && maxTokens !== null) {
        problems.push({ path, text: problemText(root, path, 'null (the last piece covers all larger token counts)') });
      } else if (!isLast) {
        if (maxTokens === null) {
          problems.push({ path, text: problemText(root, path, `an integer > ${prev} (only the last piece may have maxTokens null)`) });
        } else if (maxTokens <= prev) {
          problems.push({ path, text: problemText(root, path, `an integer > ${prev} (pieces ordered by increasing maxTokens)`) });
        } else {
          prev = maxTokens;
        }
      }
    }
  }
  return problems;
}

/**
 * Validate an in-memory calibration object (e.g. before the profiler writes
 * it). `filePath` is used in error messages. Throws InputError naming the
 * JSON path of the bad field, its value and what is allowed.
 */
export function validateCalibration(obj: unknown, filePath: string): CalibrationFile {
  const result = calibrationSchema.safeParse(obj);
  if (!result.success) {
    const problems: Problem[] = [];
    for (const issue of result.error.issues) {
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const path = [...issue.path, key];
          // issue.message is the enclosing object's description, listing its allowed fields.
          problems.push({ path, text: `${jsonPath(path)} is not an allowed field; expected ${issue.message}` });
        }
      } else {
        problems.push({ path: issue.path, text: problemText(obj, issue.path, issue.message) });
      }
    }
    fail(filePath, problems);
  }
  const file = result.data;
  const pieceProblems = checkPieces(file, obj);
  if (pieceProblems.length > 0) fail(filePath, pieceProblems);
  return file;
}

export interface CalibrationExpectation {
  hardwareId?: string;
  modelId?: string;
}

/** Read, parse and validate a calibration file; optionally check its hardware and model ids. */
export function loadCalibration(filePath: string, expect: CalibrationExpectation = {}): CalibrationFile {
  let text: string;
  try {
    text = readFileSync(filePath, 'utf8');
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new InputError(`cannot read calibration file ${filePath}: ${reason}`);
  }
  let obj: unknown;
  try {
    obj = JSON.parse(text) as unknown;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new InputError(`invalid calibration file ${filePath}: not valid JSON (${reason})`);
  }
  const file = validateCalibration(obj, filePath);
  if (expect.hardwareId !== undefined && file.hardwareId !== expect.hardwareId) {
    throw new InputError(
      `invalid calibration file ${filePath}: hardwareId = ${JSON.stringify(file.hardwareId)} does not match; ` +
        `expected ${JSON.stringify(expect.hardwareId)} (files live at <calibrationDir>/<hardwareId>/<modelId>/${CALIBRATION_FILE_NAME})`,
      'hardwareId',
    );
  }
  if (expect.modelId !== undefined && file.modelId !== expect.modelId) {
    throw new InputError(
      `invalid calibration file ${filePath}: modelId = ${JSON.stringify(file.modelId)} does not match; ` +
        `expected ${JSON.stringify(expect.modelId)} (files live at <calibrationDir>/<hardwareId>/<modelId>/${CALIBRATION_FILE_NAME})`,
      'modelId',
    );
  }
  return file;
}

/** Where the calibration file for (hardware, model) would live. */
export function calibrationPath(calibrationDir: string, hardwareId: string, modelId: string): string {
  return join(calibrationDir, hardwareId, modelId, CALIBRATION_FILE_NAME);
}

/** Path of the calibration file for (hardware, model) if it exists, else null. */
export function findCalibration(calibrationDir: string, hardwareId: string, modelId: string): string | null {
  const path = calibrationPath(calibrationDir, hardwareId, modelId);
  return existsSync(path) ? path : null;
}

/**
 * Piecewise-linear latency (ms): the first piece whose maxTokens is null or
 * >= shape.tokens, evaluated as
 *   c0 + c1*tokens + c2*tokCtx + c3*ctx + c4*(seqs - 1) + c5*tokSq.
 */
export function evalPieces(pieces: readonly LinearPiece[], shape: BatchShape): number {
  const n = pieces.length;
  let i = 0;
  while (i < n - 1) {
    const maxTokens = pieces[i].maxTokens;
    if (maxTokens === null || maxTokens >= shape.tokens) break;
    i++;
  }
  const p = pieces[i];
  return (
    p.c0Ms +
    p.c1MsPerToken * shape.tokens +
    p.c2MsPerTokenCtx * shape.tokCtx +
    p.c3MsPerCtx * shape.ctx +
    (p.c4MsPerSeq ?? 0) * (shape.seqs - 1) +
    (p.c5MsPerTokenSq ?? 0) * shape.tokSq
  );
}

/** The latency model of one component of a validated calibration file. */
export function calibratedComponent(
  file: CalibrationFile,
  component: ComponentId,
  filePath: string,
): ComponentLatencyModel {
  const comp = file.components[component];
  if (!comp) {
    throw new InputError(`calibration file ${filePath} has no component "${component}"`, `components.${component}`);
  }
  // Flatten into typed arrays so batchMs stays allocation-free and branch-light.
  const n = comp.pieces.length;
  const maxTokens = new Float64Array(n);
  const c0 = new Float64Array(n);
  const c1 = new Float64Array(n);
  const c2 = new Float64Array(n);
  const c3 = new Float64Array(n);
  const c4 = new Float64Array(n);
  const c5 = new Float64Array(n);
  comp.pieces.forEach((p, i) => {
    maxTokens[i] = p.maxTokens === null ? Infinity : p.maxTokens;
    c0[i] = p.c0Ms;
    c1[i] = p.c1MsPerToken;
    c2[i] = p.c2MsPerTokenCtx;
    c3[i] = p.c3MsPerCtx;
    c4[i] = p.c4MsPerSeq ?? 0;
    c5[i] = p.c5MsPerTokenSq ?? 0;
  });
  const last = n - 1;
  return {
    component,
    source: comp.source,
    origin: filePath,
    batchMs(shape: BatchShape): number {
      const tokens = shape.tokens;
      let i = 0;
      while (i < last && maxTokens[i] < tokens) i++;
      return c0[i] + c1[i] * tokens + c2[i] * shape.tokCtx + c3[i] * shape.ctx + c4[i] * (shape.seqs - 1) + c5[i] * shape.tokSq;
    },
  };
}

/**
 * Golden files: every shipped scenario's requests.csv and summary.csv, byte for byte.
 *
 * A change to the core must leave these unchanged unless the model itself changes on
 * purpose; then regenerate with
 *
 *   UPDATE_GOLDEN=1 npx vitest run test/golden.test.ts
 *
 * and say in the commit what moved and why. Small scenarios keep their whole CSVs in
 * test/golden/<name>/ (readable diffs); large ones keep a SHA-256 of each file in
 * test/golden/hashes.json (FedSpine scenarios: rounds.csv and their summary). Scenarios that read
 * ../shared data are skipped when it is absent.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadScenario } from '../src/scenario/load.js';
import { runScenario } from '../src/sim/run.js';
import { runOutputs } from '../src/sim/outputs.js';
import { toCsv } from '../src/results/csv.js';
import { REQUEST_COLUMNS, SUMMARY_COLUMNS } from '../src/results/types.js';
import { REPO, SCENARIOS } from './helpers.js';
import { isFedSpineFile, loadFedSpineScenario } from '../src/fedspine/scenario.js';
import { ROUND_COLUMNS, SUMMARY_COLUMNS as FED_SUMMARY_COLUMNS, simulateFedSpine } from '../src/fedspine/rounds.js';

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const GOLDEN = join(REPO, 'test', 'golden');
const HASHES = join(GOLDEN, 'hashes.json');
/** Scenarios whose whole CSVs are committed (small enough to read in a diff). */
const FULL = new Set(['tiny-local', 'live-tiny']);

function sha(text: string): string { return createHash('sha256').update(text).digest('hex'); }

function outputsOf(file: string): { requests: string; summary: string } {
  const path = join(SCENARIOS, file);
  if (isFedSpineFile(path)) {
    // FedSpine scenarios: rounds.csv stands where requests.csv does.
    const f = simulateFedSpine(loadFedSpineScenario(path).config);
    return { requests: toCsv(f.rows, ROUND_COLUMNS), summary: toCsv(f.summaries, FED_SUMMARY_COLUMNS) };
  }
  const r = runOutputs(runScenario(loadScenario(path)));
  return { requests: toCsv(r.requests, REQUEST_COLUMNS), summary: toCsv(r.summary, SUMMARY_COLUMNS) };
}

function needsShared(file: string): boolean {
  return readFileSync(join(SCENARIOS, file), 'utf8').includes('shared/data');
}

const files = readdirSync(SCENARIOS).filter((f) => f.endsWith('.yaml')).sort();
const hashes: Record<string, { requests: string; summary: string }> = existsSync(HASHES) ? JSON.parse(readFileSync(HASHES, 'utf8')) : {};

describe('golden results of every shipped scenario', () => {
  for (const file of files) {
    const name = file.replace(/\.yaml$/, '');
    const absent = needsShared(file) && !existsSync(join(REPO, '..', 'shared', 'data'));
    it.skipIf(absent)(`${file}: requests.csv and summary.csv unchanged`, () => {
      const out = outputsOf(file);
      const h = { requests: sha(out.requests), summary: sha(out.summary) };
      if (UPDATE) {
        hashes[name] = h;
        writeFileSync(HASHES, JSON.stringify(Object.fromEntries(Object.entries(hashes).sort()), null, 2) + '\n');
        if (FULL.has(name)) {
          mkdirSync(join(GOLDEN, name), { recursive: true });
          writeFileSync(join(GOLDEN, name, 'requests.csv'), out.requests);
          writeFileSync(join(GOLDEN, name, 'summary.csv'), out.summary);
        }
        return;
      }
      if (FULL.has(name)) {
        expect(out.summary).toBe(readFileSync(join(GOLDEN, name, 'summary.csv'), 'utf8'));
        expect(out.requests).toBe(readFileSync(join(GOLDEN, name, 'requests.csv'), 'utf8'));
      }
      expect(hashes[name], `no golden hash for ${name}: run with UPDATE_GOLDEN=1`).toBeDefined();
      expect(h.summary, `${file}: summary.csv changed`).toBe(hashes[name].summary);
      expect(h.requests, `${file}: requests.csv changed`).toBe(hashes[name].requests);
    });
  }
});

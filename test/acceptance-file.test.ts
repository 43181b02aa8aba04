/**
 * A measured acceptance file (policies.hat.acceptanceFile / policies.sd.acceptanceFile,
 * docs/ACCEPTANCE.md) in the simulator: equal rates reproduce the i.i.d. model draw for
 * draw; measured rates give the expected tokens per round; bad files name the field.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { toCsv } from '../src/results/csv.js';
import { REQUEST_COLUMNS } from '../src/results/types.js';
import { loadScenario } from '../src/scenario/load.js';
import { runScenario } from '../src/sim/run.js';
import { SCENARIOS } from './helpers.js';

const FILE = join(SCENARIOS, 'hat-brown-small.yaml');
const dir = mkdtempSync(join(tmpdir(), 'hatsim-acc-'));
function accFile(name: string, rates: unknown[]): string {
  const p = join(dir, name);
  writeFileSync(p, JSON.stringify({ format: 'hatsim-acceptance/1', model: 'brown-small', greedy: { positions: rates.map((rate, i) => ({ position: i + 1, rate })) } }));
  return p;
}

describe('measured acceptance files in the simulator', () => {
  it('a file whose every position has rate a gives exactly the i.i.d. results for a', () => {
    const f = accFile('flat.json', [0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]);
    const a = runScenario(loadScenario(FILE, ['policies.hat.acceptanceFile.mode=none', 'policies.hat.acceptance=0.7', 'workload.requestsPerDevice=5']));
    const b = runScenario(loadScenario(FILE, [`policies.hat.acceptanceFile={"path":${JSON.stringify(f)},"mode":"greedy"}`, 'workload.requestsPerDevice=5']));
    expect(toCsv(b.systems[0].requests, REQUEST_COLUMNS)).toBe(toCsv(a.systems[0].requests, REQUEST_COLUMNS));
  });

  it('the shipped measurement: tokens per round = 1 + sum over i of the product of the first i rates (gamma 4)', () => {
    const s = loadScenario(FILE, ['workload.requestsPerDevice=200']);
    const rates = s.policies.hat.acceptanceRates!;
    expect(rates.length).toBe(8);
    let expected = 1, p = 1;
    for (let i = 0; i < 4; i++) { p *= rates[i]; expected += p; }
    const run = runScenario(s).systems[0];
    let rounds = 0, accepted = 0;
    for (const r of run.requests) { rounds += r.rounds; accepted += r.accepted_tokens; }
    const perRound = 1 + accepted / rounds;
    // Rounds near the end of an output are cut short; the mean over 6,000 requests is close.
    expect(Math.abs(perRound - expected) / expected).toBeLessThan(0.03);
  });

  it('bad files: not JSON, another format, a rate outside [0, 1]: errors naming policies.hat.acceptanceFile.path', () => {
    const notJson = join(dir, 'x.json');
    writeFileSync(notJson, '{ nope');
    const wrongFormat = join(dir, 'y.json');
    writeFileSync(wrongFormat, JSON.stringify({ format: 'other/1' }));
    const badRate = accFile('z.json', [0.5, 1.5]);
    for (const [f, msg] of [[notJson, /not a JSON acceptance file/], [wrongFormat, /format must be "hatsim-acceptance\/1"/], [badRate, /positions\[1\] must be/]] as const) {
      let err: unknown;
      try { loadScenario(FILE, [`policies.hat.acceptanceFile={"path":${JSON.stringify(f)},"mode":"greedy"}`]); } catch (e) { err = e; }
      expect(err).toBeInstanceOf(InputError);
      expect((err as Error).message).toMatch(/policies\.hat\.acceptanceFile\.path/);
      expect((err as Error).message).toMatch(msg);
    }
  });
});

/**
 * DTO-EE per-token tasks (policies.dtoee.task: per-token; protocol/systems/dtoee.ts): every
 * token after the first passes the stages and may exit at a stage boundary; the KV of skipped
 * layers is recomputed by the next deeper token or copied (state propagation).
 *  - Closed form: on idle nodes and links each token's gap is the sum of its hops and stage
 *    passes, with the catch-up positions the KV option implies, recomputed here from the token
 *    rows' exit stages (both options, exits at mixed stages).
 *  - Thresholds 0: every decode token exits at stage 1; thresholds 1: every token runs every
 *    stage and the two KV options give the same run.
 *  - Exit shares and accuracy per token against the profile (4 sigma).
 *  - Pass tasks are unchanged (the golden hashes); the run is deterministic.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { exitAccuracy, exitProb } from '../src/dtoee/index.js';
import { dtoeeRunPolicy } from '../src/protocol/systems/dtoee.js';
import type { DtoeeTokenRecord } from '../src/results/types.js';
import { loadScenario } from '../src/scenario/load.js';
import { buildTestbed, simulateSystem, topologyView, type SystemRun, type Testbed } from '../src/sim/run.js';
import { SCENARIOS } from './helpers.js';

const FILE = join(SCENARIOS, 'dtoee-tokens.yaml');
const run = (over: string[]): { tb: Testbed; r: SystemRun; toks: DtoeeTokenRecord[] } => {
  const tb = buildTestbed(loadScenario(FILE, over));
  const r = simulateSystem(tb, 'dtoee');
  return { tb, r, toks: r.dtoeeTokens ?? [] };
};
/** Two requests, about 1,000 s apart: each runs on idle nodes and links. */
const IDLE = ['nodes.5.count=1', 'nodes.6.count=1', 'workload.requestsPerDevice=1', 'workload.arrival.ratePerS=0.001'];
const decode = (toks: DtoeeTokenRecord[]) => toks.filter((t) => t.token > 1);

describe('per-token tasks', () => {
  for (const kv of ['recompute', 'copy'] as const) {
    it(`idle closed form per token (kvSkip ${kv}, exits at both stages): gap = hops + stage passes with the catch-up the option implies`, () => {
      const { tb, r, toks } = run([...IDLE, 'policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=0.5', `policies.dtoee.kvSkip=${kv}`, 'workload.outputTokens.tokens=40']);
      const built = dtoeeRunPolicy(tb.topology.nodes)!;
      const S = built.plan.nodes.length;
      const m = tb.model, hb = m.hiddenSize * m.activationBytesPerElem, tokB = tb.scenario.network.tokenBytes;
      const idx = new Map(tb.topology.nodes.map((n) => [n.name, n.index]));
      expect(r.requests.length).toBe(2);
      let checked = 0, exits1 = 0;
      for (const q of r.requests) {
        const d = tb.devices.find((x) => x.name === q.device)!;
        const view = topologyView(tb, d, -1);
        const path = r.hops.filter((h) => h.device === q.device && h.request === q.request).sort((a, b) => a.seq - b.seq).slice(0, S).map((h) => idx.get(h.node)!);
        const mine = toks.filter((t) => t.device === q.device && t.request === q.request).sort((a, b) => a.token - b.token);
        expect(mine.map((t) => t.token)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
        const P = q.prompt_tokens, dev = d.node.index;
        const missing = new Array<number>(S).fill(0);
        for (const t of mine.slice(1)) {
          const ctx = P + t.token - 2;
          let g = view.pathMs(dev, path[0], tokB);
          for (let s = 0; s < t.exit_stage; s++) {
            if (s > 0) g += view.pathMs(path[s - 1], path[s], (1 + missing[s]) * hb);
            const cu = kv === 'recompute' ? missing[s] : 0;
            g += view.partMs(path[s], built.parts[s], 1 + cu, ctx - cu, 1);
            missing[s] = 0;
          }
          for (let j = t.exit_stage; j < S; j++) missing[j]++;
          g += view.pathMs(path[t.exit_stage - 1], dev, tokB);
          expect(t.gap_ms).toBeCloseTo(g, 6);
          checked++;
          if (t.exit_stage === 1) exits1++;
        }
      }
      expect(checked).toBe(78);
      expect(exits1).toBeGreaterThan(10); // both kinds of token occur
      expect(exits1).toBeLessThan(70);
    });
  }

  it('recompute against copy on the same draws: the same exits; a token that catches up at a deeper stage takes longer with recompute, the others the same', () => {
    const over = [...IDLE, 'policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=0.5', 'workload.outputTokens.tokens=40'];
    const rec = run([...over, 'policies.dtoee.kvSkip=recompute']).toks, cop = run([...over, 'policies.dtoee.kvSkip=copy']).toks;
    expect(rec.map((t) => t.exit_stage)).toEqual(cop.map((t) => t.exit_stage));
    let slower = 0;
    rec.forEach((t, i) => {
      if (t.token === 1) return;
      const prevExit = rec[i - 1].exit_stage; // the previous token exited at stage 1: this one catches up if it goes deeper
      if (t.exit_stage === 2 && prevExit === 1) { expect(t.gap_ms).toBeGreaterThan(cop[i].gap_ms + 1e-4); slower++; }
      else expect(t.gap_ms).toBeCloseTo(cop[i].gap_ms, 9);
    });
    expect(slower).toBeGreaterThan(5);
  });

  it('thresholds 0: every decode token exits at stage 1 (token 1 at the last stage); thresholds 1: every token at the last stage, and recompute = copy', () => {
    const zero = run(['policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=0']);
    expect(zero.toks.length).toBe(160 * 16);
    expect(zero.toks.filter((t) => t.token === 1).every((t) => t.exit_stage === 2)).toBe(true);
    expect(decode(zero.toks).every((t) => t.exit_stage === 1)).toBe(true);
    // Per request: the prefill on both stages, then 15 decode steps on the stage-1 node only.
    expect(zero.r.hops.length).toBe(160 * (2 + 15));
    const one = run(['policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=1']);
    expect(one.toks.every((t) => t.exit_stage === 2)).toBe(true);
    expect(one.r.hops.length).toBe(160 * 2 * 16);
    const oneCopy = run(['policies.dtoee.policy=random', 'policies.dtoee.fixedThreshold=1', 'policies.dtoee.kvSkip=copy']);
    expect(oneCopy.r.requests).toEqual(one.r.requests);
    expect(oneCopy.toks).toEqual(one.toks);
    // Exits cost nothing of stage 2's time: TBT lower with thresholds 0.
    const tbt = (x: SystemRun) => x.summary.tbt_mean_ms;
    expect(tbt(zero.r)).toBeLessThan(tbt(one.r));
  });

  it('exit share and accuracy per token match the profile (4 sigma)', () => {
    const tau = 0.6;
    const { tb, toks } = run(['policies.dtoee.policy=random', `policies.dtoee.fixedThreshold=${tau}`, 'workload.requestsPerDevice=40']);
    const prof = dtoeeRunPolicy(tb.topology.nodes)!.profile;
    const dec = decode(toks), n = dec.length;
    expect(n).toBe(320 * 15);
    const p = exitProb(prof, 1, tau);
    const share = dec.filter((t) => t.exit_stage === 1).length / n;
    expect(Math.abs(share - p)).toBeLessThan(4 * Math.sqrt(p * (1 - p) / n));
    const acc = p * exitAccuracy(prof, 1, tau) + (1 - p) * prof.finalAccuracy;
    const got = dec.filter((t) => t.correct === 1).length / n;
    expect(Math.abs(got - acc)).toBeLessThan(4 * Math.sqrt(acc * (1 - acc) / n));
    // Token 1 runs the whole model: the final accuracy.
    const firsts = toks.filter((t) => t.token === 1), fa = prof.finalAccuracy;
    expect(Math.abs(firsts.filter((t) => t.correct === 1).length / firsts.length - fa)).toBeLessThan(4 * Math.sqrt(fa * (1 - fa) / firsts.length));
  });

  it('deterministic; the optimiser models a decode step; a bad option names its field', () => {
    const a = run([]), b = run([]);
    expect(a.toks).toEqual(b.toks);
    expect(a.r.requests).toEqual(b.r.requests);
    // The problem: per node one decode step's service time at the mean context, rates x (output tokens - 1).
    const spec = dtoeeRunPolicy(a.tb.topology.nodes)!.spec;
    const inputs = spec.nodes.reduce((x, nd) => x + (nd.inputRatePerS ?? 0), 0);
    expect(inputs).toBeCloseTo(8 * 0.1 * 15, 9);
    expect(() => loadScenario(FILE, ['policies.dtoee.kvSkip=drop'])).toThrow(InputError);
    expect(() => loadScenario(FILE, ['policies.dtoee.task=tokens'])).toThrow(/policies\.dtoee\.task/);
  });
});

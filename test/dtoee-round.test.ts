/**
 * The per-node round code both drivers run (dtoee/round.ts) and the live wire format of its
 * messages (live/dtoee-live.ts): two node-local drivers that only exchange encoded messages
 * reach the synchronous round's state; bad messages are refused with a reason and change
 * nothing; messages of a later round wait for it; the policy tape replays a task's answers
 * whatever the replaying node's policy holds; live rows merge into one row per round.
 */
import { describe, expect, it } from 'vitest';
import { NodeRound, NodeWindow, OnlineDtoee, PolicyTape, createDtoPolicy, randomProblem, roundTraffic, type DtoMessage, type StatePolicy } from '../src/dtoee/index.js';
import { decodeDtoeeMessage, encodeDtoeeMessage, mergeDtoeeRows } from '../src/live/dtoee-live.js';
import type { DtoeeRoundRecord } from '../src/results/types.js';

const spec = randomProblem({ seed: 4, nodesPerStage: [2, 2], load: 0.7, accuracy: { mode: 'weight', beta: 0.2 } });
const warm = (createDtoPolicy('dtoee', spec) as StatePolicy).state();
const K = 3;

describe('NodeRound', () => {
  it('one OnlineDtoee per node given only its own measured values (as node processes), messages through the wire encoding, rounds out of step: the synchronous round\'s state', () => {
    const obs = {
      inputRatePerS: Object.fromEntries(spec.nodes.filter((n) => n.stage === 1).map((n) => [n.id, (n.inputRatePerS ?? 0) * 1.4])),
      serviceTimeS: Object.fromEntries(spec.nodes.map((n, i) => [n.id, (n.serviceTimeS ?? 1 / n.serviceRatePerS!) * (1 + 0.2 * i)])),
    };
    const ref = new OnlineDtoee(spec, { roundIterations: K }, warm);
    ref.update(obs);
    expect(ref.heldState()).not.toEqual(warm); // the round moves something
    const ids = spec.nodes.map((n) => n.id);
    // A node process passes only its own measured values (live/dtoee-live.ts).
    const own = (id: string) => ({ serviceTimeS: { [id]: obs.serviceTimeS[id] }, ...(id in obs.inputRatePerS ? { inputRatePerS: { [id]: obs.inputRatePerS[id] } } : {}) });
    const procs = ids.map(() => new OnlineDtoee(spec, { roundIterations: K }, warm));
    const rounds = procs.map((o, n) => new NodeRound(o, n));
    const wire: { to: number; j: Record<string, unknown>; from: string }[] = [];
    const post = (out: { iteration: number; msg: DtoMessage }[]) => { for (const { iteration, msg } of out) wire.push({ to: ids.indexOf(msg.to), from: msg.from, j: JSON.parse(JSON.stringify(encodeDtoeeMessage(1, iteration, msg))) as Record<string, unknown> }); };
    // Node 0 starts first; its messages reach the others before they start (they must wait in the buffer).
    procs[0].beginRound(own(ids[0]));
    post(rounds[0].start(1).out);
    let started = 1;
    let guard = 0;
    while ((wire.length > 0 || started < ids.length) && guard++ < 10_000) {
      if (started < ids.length && (wire.length === 0 || guard % 3 === 0)) {
        procs[started].beginRound(own(ids[started]));
        post(rounds[started].start(1).out);
        started++;
        continue;
      }
      const m = wire.pop()!; // last in, first out: reorders messages
      const w = decodeDtoeeMessage(m.j, m.from, ids[m.to]);
      if (typeof w === 'string') throw new Error(w);
      const p = rounds[m.to].deliver(w.round, w.iteration, w.msg);
      if (typeof p === 'string') throw new Error(p);
      post(p.out);
    }
    expect(rounds.every((r) => !r.running)).toBe(true);
    ids.forEach((id, n) => {
      expect(procs[n].fractions(id)).toEqual(ref.fractions(id));
      expect(procs[n].threshold(id)).toBe(ref.threshold(id));
    });
  });

  it('refuses bad messages with a reason and changes nothing', () => {
    const o = new OnlineDtoee(spec, { roundIterations: K }, warm);
    const s1 = spec.nodes.filter((n) => n.stage === 1).map((n) => n.id), s2 = spec.nodes.filter((n) => n.stage === 2).map((n) => n.id);
    const r = new NodeRound(o, spec.nodes.findIndex((n) => n.id === s2[0]));
    o.beginRound({});
    r.start(1);
    const flow = (from: string, to = s2[0]): DtoMessage => ({ kind: 'flow', from, to, ratePerS: 1, bytes: 32 });
    expect(r.deliver(1, 0, flow(s2[1]))).toMatch(/not an upstream neighbour/);
    expect(r.deliver(1, 0, { kind: 'cost', from: s1[0], to: s2[0], marginalCostS: 0.1, curvature: 1, bytes: 40 })).toMatch(/not a next-stage neighbour/);
    expect(r.deliver(1, 0, flow(s1[0], s2[1]))).toMatch(/addressed to/);
    expect(r.deliver(1, K * 4 - 1, flow(s1[0]))).toMatch(/outside/);
    expect(typeof r.deliver(1, 0, flow(s1[0]))).toBe('object');
    expect(r.deliver(1, 0, flow(s1[0]))).toMatch(/second message/);
    expect(r.deliver(0, 0, flow(s1[1]))).toMatch(/is over/);
  });

  it('decodeDtoeeMessage: each bad field has its reason', () => {
    const good = encodeDtoeeMessage(2, 1, { kind: 'cost', from: 'a', to: 'b', marginalCostS: 0.3, curvature: 2, bytes: 40 });
    expect(decodeDtoeeMessage(good, 'a', 'b')).toEqual({ round: 2, iteration: 1, msg: { kind: 'cost', from: 'a', to: 'b', marginalCostS: 0.3, curvature: 2, bytes: 40 } });
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...good, format: 'x' }, /format/], [{ ...good, round: 1.5 }, /round/], [{ ...good, round: 0 }, /round/], [{ ...good, iteration: -1 }, /iteration/],
      [{ ...good, from: 'c' }, /on the connection of a/], [{ ...good, to: 'c' }, /at node b/], [{ ...good, marginalCostS: null }, /marginalCostS/],
      [{ ...good, curvature: -1 }, /curvature/], [{ ...good, kind: 'hello' }, /kind/], [{ ...good, kind: 'flow', ratePerS: -2 }, /ratePerS/],
    ];
    for (const [j, re] of bad) expect(decodeDtoeeMessage(j, 'a', 'b')).toMatch(re);
  });

  it('closed form of a round\'s traffic', () => {
    // dtoee-rush (docs/DTOEE.md): K = 40, P = 18 links, 64-byte transport header.
    expect(roundTraffic(18, 40, 64, 24)).toEqual({ messages: 1404, bytes: 140_400 });
  });
});

describe('NodeWindow', () => {
  it('rates, service times with the minJobs rule, utilisation', () => {
    const w = new NodeWindow(0.05, 2, 3, { arrivals: 0, jobs: 0, computeMs: 0, busyMs: 0 });
    expect(w.measure(2, { arrivals: 10, jobs: 8, computeMs: 160, busyMs: 400 })).toEqual({ windowS: 2, ratePerS: 5, serviceMs: 20, estimateS: 0.02, utilization: 0.1 });
    // Two jobs < minJobs: the estimate stays.
    expect(w.measure(4, { arrivals: 12, jobs: 10, computeMs: 260, busyMs: 500 })).toMatchObject({ ratePerS: 1, serviceMs: 50, estimateS: 0.02 });
  });
});

describe('PolicyTape', () => {
  it('records the answers where the task is and replays them elsewhere, whatever that node\'s policy holds', () => {
    const ids = spec.nodes.map((n) => n.id);
    const a = new OnlineDtoee(spec, { roundIterations: K }, warm);
    const tapeA = new PolicyTape(a, ids);
    const t = { values: [] as number[], cursor: 0 };
    tapeA.current = t;
    const s1 = ids[0];
    const tau = tapeA.threshold(s1), next = tapeA.nextNode(s1, 0.99);
    expect(t.values).toEqual([tau, ids.indexOf(next)]);
    // Another node's policy, moved by a round it ran: the replay still returns what the task saw.
    const b = new OnlineDtoee(spec, { roundIterations: K }, { x: warm.x.map((r) => r.map((_, j) => (j === 0 ? 1 : 0))), tau: warm.tau.map(() => 0.01) });
    const tapeB = new PolicyTape(b, ids);
    tapeB.current = { values: t.values, cursor: 0 };
    expect(tapeB.threshold(s1)).toBe(tau);
    expect(tapeB.nextNode(s1, 0.99)).toBe(next);
    // Past the tape: answers (and records) from its own policy.
    expect(tapeB.threshold(s1)).toBe(0.01);
  });
});

describe('mergeDtoeeRows', () => {
  it('one row per round: messages and bytes summed, start the first, end the last apply, status done only when every node finished', () => {
    const row = (round: number, start: number, end: number, messages: number, status = 'done'): DtoeeRoundRecord => ({
      system: 'dtoee', round, start_s: start, end_s: end, status, iterations: 20, messages, bytes: messages * 100, input_per_s: 1,
      objective_before: NaN, objective_after: NaN, model_delay_ms: NaN, last_move: 0.1, centralised_objective: NaN,
    });
    const m = mergeDtoeeRows([
      { node: 'a', nodes: [], rounds: [row(1, 2.01, 2.3, 10), row(2, 4, 4.2, 10)] },
      { node: 'b', nodes: [], rounds: [row(1, 2.0, 2.4, 12)] },
    ], ['a', 'b']);
    expect(m.rounds.map((r) => [r.round, r.start_s, r.end_s, r.messages, r.bytes, r.input_per_s, r.status])).toEqual([
      [1, 2.0, 2.4, 22, 2200, 2, 'done'], [2, 4, NaN, 10, 1000, 1, 'incomplete (1/2 nodes)'],
    ]);
  });
});

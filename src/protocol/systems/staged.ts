/**
 * staged: a model partitioned into pipeline stages over nodes (the topology core's first
 * non-HAT system, and DTO-EE's base without early exits).
 *
 * The nodes with `stage: s` host stage s (one stage per node); stage s runs
 * `stageLayers[s-1]` decoder layers (stage 1 also the embedding, the last stage also the
 * final norm + LM head). A task is one inference pass [assumption: a prompt's prefill and
 * its first token, or a classification/scoring pass]:
 *  1. the device sends the prompt's raw tokens to a stage-1 node (its `server` when that
 *     is a stage-1 node, else one picked by the routing policy);
 *  2. each stage runs its layers over all prompt positions on its node (the node's
 *     processor: FIFO, k workers or continuous batching), then sends the hidden states of
 *     every position to a next-stage node picked by the routing policy (the next stage
 *     needs every position to build its KV cache);
 *  3. the last stage computes the first token's logits and sends the token back to the
 *     device, which emits it (TTFT = response delay).
 * Raw tokens leave the device (they reach stage 1): `raw_token_bytes_up` counts them.
 */
import { InputError } from '../../core/errors.js';
import { makeStageRouter } from '../../policy/stage-routing.js';
import type { StagedPolicySpec } from '../../scenario/types.js';
import type { TopoNode } from '../../topology/types.js';
import type { SystemDef, SystemTopology } from '../context.js';
import { count, draw, emit, exec, mark, nodeLoad, send, type PartSpec } from '../ops.js';

export interface StagePlan {
  /** Node indices per stage (index 0 = stage 1). */
  nodes: number[][];
  /** Decoder layers per stage. */
  layers: number[];
  parts: PartSpec[];
}

/** The stages of a topology, checked (stages 1..S each have a node; layers sum to the model's). */
export function stagePlan(nodes: readonly TopoNode[], policy: StagedPolicySpec, modelLayers: number): StagePlan {
  const byStage: number[][] = [];
  for (const n of nodes) {
    if (n.stage === null) continue;
    (byStage[n.stage - 1] ??= []).push(n.index);
  }
  const S = byStage.length;
  if (S === 0) throw new InputError('nodes: no node has a stage; the staged system needs nodes with stage: 1, 2, ... hosting its pipeline stages', 'nodes');
  for (let s = 0; s < S; s++) {
    if (!byStage[s] || byStage[s].length === 0) throw new InputError(`nodes: stage ${s + 1} has no node (stages present: ${byStage.map((x, i) => (x ? i + 1 : null)).filter((x) => x !== null).join(', ')}); every stage from 1 to ${S} needs at least one node`, 'nodes');
  }
  for (const ix of byStage) for (const i of ix) {
    if (nodes[i].hardware === null) throw new InputError(`nodes: '${nodes[i].name}' hosts stage ${nodes[i].stage} but has no hardware id`, 'nodes');
  }
  let layers = policy.stageLayers;
  if (layers.length === 0) {
    layers = Array.from({ length: S }, (_, s) => Math.floor(modelLayers / S) + (s < modelLayers % S ? 1 : 0));
    if (layers.some((l) => l < 1)) throw new InputError(`nodes: ${S} stages but the model has only ${modelLayers} layers; use at most ${modelLayers} stages`, 'nodes');
  } else {
    if (layers.length !== S) throw new InputError(`policies.staged.stageLayers: lists ${layers.length} stages but the nodes define ${S}; give one layer count per stage`, 'policies.staged.stageLayers');
    const sum = layers.reduce((a, b) => a + b, 0);
    if (sum !== modelLayers) throw new InputError(`policies.staged.stageLayers: the layers sum to ${sum}, the model has ${modelLayers}; make them add up`, 'policies.staged.stageLayers');
  }
  const parts = layers.map((l, s): PartSpec => ({ key: `stage${s + 1}:${l}`, embedding: s === 0, layers: l, adapter: false, lmHead: s === S - 1 }));
  return { nodes: byStage, layers, parts };
}

/** Stage-1 candidates of a device: its server when that hosts stage 1, else every stage-1 node. */
export function firstCandidates(plan: StagePlan, nodes: readonly TopoNode[], device: number): number[] {
  const srv = nodes[device].server;
  const first = plan.nodes[0];
  const own = srv === null ? undefined : first.find((i) => nodes[i].name === srv);
  return own !== undefined ? [own] : first;
}

/**
 * Node pairs of a staged pipeline: each device and its stage-1 candidates, every stage-s node
 * and every stage-(s+1) node, and every node of stage `answerFrom` (0-based) or later back to
 * every device (the stages that may answer).
 */
export function stagePairs(plan: StagePlan, t: SystemTopology, answerFrom: number): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const d of t.devices) for (const c of firstCandidates(plan, t.nodes, d)) out.push([d, c]);
  for (let s = 0; s + 1 < plan.nodes.length; s++) for (const a of plan.nodes[s]) for (const b of plan.nodes[s + 1]) out.push([a, b]);
  for (let s = answerFrom; s < plan.nodes.length; s++) for (const a of plan.nodes[s]) for (const d of t.devices) out.push([a, d]);
  return out;
}

/** The part each stage's nodes hold (SystemDef.placement). */
export function stagePlacement(plan: StagePlan, parts: readonly PartSpec[]): Array<{ nodes: readonly number[]; part: PartSpec; what: string }> {
  const S = plan.nodes.length;
  return plan.nodes.map((nodes, s) => ({
    nodes, part: parts[s],
    what: `stage ${s + 1} (${plan.layers[s]} layers${s === 0 ? ' + embedding' : ''}${s === S - 1 ? ' + LM head' : ''})`,
  }));
}

function checkFractions(t: SystemTopology, plan: StagePlan): void {
  const r = t.policies.staged.routing;
  if (r.kind !== 'fixed') return;
  const byName = new Map(t.nodes.map((n) => [n.name, n]));
  for (const [from, row] of Object.entries(r.fractions)) {
    const field = `policies.staged.routing.fractions.${from}`;
    const n = byName.get(from);
    if (!n) throw new InputError(`${field}: '${from}' is not a node`, field);
    const next = n.kind === 'device' ? plan.nodes[0] : n.stage !== null && n.stage < plan.nodes.length ? plan.nodes[n.stage] : null;
    if (next === null) throw new InputError(`${field}: '${from}' sends to no next stage (it is ${n.stage === null ? 'not a stage node' : 'in the last stage'}); fractions belong to devices and stages 1..S-1`, field);
    let sum = 0;
    for (const [to, p] of Object.entries(row)) {
      const m = byName.get(to);
      if (!m || !next.includes(m.index)) throw new InputError(`${field}.${to}: '${to}' is not a next-stage node of '${from}' (allowed: ${next.map((i) => t.nodes[i].name).join(', ')})`, `${field}.${to}`);
      sum += p;
    }
    if (Math.abs(sum - 1) > 1e-9) throw new InputError(`${field}: the routing fractions sum to ${sum}; they must sum to 1`, field);
  }
}

export const staged: SystemDef = {
  id: 'staged',
  cloudWork: 'middle',
  deviceWork: [],
  sendsRawTokens: true,
  check(t) {
    checkFractions(t, stagePlan(t.nodes, t.policies.staged, t.modelLayers));
  },
  pairs(t) {
    const plan = stagePlan(t.nodes, t.policies.staged, t.modelLayers);
    return stagePairs(plan, t, plan.nodes.length - 1); // only the last stage answers
  },
  placement(t) {
    const plan = stagePlan(t.nodes, t.policies.staged, t.modelLayers);
    return stagePlacement(plan, plan.parts);
  },
  createDevice(env) {
    const t = env.topology;
    const plan = stagePlan(t.nodes, env.policies.staged, t.modelLayers);
    const router = makeStageRouter(env.policies.staged.routing, t.nodes.map((n) => n.name), (a, b) => t.routeLatencyMs(a, b));
    const first = firstCandidates(plan, t.nodes, t.device);
    const S = plan.nodes.length, hb = env.hiddenBytesPerToken, tb = env.tokenBytes;
    const loads: number[] = [];
    return function* stagedTask(req) {
      const P = req.promptTokens;
      let at = t.device;
      for (let s = 0; s < S; s++) {
        const cands = s === 0 ? first : plan.nodes[s];
        let next = cands[0];
        if (cands.length > 1) {
          const u = router.needsDraw ? count(yield draw()) : 0;
          if (router.needsLoads) { loads.length = 0; for (const c of cands) loads.push(count(yield nodeLoad(c))); }
          next = router.pick(at, cands, u, router.needsLoads ? loads : null);
        }
        yield s === 0 ? send(at, next, 0, P * tb, 'prompt tokens') : send(at, next, P * hb, 0, `hidden to stage ${s + 1}`);
        yield exec(next, plan.parts[s], P, 0, s === S - 1 ? 1 : 0, `stage ${s + 1}`);
        at = next;
      }
      yield send(at, t.device, 0, tb, 'result token');
      yield mark('exitStage', S);
      yield emit(1);
    };
  },
};


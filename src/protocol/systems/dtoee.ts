/**
 * dtoee: DTO-EE under hatsim's model (docs/DTOEE.md; REFERENCE §1, every choice ours):
 * the staged pipeline of `staged.ts` with an exit head at the end of every stage but the
 * last. A task (one inference pass: the prompt's prefill and its answer [assumption])
 * enters at its device's access node in stage 1 (its `server`; else one of stage 1 by
 * the policy's uniform split). At a node of stage s < S it runs the stage's layers plus
 * the exit head (final norm + LM head over the last position [assumption: an LM-head-
 * sized classifier]); it exits when its confidence reaches the node's threshold tau_n
 * (a seeded draw against the exit profile's P(exit | s, tau)), is marked correct by a
 * second draw against the profile's accuracy, and its answer goes back to the device;
 * otherwise its hidden states go to the next-stage node the policy picks (routing
 * fractions x_nm, or the shortest queue for `jsq`). The last stage always answers.
 *
 * The policy (dtoee/baselines.ts) is built once per testbed from the analytical model of
 * this topology: per node the service time of its stage for the mean prompt (idle, from
 * the node's latency model), per stage-1 node the devices' arrival rates, per hop the
 * idle transfer time of the mean prompt's hidden states. Offline (`online: false`, the
 * default): the policy is optimised once before the run. Online (`online: true`, policy
 * dtoee): the run owns an `OnlineDtoee` (dtoee/online.ts) that starts from the offline
 * optimum and that the simulator's control loop (sim/dtoee-control.ts) re-optimises every
 * `periodS` with simulated neighbour messages; a task reads the threshold and fractions its
 * node holds when it gets there.
 */
import { InputError } from '../../core/errors.js';
import { createDtoPolicy, decideCorrect, LoadBoard, OnlineDtoee, StatePolicy, decideExit, defaultProfile, readProfile, type DtoNodeSpec, type DtoPolicy, type DtoProblemSpec, type ExitProfile } from '../../dtoee/index.js';
import type { TopoNode } from '../../topology/types.js';
import type { ProtocolEnv, SystemDef, TopologyView } from '../context.js';
import { count, draw, emit, exec, mark, nodeLoad, now, send, type PartSpec } from '../ops.js';
import { firstCandidates, stagePairs, stagePlacement, stagePlan, type StagePlan } from './staged.js';

/** One generated token of a per-token task (dtoee_tokens.csv). */
export interface DtoeeTokenFact { device: string; request: number; token: number; exitStage: number; correct: number; timeS: number }

/**
 * The run's token facts in the order they happened, one per (device, request, token): a live
 * node replaying a task's generator re-runs the statements of its earlier tokens, whose facts
 * are already held (the same values, from the replayed log).
 */
export class TokenLog {
  private readonly byKey = new Map<string, DtoeeTokenFact>();
  add(f: DtoeeTokenFact): void {
    const key = `${f.device}\u0000${f.request}\u0000${f.token}`;
    if (!this.byKey.has(key)) this.byKey.set(key, f);
  }
  facts(): DtoeeTokenFact[] { return [...this.byKey.values()]; }
  /** One request's facts, token order (a live device writes them with its record). */
  ofRequest(device: string, request: number): DtoeeTokenFact[] {
    const out: DtoeeTokenFact[] = [];
    for (let k = 1; ; k++) {
      const f = this.byKey.get(`${device}\u0000${request}\u0000${k}`);
      if (!f) return out;
      out.push(f);
    }
  }
}

interface Built { plan: StagePlan; parts: PartSpec[]; policy: DtoPolicy; profile: ExitProfile; spec: DtoProblemSpec; tokens: TokenLog; board: LoadBoard }

const cache = new WeakMap<readonly TopoNode[], Built>();

/** Stage parts with exit heads: stage s < S ends with the LM head (the exit head), the last one with the final head. */
function exitParts(plan: StagePlan): PartSpec[] {
  return plan.parts.map((p) => ({ ...p, key: `${p.key}+exit`, lmHead: true }));
}

/** The optimisation problem of this topology and workload (docs/DTOEE.md "From a scenario"). */
export function dtoeeProblem(env: ProtocolEnv, t: TopologyView, devices: readonly number[]): { plan: StagePlan; parts: PartSpec[]; spec: DtoProblemSpec; profile: ExitProfile } {
  const pol = env.policies.dtoee;
  const plan = stagePlan(t.nodes, env.policies.staged, t.modelLayers);
  const S = plan.nodes.length;
  if (S < 2) throw new InputError(`nodes: dtoee needs at least 2 stages (exits happen between stages); the nodes define ${S}`, 'nodes');
  const parts = exitParts(plan);
  const profile = pol.profilePath ? readProfile(pol.profilePath, S) : defaultProfile({ stages: S, layers: t.modelLayers, model: 'scenario' });
  const P = Math.max(1, Math.round(t.meanPromptTokens));
  // The optimiser's unit of work: one pass of the mean prompt; per-token tasks [assumption]: one
  // decode step (a token after the first) at the mean context, (mean output - 1) of them per request.
  const perToken = pol.task === 'per-token';
  const steps = perToken ? Math.max(1, t.meanOutputTokens - 1) : 1;
  const unitTokens = perToken ? 1 : P, unitCtx = perToken ? Math.round(P + Math.max(0, t.meanOutputTokens - 2) / 2) : 0;
  const featureBytes = unitTokens * env.hiddenBytesPerToken;
  const input = new Map<number, number>();
  for (const d of devices) {
    const c = firstCandidates(plan, t.nodes, d);
    for (const n of c) input.set(n, (input.get(n) ?? 0) + t.arrivalRatePerS * steps / c.length);
  }
  const nodes: DtoNodeSpec[] = [];
  plan.nodes.forEach((ix, s) => {
    for (const n of ix) {
      const serviceTimeS = t.partMs(n, parts[s], unitTokens, unitCtx, 1) / 1000;
      const next = s + 1 < S ? plan.nodes[s + 1].map((m) => ({ to: t.nodes[m].name, hopDelayS: t.pathMs(n, m, featureBytes) / 1000 })) : undefined;
      nodes.push({ id: t.nodes[n].name, stage: s + 1, serviceTimeS, ...(input.has(n) ? { inputRatePerS: input.get(n)! } : {}), ...(next ? { next } : {}) });
    }
  });
  const spec: DtoProblemSpec = { stages: S, nodes, profile, sojourn: pol.sojourn, accuracy: { mode: 'weight', beta: pol.beta } };
  return { plan, parts, spec, profile };
}

function build(env: ProtocolEnv): Built {
  const t = env.topology;
  const hit = cache.get(t.nodes);
  if (hit) return hit;
  const devices = t.nodes.filter((n) => n.kind === 'device').map((n) => n.index);
  const { plan, parts, spec, profile } = dtoeeProblem(env, t, devices);
  const pol = env.policies.dtoee;
  let policy = createDtoPolicy(pol.policy, spec, { fixedThreshold: pol.fixedThreshold });
  // Online: the distributed agents start from the offline optimum (warm start) [assumption].
  if (pol.online && policy instanceof StatePolicy) policy = new OnlineDtoee(spec, { roundIterations: pol.roundIterations }, policy.state());
  const b: Built = { plan, parts, policy, profile, spec, tokens: new TokenLog(), board: new LoadBoard() };
  cache.set(t.nodes, b);
  return b;
}

/**
 * The policy, problem and profile the devices of a run share (built by the first device's
 * `createDevice`). Online mode mutates the policy, so the simulator calls `resetDtoeeRun`
 * before creating a run's devices: each run then starts from a fresh policy.
 */
export function dtoeeRunPolicy(nodes: readonly TopoNode[]): { policy: DtoPolicy; spec: DtoProblemSpec; profile: ExitProfile; plan: StagePlan; parts: readonly PartSpec[]; tokens: TokenLog; board: LoadBoard } | undefined {
  return cache.get(nodes);
}
export function resetDtoeeRun(nodes: readonly TopoNode[]): void { cache.delete(nodes); }
/**
 * Replace the policy the tasks of a run read (the live topology runner wraps it in a
 * `PolicyTape`, so that a task replayed at another node reads the answers its earlier nodes
 * gave). Tasks read `Built.policy` at each decision, so protocols already created see it.
 */
export function wrapDtoeeRunPolicy(nodes: readonly TopoNode[], wrap: (p: DtoPolicy) => DtoPolicy): void {
  const b = cache.get(nodes);
  if (!b) throw new Error('dtoee: no run policy to wrap (create a device protocol first)');
  b.policy = wrap(b.policy);
}

export const dtoee: SystemDef = {
  id: 'dtoee',
  cloudWork: 'middle',
  deviceWork: [],
  sendsRawTokens: true,
  check(t) {
    const plan = stagePlan(t.nodes, t.policies.staged, t.modelLayers);
    if (plan.nodes.length < 2) throw new InputError(`nodes: dtoee needs at least 2 stages; the nodes define ${plan.nodes.length}`, 'nodes');
    const pol = t.policies.dtoee;
    if (pol.online && pol.policy !== 'dtoee') throw new InputError(`policies.dtoee.online: only the dtoee policy re-optimises online (its distributed algorithm); policy ${pol.policy} runs offline: set online: false, or policy: dtoee`, 'policies.dtoee.online');
  },
  placement(t) {
    // Every stage ends with an exit head (an LM head's weights) [assumption].
    const plan = stagePlan(t.nodes, t.policies.staged, t.modelLayers);
    return stagePlacement(plan, exitParts(plan));
  },
  pairs(t) {
    // Any stage may answer (an exit); stage 1 answers over its devices' own paths.
    return stagePairs(stagePlan(t.nodes, t.policies.staged, t.modelLayers), t, 1);
  },
  createDevice(env) {
    const t = env.topology;
    const b = build(env);
    const { plan, parts, profile } = b;
    const S = plan.nodes.length, hb = env.hiddenBytesPerToken, tb = env.tokenBytes;
    const first = firstCandidates(plan, t.nodes, t.device);
    const names = t.nodes.map((n) => n.name);
    const jsq = b.policy.name === 'jsq', reported = env.policies.dtoee.jsqLoad === 'reported';
    const loads: Record<string, number> = {};
    if (env.policies.dtoee.task === 'per-token') return perTokenTask(env, b, first, names);
    return function* dtoeeTask(req) {
      const P = req.promptTokens;
      let at = t.device;
      for (let s = 0; s < S; s++) {
        let next: number;
        if (s === 0) {
          next = first.length === 1 ? first[0] : first[Math.min(first.length - 1, Math.floor(count(yield draw()) * first.length))];
        } else {
          const u = count(yield draw());
          if (jsq) for (const c of plan.nodes[s]) loads[names[c]] = reported ? b.board.load(names[at], names[c]) : count(yield nodeLoad(c));
          next = t.index(b.policy.nextNode(names[at], u, jsq ? loads : undefined));
        }
        yield s === 0 ? send(at, next, 0, P * tb, 'prompt tokens') : send(at, next, P * hb, 0, `hidden to stage ${s + 1}`);
        yield exec(next, parts[s], P, 0, 1, s < S - 1 ? `stage ${s + 1} + exit head` : `stage ${s + 1}`);
        at = next;
        if (s < S - 1) {
          const tau = b.policy.threshold(names[at]);
          if (decideExit(profile, s + 1, tau, count(yield draw()))) {
            yield mark('correct', decideCorrect(profile, s + 1, tau, count(yield draw())) ? 1 : 0);
            yield mark('exitStage', s + 1);
            yield send(at, t.device, 0, tb, 'answer');
            yield emit(1);
            return;
          }
        }
      }
      yield mark('correct', decideCorrect(profile, 'final', 1, count(yield draw())) ? 1 : 0);
      yield mark('exitStage', S);
      yield send(at, t.device, 0, tb, 'answer');
      yield emit(1);
    };
  },
};

/**
 * The per-token task (policies.dtoee.task: per-token; docs/DTOEE.md "Per-token tasks"):
 *  - prefill: the prompt passes every stage (no exit: every layer's KV cache needs it) on
 *    nodes picked as a pass's are; the first token comes from the last stage [assumption,
 *    as CALM: the prompt is processed by the full model]. The request keeps these nodes for
 *    all its tokens (its KV cache lives there) [assumption: sticky routing].
 *  - token k >= 2: the device sends token k-1 to its stage-1 node; at the end of stage s < S
 *    the token exits when the exit draw says so (the node's threshold then), else its hidden
 *    state goes on to the request's stage s+1 node; the exit node sends the token to the
 *    device [assumption: the device drives the loop].
 *  - skipped layers' KV (`kvSkip`): a token that exits at stage s leaves its position missing
 *    from the KV of every deeper stage. The next token that goes deeper carries the missing
 *    positions' hidden rows (1 + missing rows over the hop) and, with `recompute`, runs them
 *    through the stage first (1 + missing tokens in that exec, ctx less by as many); with `copy`
 *    (CALM/LayerSkip state propagation) the exit layer's hidden state stands in for their
 *    input and the K/V projections are not timed [assumption] (1 token per exec).
 * Each token's exit stage, correctness (a draw against the profile at its stage) and emit
 * time go to dtoee_tokens.csv; TTFT and TBT come from the emits as for every system.
 */
function perTokenTask(env: ProtocolEnv, b: Built, first: readonly number[], names: readonly string[]) {
  const t = env.topology;
  const { plan, parts, profile } = b;
  const S = plan.nodes.length, hb = env.hiddenBytesPerToken, tb = env.tokenBytes, dev = t.device;
  const recompute = env.policies.dtoee.kvSkip === 'recompute';
  const jsq = b.policy.name === 'jsq', reported = env.policies.dtoee.jsqLoad === 'reported';
  const loads: Record<string, number> = {};
  return function* dtoeePerToken(req: { index: number; promptTokens: number; outputTokens: number }) {
    const P = req.promptTokens, T = req.outputTokens;
    const path: number[] = [];
    let at = dev;
    for (let s = 0; s < S; s++) {
      let next: number;
      if (s === 0) next = first.length === 1 ? first[0] : first[Math.min(first.length - 1, Math.floor(count(yield draw()) * first.length))];
      else {
        const u = count(yield draw());
        if (jsq) for (const c of plan.nodes[s]) loads[names[c]] = reported ? b.board.load(names[at], names[c]) : count(yield nodeLoad(c));
        next = t.index(b.policy.nextNode(names[at], u, jsq ? loads : undefined));
      }
      yield s === 0 ? send(at, next, 0, P * tb, 'prompt tokens') : send(at, next, P * hb, 0, `prefill hidden to stage ${s + 1}`);
      yield exec(next, parts[s], P, 0, 1, `prefill stage ${s + 1}`);
      path.push(next);
      at = next;
    }
    let correct = decideCorrect(profile, 'final', 1, count(yield draw())) ? 1 : 0;
    yield send(at, dev, 0, tb, 'token 1');
    yield emit(1);
    b.tokens.add({ device: names[dev], request: req.index, token: 1, exitStage: S, correct, timeS: count(yield now()) / 1000 });
    /** Positions missing from each stage's KV (tokens that exited before it, not yet caught up). */
    const missing = new Array<number>(S).fill(0);
    for (let k = 2; k <= T; k++) {
      const ctx = P + k - 2; // positions before the input token (token k-1)
      yield send(dev, path[0], 0, tb, `token ${k - 1} to stage 1`);
      let exitAt = S;
      for (let s = 0; s < S; s++) {
        const node = path[s];
        if (s > 0) yield send(path[s - 1], node, (1 + missing[s]) * hb, 0, `token ${k} hidden to stage ${s + 1}`);
        const catchUp = recompute ? missing[s] : 0;
        yield exec(node, parts[s], 1 + catchUp, ctx - catchUp, 1, `token ${k} stage ${s + 1}`);
        missing[s] = 0;
        if (s < S - 1) {
          const tau = b.policy.threshold(names[node]);
          if (decideExit(profile, s + 1, tau, count(yield draw()))) {
            correct = decideCorrect(profile, s + 1, tau, count(yield draw())) ? 1 : 0;
            exitAt = s + 1;
            for (let j = s + 1; j < S; j++) missing[j]++;
            break;
          }
        }
      }
      if (exitAt === S) correct = decideCorrect(profile, 'final', 1, count(yield draw())) ? 1 : 0;
      yield send(path[exitAt - 1], dev, 0, tb, `token ${k}`);
      yield emit(1);
      b.tokens.add({ device: names[dev], request: req.index, token: k, exitStage: exitAt, correct, timeS: count(yield now()) / 1000 });
    }
  };
}

/**
 * The resolved scenario: what a validated YAML scenario file becomes after
 * defaults are applied. Field names carry their units. This is the single
 * contract between scenario/ (parsing, validation) and sim/ (running).
 */
import type { TopologySpec } from '../topology/types.js';
import type { DeclaredModel } from '../model/declared.js';

export type SystemId = 'cloud' | 'ushape' | 'sd' | 'hat-nochunk' | 'hat' | 'staged' | 'dtoee' | 'device-only';
export const SYSTEM_IDS: readonly SystemId[] = ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat', 'staged', 'dtoee', 'device-only'];
/** The HAT comparison: what a scenario runs when it lists no systems. */
export const HAT_SYSTEMS: readonly SystemId[] = ['cloud', 'ushape', 'sd', 'hat-nochunk', 'hat'];

export interface Scenario {
  name: string;
  description: string;
  seed: number;
  /** Catalog (or declared) id of the LLM being served, e.g. "llama2-7b". */
  model: string;
  /** Models the scenario declares (pruned versions of catalog models, model/declared.ts); their ids stand wherever a model id does. */
  models: DeclaredModel[];
  split: {
    inputLayers: number; outputLayers: number; adapter: 'attention-block' | 'mlp' | 'decoder-layer';
    /** HAT family: the model the device's input/output layers come from (e.g. a pruned one); absent = `model`. */
    deviceModel?: string;
  };
  /** Systems to simulate; each runs separately on the same testbed and workload. */
  systems: SystemId[];
  /**
   * Where everything is: nodes, links, routes (topology/types.ts). Built from the
   * `nodes`/`links`/`routes` form, or expanded from today's `devices` + `cloud` +
   * `network.shared` form (scenario/topology.ts).
   */
  topology: TopologySpec;
  /** The legacy form as given (absent in the nodes/links form). */
  devices?: DeviceGroup[];
  cloud?: CloudSpec;
  network: NetworkSpec;
  workload: WorkloadSpec;
  policies: PolicySpec;
  /** Where calibration files are looked up: <calibrationDir>/<hardwareId>/<modelId>/model.json */
  calibrationDir: string;
  /** Stop simulating at this simulated time (s); requests not finished by then are reported as unfinished. */
  horizonS: number;
  memory: MemorySpec;
  /** A changing environment (sim/environment.ts): arrival-rate and node-speed schedules; absent = constant. */
  environment?: EnvironmentSpec;
}

/** Memory feasibility (sim/memory.ts): what each device must hold besides the weights [assumption]. */
export interface MemorySpec {
  /** max-context: the KV cache of the longest request (prompt + output) a device serves; none: weights only. */
  kvCache: 'max-context' | 'none';
  /** Memory kept free on every device node for the OS, runtime and activations (GB). */
  reserveGB: number;
}

/**
 * Schedules over simulated time (docs/DTOEE.md "A changing environment"). Windows are
 * [fromS, toS); where several windows cover one instant their factors multiply.
 */
export interface EnvironmentSpec {
  /** Arrival-rate multipliers: devices (node or group names; empty = every device) issue requests `multiplier` times as fast. */
  arrivals: { fromS: number; toS: number; multiplier: number; devices: string[] }[];
  /** Node slowdowns: from `fromS` (to `toS`, default forever) every exec job on the node (name or group) takes `factor` times as long. */
  nodeSpeed: { node: string; fromS: number; toS?: number; factor: number }[];
}

export interface DeviceGroup {
  /** Group name; devices are named `<name>-<index>`. */
  name: string;
  count: number;
  /** Hardware profile id (data-sheet roofline) or a calibrated hardware id. */
  hardware: string;
  link: LinkSpec;
  /** Names of shared bottlenecks (network.shared) this group's traffic crosses. */
  via: string[];
}

export interface LinkSpec {
  uplinkMbps: number;
  downlinkMbps: number;
  /** One-way propagation latency, each direction. */
  latencyMs: number;
  /** Std-dev of a per-message extra delay (truncated normal, >= 0); 0 = none. Order is preserved (FIFO). */
  jitterMs: number;
  /** Optional bandwidth trace replacing the fixed rates: CSV (time_s,bps) or Mahimahi (.up/.down pair prefix). */
  trace?: LinkTraceSpec;
}

export interface LinkTraceSpec {
  format: 'csv' | 'mahimahi';
  /** csv: file with columns time_s,uplink_bps,downlink_bps. mahimahi: path prefix; `<prefix>.up` and `<prefix>.down` are read. */
  path: string;
  /** Start offset into the trace (s); per device a seeded random offset is added when randomOffset is true. */
  offsetS: number;
  randomOffset: boolean;
}

export interface SharedLinkSpec {
  name: string;
  uplinkMbps: number;
  downlinkMbps: number;
}

export interface NetworkSpec {
  /** Shared bottlenecks (Wi-Fi access point, server NIC): concurrent flows through them share bandwidth max-min fairly. */
  shared: SharedLinkSpec[];
  /** Per-message framing overhead added to every transfer (headers). */
  headerBytes: number;
  /** Bytes per raw token id on the wire. */
  tokenBytes: number;
}

export interface CloudSpec {
  hardware: string;
  gpus: number;
  /** Max tokens processed in one batched step per GPU (continuous batching). */
  tokenBudget: number;
  /** Max sequences in one step per GPU. */
  maxBatchSeqs: number;
  router: 'least-loaded' | 'round-robin';
}

export type ArrivalSpec =
  | { kind: 'poisson'; ratePerS: number }
  | { kind: 'gamma'; ratePerS: number; cv: number }
  | { kind: 'closed-loop'; thinkTimeS: number }
  | { kind: 'trace'; path: string; timeScale: number };

export type LengthSpec =
  | { kind: 'fixed'; tokens: number }
  | { kind: 'uniform'; minTokens: number; maxTokens: number }
  | { kind: 'lognormal'; meanTokens: number; cv: number; minTokens: number; maxTokens: number }
  | { kind: 'trace' };

export interface WorkloadSpec {
  arrival: ArrivalSpec;
  promptTokens: LengthSpec;
  outputTokens: LengthSpec;
  /** Requests each device issues (trace: total requests read, spread round-robin over devices). */
  requestsPerDevice: number;
  /** Trace file for lengths and/or arrivals (columns arrived_at,num_prefill_tokens,num_decode_tokens). */
  tracePath?: string;
}

export type DraftPolicySpec =
  | { kind: 'fixed'; gamma: number }
  | { kind: 'adaptive'; minGamma: number; maxGamma: number; initialGamma: number; emaWeight: number };

export type ChunkPolicySpec =
  | { kind: 'none' }
  | { kind: 'fixed'; tokens: number }
  | { kind: 'dynamic'; minTokens: number; maxTokens: number };

/** A measured acceptance file (hatsim-acceptance/1, docs/ACCEPTANCE.md) and which of its tables to use. */
export interface AcceptanceFileSpec {
  path: string;
  /** Which table to use; `none` keeps the file named but uses the i.i.d. `acceptance` (for comparisons). */
  mode: 'greedy' | 'sampled' | 'none';
}

export interface PolicySpec {
  hat: {
    acceptance: number;
    /** Measured acceptance per draft position (policies.hat.acceptanceFile), replacing the i.i.d. rate; null = use `acceptance`. */
    acceptanceRates: number[] | null;
    acceptanceFile?: AcceptanceFileSpec;
    draft: DraftPolicySpec;
    chunk: ChunkPolicySpec;
    parallelDrafting: boolean;
    /** The model the acceptance figures belong to; when given it must be split.deviceModel (or model). */
    acceptanceModel?: string;
  };
  sd: {
    acceptance: number;
    acceptanceRates: number[] | null;
    acceptanceFile?: AcceptanceFileSpec;
    draft: DraftPolicySpec;
    /** Catalog (or declared) id of the independent draft model. */
    drafterModel: string;
    /** The model the acceptance figures belong to; when given it must be drafterModel. */
    acceptanceModel?: string;
  };
  /** device-only: the whole model on the device; absent = the scenario's model. */
  deviceOnly: { model?: string };
  ushape: { chunk: ChunkPolicySpec };
  staged: StagedPolicySpec;
  dtoee: DtoeePolicySpec;
}

/**
 * DTO-EE (protocol/systems/dtoee.ts, docs/DTOEE.md): staged inference with an exit head at
 * the end of every stage but the last; each node's routing fractions and threshold come from
 * the named policy (the distributed algorithm, a baseline, or the centralised optimum).
 */
export interface DtoeePolicySpec {
  /** dtoee, centralised, random, nearest, jsq, routing-opt, threshold-opt, no-exit. */
  policy: string;
  /** Exit-profile file (hatsim-exit-profile/1); absent = the default profile [assumption]. */
  profilePath?: string;
  /** Seconds of mean delay worth one unit (100 %) of mean accuracy in the objective. */
  beta: number;
  /** Queue model the optimiser assumes [assumption]: M/D/1 (fixed service, the default) or M/M/1. */
  sojourn: 'md1' | 'mm1';
  /** Threshold of the fixed-threshold baselines [assumption]. */
  fixedThreshold: number;
  /** The model the exit profile belongs to; when given it must be the scenario's model. */
  profileModel?: string;
  /**
   * Online re-optimisation (policy dtoee only; docs/DTOEE.md "Online"): every `periodS` each
   * edge node measures its arrival rate and service time over the last window and the
   * distributed algorithm runs from the current state with simulated neighbour messages.
   * false (default): optimised once before the run from the analytical model (offline).
   */
  online: boolean;
  /** Record per-node rows every `periodS` (dtoee_nodes.csv) also when offline (comparisons). */
  monitor: boolean;
  /** Seconds between re-optimisation rounds (and measurement windows) [assumption: 30]. */
  periodS: number;
  /** Agent iterations per penalty round of an online round (the problem's 4 penalty rounds: 4x this per online round) [assumption: 10]. */
  roundIterations: number;
  /** A node keeps its previous service-time estimate when it ran fewer jobs than this in the window [assumption: 5]. */
  minJobs: number;
  /** Online: also solve each round's measured model with the centralised solver (dtoee_rounds.csv centralised_objective; costs CPU: about 0.4 s per round on dtoee-rush). */
  oracle: boolean;  /**
   * Task kind (docs/DTOEE.md "Per-token tasks"): `pass` (default) = one inference pass that may
   * exit at a stage boundary; `per-token` = a generation whose every token after the first
   * passes the stages on its own and may exit early [assumption: the prompt's prefill and the
   * first token run the whole model; a request keeps its prefill's nodes].
   */
  task: 'pass' | 'per-token';
  /**
   * Per-token: the KV state of the layers a token skipped [assumption, an option]: `recompute`
   * (the next token that goes deeper first recomputes the missing positions) or `copy`
   * (CALM/LayerSkip-style state propagation: the exit layer's hidden state stands in for the
   * skipped layers' input; it travels with the next deeper token, its K/V projections untimed).
   */
  kvSkip: 'recompute' | 'copy';
  /**
   * jsq: the queue lengths it compares (docs/DTOEE.md "jsq live"): `instant` (default, the
   * simulator's exact load at decision time) or `reported` (each node's load as last reported to
   * its upstream neighbours, every `loadPeriodS`: what a node process can know; live needs it).
   */
  jsqLoad: 'instant' | 'reported';
  /** Seconds between load reports (jsqLoad: reported) [assumption: 1]. */
  loadPeriodS: number;
}

/**
 * Staged inference (protocol/systems/staged.ts): the model's decoder layers split into
 * stages hosted by the nodes with a `stage`; a task runs stage after stage, each on a node
 * the routing policy picks among the next stage's nodes.
 */
export interface StagedPolicySpec {
  /** Decoder layers per stage, in order (sum = the model's layers); empty = an even split. */
  stageLayers: number[];
  routing: StageRoutingSpec;
}

export type StageRoutingSpec =
  /** Fixed fractions per sending node (device or stage node): `fractions[from][to]`, each row summing to 1; rows not given split evenly. */
  | { kind: 'fixed'; fractions: Record<string, Record<string, number>> }
  /** Each candidate with equal probability. */
  | { kind: 'uniform' }
  /** The candidate with the fewest jobs waiting + in service (ties: the first). */
  | { kind: 'shortest-queue' }
  /** The candidate with the lowest route latency from the sender (ties: the first). */
  | { kind: 'nearest' };

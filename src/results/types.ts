/**
 * Output contract (other tools and notebooks read these; keep columns stable,
 * only append new ones). See docs/OUTPUTS.md.
 */
import type { SystemId } from '../scenario/types.js';

/** One row of requests.csv. */
export interface RequestRecord {
  system: SystemId;
  device: string;
  request: number;
  arrival_s: number;
  prompt_tokens: number;
  output_tokens: number;
  /** Arrival to first output token at the device. */
  ttft_ms: number;
  /** (last token time - first token time) / (output_tokens - 1); 0 when output_tokens = 1. */
  tbt_mean_ms: number;
  /** Largest gap between consecutive token deliveries. */
  tbt_max_ms: number;
  e2e_ms: number;
  bytes_up: number;
  bytes_down: number;
  /** Raw token ids (or text) sent up: privacy exposure. */
  raw_token_bytes_up: number;
  hidden_bytes_up: number;
  hidden_bytes_down: number;
  /** Device queueing before the request started (device busy with a previous request). */
  device_queue_ms: number;
  /** Total time the request's cloud jobs waited for a GPU step. */
  cloud_queue_ms: number;
  /** Time in device compute, cloud compute, and transfers (uplink+downlink incl. latency). */
  device_compute_ms: number;
  cloud_compute_ms: number;
  network_ms: number;
  /** Verification rounds (speculative systems) or decode round trips. */
  rounds: number;
  drafted_tokens: number;
  accepted_tokens: number;
  /** Chunk size used for prefill (prompt_tokens when unchunked). */
  chunk_tokens: number;
  gpu: number;
}

/** One row of summary.csv. */
export interface SummaryRecord {
  system: SystemId;
  requests: number;
  unfinished: number;
  ttft_mean_ms: number;
  ttft_p50_ms: number;
  ttft_p99_ms: number;
  tbt_mean_ms: number;
  tbt_p50_ms: number;
  tbt_p99_ms: number;
  e2e_mean_ms: number;
  throughput_tok_s: number;
  bytes_up_per_request: number;
  bytes_down_per_request: number;
  raw_token_bytes_up: number;
  hidden_bytes_up: number;
  cloud_queue_mean_ms: number;
  gpu_util_mean: number;
  acceptance_rate: number;
  tokens_per_round: number;
  latency_source: string;
}

/** Timeline span of one request (timeline.csv), for the "where does the time go" figure. */
export interface SpanRecord {
  system: SystemId;
  device: string;
  request: number;
  /** device-compute | uplink | cloud-queue | cloud-compute | downlink | drafting */
  kind: string;
  /** Submodel or message label, e.g. "input", "middle", "chunk 3". */
  label: string;
  start_ms: number;
  end_ms: number;
}

export const REQUEST_COLUMNS: readonly (keyof RequestRecord)[] = [
  'system', 'device', 'request', 'arrival_s', 'prompt_tokens', 'output_tokens', 'ttft_ms', 'tbt_mean_ms', 'tbt_max_ms',
  'e2e_ms', 'bytes_up', 'bytes_down', 'raw_token_bytes_up', 'hidden_bytes_up', 'hidden_bytes_down', 'device_queue_ms',
  'cloud_queue_ms', 'device_compute_ms', 'cloud_compute_ms', 'network_ms', 'rounds', 'drafted_tokens', 'accepted_tokens',
  'chunk_tokens', 'gpu',
];

export const SUMMARY_COLUMNS: readonly (keyof SummaryRecord)[] = [
  'system', 'requests', 'unfinished', 'ttft_mean_ms', 'ttft_p50_ms', 'ttft_p99_ms', 'tbt_mean_ms', 'tbt_p50_ms', 'tbt_p99_ms',
  'e2e_mean_ms', 'throughput_tok_s', 'bytes_up_per_request', 'bytes_down_per_request', 'raw_token_bytes_up', 'hidden_bytes_up',
  'cloud_queue_mean_ms', 'gpu_util_mean', 'acceptance_rate', 'tokens_per_round', 'latency_source',
];

export const SPAN_COLUMNS: readonly (keyof SpanRecord)[] = ['system', 'device', 'request', 'kind', 'label', 'start_ms', 'end_ms'];

/** One row of gpu_util.csv: busy fraction of one GPU in one time bin. */
export interface GpuUtilRecord {
  system: SystemId;
  gpu: number;
  time_s: number;
  busy_fraction: number;
}
export const GPU_UTIL_COLUMNS: readonly (keyof GpuUtilRecord)[] = ['system', 'gpu', 'time_s', 'busy_fraction'];

/** nodes.csv: one row per system and topology node (docs/OUTPUTS.md). */
export interface NodeRecord {
  system: string;
  node: string;
  kind: string;
  hardware: string;
  host: string;
  /** Parallel servers: 1 (single), k (workers), GPUs (batching). */
  servers: number;
  /** Jobs run on the node (compute passes, exec passes, batched jobs). */
  jobs: number;
  busy_ms: number;
  /** busy_ms / (servers x simulated span). */
  utilization: number;
  /** Mean time a job waited before it started (ms). */
  mean_wait_ms: number;
}
export const NODE_COLUMNS: readonly (keyof NodeRecord)[] = ['system', 'node', 'kind', 'hardware', 'host', 'servers', 'jobs', 'busy_ms', 'utilization', 'mean_wait_ms'];

/** links.csv: one row per system, link and direction that carried bytes. */
export interface LinkRecord {
  system: string;
  link: string;
  from: string;
  to: string;
  /** Bytes delivered across this link direction (every message whose route crosses it). */
  bytes: number;
  capacity_mbps: number;
  /** bytes x 8 / (capacity x simulated span). */
  utilization: number;
  /** Max-min fair shared bottleneck (true) or a per-flow cap of one node pair (false). */
  shared: boolean;
}
export const LINK_COLUMNS: readonly (keyof LinkRecord)[] = ['system', 'link', 'from', 'to', 'bytes', 'capacity_mbps', 'utilization', 'shared'];

/** hops.csv: one row per `exec` visit of a request to a node (systems that route tasks). */
export interface HopRecord {
  system: string;
  device: string;
  request: number;
  /** 0-based order of the visit within the request. */
  seq: number;
  node: string;
  /** Times relative to the request's arrival (ms). */
  submit_ms: number;
  start_ms: number;
  end_ms: number;
  queue_ms: number;
  compute_ms: number;
}
export const HOP_COLUMNS: readonly (keyof HopRecord)[] = ['system', 'device', 'request', 'seq', 'node', 'submit_ms', 'start_ms', 'end_ms', 'queue_ms', 'compute_ms'];

/** tasks.csv: one row per task of a system that marks exits (staged, dtoee). */
export interface TaskRecord {
  system: string;
  device: string;
  request: number;
  /** 1-based stage the task exited at (the last stage = no early exit). */
  exit_stage: number;
  /** 1 correct, 0 wrong, -1 not modelled (staged without an exit profile). */
  correct: number;
  /** Response delay: arrival to the answer at the device (ms). */
  delay_ms: number;
  /** Nodes visited, in order, joined by '>'. */
  nodes: string;
}
export const TASK_COLUMNS: readonly (keyof TaskRecord)[] = ['system', 'device', 'request', 'exit_stage', 'correct', 'delay_ms', 'nodes'];

/** task_summary.csv: one row per system that marks exits. */
export interface TaskSummaryRecord {
  system: string;
  /** dtoee's policy (the distributed algorithm or a baseline); empty for staged. */
  policy: string;
  tasks: number;
  delay_mean_ms: number;
  delay_p50_ms: number;
  delay_p99_ms: number;
  /** Share of correct answers (NaN when not modelled). */
  accuracy: number;
  /** Share of tasks exiting at each stage, ';'-separated, stage 1 first. */
  exit_shares: string;
}
export const TASK_SUMMARY_COLUMNS: readonly (keyof TaskSummaryRecord)[] = ['system', 'policy', 'tasks', 'delay_mean_ms', 'delay_p50_ms', 'delay_p99_ms', 'accuracy', 'exit_shares'];

/**
 * dtoee_nodes.csv (policies.dtoee online or monitor; docs/OUTPUTS.md): one row per edge node
 * per measurement window of `periodS`: what the node measured over [time_s - periodS, time_s)
 * and the threshold and routing fractions it held at time_s (before that instant's round).
 */
export interface DtoeeNodeRecord {
  system: string;
  policy: string;
  /** End of the measurement window (s). */
  time_s: number;
  /** Round started at time_s (1, 2, ...). */
  round: number;
  node: string;
  stage: number;
  /** Exit threshold held (1 at the last stage). */
  threshold: number;
  /** Routing fractions held over the next-stage nodes, `to=fraction` joined by '|' (empty at the last stage or for jsq). */
  routing: string;
  /** Tasks that reached the node in the window, per second. */
  arrival_per_s: number;
  /** Mean compute time per job finished in the window (ms; NaN when none). */
  service_ms: number;
  /** Service time the node reports to the optimiser (ms): the window's, or its previous estimate when it ran fewer than minJobs jobs. */
  service_estimate_ms: number;
  /** Busy share of the window. */
  utilization: number;
  /** Arrival rate the node's agent derived from its neighbours' flow messages in its last round (NaN offline). */
  model_arrival_per_s: number;
  /** When the node last applied new fractions and threshold (s; NaN: never). */
  applied_s: number;
}
export const DTOEE_NODE_COLUMNS: readonly (keyof DtoeeNodeRecord)[] = ['system', 'policy', 'time_s', 'round', 'node', 'stage', 'threshold', 'routing', 'arrival_per_s', 'service_ms', 'service_estimate_ms', 'utilization', 'model_arrival_per_s', 'applied_s'];

/** dtoee_rounds.csv (online): one row per re-optimisation round: its messages, simulated duration and the optimiser's convergence. */
export interface DtoeeRoundRecord {
  system: string;
  round: number;
  start_s: number;
  /** When the last node applied its new values (NaN: skipped). */
  end_s: number;
  /** 'done', or why the round did not run: 'busy' (the previous round had not finished), 'no-input' (no task arrived in the window). */
  status: string;
  /** Agent iterations per node, neighbour messages and their bytes on the wire (transport header included). */
  iterations: number;
  messages: number;
  bytes: number;
  /** Device input measured over the window (tasks/s, all access nodes). */
  input_per_s: number;
  /** The optimiser's objective under the window's measured model: with the values held before the round, and after it. */
  objective_before: number;
  objective_after: number;
  /** Model mean delay after the round (ms) and the largest agent move in the last iteration. */
  model_delay_ms: number;
  last_move: number;
  /** The centralised solver's objective on the same measured model (policies.dtoee.oracle; NaN without; convergence gap = after / this - 1). */
  centralised_objective: number;
}
/** dtoee_tokens.csv (policies.dtoee.task: per-token): one row per generated token. */
export interface DtoeeTokenRecord {
  system: string;
  device: string;
  request: number;
  /** 1-based token of the request (token 1 comes from the prefill, which runs every stage). */
  token: number;
  /** Stage the token exited at (the last stage = no early exit). */
  exit_stage: number;
  /** 1 correct, 0 wrong (a draw against the exit profile at that stage). */
  correct: number;
  /** When the token reached the device (s since the run's start), and since the request's previous token (ms; NaN for token 1). */
  time_s: number;
  gap_ms: number;
}
export const DTOEE_TOKEN_COLUMNS: readonly (keyof DtoeeTokenRecord)[] = ['system', 'device', 'request', 'token', 'exit_stage', 'correct', 'time_s', 'gap_ms'];

export const DTOEE_ROUND_COLUMNS: readonly (keyof DtoeeRoundRecord)[] = ['system', 'round', 'start_s', 'end_s', 'status', 'iterations', 'messages', 'bytes', 'input_per_s', 'objective_before', 'objective_after', 'model_delay_ms', 'last_move', 'centralised_objective'];

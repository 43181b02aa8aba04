/** Turns a RunResult into the files of the output contract (results/write.ts). */
import type { RunOutputs } from '../results/write.js';
import { VERSION } from '../results/write.js';
import type { RunResult } from './run.js';
import { environmentNotes } from './environment.js';

export function runOutputs(r: RunResult, extra: Record<string, unknown> = {}): RunOutputs {
  return {
    requests: r.systems.flatMap((s) => s.requests),
    ...(r.systems.some((s) => s.requestPart) ? { requestParts: r.systems.flatMap((s) => (s.requestPart ? [s.requestPart] : [])) } : {}),
    summary: r.systems.map((s) => s.summary),
    spans: r.systems.flatMap((s) => s.spans),
    gpuUtil: r.systems.flatMap((s) => s.gpuUtil),
    nodes: r.systems.flatMap((s) => s.nodes),
    links: r.systems.flatMap((s) => s.links),
    hops: r.systems.flatMap((s) => s.hops),
    tasks: r.systems.flatMap((s) => s.tasks),
    taskSummary: r.systems.flatMap((s) => (s.taskSummary ? [s.taskSummary] : [])),
    dtoeeNodes: r.systems.flatMap((s) => s.dtoeeNodes ?? []),
    dtoeeRounds: r.systems.flatMap((s) => s.dtoeeRounds ?? []),
    dtoeeTokens: r.systems.flatMap((s) => s.dtoeeTokens ?? []),
    runInfo: {
      tool: 'hatsim',
      version: VERSION,
      mode: 'simulation',
      // The devices + cloud form's expanded topology is derivable (and large for big fleets): left out.
      scenario: r.scenario.topology.legacyVia ? { ...r.scenario, topology: undefined } : r.scenario,
      seed: r.scenario.seed,
      wallMs: Math.round(r.wallMs),
      eventCount: r.eventCount,
      perSystem: r.systems.map((s) => ({
        system: s.system, events: s.eventCount, simEndS: s.simEndS,
        requests: s.summary.requests, unfinished: s.summary.unfinished,
        bytesSent: s.bytesSent, bytesDelivered: s.bytesDelivered,
      })),
      latency: r.provenance,
      warnings: r.warnings,
      ...(environmentNotes(r.scenario).length > 0 ? { environment: environmentNotes(r.scenario) } : {}),
      ...extra,
    },
  };
}

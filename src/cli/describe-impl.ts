/**
 * `hatsim describe <scenario>` (the work; cli/describe.ts is the command, loading this lazily): what the scenario means, without simulating:
 * model and split sizes, where each latency comes from (measured, imported or
 * estimated), per-stage latencies per hardware, and the prefill chunk size
 * HAT's dynamic policy picks for each device group on an idle cloud.
 */
import { singleShape } from '../compute/types.js';
import { componentSize, hiddenStateBytesPerToken } from '../model/catalog.js';
import { COMPONENT_IDS } from '../model/types.js';
import { chooseChunkTokens, predictPipelineMs, splitPrompt } from '../policy/chunk.js';
import { pipelineStages } from '../protocol/systems/split-prefill.js';
import type { Predictor, ProtocolEnv } from '../protocol/context.js';
import { loadScenario } from '../scenario/load.js';
import { buildTestbed, deviceLink, deviceMemory, topologyView, wholeLatencyOf } from '../sim/run.js';
import { SYSTEMS } from '../protocol/registry.js';
import { totalBytes } from '../sim/memory.js';
import { describeTopology } from './describe-topology.js';
import { environmentNotes } from '../sim/environment.js';
import { deviceLatency } from '../sim/latency.js';
import { overridesFrom, type ScenarioArgs } from './common.js';
import { table } from './table.js';

export function describeScenario(args: ScenarioArgs): string {
  const s = loadScenario(args.scenario, overridesFrom(args));
  const tb = buildTestbed(s);
  const { model, plan } = tb;
  const hb = hiddenStateBytesPerToken(model);
  const out: string[] = [];
  const prompts = tb.workload.flat().map((w) => w.promptTokens).sort((a, b) => a - b);
  const P = prompts[Math.floor(prompts.length / 2)] ?? 1;
  out.push(`${s.name}: ${s.description}`.trim());
  out.push(`model ${model.id}: ${model.numLayers} layers, hidden ${model.hiddenSize}, ${model.numHeads} heads (${model.numKvHeads} KV); split ${plan.inputLayers}/${plan.middleLayers}/${plan.outputLayers}, adapter ${plan.adapter.kind}`);
  const groups = [...new Map(tb.devices.map((d) => [d.node.group, d])).values()];
  const servers = tb.topology.nodes.filter((n) => n.processor.kind === 'batching');
  const srvText = servers.map((n) => n.processor.kind === 'batching' ? `${n.name} ${n.processor.gpus} x ${n.hardware}, token budget ${n.processor.tokenBudget}, router ${n.processor.router}` : '').join('; ');
  out.push(`${tb.devices.length} devices in ${groups.length} groups; ${srvText || 'no batching server'}; systems ${s.systems.join(', ')}`);
  out.push(`${tb.workload.flat().length} requests per system; median prompt ${P} tokens`);
  out.push('', 'Sizes per component (fp16 weights):');
  out.push(table(['component', 'params M', 'weights MB', 'GFLOP/token', 'KV bytes/token'],
    COMPONENT_IDS.map((c) => {
      const z = componentSize(model, c, plan.adapter.kind);
      return [c, z.params / 1e6, z.weightBytes / 1e6, z.flopsPerToken / 1e9, z.kvBytesPerToken];
    }), 2));
  out.push(`hidden state on the wire: ${hb} bytes per token per direction; a ${P}-token prompt = ${(P * hb / 1e6).toFixed(2)} MB each way`);
  if (s.models.length > 0) {
    out.push('', 'Declared models (models:; pruning descriptions, docs/PRUNING.md):');
    for (const m of s.models) {
      const base = m.base;
      const mean = m.pruning.ffnWidths.reduce((a, b) => a + b, 0) / m.pruning.ffnWidths.length;
      out.push(`  ${m.id}: ${base} pruned to ${m.pruning.layersKept.length} layers, mean FFN width ${mean.toFixed(1)} (${m.source === 'inline' ? 'inline' : m.source})`);
    }
  }
  const memRows: unknown[][] = [];
  for (const id of s.systems) {
    const byGroup = new Map<string, ReturnType<typeof deviceMemory>[number]>();
    for (const m of deviceMemory(tb, SYSTEMS[id])) {
      const cur = byGroup.get(m.device.node.group);
      if (!cur || totalBytes(m.need) > totalBytes(cur.need)) byGroup.set(m.device.node.group, m);
    }
    for (const [group, m] of byGroup) {
      const need = totalBytes(m.need);
      const cap = m.device.node.memoryBytes;
      memRows.push([id, group, m.model.id, m.need.weightBytes / 1e9, (m.need.kvBytes ?? 0) / 1e9, m.need.kvTokens ?? 0, (m.need.reserveBytes ?? 0) / 1e9, need / 1e9, cap === null ? '-' : cap / 1e9, cap === null || need <= cap ? 'yes' : 'NO']);
    }
  }
  if (memRows.length > 0) {
    out.push('', `Device memory per system (fp16 weights; KV cache of the group's longest request: memory.kvCache ${s.memory.kvCache}; reserve memory.reserveGB ${s.memory.reserveGB}) [assumption: activations not counted]:`);
    out.push(table(['system', 'group', 'model', 'weights GB', 'KV GB', 'KV tokens', 'reserve GB', 'needs GB', 'board GB', 'fits'], memRows, 2));
  }

  out.push('', 'Latency sources (measured > imported > estimate):');
  for (const p of tb.provenance) {
    out.push(`  ${p.hardwareId} / ${p.modelId}: ` + COMPONENT_IDS.map((c) => `${c}=${p.components[c].source}`).join(', '));
    const origins = [...new Set(COMPONENT_IDS.map((c) => p.components[c].origin))];
    out.push(`    from ${origins.join('; ')}`);
  }

  out.push('', `Stage latencies (ms) for a ${P}-token prompt and one decode step at context ${P}, batch of one:`);
  const rows: unknown[][] = [];
  const seen = new Set<string>();
  for (const d of tb.devices) {
    const hw = d.hardware;
    if (seen.has(hw)) continue;
    seen.add(hw);
    const l = tb.deviceLatency.get(hw)!;
    const dl = deviceLatency(l.target, l.drafter);
    const wholeStep = s.systems.includes('device-only') ? [deviceLatency(l.target, wholeLatencyOf(tb, SYSTEMS['device-only'], hw)).passMs('drafter', 1, P, 1)] : [];
    rows.push([`device ${hw}`, dl.passMs('input', P, 0, 0), dl.passMs('adapter', P, 0, 0), dl.passMs('output', P, 0, 1),
      dl.passMs('input', 1, P, 0), dl.passMs('slm', 1, P, 1), dl.passMs('drafter', 1, P, 1), ...wholeStep]);
  }
  out.push(table(['where', 'input prefill', 'adapter prefill', 'output prefill', 'input 1 tok', 'SLM draft step', 'drafter step', ...(s.systems.includes('device-only') ? ['device-only step'] : [])], rows, 2));
  const mid = tb.cloudLatency.submodel('middle'), full = tb.cloudLatency.submodel('full');
  out.push(table(['cloud ' + (servers[0]?.hardware ?? tb.provenance[tb.provenance.length - 1].hardwareId), 'middle prefill', 'middle 1 tok', 'middle 5 tok', 'full prefill', 'full 1 tok'],
    [['batch of one', mid.batchMs(singleShape(P, 0), 0), mid.batchMs(singleShape(1, P), 0), mid.batchMs(singleShape(5, P), 0), full.batchMs(singleShape(P, 0), 1), full.batchMs(singleShape(1, P), 1)]], 2));

  out.push('', `Prefill of a ${P}-token prompt per device group (idle cloud and links; HAT chunk policy ${JSON.stringify(s.policies.hat.chunk)}):`);
  const crow: unknown[][] = [];
  for (const d of groups.filter((x) => x.node.server !== null && servers.some((n) => n.name === x.node.server))) {
    const g = { name: d.node.group, hardware: d.hardware, link: deviceLink(tb, d).link };
    const l = tb.deviceLatency.get(g.hardware)!;
    const dl = deviceLatency(l.target, l.drafter);
    const bps = (mbps: number) => mbps * 1e6;
    const predictor: Predictor = {
      deviceMs: (w, n, ctx, lg) => dl.passMs(w, n, ctx, lg),
      cloudMs: (_w, n, ctx, lg) => mid.batchMs(singleShape(n, ctx), lg),
      txMs: (dir, bytes) => ((bytes + s.network.headerBytes) * 8) / bps(dir === 'up' ? g.link.uplinkMbps : g.link.downlinkMbps) * 1000,
      latencyMs: () => g.link.latencyMs,
    };
    const env: ProtocolEnv = { hiddenBytesPerToken: hb, tokenBytes: s.network.tokenBytes, predictor, policies: s.policies, topology: topologyView(tb, d, -1) };
    const st = pipelineStages(env, null, true);
    const chunk = chooseChunkTokens(s.policies.hat.chunk, P, st);
    crow.push([g.name, g.hardware, `${g.link.uplinkMbps}/${g.link.downlinkMbps} Mbit/s, ${g.link.latencyMs} ms`, chunk,
      splitPrompt(P, chunk).length, predictPipelineMs(splitPrompt(P, chunk), st), predictPipelineMs([P], st)]);
  }
  out.push(table(['group', 'hardware', 'link up/down, one-way', 'chunk tokens', 'chunks', 'hat prefill ms', 'unchunked ms'], crow, 1));
  out.push('', ...describeTopology(tb));
  const envNotes = environmentNotes(s);
  if (envNotes.length > 0) out.push('', 'Changing environment and DTO-EE control:', ...envNotes.map((l) => `  ${l}`));
  if (tb.warnings.length > 0) out.push('', ...tb.warnings.map((w) => `warning: ${w}`));
  return out.join('\n') + '\n';
}

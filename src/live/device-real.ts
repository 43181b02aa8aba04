/**
 * `--real-acceptance` of the live runner: the drafting systems' accept ops are
 * answered by real speculative decoding (train/speculative.ts) on the trained
 * model's exported ONNX parts instead of seeded draws. The SLM (input layers +
 * adapter + output layers) drafts the round's g tokens, the full model's real
 * logits verify them (greedy: longest prefix equal to the full model's argmax;
 * sampled: min(1, p/q) with seeded draws, docs/LIVE.md), and the committed
 * tokens are real tokens of the tokenizer (logged as text per request).
 *
 * What stays as before: every compute pass, frame and cloud step of the
 * protocol runs and is timed exactly as in a seeded run (their payload values
 * are still a fixed pattern); the token work runs on the device process's
 * thread inside the accept op and its time is logged per request (engine_ms).
 * [assumption] sd drafts with the same trained SLM (the only trained draft
 * model here), whatever policies.sd.drafterModel times.
 *
 * Prompts: real text, a window of the Brown test split of the request's prompt
 * length at an offset drawn from stream `real-prompt/<device>/<request>`
 * (sampled mode: draws from `real-accept/<device>/<system>/<request>`).
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { writeFileAtomic } from '../core/atomic.js';
import { InputError } from '../core/errors.js';
import { Rng } from '../core/rng.js';
import { getModel } from '../model/catalog.js';
import type { Scenario, SystemId } from '../scenario/types.js';
import type { RequestState } from '../sim/request.js';
import { loadBrown, splitBrown } from '../train/corpus.js';
import { encodeDocs } from '../train/data.js';
import { readExportInfo, SpeculativeModel, type SpecMode, type SpecRequest } from '../train/speculative.js';
import { Tokenizer } from '../train/tokenizer.js';

export interface RealAcceptanceOptions { onnxDir: string; mode: SpecMode; temperature: number }

/** Systems whose accept ops real acceptance answers. */
export const DRAFTING_SYSTEMS: readonly SystemId[] = ['hat', 'hat-nochunk', 'sd'];

/** Everything checkable without loading sessions; InputError (exit 2) naming the flag or field. */
export function checkRealAcceptance(s: Scenario, o: Partial<RealAcceptanceOptions> & { mode?: string }): void {
  if (o.mode !== 'greedy' && o.mode !== 'sampled') throw new InputError(`--real-acceptance ${String(o.mode)}: give greedy or sampled`, 'real-acceptance');
  if (o.mode === 'sampled' && !(typeof o.temperature === 'number' && o.temperature > 0)) throw new InputError(`--temperature ${String(o.temperature)}: sampled real acceptance needs a temperature > 0`, 'temperature');
  if (!o.onnxDir) {
    throw new InputError('--real-acceptance needs --onnx-dir DIR, an export of a trained model (hatsim export-model --dir models/brown-small --out DIR): the live runner\'s own graphs have seeded random weights, whose drafts would mean nothing', 'onnx-dir');
  }
  const info = readExportInfo(o.onnxDir);
  const f = join(o.onnxDir, 'export.json');
  if (info.model !== s.model) throw new InputError(`${f}: the export is of model ${info.model}, the scenario's model is ${s.model}; set model: ${info.model} (--set model=${info.model})`, 'model');
  if (!info.adapter) throw new InputError(`${f}: the export has no HAT adapter (field "adapter" is null), so there is no SLM to draft with; train it (hatsim train --part adapter) and export again`, 'adapter');
  if (s.split.inputLayers !== info.adapter.inputLayers || s.split.outputLayers !== info.adapter.outputLayers) {
    throw new InputError(`split: the scenario runs ${s.split.inputLayers} input + ${s.split.outputLayers} output layers on the device, the adapter was trained for ${info.adapter.inputLayers} + ${info.adapter.outputLayers}; --set split.inputLayers=${info.adapter.inputLayers} --set split.outputLayers=${info.adapter.outputLayers}`, 'split.inputLayers');
  }
  const tok = Tokenizer.load(join(o.onnxDir, info.tokenizer.file));
  if (tok.sha256 !== info.tokenizer.sha256) throw new InputError(`${join(o.onnxDir, info.tokenizer.file)}: sha256 ${tok.sha256} differs from field "tokenizer.sha256" of ${f}: tokenizer mismatch`, 'tokenizer.sha256');
  if (!s.systems.some((id) => DRAFTING_SYSTEMS.includes(id))) throw new InputError(`--real-acceptance: none of the scenario's systems (${s.systems.join(', ')}) drafts; it applies to ${DRAFTING_SYSTEMS.join(', ')}`, 'real-acceptance');
}

/** A UniformSource that replays a verdict: k acceptances then a rejection (RequestState.verifyRound with rate 1). */
function verdict(k: number): { uniform(): number } {
  let i = 0;
  return { uniform: () => (i++ < k ? 0 : 1) };
}

/** One line of real-acceptance-device-<i>.jsonl. */
export interface RealRequestLine {
  system: SystemId;
  device: number;
  request: number;
  mode: SpecMode;
  temperature: number;
  promptOffset: number;
  prompt: number[];
  generated: number[];
  promptText: string;
  text: string;
  /** Per round: the draft token ids, how many were accepted, and the tokens committed (accepted drafts + the full model's next token). */
  rounds: { drafted: number; accepted: number; drafts: number[]; committed: number[] }[];
  reached: number[];
  accepted: number[];
  engineMs: number;
}

/** The device side: one per device process. */
export class RealAcceptance {
  private readonly live = new Map<number, { spec: SpecRequest; offset: number; acceptedSinceEmit: boolean; system: SystemId; index: number }>();
  private readonly logPath: string;

  private constructor(
    private readonly s: Scenario, private readonly device: number, private readonly o: RealAcceptanceOptions,
    private readonly model: SpeculativeModel, private readonly tok: Tokenizer, private readonly test: Int32Array, outDir: string,
  ) {
    this.logPath = join(outDir, `real-acceptance-device-${device}.jsonl`);
    writeFileSync(this.logPath, '');
  }

  static async load(s: Scenario, device: number, o: RealAcceptanceOptions, outDir: string): Promise<RealAcceptance> {
    checkRealAcceptance(s, o);
    const info = readExportInfo(o.onnxDir);
    const tok = Tokenizer.load(join(o.onnxDir, info.tokenizer.file));
    const model = await SpeculativeModel.load(o.onnxDir, getModel(s.model));
    const test = encodeDocs(tok, splitBrown(loadBrown()).test);
    return new RealAcceptance(s, device, o, model, tok, test, outDir);
  }

  private get(req: RequestState): { spec: SpecRequest; offset: number; acceptedSinceEmit: boolean; system: SystemId; index: number } {
    let e = this.live.get(req.id);
    if (!e) {
      const P = req.promptTokens;
      if (P < 1 || P + req.outputTokens > this.model.m.maxContext) throw new InputError(`workload: prompt ${P} + output ${req.outputTokens} tokens must fit the context of ${this.model.m.id} (${this.model.m.maxContext}) for real acceptance`, 'workload.promptTokens');
      const offset = new Rng(this.s.seed, `real-prompt/${this.device}/${req.index}`).int(this.test.length - P);
      const rng = this.o.mode === 'sampled' ? new Rng(this.s.seed, `real-accept/${this.device}/${req.system}/${req.index}`) : null;
      const spec = this.model.request(Array.from(this.test.subarray(offset, offset + P)), req.outputTokens, this.o, rng);
      e = { spec, offset, acceptedSinceEmit: false, system: req.system, index: req.index };
      this.live.set(req.id, e);
    }
    return e;
  }

  /** The accept op of a drafting system: the real round (or, right after a full acceptance, parallel drafting's extra check). */
  async accept(req: RequestState, drafted: number): Promise<number> {
    const e = this.get(req);
    const k = e.acceptedSinceEmit ? await e.spec.extra() : await e.spec.round(drafted);
    e.acceptedSinceEmit = true;
    return req.verifyRound(verdict(k), drafted, 1, null);
  }

  /** The emit op: the first token after prefill comes from the full model; every emit must match the committed tokens. */
  async emit(req: RequestState, n: number): Promise<void> {
    if (!DRAFTING_SYSTEMS.includes(req.system)) return;
    const e = this.get(req);
    if (req.emitted === 0) await e.spec.first();
    e.acceptedSinceEmit = false;
    if (e.spec.generated.length !== req.emitted + n) {
      throw new Error(`invariant: request ${req.index} emits ${req.emitted + n} tokens but real speculative decoding committed ${e.spec.generated.length}`);
    }
  }

  /** After the request's record: its line in real-acceptance-device-<i>.jsonl. */
  finish(req: RequestState): void {
    const e = this.live.get(req.id);
    if (!e) return;
    this.live.delete(req.id);
    const sp = e.spec;
    const line: RealRequestLine = {
      system: e.system, device: this.device, request: e.index, mode: this.o.mode, temperature: this.o.mode === 'greedy' ? 0 : this.o.temperature,
      promptOffset: e.offset, prompt: [...sp.prompt], generated: sp.generated, promptText: this.tok.decode([...sp.prompt]), text: this.tok.decode(sp.generated),
      rounds: sp.rounds.map((r) => ({ drafted: r.drafted, accepted: r.accepted, drafts: r.drafts, committed: r.committed })), reached: sp.reached, accepted: sp.acceptedAt, engineMs: Math.round(sp.engineMs * 100) / 100,
    };
    appendFileSync(this.logPath, JSON.stringify(line) + '\n');
  }
}

interface Rate { reached: number; accepted: number; rate: number; stdErr: number }

/**
 * Per draft position: every round (`reached`..`stdErr`: contexts are the prompt plus the model's own
 * output), the first round of each request only (`firstRound`: the context is the real test-text
 * prompt plus the first token, like the acceptance file's test contexts), what the simulator uses,
 * and the acceptance file's figure.
 */
export interface PositionSummary extends Rate { position: number; firstRound: Rate; simulator: number; file?: { rate: number; reached: number } }

function rateOf(reached: number, accepted: number): Rate {
  const rate = reached > 0 ? accepted / reached : 0;
  return { reached, accepted, rate, stdErr: reached > 0 ? Math.sqrt((rate * (1 - rate)) / reached) : 0 };
}

export interface RealAcceptanceSummary {
  format: 'hatsim-live-acceptance/1';
  mode: SpecMode;
  temperature: number;
  onnxDir: string;
  bySystem: { system: SystemId; requests: number; rounds: number; drafted: number; accepted: number; engineMs: number; positions: PositionSummary[]; simulatorSource: string; example: { device: number; request: number; promptEnd: string; text: string } | null }[];
}

interface AcceptanceFileRun { positions: { position: number; reached: number; rate: number }[] }

/**
 * Merge the devices' lines into real-acceptance.json: per system and draft position the measured
 * rate (accepted / reached, binomial standard error), next to what the simulator uses (the
 * scenario's acceptance file's rate for that position, or the i.i.d. `acceptance`).
 */
export function mergeRealAcceptance(outDir: string, s: Scenario, scenarioDir: string, devices: number, o: RealAcceptanceOptions): RealAcceptanceSummary {
  const lines: RealRequestLine[] = [];
  for (let d = 0; d < devices; d++) {
    const p = join(outDir, `real-acceptance-device-${d}.jsonl`);
    if (!existsSync(p)) continue;
    for (const l of readFileSync(p, 'utf8').split('\n')) if (l) lines.push(JSON.parse(l) as RealRequestLine);
  }
  const bySystem = s.systems.filter((id) => DRAFTING_SYSTEMS.includes(id)).map((system) => {
    const ls = lines.filter((l) => l.system === system);
    const reached: number[] = [], accepted: number[] = [], firstReached: number[] = [], firstAccepted: number[] = [];
    for (const l of ls) l.reached.forEach((n, i) => { reached[i] = (reached[i] ?? 0) + n; accepted[i] = (accepted[i] ?? 0) + l.accepted[i]; });
    for (const l of ls) {
      const r0 = l.rounds[0];
      if (!r0) continue;
      for (let i = 0; i < Math.min(r0.accepted + 1, r0.drafted); i++) {
        firstReached[i] = (firstReached[i] ?? 0) + 1;
        firstAccepted[i] = (firstAccepted[i] ?? 0) + (i < r0.accepted ? 1 : 0);
      }
    }
    const pol = system === 'sd' ? s.policies.sd : s.policies.hat;
    const spec = pol.acceptanceFile;
    let fileRun: AcceptanceFileRun | null = null;
    if (spec && spec.mode !== 'none' && pol.acceptanceRates) {
      try { fileRun = (JSON.parse(readFileSync(isAbsolute(spec.path) ? spec.path : join(scenarioDir, spec.path), 'utf8')) as Record<string, AcceptanceFileRun>)[spec.mode] ?? null; } catch { fileRun = null; }
    }
    const rates = pol.acceptanceRates;
    const positions: PositionSummary[] = reached.map((n, i) => {
      const fp = fileRun?.positions[Math.min(i, fileRun.positions.length - 1)];
      return {
        position: i + 1, ...rateOf(n, accepted[i]), firstRound: rateOf(firstReached[i] ?? 0, firstAccepted[i] ?? 0),
        simulator: rates ? rates[Math.min(i, rates.length - 1)] : pol.acceptance,
        ...(fp ? { file: { rate: fp.rate, reached: fp.reached } } : {}),
      };
    });
    return {
      system, requests: ls.length, rounds: ls.reduce((a, l) => a + l.rounds.length, 0),
      drafted: ls.reduce((a, l) => a + l.rounds.reduce((b, r) => b + r.drafted, 0), 0), accepted: ls.reduce((a, l) => a + l.rounds.reduce((b, r) => b + r.accepted, 0), 0),
      engineMs: Math.round(ls.reduce((a, l) => a + l.engineMs, 0)), positions,
      simulatorSource: rates && spec ? `acceptance file ${spec.path} (${spec.mode})` : `i.i.d. acceptance ${pol.acceptance} [assumption]`,
      example: ls.length > 0 ? { device: ls[0].device, request: ls[0].request, promptEnd: ls[0].promptText.slice(-80), text: ls[0].text } : null,
    };
  });
  const out: RealAcceptanceSummary = { format: 'hatsim-live-acceptance/1', mode: o.mode, temperature: o.mode === 'greedy' ? 0 : o.temperature, onnxDir: o.onnxDir, bySystem };
  writeFileAtomic(join(outDir, 'real-acceptance.json'), JSON.stringify(out, null, 2) + '\n');
  return out;
}

/** The summary as a text table (live.log / stderr). */
export function realAcceptanceTable(r: RealAcceptanceSummary): string {
  const rows: string[] = [];
  for (const sys of r.bySystem) {
    rows.push(`real acceptance (${r.mode}${r.mode === 'sampled' ? `, T=${r.temperature}` : ''}) of ${sys.system}: ${sys.requests} requests, ${sys.rounds} rounds, ${sys.accepted}/${sys.drafted} drafts accepted; simulator: ${sys.simulatorSource}`);
    rows.push('position\tall rounds (accepted/reached, +-s.e.)\tfirst rounds\tsimulator\tfile (reached)');
    const f = (r: Rate): string => `${r.rate.toFixed(3)} (${r.accepted}/${r.reached}, +-${r.stdErr.toFixed(3)})`;
    for (const p of sys.positions) rows.push(`${p.position}\t${f(p)}\t${f(p.firstRound)}\t${p.simulator.toFixed(3)}\t${p.file ? `${p.file.rate.toFixed(3)} (${p.file.reached})` : '-'}`);
    if (sys.example) rows.push(`device ${sys.example.device} request ${sys.example.request}: ...${JSON.stringify(sys.example.promptEnd)} => ${JSON.stringify(sys.example.text)}`);
  }
  return rows.join('\n');
}

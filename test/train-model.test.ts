/**
 * The shipped trained model (models/brown-small): loads against the catalog,
 * predicts far better than a unigram model, its ONNX export matches the
 * TensorFlow.js forward pass, and bad folders exit 2 with the file and field.
 * CLI tests spawn dist/src/cli/main.js (npm test builds first).
 */
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../src/core/errors.js';
import { loadModelFolder } from '../src/train/folder.js';
import { perplexity } from '../src/train/eval.js';
import { tokenData } from '../src/train/data.js';
import { exportOnnx } from '../src/train/export.js';
import { encodeDocs } from '../src/train/data.js';
import { loraFineTune, LORA_DEFAULTS } from '../src/train/lora.js';
import { adapterShapes, baseShapes, disposeCtx, forward, forwardSlm, makeCtx, toVariables } from '../src/train/model.js';
import { OnnxLm } from '../src/train/ort.js';
import { LiveCompute } from '../src/live/compute.js';
import { Tokenizer } from '../src/train/tokenizer.js';
import { initTf, tf } from '../src/train/tf.js';

const REPO = resolve(__dirname, '..');
const DIR = join(REPO, 'models/brown-small');
const CLI = join(REPO, 'dist/src/cli/main.js');
const hatsim = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 120_000 });
const tmp = mkdtempSync(join(tmpdir(), 'hatsim-model-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('shipped brown-small model', () => {
  it('loads against the catalog and beats a unigram model on the test split by far', async () => {
    await initTf();
    const f = loadModelFolder(DIR);
    expect(f.manifest.tokenizer.sha256).toBe(f.tokenizer.sha256);
    const data = tokenData(f.tokenizer);
    expect(f.manifest.data.tokens.test).toBe(data.test.length);
    const p = toVariables(baseShapes(f.model), f.values, false);
    const r = perplexity(f.model, p, data.train, data.test, 64, 8);
    for (const t of p.values()) t.dispose();
    expect(r.modelPerplexity).toBeLessThan(0.7 * r.unigramPerplexity);
  }, 120_000);

  it('its ONNX export (with the adapter) gives the same logits as TensorFlow.js, full model and SLM', async () => {
    await initTf();
    const f = loadModelFolder(DIR, { adapter: true });
    const out = join(tmp, 'onnx');
    exportOnnx(f.model, f.values, out);
    const ids = f.tokenizer.encode(' The jury said that the city').slice(0, 8);
    const p = toVariables([...baseShapes(f.model), ...adapterShapes(f.model)], f.values, false);
    const c = makeCtx(f.model, ids.length);
    const ref = tf.tidy(() => forward(p, c, tf.tensor2d(ids, [1, ids.length], 'int32')).dataSync() as Float32Array);
    const slmRef = tf.tidy(() => forwardSlm(p, c, tf.tensor2d(ids, [1, ids.length], 'int32'), f.manifest.adapter!.inputLayers, f.manifest.adapter!.outputLayers).dataSync() as Float32Array);
    disposeCtx(c);
    for (const t of p.values()) t.dispose();
    const lm = await OnnxLm.load(f.model, out);
    const got = await lm.step(ids);
    const scale = ref.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    expect(got.reduce((m, x, i) => Math.max(m, Math.abs(x - ref[i])), 0)).toBeLessThan(1e-3 * scale);
    // the SLM through ONNX: embedding -> layer.0 -> adapter -> layer.3 -> lmHead (no past)
    const ort = (await import('onnxruntime-node')).default;
    const sess = async (n: string) => ort.InferenceSession.create(join(out, `${n}.onnx`));
    const H = f.model.hiddenSize, D = H / f.model.numHeads, n = ids.length;
    const empty = () => new ort.Tensor('float32', new Float32Array(0), [1, f.model.numKvHeads, 0, D]);
    const attnFeeds = (h: Float32Array) => ({ hidden_states: new ort.Tensor('float32', h, [1, n, H]), 'past_key_values.0.key': empty(), 'past_key_values.0.value': empty(), seqlens_k: new ort.Tensor('int32', Int32Array.of(n - 1), [1]), total_sequence_length: new ort.Tensor('int32', Int32Array.of(n), []) });
    let h = (await (await sess('embedding')).run({ input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), [1, n]) })).hidden_states_out.data as Float32Array;
    const L = f.model.numLayers, a = f.manifest.adapter!;
    for (let i = 0; i < a.inputLayers; i++) h = (await (await sess(`layer.${i}`)).run(attnFeeds(h))).hidden_states_out.data as Float32Array;
    h = (await (await sess('adapter')).run(attnFeeds(h))).hidden_states_out.data as Float32Array;
    for (let i = L - a.outputLayers; i < L; i++) h = (await (await sess(`layer.${i}`)).run(attnFeeds(h))).hidden_states_out.data as Float32Array;
    const slm = (await (await sess('lmHead')).run({ hidden_states: new ort.Tensor('float32', h, [1, n, H]) })).logits.data as Float32Array;
    expect(slm.reduce((m, x, i) => Math.max(m, Math.abs(x - slmRef[i])), 0)).toBeLessThan(1e-3 * scale);
    // the live runner's compute opens the same folder unchanged (its --onnx-dir contract) and runs every pass
    const lc = new LiveCompute({ plan: { modelId: 'brown-small', inputLayers: 1, outputLayers: 1, middleLayers: 2, drafterModelId: 'brown-small' }, need: { device: true, drafter: false, cloud: true }, onnxDir: out });
    await lc.init();
    for (const work of ['input', 'adapter', 'output', 'slm', 'middle', 'full'] as const) expect(await lc.pass({ work, tokens: 4, ctx: 16, logits: 1 })).toBeGreaterThan(0);
  }, 120_000);

  it('LoRA on one genre shard (humor) lowers that shard loss of the trained model', async () => {
    const f = loadModelFolder(DIR);
    const data = tokenData(f.tokenizer);
    const shard = encodeDocs(f.tokenizer, data.splits.shards.humor);
    const r = await loraFineTune(f.model, f.values, shard, shard, { ...LORA_DEFAULTS, steps: 30, batch: 8, seq: 64, lr: 1e-2, rank: 8, alpha: 16, targets: ['q', 'v', 'o', 'gate', 'up', 'down'], evalWindows: 8 });
    expect(r.lossAfter).toBeLessThan(r.lossBefore - 0.005); // measured 5.254 -> 5.241: a small shard, a small model
  }, 120_000);

  it('a tokenizer that is not the one trained with is refused (tokenizer mismatch), also by the CLI with exit 2', () => {
    const bad = join(tmp, 'badtok');
    cpSync(DIR, bad, { recursive: true, filter: (s) => !s.includes('/ckpt') });
    const t = Tokenizer.load(join(DIR, 'tokenizer.json'));
    const merges = t.merges.slice();
    [merges[10], merges[11]] = [merges[11], merges[10]];
    new Tokenizer(merges, t.vocabSize).save(join(bad, 'tokenizer.json'));
    expect(() => loadModelFolder(bad)).toThrow(InputError);
    expect(() => loadModelFolder(bad)).toThrow(/tokenizer mismatch/);
    const r = hatsim('lm-eval', '--dir', bad, '--windows', '1');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/tokenizer\.json: tokenizer sha256 .* field "tokenizer.sha256"/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it('truncated weights and weights of other dims exit 2 naming the file and field', () => {
    const bad = join(tmp, 'badw');
    cpSync(DIR, bad, { recursive: true, filter: (s) => !s.includes('/ckpt') });
    const bin = readFileSync(join(bad, 'weights.bin'));
    writeFileSync(join(bad, 'weights.bin'), bin.subarray(0, 1000));
    let r = hatsim('generate', '--dir', bad, '--prompt', 'The');
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/weights\.bin: 1000 bytes, field "totalBytes"/);
    writeFileSync(join(bad, 'weights.bin'), bin);
    const idx = JSON.parse(readFileSync(join(bad, 'weights.json'), 'utf8'));
    idx.dims.numLayers = 6;
    writeFileSync(join(bad, 'weights.json'), JSON.stringify(idx));
    r = hatsim('export-model', '--dir', bad, '--out', join(tmp, 'x'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/weights\.json: field "dims.numLayers" is 6 but catalog model brown-small has 4/);
  });
});

/**
 * A model trained in this project (src/train/, e.g. models/brown-small) as a pruning source,
 * and real-text calibration from its corpus: calibration windows from the validation split,
 * held-out windows from the test split (so perplexity is on text the pruner never saw).
 * The trained tensors are already in the ONNX MatMul layout the pruner reads ([in, out]).
 */
import { InputError } from '../core/errors.js';
import { tokenData } from '../train/data.js';
import { loadModelFolder, type ModelFolder } from '../train/folder.js';
import type { Calibration } from './run.js';
import { archOf, type LayerWeights, type ModelSource } from './weights.js';

export class TrainedSource implements ModelSource {
  readonly description: string;
  readonly dims;
  readonly numLayers: number;
  constructor(readonly folder: ModelFolder) {
    this.description = `trained model ${folder.model.id} (${folder.dir})`;
    this.dims = archOf(folder.model);
    this.numLayers = folder.model.numLayers;
  }
  private get(name: string): Float32Array {
    const v = this.folder.values.get(name);
    if (!v) throw new InputError(`${this.folder.dir}: trained weights have no tensor ${name}`, 'trained');
    return v;
  }
  ffnWidths(): number[] { return Array.from({ length: this.numLayers }, () => this.folder.model.intermediateSize); }
  layer(i: number): LayerWeights {
    const p = `layers.${i}.`;
    return {
      inputNorm: this.get(`${p}input_norm.weight`), q: this.get(`${p}attn.q.weight`), k: this.get(`${p}attn.k.weight`),
      v: this.get(`${p}attn.v.weight`), o: this.get(`${p}attn.o.weight`), postNorm: this.get(`${p}post_norm.weight`),
      gate: this.get(`${p}mlp.gate.weight`), up: this.get(`${p}mlp.up.weight`), down: this.get(`${p}mlp.down.weight`),
      ffn: this.folder.model.intermediateSize,
    };
  }
  embedding(): Float32Array { return this.get('embed_tokens.weight'); }
  finalNorm(): Float32Array { return this.get('final_norm.weight'); }
  lmHead(): Float32Array { return this.get('lm_head.weight'); }
}

export function loadTrained(dir: string): TrainedSource {
  return new TrainedSource(loadModelFolder(dir));
}

/** `sequences` calibration windows of the validation split, `heldOut` windows of the test split. */
export function trainedCalibration(src: TrainedSource, o: { sequences: number; heldOut: number; seqLen: number }): Calibration {
  const data = tokenData(src.folder.tokenizer);
  const take = (stream: Int32Array, n: number, what: string): Int32Array => {
    if (stream.length < n * o.seqLen) throw new InputError(`--trained: the ${what} split has ${stream.length} tokens, fewer than ${n} x --seq-len ${o.seqLen}`, 'sequences');
    return stream.slice(0, n * o.seqLen);
  };
  return {
    calib: take(data.validation, o.sequences, 'validation'),
    heldOut: take(data.test, o.heldOut, 'test'),
    calibBatch: { seqs: o.sequences, seqLen: o.seqLen },
    heldOutBatch: { seqs: o.heldOut, seqLen: o.seqLen },
    realText: true,
    description: `${o.sequences} x ${o.seqLen} tokens of the Brown validation split, held-out ${o.heldOut} x ${o.seqLen} of the test split (${src.folder.model.id}'s tokenizer)`,
  };
}

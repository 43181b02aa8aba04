/**
 * ushape: U-shaped split inference with HAT's split and no speculation. Prefill
 * as split prefill (unchunked by default); then one device-cloud round trip
 * per generated token. Only hidden states cross the network.
 */
import type { ProtocolEnv, RequestInfo, SystemDef } from '../context.js';
import { cloud, compute, down, emit, OpCache, PrefillThenLoop, up, type DownOp, type Op, type Resume, type UpOp } from '../ops.js';
import { splitPrefill } from './split-prefill.js';

// A token's ops by context, shared by every device and request (ops are immutable).
const INPUT = new OpCache((_, ctx) => compute('input', 1, ctx, 0, 'input'));
const MIDDLE = new OpCache((_, ctx) => cloud('middle', 1, ctx, 0, 'middle'));
const OUTPUT = new OpCache((_, ctx) => compute('output', 1, ctx, 1, 'output'));
const EMIT_ONE = emit(1);

function* ushapePrefill(req: RequestInfo, env: ProtocolEnv): Generator<Op, void, Resume> {
  yield* splitPrefill(req, env, env.policies.ushape.chunk, false);
  yield EMIT_ONE;
}

/**
 * One ushape request (PrefillThenLoop): the prefill generator's ops, then per further output
 * token the fixed round trip input, up, middle, down, output, emit, with `pos` the tokens
 * already in every submodel's KV cache (the newest output token not yet).
 */
class UshapeRequest extends PrefillThenLoop {
  /** Output tokens generated so far (the first comes from the prefill) and the op of the token's round trip next. */
  private token = 1;
  private stage = 0;
  private pos: number;

  constructor(prefill: Generator<Op, void, Resume>, private readonly upHidden: UpOp, private readonly downHidden: DownOp, private readonly outputTokens: number, promptTokens: number) {
    super(prefill);
    this.pos = promptTokens;
  }

  protected decode(): Op | null {
    if (this.token >= this.outputTokens) return null;
    const pos = this.pos;
    let op: Op;
    switch (this.stage) {
      case 0: op = INPUT.get(0, pos); break;
      case 1: op = this.upHidden; break;
      case 2: op = MIDDLE.get(0, pos); break;
      case 3: op = this.downHidden; break;
      case 4: op = OUTPUT.get(0, pos); break;
      default: op = EMIT_ONE;
    }
    if (++this.stage === 6) { this.stage = 0; this.token++; this.pos++; }
    return op;
  }
}

export const ushape: SystemDef = {
  id: 'ushape',
  cloudWork: 'middle',
  deviceWork: ['input', 'output'],
  sendsRawTokens: false,
  createDevice(env) {
    const hb = env.hiddenBytesPerToken;
    const upHidden = up(hb, 0, 'hidden'), downHidden = down(hb, 0, 'hidden'); // loop-invariant ops
    return (req) => new UshapeRequest(ushapePrefill(req, env), upHidden, downHidden, req.outputTokens, req.promptTokens);
  },
};

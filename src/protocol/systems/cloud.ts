/**
 * cloud: the whole LLM runs on the server. The device uploads the prompt's raw
 * token ids; the server prefills, then generates token after token, streaming
 * each token id down as soon as it is produced (no per-token uplink).
 */
import type { SystemDef } from '../context.js';
import { cloud as cloudStep, count, down, emit, forkSequence, join, OpCache, PrefillThenLoop, up, type ForkOp, type Op, type Resume } from '../ops.js';

/** Decode steps by context length, shared by every device and request (ops are immutable): no op object per generated token. */
const DECODE = new OpCache((_, ctx) => cloudStep('full', 1, ctx, 1, 'decode'));

function* cloudPrefill(P: number, tb: number): Generator<Op, void, Resume> {
  yield up(0, P * tb, 'prompt tokens');
  yield cloudStep('full', P, 0, 1, 'prefill');
}

const S_DELIVER = 0, S_NEXT = 1, S_DONE = 2;

/**
 * One cloud request (PrefillThenLoop): after the prefill, per output token i (from 0) a
 * delivery branch (fork: send it down, then emit it), and before every token after the
 * first its decode step at context P + i - 1; at the end a join on every delivery. The same
 * ops in the same order as the generator
 *
 *   yield up(prompt); yield prefill; handles = [yield deliver()]
 *   for i in 1..O-1: yield decodeStep(P + i - 1); handles.push(yield deliver())
 *   yield join(handles)
 *
 * as a state machine: no generator resume per token.
 */
class CloudRequest extends PrefillThenLoop {
  private state = S_DELIVER;
  /** Tokens whose delivery was forked. */
  private i = 0;
  private readonly deliveries: number[] = [];

  constructor(prefill: Generator<Op, void, Resume>, private readonly deliver: () => ForkOp, private readonly P: number, private readonly O: number) {
    super(prefill);
  }

  protected decode(value: Resume): Op | null {
    switch (this.state) {
      case S_DELIVER:
        this.state = S_NEXT;
        this.i++;
        return this.deliver();
      case S_NEXT:
        this.deliveries.push(count(value));
        if (this.i < this.O) { this.state = S_DELIVER; return DECODE.get(0, this.P + this.i - 1); }
        this.state = S_DONE;
        return join(this.deliveries);
      default:
        return null;
    }
  }
}

export const cloudOnly: SystemDef = {
  id: 'cloud',
  cloudWork: 'full',
  deviceWork: [],
  sendsRawTokens: true,
  createDevice(env) {
    const tb = env.tokenBytes;
    const deliverOps = [down(0, tb, 'token'), emit(1)]; // ops are immutable: built once
    // Each token: a branch that sends it down, then emits it (a fixed sequence: the simulator
    // knows its delivery time when it is sent on a fixed-rate link and needs no event for it).
    // A fresh fork per token: a branch that does run iterates its own sequence.
    const deliver = (): ForkOp => forkSequence(deliverOps);
    return (req) => new CloudRequest(cloudPrefill(req.promptTokens, tb), deliver, req.promptTokens, req.outputTokens);
  },
};

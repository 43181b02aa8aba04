/** The device-only protocol (not registered yet): whole model on the device, nothing on the network. */
import { describe, expect, it } from 'vitest';
import { deviceOnly } from '../src/protocol/systems/device-only.js';
import type { ProtocolEnv } from '../src/protocol/context.js';
import type { Op } from '../src/protocol/ops.js';

describe('device-only protocol', () => {
  it('prefills once, decodes O-1 times with growing context, emits O tokens, never touches the network or cloud', () => {
    const env = { hiddenBytesPerToken: 8192, tokenBytes: 4, predictor: null, policies: null } as unknown as ProtocolEnv;
    const gen = deviceOnly.createDevice(env)({ index: 0, promptTokens: 100, outputTokens: 5 });
    const ops: Op[] = [];
    for (let r = gen.next(undefined as never); !r.done; r = gen.next(undefined as never)) ops.push(r.value);
    expect(ops.some((o) => o.op === 'up' || o.op === 'down' || o.op === 'cloud')).toBe(false);
    const computes = ops.filter((o) => o.op === 'compute');
    expect(computes.map((o) => (o.op === 'compute' ? [o.work, o.tokens, o.ctx] : []))).toEqual([
      ['drafter', 100, 0], ['drafter', 1, 100], ['drafter', 1, 101], ['drafter', 1, 102], ['drafter', 1, 103],
    ]);
    expect(ops.filter((o) => o.op === 'emit').reduce((a, o) => a + (o.op === 'emit' ? o.tokens : 0), 0)).toBe(5);
    expect(deviceOnly.sendsRawTokens).toBe(false);
  });
});

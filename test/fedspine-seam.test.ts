/**
 * FedSpine's seam on the topology (fedspine/seam.ts): the star of device nodes, access links
 * and the server NIC as a shared link compiles to each device's own link + the shared NIC, and
 * transfers take the closed-form max-min fair times.
 */
import { describe, expect, it } from 'vitest';
import { RngStreams } from '../src/core/rng.js';
import { simSeam, starTopology, SERVER_NIC } from '../src/fedspine/seam.js';
import { compileNetwork } from '../src/topology/paths.js';
import { Routes } from '../src/topology/routes.js';

const link = (up: number, down: number, latencyMs: number) => ({ uplinkMbps: up, downlinkMbps: down, latencyMs, jitterMs: 0 });

describe('FedSpine seam on the topology', () => {
  it('compiles to each device link (private cap) plus the shared server NIC', () => {
    const spec = { devices: [link(1, 2, 20), link(0.375, 0.75, 30)], server: { uplinkMbps: 100, downlinkMbps: 50 } };
    const topo = starTopology(spec);
    expect(topo.nodes.map((n) => n.kind)).toEqual(['device', 'device', 'server', 'switch']);
    const c = compileNetwork(topo, new Routes(topo), [{ from: 0, to: 2, streamName: '0' }, { from: 1, to: 2, streamName: '1' }]);
    expect(c.shared).toEqual([{ name: SERVER_NIC, uplinkMbps: 100, downlinkMbps: 50 }]);
    c.devices.forEach((d, i) => {
      expect(d.link).toEqual(spec.devices[i]);
      expect(d.viaDirected).toEqual({ up: [{ name: SERVER_NIC, dir: 'up' }], down: [{ name: SERVER_NIC, dir: 'down' }] });
      expect(d.streamName).toBe(String(i));
    });
  });

  it('two devices sharing a 10 Mbit/s NIC take half each; one alone is capped by its link', () => {
    const { clock, transport } = simSeam({ devices: [link(100, 100, 5), link(100, 100, 5)], server: { uplinkMbps: 10, downlinkMbps: 10 } }, new RngStreams(1));
    const done: number[] = [];
    clock.at(0, () => {
      transport.send(0, 'up', 1.25e6, () => done.push(clock.nowS));
      transport.send(1, 'up', 1.25e6, () => done.push(clock.nowS));
    });
    clock.run(100);
    // 10 Mbit each at 5 Mbit/s = 2 s, + 5 ms latency
    expect(done).toHaveLength(2);
    for (const t of done) expect(t).toBeCloseTo(2.005, 9);
    expect(transport.sentBytes('up')).toBe(2.5e6);
    const solo = simSeam({ devices: [link(2, 4, 10)], server: { uplinkMbps: 10, downlinkMbps: 10 } }, new RngStreams(1));
    let t = NaN;
    solo.clock.at(0, () => solo.transport.send(0, 'down', 1e6, () => { t = solo.clock.nowS; }));
    solo.clock.run(100);
    expect(t).toBeCloseTo(8e6 / 4e6 + 0.01, 9);
  });
});

/**
 * Worker thread that owns the ONNX sessions (compute.ts): onnxruntime-node
 * runs synchronously, so compute must not share the thread that shapes links
 * and reads sockets. Messages: { id, pass } -> { id, ms } | { id, error }.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { LiveCompute, type ComputeConfig, type PassRequest } from './compute.js';

interface Msg { id: number; passes: PassRequest[] }

const port = parentPort;
if (!port) throw new Error('compute-worker must run as a worker thread');
const compute = new LiveCompute(workerData as ComputeConfig);
compute.init().then(
  () => {
    port.postMessage({ id: -1, ready: true });
    port.on('message', (m: Msg) => {
      void (async () => {
        try {
          const ms: number[] = [];
          for (const p of m.passes) ms.push(await compute.pass(p));
          port.postMessage({ id: m.id, ms });
        } catch (e) {
          port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
        }
      })();
    });
  },
  (e: unknown) => port.postMessage({ id: -1, error: e instanceof Error ? e.message : String(e) }),
);

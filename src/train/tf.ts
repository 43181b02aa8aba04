/**
 * TensorFlow.js with its WASM backend, one thread (the machine is shared;
 * same seed => same numbers). Import tf from here so the backend is set once.
 * Why TensorFlow.js: a well-kept autodiff library (Apache-2.0) that installs
 * from npm without a download (the WASM binary ships in the package), 5x
 * faster here than its pure-JS CPU backend; tfjs-node downloads a native
 * library at install and fails on this machine.
 */
import * as tf from '@tensorflow/tfjs';
import { setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

let ready: Promise<void> | null = null;

export function initTf(): Promise<void> {
  ready ??= (async () => {
    setThreadsCount(1);
    const ok = await tf.setBackend('wasm');
    if (!ok) throw new Error('tfjs: the wasm backend did not initialise');
    await tf.ready();
  })();
  return ready;
}

export { tf };

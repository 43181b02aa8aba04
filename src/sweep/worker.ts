/**
 * Worker-thread entry of `hatsim sweep --jobs N`: runs the points it is sent,
 * one at a time, writing each point's results directory, and replies with the
 * point's summary.csv. Loaded by pool.ts as dist/src/sweep/worker.js.
 */
import { parentPort } from 'node:worker_threads';
import { errorReply, runPoint, type WorkerReply, type WorkerRequest } from './point.js';

const port = parentPort;
if (!port) throw new Error('sweep/worker.js must be started as a worker thread');

port.on('message', (msg: WorkerRequest) => {
  let reply: WorkerReply;
  try {
    reply = { type: 'done', taskId: msg.taskId, outcome: runPoint(msg.task) };
  } catch (e) {
    reply = errorReply(msg.taskId, e);
  }
  port.postMessage(reply);
});

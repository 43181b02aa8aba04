/**
 * `node --import ./test/support/trace-imports.mjs ...`: appends every module URL the
 * process loads (ESM imports and CommonJS requires, builtins included) to the file named
 * by HATSIM_TRACE_IMPORTS, one per line. Used by test/startup.test.ts (issue 15).
 */
import { appendFileSync } from 'node:fs';
import { register } from 'node:module';
import Module from 'node:module';
import { MessageChannel } from 'node:worker_threads';

const file = process.env.HATSIM_TRACE_IMPORTS;
if (file) {
  const { port1, port2 } = new MessageChannel();
  port1.on('message', (url) => appendFileSync(file, `${url}\n`));
  port1.unref();
  register('./trace-imports-hooks.mjs', import.meta.url, { data: { port: port2 }, transferList: [port2] });
  const load = Module._load;
  // CommonJS requires (e.g. yaml, onnxruntime-node) do not pass through the ESM hooks.
  Module._load = function (request, parent, isMain) {
    appendFileSync(file, `require:${request}\n`);
    return load.call(this, request, parent, isMain);
  };
}

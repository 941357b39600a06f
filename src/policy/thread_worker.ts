// The policy thread itself (thread.ts is its handle): loads the folder, then runs Policy.predict for each request.
// Messages in: ThreadRequest | {type: 'close'}; out: ThreadReply (ready | failed | result | error).
import { parentPort, workerData } from 'node:worker_threads';
import * as torch from '../engine/index.js';
import { RdtError } from '../util/errors.js';
import { type Policy, loadPolicy } from './policy.js';
import type { ThreadErrorInfo, ThreadInit, ThreadReply, ThreadRequest } from './thread.js';

const port = parentPort!;

/** What crosses the thread: our errors' own one-line message; anything else is named, its stack kept for a log. */
function errorOf(e: unknown): ThreadErrorInfo {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message.split('\n')[0], ours: err instanceof RdtError, stack: err.stack ?? '' };
}

function serve(policy: Policy): void {
  port.on('message', (m: ThreadRequest | { type: 'close' }) => {
    if (m.type === 'close') return void (policy.dispose(), port.close());
    const t0 = performance.now();
    let reply: ThreadReply;
    try {
      const out = policy.predict(m.inputs, { seeds: m.seeds, raw: true });
      reply = { type: 'result', id: m.id, raw: out.raw!, actions: m.decoded ? out.actions : null, inferMs: performance.now() - t0, textEncodes: policy.textEncodes };
    } catch (e) {
      reply = { type: 'error', id: m.id, error: errorOf(e) };
    }
    port.postMessage(reply, reply.type === 'result' ? [reply.raw.buffer as ArrayBuffer, ...(reply.actions ? [reply.actions.buffer as ArrayBuffer] : [])] : []);
  });
}

try {
  const init = workerData as ThreadInit;
  if (init.threads) torch.setNumThreads(init.threads);
  const policy = loadPolicy(init.dir, init.load);
  serve(policy);
  const c = policy.conventions;
  port.postMessage({ type: 'ready', info: { chunkSize: policy.chunkSize, historySize: policy.historySize, adapter: policy.adapter, step: c.origin?.step ?? null, execHorizon: c.action.exec_horizon } } satisfies ThreadReply);
} catch (e) {
  port.postMessage({ type: 'failed', error: errorOf(e) } satisfies ThreadReply);
  port.close();
}

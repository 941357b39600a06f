// The inference thread: loads the policy and runs Policy.predict for the batches the server sends, so the
// synchronous libtorch calls never block the server's event loop. The addon is a Node-API module without per-env
// state (native/addon.cc: NAPI_MODULE, only static type tags), so it loads in a worker_thread; only this thread
// loads it. Messages: in {id, inputs, seeds}; out {type: 'ready' | 'failed' | 'result' | 'error'}.
import { parentPort, workerData } from 'node:worker_threads';
import * as torch from '../engine/index.js';
import { type Policy, type PolicyInput, loadPolicy } from '../policy/index.js';
import { RdtError } from '../util/errors.js';
import type { WorkerInit, WorkerRequest, WorkerReply, WorkerError } from './inference.js';

const port = parentPort!;

/** What the client may see: our errors' own one-line message; anything else is only named (the log has the rest). */
function errorOf(e: unknown): WorkerError {
  const err = e instanceof Error ? e : new Error(String(e));
  return { name: err.name, message: err.message.split('\n')[0], ours: err instanceof RdtError, stack: err.stack ?? '' };
}

function serve(policy: Policy): void {
  port.on('message', (m: WorkerRequest) => {
    const t0 = performance.now();
    let reply: WorkerReply;
    try {
      // Each request's noise from its own seed: its actions never depend on what it was batched with.
      const out = policy.predict(m.inputs as PolicyInput[], { seeds: m.seeds, raw: true });
      reply = { type: 'result', id: m.id, actions: out.actions, raw: out.raw!, inferMs: performance.now() - t0 };
    } catch (e) {
      reply = { type: 'error', id: m.id, error: errorOf(e) };
    }
    port.postMessage(reply, reply.type === 'result' ? [reply.actions.buffer as ArrayBuffer, reply.raw.buffer as ArrayBuffer] : []);
  });
}

try {
  const init = workerData as WorkerInit;
  if (init.threads) torch.setNumThreads(init.threads);
  const policy = loadPolicy(init.dir, init.load);
  serve(policy);
  const reply: WorkerReply = { type: 'ready', info: { chunkSize: policy.chunkSize, historySize: policy.historySize, adapter: policy.adapter, step: policy.conventions.origin?.step ?? null, execHorizon: policy.conventions.action.exec_horizon } };
  port.postMessage(reply);
} catch (e) {
  const reply: WorkerReply = { type: 'failed', error: errorOf(e) };
  port.postMessage(reply);
}

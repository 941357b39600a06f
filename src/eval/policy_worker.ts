// The thread that runs an rdt-libero policy for the evaluation (policy_source.ts RdtChunkPolicy): libtorch
// blocks the thread it runs on, so the model lives here and the main thread keeps stepping the simulators of
// the envs that are executing their chunks while a batch is being predicted.
// Messages in: {type: 'predict', id, inputs: PolicyInput[], seeds: number[]} | {type: 'close'}. Each observation's
// noise comes from its own seed (Policy.predict's `seeds`), so its chunk does not depend on the batch it was in.
// Messages out: {type: 'ready', ...facts} | {type: 'chunks', id, raw (B, chunk, 128), chunk} | {type: 'error', id, name, message}.
import { parentPort, workerData } from 'node:worker_threads';
import * as torch from '../engine/index.js';
import { loadPolicy } from '../policy/policy.js';
import type { DType } from '../engine/index.js';

const port = parentPort!;
const spec = workerData as { dir: string; dtype?: DType; device?: string; threads?: number };
const fail = (id: number | null, e: unknown) => {
  const err = e instanceof Error ? e : new Error(String(e));
  port.postMessage({ type: 'error', id, name: err.name, message: err.message });
};

try {
  if (spec.threads) torch.setNumThreads(spec.threads);
  const policy = loadPolicy(spec.dir, { dtype: spec.dtype, device: spec.device });
  port.postMessage({
    type: 'ready', adapter: policy.adapter, chunkSize: policy.chunkSize, historySize: policy.historySize, step: policy.conventions.origin?.step ?? null,
    execHorizon: policy.conventions.action.exec_horizon,
  });
  port.on('message', (m: { type: string; id: number; inputs: never; seeds: number[] }) => {
    if (m.type === 'close') {
      policy.dispose();
      port.close();
      return;
    }
    try {
      const out = policy.predict(m.inputs, { seeds: m.seeds, raw: true });
      port.postMessage({ type: 'chunks', id: m.id, raw: out.raw!, chunk: out.chunk }, [out.raw!.buffer as ArrayBuffer]);
    } catch (e) {
      fail(m.id, e);
    }
  });
} catch (e) {
  fail(null, e);
  port.close();
}

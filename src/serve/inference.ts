// The server's handle on the inference thread (inference_worker.ts): start it (it loads the policy), send it
// batches, get decoded actions back. If the thread dies, every pending and later call fails with InferenceFailed,
// `alive` turns false (the server's /healthz then answers 503) and `died` resolves with the reason (the server
// then stops: see server.ts).
import { Worker } from 'node:worker_threads';
import type { AdapterConfig } from '../data/adapter.js';
import type { LoadPolicyOptions, PolicyInput } from '../policy/index.js';
import { RdtError } from '../util/errors.js';
import { ServeError } from './errors.js';

export interface WorkerInit {
  dir: string;
  load: Pick<LoadPolicyOptions, 'dtype' | 'device' | 'verify'>;
  /** libtorch intra-op threads of the inference thread (default: libtorch's choice). */
  threads?: number;
}
export interface WorkerRequest {
  id: number;
  inputs: PolicyInput[];
  seeds: number[];
}
export interface WorkerError {
  name: string;
  message: string;
  /** An RdtError: its message is written for users. */
  ours: boolean;
  stack: string;
}
export interface PolicyInfo {
  chunkSize: number;
  historySize: number;
  adapter: AdapterConfig;
  /** Training step of the folder (policy.json origin.step), when recorded. */
  step: number | null;
  /** policy.json action.exec_horizon, when recorded. */
  execHorizon: number | null;
}
export type WorkerReply =
  | { type: 'ready'; info: PolicyInfo }
  | { type: 'failed'; error: WorkerError }
  | { type: 'result'; id: number; actions: Float64Array; raw: Float64Array; inferMs: number }
  | { type: 'error'; id: number; error: WorkerError };

export interface BatchResult {
  /** (B, chunk, 7) decoded LIBERO actions. */
  actions: Float64Array;
  /** (B, chunk, 128) the raw unified vectors they were decoded from. */
  raw: Float64Array;
  inferMs: number;
}

/** A load failure in the thread, rethrown here as the same kind of error with the same message. */
class LoadFailure extends RdtError {
  constructor(e: WorkerError) {
    super(e.ours ? e.message : `${e.name}: ${e.message}`);
    this.name = e.name;
  }
}

export class InferenceWorker {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: BatchResult) => void; reject: (e: Error) => void }>();
  private dead: Error | null = null;
  private onDeath!: (e: ServeError) => void;
  /** Resolves when the thread dies on its own (never after close()). */
  readonly died = new Promise<ServeError>((resolve) => (this.onDeath = resolve));

  private constructor(private readonly worker: Worker, readonly info: PolicyInfo, private readonly log: (line: string) => void) {
    worker.on('message', (m: WorkerReply) => {
      if (m.type !== 'result' && m.type !== 'error') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'result') p.resolve({ actions: m.actions, raw: m.raw, inferMs: m.inferMs });
      else {
        if (!m.error.ours) this.log(`inference failed: ${m.error.stack}`);
        p.reject(new ServeError('InferenceFailed', m.error.ours ? m.error.message : `the model call failed (${m.error.name}; details in the server log)`));
      }
    });
    worker.on('error', (e) => this.fail(`the inference thread crashed (${e.name}; details in the server log)`, e));
    worker.on('exit', (code) => this.fail(`the inference thread stopped (exit code ${code})`));
  }

  /** Start the thread and load the policy in it; rejects with the load error (PolicyError, ModelError, ...). */
  static start(init: WorkerInit, log: (line: string) => void): Promise<InferenceWorker> {
    const worker = new Worker(new URL('./inference_worker.js', import.meta.url), { workerData: init });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new ServeError('ServerConfig', `the inference thread stopped while loading the policy (exit code ${code})`));
      worker.once('exit', onExit);
      worker.once('error', reject);
      worker.once('message', (m: WorkerReply) => {
        worker.off('exit', onExit);
        worker.off('error', reject);
        if (m.type === 'ready') resolve(new InferenceWorker(worker, m.info, log));
        else {
          void worker.terminate();
          reject(m.type === 'failed' ? new LoadFailure(m.error) : new ServeError('ServerConfig', `unexpected first message '${m.type}' from the inference thread`));
        }
      });
    });
  }

  get alive(): boolean {
    return this.dead === null;
  }

  predict(inputs: PolicyInput[], seeds: number[]): Promise<BatchResult> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: WorkerRequest = { id, inputs, seeds };
      this.worker.postMessage(msg);
    });
  }

  private fail(why: string, e?: Error): void {
    if (this.dead) return;
    if (e) this.log(`inference thread: ${e.stack ?? e.message}`);
    const dead = new ServeError('InferenceFailed', why);
    this.dead = dead;
    for (const p of this.pending.values()) p.reject(dead);
    this.pending.clear();
    this.onDeath(dead);
  }

  async close(): Promise<void> {
    this.dead ??= new ServeError('InferenceFailed', 'the server is shutting down');
    await this.worker.terminate();
  }
}

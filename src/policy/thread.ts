// A policy folder run in its own thread, for the evaluation and the server alike: libtorch blocks the thread it
// runs on, so the model lives in a worker_thread (thread_worker.ts) and the main thread keeps stepping simulators or
// answering connections. The addon is a Node-API module without per-env state (native/addon.cc: NAPI_MODULE, only
// static type tags), so it loads in a worker_thread; only that thread loads it. A load failure keeps its wording.
//   - predict(inputs, seeds) is one Policy.predict call: each observation's noise from its own seed, so its chunk
//     never depends on what it was batched with; the raw (B, chunk, 128) chunks come back, and the decoded
//     (B, chunk, 7) actions too when asked (the server sends them; the evaluation decodes each step itself).
//   - A failed call rejects with a PolicyThreadError carrying the thread's error (its name, message, stack); a
//     thread that dies fails every pending and later call, `alive` turns false and `died` resolves with the reason.
import { Worker } from 'node:worker_threads';
import type { AdapterConfig } from '../data/adapter.js';
import { PolicyError } from './errors.js';
import type { LoadPolicyOptions, PolicyInput } from './policy.js';

/** The folder, how to load it, and the libtorch intra-op threads of the policy's thread (default: libtorch's choice). */
export type ThreadInit = { dir: string; load: Pick<LoadPolicyOptions, 'dtype' | 'device' | 'verify'>; threads?: number };
export type ThreadRequest = { type: 'predict'; id: number; inputs: PolicyInput[]; seeds: number[]; decoded: boolean };
/** An error inside the thread, as far as it can cross it; `ours`: an RdtError, whose message is written for users. */
export type ThreadErrorInfo = { name: string; message: string; ours: boolean; stack: string };
/** The folder's facts; step: policy.json origin.step, execHorizon: action.exec_horizon (null: not recorded). */
export type PolicyInfo = { chunkSize: number; historySize: number; adapter: AdapterConfig; step: number | null; execHorizon: number | null };
export type ThreadReply =
  | { type: 'ready'; info: PolicyInfo }
  | { type: 'failed'; error: ThreadErrorInfo }
  | { type: 'result'; id: number; raw: Float64Array; actions: Float64Array | null; inferMs: number; textEncodes: number }
  | { type: 'error'; id: number; error: ThreadErrorInfo };

/** raw (B, chunk, 128) unified vectors; actions (B, chunk, 7) decoded LIBERO commands, when asked for. */
export type ThreadResult = { raw: Float64Array; actions: Float64Array | null; inferMs: number };

/** A failure in the policy thread: a load or a call that threw there (`thread` set), or the thread's death. */
export class PolicyThreadError extends PolicyError {
  constructor(message: string, readonly thread: ThreadErrorInfo | null) {
    super(message);
  }
}

const failure = (e: ThreadErrorInfo) => new PolicyThreadError(e.ours ? e.message : `${e.name}: ${e.message}`, e);

export class PolicyThread {
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: ThreadResult) => void; reject: (e: Error) => void }>();
  private dead: PolicyThreadError | null = null;
  private onDeath!: (e: PolicyThreadError) => void;
  /** Resolves when the thread dies on its own (never after close()). */
  readonly died = new Promise<PolicyThreadError>((resolve) => (this.onDeath = resolve));
  /** Text-encoder calls the thread has made (one per distinct instruction: text_embeddings.ts). */
  textEncodes = 0;

  private constructor(private readonly worker: Worker, readonly info: PolicyInfo) {
    worker.on('message', (m: ThreadReply) => {
      if (m.type !== 'result' && m.type !== 'error') return;
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.type === 'result') {
        this.textEncodes = m.textEncodes;
        p.resolve({ raw: m.raw, actions: m.actions, inferMs: m.inferMs });
      } else p.reject(failure(m.error));
    });
    worker.on('error', (e) => this.fail(`the policy thread crashed (${e.name}: ${e.message})`, e));
    worker.on('exit', (code) => this.fail(`the policy thread stopped (exit code ${code})`));
  }

  /** Start the thread and load the policy in it; rejects with the load error, worded as the loader words it. */
  static start(init: ThreadInit): Promise<PolicyThread> {
    const worker = new Worker(new URL('./thread_worker.js', import.meta.url), { workerData: init });
    return new Promise((resolve, reject) => {
      const onExit = (code: number) => reject(new PolicyThreadError(`the policy thread stopped while loading ${init.dir} (exit code ${code})`, null));
      const onError = (e: Error) => reject(new PolicyThreadError(`loading ${init.dir} failed: ${e.message}`, null));
      worker.once('exit', onExit).once('error', onError).once('message', (m: ThreadReply) => {
        worker.off('exit', onExit).off('error', onError);
        if (m.type === 'ready') return resolve(new PolicyThread(worker, m.info));
        void worker.terminate();
        reject(m.type === 'failed' ? failure(m.error) : new PolicyThreadError(`unexpected first message '${m.type}' from the policy thread`, null));
      });
    });
  }

  get alive(): boolean {
    return !this.dead;
  }

  /** One model call for the batch; `decoded` also returns the decoded actions. */
  predict(inputs: PolicyInput[], seeds: number[], decoded = false): Promise<ThreadResult> {
    if (this.dead) return Promise.reject(this.dead);
    if (seeds.length !== inputs.length) return Promise.reject(new PolicyError(`internal: ${inputs.length} observations need as many sampling seeds`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const msg: ThreadRequest = { type: 'predict', id, inputs, seeds, decoded };
      this.worker.postMessage(msg);
    });
  }

  private fail(why: string, e?: Error): void {
    if (this.dead) return;
    const dead = new PolicyThreadError(why, e ? { name: e.name, message: e.message, ours: false, stack: e.stack ?? '' } : null);
    this.dead = dead;
    for (const p of this.pending.values()) p.reject(dead);
    this.pending.clear();
    this.onDeath(dead);
  }

  /** Free the policy and end the thread (later calls fail); a call in progress ends first, a hung thread after 30 s. */
  async close(): Promise<void> {
    if (this.dead) return;
    this.dead = new PolicyThreadError('the policy was closed', null);
    const gone = new Promise<void>((res) => this.worker.once('exit', () => res()));
    this.worker.postMessage({ type: 'close' });
    const hung = setTimeout(() => void this.worker.terminate(), 30_000).unref();
    await gone;
    clearTimeout(hung);
  }
}

// Concurrent requests -> one model call. Requests wait in a bounded queue; whenever the model is idle, everything
// queued (up to maxBatch) goes into one predict call. No timer: a lone request is sent at once (no added latency),
// and requests that arrive during a call form the next batch. maxBatch 1 turns batching off.
import type { PolicyInput } from '../policy/index.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import { ServeError } from './errors.js';
import type { BatchResult } from './inference.js';

export interface JobResult {
  /** (chunk, 7) decoded actions of this request. */
  actions: Float64Array;
  /** (chunk, 128) its raw unified vectors. */
  raw: Float64Array;
  /** The model call's own time, ms. */
  inferMs: number;
  /** Time spent waiting in the queue, ms. */
  queueMs: number;
  /** Requests in the model call this one was part of. */
  batchSize: number;
}

interface Job {
  input: PolicyInput;
  seed: number;
  enqueued: number;
  cancelled: boolean;
  resolve: (r: JobResult) => void;
  reject: (e: Error) => void;
}

export interface BatcherOptions {
  maxBatch: number;
  maxQueue: number;
  /** Actions per request in the model output (the policy's chunk). */
  chunk: number;
}

export class Batcher {
  private queue: Job[] = [];
  private busy = false;
  /** Calls made and requests served, for the log and the benchmark. */
  readonly counts = { calls: 0, requests: 0, maxBatchSeen: 0 };

  constructor(private readonly predict: (inputs: PolicyInput[], seeds: number[]) => Promise<BatchResult>, private readonly opts: BatcherOptions) {}

  get queued(): number {
    return this.queue.length;
  }

  /** Queue one request. `cancel` drops it if it has not been sent yet (its result is discarded otherwise). */
  submit(input: PolicyInput, seed: number): { result: Promise<JobResult>; cancel: () => void } {
    if (this.queue.length >= this.opts.maxQueue)
      throw new ServeError('ServerBusy', `${this.queue.length} requests are already queued (--max-queue ${this.opts.maxQueue}); retry later`);
    let job!: Job;
    const result = new Promise<JobResult>((resolve, reject) => {
      job = { input, seed, enqueued: performance.now(), cancelled: false, resolve, reject };
    });
    this.queue.push(job);
    queueMicrotask(() => this.pump());
    return {
      result,
      cancel: () => {
        if (job.cancelled) return;
        job.cancelled = true;
        const i = this.queue.indexOf(job);
        if (i >= 0) this.queue.splice(i, 1);
        job.reject(new ServeError('ProtocolError', 'request cancelled'));
      },
    };
  }

  private pump(): void {
    if (this.busy || this.queue.length === 0) return;
    const jobs = this.queue.splice(0, this.opts.maxBatch);
    this.busy = true;
    const started = performance.now();
    this.counts.calls++;
    this.counts.requests += jobs.length;
    this.counts.maxBatchSeen = Math.max(this.counts.maxBatchSeen, jobs.length);
    const per = this.opts.chunk * 7;
    const perRaw = this.opts.chunk * STATE_VEC_LEN;
    this.predict(jobs.map((j) => j.input), jobs.map((j) => j.seed))
      .then(
        (r) => jobs.forEach((j, b) => {
          if (!j.cancelled) j.resolve({ actions: r.actions.slice(b * per, (b + 1) * per), raw: r.raw.slice(b * perRaw, (b + 1) * perRaw), inferMs: r.inferMs, queueMs: started - j.enqueued, batchSize: jobs.length });
        }),
        (e: Error) => jobs.forEach((j) => j.cancelled || j.reject(e)),
      )
      .finally(() => {
        this.busy = false;
        this.pump();
      });
  }
}

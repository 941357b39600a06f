// Concurrent requests -> batched model calls, for the server and the evaluation alike. Requests wait in a bounded
// queue; whenever a call may start (fewer than maxInFlight are running) and the readiness rule agrees (or maxBatch
// requests are waiting), up to maxBatch of them go into one call. No timer: a new request is checked at once (see
// poke), those that arrived during a call when it ends; a lone request with nothing to wait for goes at once. The rule is the caller's: the server sends whatever is queued (its clients batch themselves by
// arriving together); the evaluation waits for envs that will ask within a model call's time (src/eval/chunk_batcher.ts).
// maxInFlight > 1 with maxBatch 1 sends every request on its own as it comes (a remote policy: the server batches).
import { PolicyError } from './errors.js';

export interface BatcherOptions<I> {
  maxBatch: number;
  /** Requests waiting at most; one more is refused with full(queued). Default: no bound. */
  maxQueue?: number;
  full?: (queued: number) => Error;
  /** Calls running at once at most (default 1: one model). */
  maxInFlight?: number;
  /** May the queued requests go now (fewer than maxBatch of them)? Default: yes. */
  ready?: (queued: readonly I[]) => boolean;
}

/** A request's result, its time in the queue (ms) and the number of requests in its call. */
export type Served<O> = { value: O; queueMs: number; batchSize: number };
type Job<I, O> = { input: I; enqueued: number; cancelled: boolean; resolve: (r: Served<O>) => void; reject: (e: unknown) => void };

export class Batcher<I, O> {
  private queue: Job<I, O>[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Calls made and requests served. */
  readonly counts = { calls: 0, requests: 0, maxBatchSeen: 0 };

  /** `call` answers a batch with one result per input, in order. */
  constructor(private readonly call: (inputs: I[]) => Promise<O[]>, private readonly opts: BatcherOptions<I>) {}

  get queued(): number {
    return this.queue.length;
  }

  /** Queue one request. `cancel` drops it if it has not been sent yet (its result is discarded otherwise). */
  submit(input: I): { result: Promise<Served<O>>; cancel: () => void } {
    if (this.queue.length >= (this.opts.maxQueue ?? Infinity))
      throw (this.opts.full ?? ((n) => new PolicyError(`${n} requests are already queued`)))(this.queue.length);
    let job!: Job<I, O>;
    const result = new Promise<Served<O>>((resolve, reject) => {
      job = { input, enqueued: performance.now(), cancelled: false, resolve, reject };
    });
    this.queue.push(job);
    this.poke();
    return {
      result,
      cancel: () => {
        if (job.cancelled) return;
        job.cancelled = true;
        const i = this.queue.indexOf(job);
        if (i >= 0) this.queue.splice(i, 1);
        job.reject(new PolicyError('request cancelled'));
      },
    };
  }

  /** Every queued request fails with `why` (calls already made finish first). */
  abort(why: unknown): void {
    for (const j of this.queue.splice(0)) j.reject(why);
  }

  /**
   * Check again whether a call can start (a request came, the readiness rule's inputs changed): with a rule, after
   * this event-loop turn (every reply that already arrived is handled first); without one, as soon as this task ends.
   */
  poke(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    (this.opts.ready ? setImmediate : queueMicrotask)(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length && this.inFlight < (this.opts.maxInFlight ?? 1) &&
      (this.queue.length >= this.opts.maxBatch || (this.opts.ready?.(this.queue.map((j) => j.input)) ?? true))) this.flush();
  }

  private flush(): void {
    const jobs = this.queue.splice(0, this.opts.maxBatch);
    const started = performance.now();
    this.inFlight++;
    this.counts.calls++;
    this.counts.requests += jobs.length;
    this.counts.maxBatchSeen = Math.max(this.counts.maxBatchSeen, jobs.length);
    this.call(jobs.map((j) => j.input))
      .then(
        (out) => jobs.forEach((j, b) => j.cancelled || j.resolve({ value: out[b], queueMs: started - j.enqueued, batchSize: jobs.length })),
        (e: unknown) => jobs.forEach((j) => j.cancelled || j.reject(e)),
      )
      .finally(() => {
        this.inFlight--;
        this.pump(); // what arrived during the call goes now
      });
  }
}

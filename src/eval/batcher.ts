// Batched inference for parallel environments: every env that needs a new chunk queues its observation, and
// one policy call serves the whole queue. An env executing its chunk never waits for the model. An env waiting
// for a chunk also waits for the other envs that will need one sooner than a model call takes (their remaining
// steps x the measured env step time < the measured call time, capped at `maxGatherSteps`): without that, envs
// that happen to be out of phase alternate calls of one observation each for the whole run.
import type { PolicyInput } from '../policy/policy.js';
import type { ActionChunk, ChunkPolicy } from './policy_source.js';

interface Request {
  env: number;
  input: PolicyInput;
  /** The request's sampling seed (seeding.ts requestSeed). */
  seed: number;
  resolve: (c: ActionChunk) => void;
  reject: (e: unknown) => void;
}

export class ChunkBatcher {
  /** Model calls made, and the batch size of each. */
  calls = 0;
  readonly batchSizes: number[] = [];
  inferSeconds = 0;
  private stepSeconds = 0;
  private steps = 0;
  private queue: Request[] = [];
  /** env -> env steps until it will ask for a chunk (Infinity: not soon, e.g. resetting). */
  private due = new Map<number, number>();
  private inFlight = false;
  private scheduled = false;

  constructor(readonly policy: ChunkPolicy, readonly maxBatch: number, readonly maxGatherSteps = 1) {}

  /** How long one env step took (for the gather rule). */
  noteStep(seconds: number): void {
    this.stepSeconds += seconds;
    this.steps++;
  }

  /** Steps worth waiting for: a model call's time in env steps, at least 1, at most maxGatherSteps. */
  get gatherSteps(): number {
    if (!this.calls || !this.steps) return 1;
    const ratio = this.inferSeconds / this.calls / (this.stepSeconds / this.steps);
    return Math.max(1, Math.min(this.maxGatherSteps, Math.floor(ratio)));
  }

  /** An env's distance, in env steps, to its next request. */
  setDue(env: number, steps: number): void {
    this.due.set(env, steps);
    this.schedule();
  }

  /** The env stopped (episode over, worker gone): never wait for it. */
  leave(env: number): void {
    this.due.delete(env);
    this.schedule();
  }

  request(env: number, input: PolicyInput, seed: number): Promise<ActionChunk> {
    return new Promise((resolve, reject) => {
      this.queue.push({ env, input, seed, resolve, reject });
      this.due.set(env, 0);
      this.schedule();
    });
  }

  /** The run stops: every queued request fails with `why` (one already sent to the model finishes first). */
  abort(why: unknown): void {
    for (const r of this.queue.splice(0)) r.reject(why);
  }

  private ready(): boolean {
    if (this.inFlight || this.queue.length === 0) return false;
    if (this.queue.length >= this.maxBatch) return true;
    const queued = new Set(this.queue.map((q) => q.env));
    const gather = this.gatherSteps;
    for (const [env, d] of this.due) if (!queued.has(env) && d <= gather) return false;
    return true;
  }

  // After the current event-loop turn, so every reply that already arrived has been handled first.
  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (this.ready()) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.inFlight = true;
    const batch = this.queue.splice(0, this.maxBatch);
    this.calls++;
    this.batchSizes.push(batch.length);
    const t0 = performance.now();
    try {
      const chunks = await this.policy.predictChunks(batch.map((r) => r.input), batch.map((r) => r.env), batch.map((r) => r.seed));
      if (chunks.length !== batch.length) throw new Error(`policy returned ${chunks.length} chunks for ${batch.length} observations`);
      batch.forEach((r, i) => r.resolve(chunks[i]));
    } catch (e) {
      for (const r of batch) r.reject(e);
    } finally {
      this.inferSeconds += (performance.now() - t0) / 1000;
      this.inFlight = false;
      this.schedule();
    }
  }
}

// The evaluation's chunk requests for parallel envs, on the policy layer's batcher (src/policy/batcher.ts): every env
// that needs a new chunk queues its observation; an env executing its chunk never waits for the model.
//   - A local policy (one model call at a time): an env waiting for a chunk also waits for the other envs that will
//     need one sooner than a model call takes (their remaining steps x the measured env step time < the measured
//     call time, capped at `maxGatherSteps`): without that, envs that happen to be out of phase alternate calls of
//     one observation each for the whole run. That is the batcher's readiness rule here.
//   - A concurrent policy (remote: one connection per env): each request goes out at once on its own, so a batching
//     server gets every env's request as soon as it is made and serves those that arrive together in one call.
import type { PolicyInput } from '../policy/policy.js';
import { Batcher } from '../policy/batcher.js';
import type { ActionChunk, ChunkPolicy } from './chunk_policy.js';

/** An env's chunk request; seed: its sampling seed (seeding.ts requestSeed). */
type Request = { env: number; input: PolicyInput; seed: number };

export class ChunkBatcher {
  /** The batch size of each policy call made. */
  readonly batchSizes: number[] = [];
  inferSeconds = 0;
  private stepSeconds = 0;
  private steps = 0;
  /** env -> env steps until it will ask for a chunk (Infinity: not soon, e.g. resetting). */
  private due = new Map<number, number>();
  private readonly batcher: Batcher<Request, ActionChunk>;

  constructor(readonly policy: ChunkPolicy, readonly maxBatch: number, readonly maxGatherSteps = 1) {
    const call = async (batch: Request[]): Promise<ActionChunk[]> => {
      this.batchSizes.push(batch.length);
      const t0 = performance.now();
      try {
        const chunks = await policy.predictChunks(batch.map((r) => r.input), batch.map((r) => r.env), batch.map((r) => r.seed));
        if (chunks.length !== batch.length) throw new Error(`policy returned ${chunks.length} chunks for ${batch.length} observations`);
        return chunks;
      } finally {
        this.inferSeconds += (performance.now() - t0) / 1000;
      }
    };
    this.batcher = new Batcher(call, policy.concurrent ? { maxBatch: 1, maxInFlight: Infinity } : { maxBatch, ready: (q) => this.ready(q) });
  }

  /** Policy calls made. */
  get calls(): number {
    return this.batchSizes.length;
  }

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
    this.batcher.poke();
  }

  /** The env stopped (episode over, worker gone): never wait for it. */
  leave(env: number): void {
    this.due.delete(env);
    this.batcher.poke();
  }

  async request(env: number, input: PolicyInput, seed: number): Promise<ActionChunk> {
    this.due.set(env, 0);
    return (await this.batcher.submit({ env, input, seed }).result).value;
  }

  /** The run stops: every queued request fails with `why` (one already sent to the model finishes first). */
  abort(why: unknown): void {
    this.batcher.abort(why);
  }

  /** The gather rule: no env that is not queued will ask within a model call's time. */
  private ready(queued: readonly Request[]): boolean {
    const envs = new Set(queued.map((q) => q.env));
    const gather = this.gatherSteps;
    for (const [env, d] of this.due) if (!envs.has(env) && d <= gather) return false;
    return true;
  }
}

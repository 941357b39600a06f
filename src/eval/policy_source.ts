// Policies behind one interface, so the same harness evaluates an rdt-libero checkpoint or a remote policy
// speaking the openpi websocket protocol (ws_policy.ts). A policy says what it needs from the simulator (render size,
// history) and turns a batch of observation histories into action chunks; each chunk step is decoded into
// LIBERO's 7-D command when it is executed, against the pose measured then (what training encoded against).
import { resolve } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { DType } from '../engine/index.js';
import { type AdapterConfig, type RobotObs, decodeAction } from '../data/adapter.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import type { PolicyInput } from '../policy/policy.js';
import { EvalError } from './errors.js';

export interface ActionChunk {
  /** Number of steps the chunk plans. */
  readonly length: number;
  /** Step k as LIBERO's 7-D command [dx, dy, dz, rx, ry, rz, gripper], decoded against the pose measured now. */
  action(k: number, measured: RobotObs): Float64Array;
}

export interface ChunkPolicy {
  /** For reports: what is being evaluated. */
  readonly describe: string;
  readonly chunkSize: number;
  /** Frames of history per observation (oldest first, null before the episode start). */
  readonly historySize: number;
  /** The render size the policy was trained on (square renders only: LIBERO's cameras are square). */
  readonly resolution: number;
  /** Training step of the checkpoint, when known. */
  readonly checkpointStep: number | null;
  /** The policy's own exec horizon, used when --exec-horizon is not given (null: none known, the flag is needed). */
  readonly execHorizon?: number | null;
  /** For every episode record: which inputs the model sees (history, spacing, format). */
  readonly inputs?: string;
  /**
   * One call for the whole batch; rejects (never resolves with garbage) when the policy fails. `envs` names the
   * simulator worker of each input (a remote policy keeps one connection per env); `seeds` the sampling seed of
   * each (seeding.ts requestSeed), which a policy that samples must use so that a chunk depends on its own seed only.
   */
  predictChunks(inputs: readonly PolicyInput[], envs?: readonly number[], seeds?: readonly number[]): Promise<ActionChunk[]>;
  /** Called before each episode's reset on that env; sends nothing anywhere (a remote policy notes the episode start). */
  startEpisode?(env: number): void;
  /** Connections re-opened during the run (remote policies), for the report. */
  readonly reconnects?: number;
  close(): Promise<void>;
}

/**
 * An rdt-libero policy folder, run in its own thread (policy_worker.ts) so that model calls never stop the main
 * thread from stepping simulators. Every convention comes from the folder's policy.json, never from flags; chunks
 * come back as raw unified vectors and each step is decoded here by the policy's encoding (decodeAction, the
 * decoder Policy.predict uses), against the pose measured when the step is executed.
 */
export class RdtChunkPolicy implements ChunkPolicy {
  readonly describe: string;
  readonly resolution: number;
  readonly inputs: string;
  private pending = new Map<number, { resolve: (c: ActionChunk[]) => void; reject: (e: Error) => void; n: number }>();
  private nextId = 1;
  private dead: Error | null = null;

  private constructor(
    private worker: Worker,
    readonly dir: string,
    readonly adapter: AdapterConfig,
    readonly chunkSize: number,
    readonly historySize: number,
    readonly checkpointStep: number | null,
    readonly execHorizon: number | null,
  ) {
    if (adapter.imageHeight !== adapter.imageWidth)
      throw new EvalError(`${dir}: the policy was trained on ${adapter.imageHeight}x${adapter.imageWidth} frames; LIBERO renders square cameras, so it cannot be evaluated there`);
    this.resolution = adapter.imageHeight;
    this.describe = `rdt-libero ${dir} (${adapter.encoding}, ${adapter.orientation}, ${adapter.imageHeight}px, history ${historySize})`;
    this.inputs = historyInputs(historySize, `the simulator's frames at ${adapter.imageHeight}px`);
    worker.on('message', (m: WorkerReply) => {
      if (m.type === 'error' && m.id === null) return this.die(new EvalError(`policy thread failed: ${m.name}: ${m.message}`));
      const p = this.pending.get(m.id as number);
      if (!p) return;
      this.pending.delete(m.id as number);
      if (m.type === 'error') p.reject(new EvalError(`policy ${dir} failed: ${m.name}: ${m.message}`));
      else p.resolve(this.chunks(m.raw!, m.chunk!, p.n));
    });
    worker.on('error', (e) => this.die(new EvalError(`policy thread crashed: ${e.message}`)));
    worker.on('exit', () => this.die(new EvalError('policy thread exited')));
  }

  /** Load the folder in a new thread; rejects with the loader's error (bad policy.json, LoRA folder, ...). */
  static open(spec: { dir: string; dtype?: DType; device?: string; threads?: number }): Promise<RdtChunkPolicy> {
    const worker = new Worker(new URL('./policy_worker.js', import.meta.url), { workerData: spec });
    return new Promise((done, reject) => {
      worker.once('message', (m: WorkerReply) => {
        // The absolute path names the policy in results, so `dir` and `./dir/` resume the same evaluation.
        if (m.type === 'ready') done(new RdtChunkPolicy(worker, resolve(spec.dir), m.adapter!, m.chunkSize!, m.historySize!, m.step ?? null, m.execHorizon ?? null));
        else reject(m.name === 'PolicyError' || m.name === 'ModelError' ? new EvalError(m.message!) : new EvalError(`loading ${spec.dir} failed: ${m.name}: ${m.message}`));
      });
      worker.once('error', (e) => reject(new EvalError(`loading ${spec.dir} failed: ${e.message}`)));
    });
  }

  private die(e: Error): void {
    if (this.dead) return;
    this.dead = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }

  private chunks(raw: Float64Array, T: number, n: number): ActionChunk[] {
    const adapter = this.adapter;
    return Array.from({ length: n }, (_, b) => ({
      length: T,
      action: (k: number, measured: RobotObs) => decodeAction(adapter, raw, (b * T + k) * STATE_VEC_LEN, measured),
    }));
  }

  predictChunks(inputs: readonly PolicyInput[], _envs?: readonly number[], seeds?: readonly number[]): Promise<ActionChunk[]> {
    if (this.dead) return Promise.reject(this.dead);
    if (!seeds || seeds.length !== inputs.length) return Promise.reject(new EvalError(`internal: ${inputs.length} observations need as many sampling seeds`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, n: inputs.length });
      this.worker.postMessage({ type: 'predict', id, inputs, seeds });
    });
  }

  async close(): Promise<void> {
    if (this.dead) return;
    const gone = new Promise<void>((res) => this.worker.once('exit', () => res()));
    this.worker.postMessage({ type: 'close' });
    await gone;
  }
}

interface WorkerReply {
  type: 'ready' | 'chunks' | 'error';
  id?: number | null;
  adapter?: AdapterConfig;
  chunkSize?: number;
  historySize?: number;
  step?: number | null;
  execHorizon?: number | null;
  raw?: Float64Array;
  chunk?: number;
  name?: string;
  message?: string;
}

export interface PolicySpec {
  /** A policy folder, ws://host:port, or a built-in scripted policy name. */
  policy: string;
  dtype?: DType;
  device?: string;
  /** libtorch intra-op threads of the policy's thread (default: libtorch's choice). */
  threads?: number;
  /** Progress lines (a remote policy's reconnects). */
  log?: (line: string) => void;
}

/** `--policy` -> a ChunkPolicy. */
export async function openPolicy(spec: PolicySpec): Promise<ChunkPolicy> {
  if (/^wss?:\/\//.test(spec.policy)) {
    const { WsChunkPolicy } = await import('./ws_policy.js');
    return WsChunkPolicy.open(spec.policy, { log: spec.log });
  }
  if (spec.policy.startsWith('scripted:')) {
    const { scriptedPolicy } = await import('./scripted_policy.js');
    return scriptedPolicy(spec.policy.slice('scripted:'.length));
  }
  return RdtChunkPolicy.open({ dir: spec.policy, dtype: spec.dtype, device: spec.device, threads: spec.threads });
}

/** What a policy of history H sees, for the records: the frames and their spacing (training's: consecutive env steps). */
export function historyInputs(H: number, frames: string): string {
  return H === 1 ? `the current frame (${frames})` : `the current and ${H - 1} previous frame${H > 2 ? 's' : ''}, 1 env step apart as in training (${frames})`;
}

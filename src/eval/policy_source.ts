// `--policy` -> a ChunkPolicy (chunk_policy.ts): a policy folder, ws://host:port or a scripted policy, and the
// rdt-libero policy folder's own implementation.
import { resolve } from 'node:path';
import type { DType } from '../engine/index.js';
import { type RobotObs, decodeAction } from '../data/adapter.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import type { PolicyInput } from '../policy/policy.js';
import { PolicyThread, PolicyThreadError } from '../policy/thread.js';
import { type ActionChunk, type ChunkPolicy, historyInputs } from './chunk_policy.js';
import { EvalError } from './errors.js';
import { scriptedPolicy } from './scripted_policy.js';
import { WsChunkPolicy } from './ws_policy.js';

/**
 * An rdt-libero policy folder, run in the policy thread (src/policy/thread.ts) so that model calls never stop the
 * main thread from stepping simulators. Every convention comes from the folder's policy.json, never from flags;
 * chunks come back as raw unified vectors and each step is decoded here by the policy's encoding (decodeAction, the
 * decoder Policy.predict uses), against the pose measured when the step is executed.
 */
export class RdtChunkPolicy implements ChunkPolicy {
  readonly describe: string;
  readonly resolution: number;
  readonly inputs: string;
  readonly chunkSize: number;
  readonly historySize: number;
  readonly checkpointStep: number | null;
  readonly execHorizon: number | null;

  private constructor(private readonly thread: PolicyThread, readonly dir: string) {
    const { adapter, chunkSize, historySize, step, execHorizon } = thread.info;
    if (adapter.imageHeight !== adapter.imageWidth)
      throw new EvalError(`${dir}: the policy was trained on ${adapter.imageHeight}x${adapter.imageWidth} frames; LIBERO renders square cameras, so it cannot be evaluated there`);
    [this.chunkSize, this.historySize, this.checkpointStep, this.execHorizon, this.resolution] = [chunkSize, historySize, step, execHorizon, adapter.imageHeight];
    this.describe = `rdt-libero ${dir} (${adapter.encoding}, ${adapter.orientation}, ${adapter.imageHeight}px, history ${historySize})`;
    this.inputs = historyInputs(historySize, `the simulator's frames at ${adapter.imageHeight}px`);
  }

  /** Load the folder in the policy thread; rejects with the loader's error (bad policy.json, LoRA folder, ...). */
  static async open(spec: { dir: string; dtype?: DType; device?: string; threads?: number }): Promise<RdtChunkPolicy> {
    let thread: PolicyThread;
    try {
      thread = await PolicyThread.start({ dir: spec.dir, load: { dtype: spec.dtype, device: spec.device }, threads: spec.threads });
    } catch (e) {
      const ours = e instanceof PolicyThreadError && e.thread?.ours;
      throw new EvalError(ours ? (e as Error).message : `loading ${spec.dir} failed: ${(e as Error).message}`);
    }
    try {
      // The absolute path names the policy in results, so `dir` and `./dir/` resume the same evaluation.
      return new RdtChunkPolicy(thread, resolve(spec.dir));
    } catch (e) {
      await thread.close();
      throw e;
    }
  }

  /** Text-encoder calls the policy made so far (one per distinct instruction). */
  get textEncodes(): number {
    return this.thread.textEncodes;
  }

  async predictChunks(inputs: readonly PolicyInput[], _envs?: readonly number[], seeds?: readonly number[]): Promise<ActionChunk[]> {
    if (!seeds || seeds.length !== inputs.length) throw new EvalError(`internal: ${inputs.length} observations need as many sampling seeds`);
    let raw: Float64Array;
    try {
      ({ raw } = await this.thread.predict([...inputs], [...seeds]));
    } catch (e) {
      throw new EvalError(`policy ${this.dir} failed: ${(e as Error).message}`);
    }
    const { adapter, chunkSize: T } = this.thread.info;
    return inputs.map((_, b) => ({
      length: T,
      action: (k: number, measured: RobotObs) => decodeAction(adapter, raw, (b * T + k) * STATE_VEC_LEN, measured),
    }));
  }

  close(): Promise<void> {
    return this.thread.close();
  }
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
  if (/^wss?:\/\//.test(spec.policy)) return WsChunkPolicy.open(spec.policy, { log: spec.log });
  if (spec.policy.startsWith('scripted:')) return scriptedPolicy(spec.policy.slice('scripted:'.length));
  return RdtChunkPolicy.open({ dir: spec.policy, dtype: spec.dtype, device: spec.device, threads: spec.threads });
}

// Policies behind one interface, so the same harness evaluates an rdt-libero checkpoint or, later, a remote
// policy speaking the openpi websocket protocol. A policy says what it needs from the simulator (render size,
// history) and turns a batch of observation histories into action chunks; each chunk step is decoded into
// LIBERO's 7-D command when it is executed, against the pose measured then (what training encoded against).
import * as torch from '../engine/index.js';
import type { DType } from '../engine/index.js';
import { type RobotObs, decodeAction } from '../data/adapter.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import { type Policy, type PolicyInput, loadPolicy } from '../policy/policy.js';
import { UsageError } from '../util/errors.js';
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
  /** One call for the whole batch; rejects (never resolves with garbage) when the policy fails. */
  predictChunks(inputs: readonly PolicyInput[]): Promise<ActionChunk[]>;
  close(): Promise<void>;
}

/** An rdt-libero policy folder in this process: every convention comes from its policy.json, never from flags. */
export class RdtChunkPolicy implements ChunkPolicy {
  readonly describe: string;
  readonly resolution: number;
  private generator: torch.Generator;

  constructor(readonly policy: Policy, seed: number) {
    const a = policy.adapter;
    if (a.imageHeight !== a.imageWidth)
      throw new EvalError(`${policy.dir}: the policy was trained on ${a.imageHeight}x${a.imageWidth} frames; LIBERO renders square cameras, so it cannot be evaluated there`);
    this.resolution = a.imageHeight;
    this.describe = `rdt-libero ${policy.dir} (${a.encoding}, ${a.orientation}, ${a.imageHeight}px, history ${a.historySize})`;
    this.generator = new torch.Generator(seed);
  }

  get chunkSize(): number {
    return this.policy.chunkSize;
  }
  get historySize(): number {
    return this.policy.historySize;
  }
  get checkpointStep(): number | null {
    return this.policy.conventions.origin?.step ?? null;
  }

  async predictChunks(inputs: readonly PolicyInput[]): Promise<ActionChunk[]> {
    const out = this.policy.predict(inputs, { generator: this.generator, raw: true });
    const raw = out.raw!;
    const T = out.chunk;
    const adapter = this.policy.adapter;
    return inputs.map((_, b) => ({
      length: T,
      // The policy's own decoder (decodeAction with its encoding), one step at a time.
      action: (k: number, measured: RobotObs) => decodeAction(adapter, raw, (b * T + k) * STATE_VEC_LEN, measured),
    }));
  }

  async close(): Promise<void> {
    this.policy.dispose();
  }
}

export interface PolicySpec {
  /** A policy folder, ws://host:port, or a built-in scripted policy name (test back-end only). */
  policy: string;
  seed: number;
  dtype?: DType;
  device?: string;
}

/** `--policy` -> a ChunkPolicy. */
export async function openPolicy(spec: PolicySpec): Promise<ChunkPolicy> {
  if (/^wss?:\/\//.test(spec.policy))
    throw new UsageError(`--policy ${spec.policy}: remote policies over the openpi websocket protocol are not yet available in rdt-libero eval ` +
      '(the client, src/serve/client.ts, is being written); pass a policy folder (checkpoint-N/, checkpoint-N/ema/, final/)');
  if (spec.policy.startsWith('scripted:')) {
    const { scriptedPolicy } = await import('./scripted_policy.js');
    return scriptedPolicy(spec.policy.slice('scripted:'.length));
  }
  return new RdtChunkPolicy(loadPolicy(spec.policy, { dtype: spec.dtype, device: spec.device }), spec.seed);
}

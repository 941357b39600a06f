// What the evaluation runs, behind one interface: an rdt-libero checkpoint (policy_source.ts), a remote openpi policy
// (ws_policy.ts) or a scripted one (scripted_policy.ts). It says what it needs from the simulator (render size,
// history) and turns observation histories into action chunks; each chunk step is decoded into LIBERO's 7-D command
// when it is executed, against the pose measured then (what training encoded against).
import type { RobotObs } from '../data/adapter.js';
import type { PolicyInput } from '../policy/policy.js';

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
  /**
   * Requests go out at once, each on its own (a remote policy: one connection per env, the server batches them),
   * instead of being gathered into one call at a time here.
   */
  readonly concurrent?: boolean;
  /** Connections re-opened during the run (remote policies), for the report. */
  readonly reconnects?: number;
  close(): Promise<void>;
}

/** What a policy of history H sees, for the records: the frames and their spacing (training's: consecutive env steps). */
export function historyInputs(H: number, frames: string): string {
  return H === 1 ? `the current frame (${frames})` : `the current and ${H - 1} previous frame${H > 2 ? 's' : ''}, 1 env step apart as in training (${frames})`;
}

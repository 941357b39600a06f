// The contract every action encoding implements: LIBERO's 7-D command <-> RDT's unified 128-d vector, exactly.
import type { Mat3 } from '../rotation.js';

/** A measured end-effector pose: position (m, world frame) and rotation matrix (row-major). */
export interface Pose {
  pos: ArrayLike<number>;
  R: Mat3;
}

/** LIBERO OSC_POSE scaling (robosuite osc_pose.json output_max): 1.0 of the command = 0.05 m and 0.5 rad. */
export const POS_SCALE_M = 0.05;
export const ROT_SCALE_RAD = 0.5;
/** LIBERO control frequency, Hz (each env.step is 0.05 s). */
export const LIBERO_CTRL_FREQ = 20;

export interface ActionEncoding {
  readonly name: string;
  /** One line for reports. */
  readonly describe: string;
  /** Slots this encoding fills (the action element mask). */
  readonly slots: readonly number[];
  /** Writes the unified vector of command a7 (LIBERO [-1,1] arm, gripper -1 open / +1 close) executed at `pose`. */
  encode(a7: ArrayLike<number>, pose: Pose, out: Float64Array | Float32Array, off: number): void;
  /** The exact inverse: the 7-D command (clipped to [-1, 1]) from the unified vector, against the pose measured now. */
  decode(v: ArrayLike<number>, off: number, pose: Pose, out7: Float64Array): void;
  /** End padding after the last real step of an episode, given the last real vector (at lastOff in `v`). */
  pad(v: Float64Array | Float32Array, lastOff: number, out: Float64Array | Float32Array, off: number): void;
}

export function clip1(x: number): number {
  return x > 1 ? 1 : x < -1 ? -1 : x;
}

/** Commanded gripper open fraction: a6 = -1 (open) -> 1, a6 = +1 (close) -> 0. Exact inverse: a6 = 1 - 2 f. */
export function gripperCmdToOpen(a6: number): number {
  return (1 - clip1(a6)) / 2;
}
export function openToGripperCmd(f: number): number {
  return clip1(1 - 2 * f);
}

// What the dataset needs from one group of demonstrations of one task: a LIBERO HDF5 file (src/data/hdf5), or the
// episodes of one task of a LeRobot dataset folder (src/data/lerobot). Both give the same episode/step interface
// (demos, low-dim arrays per demo, camera frames as stored), so the index, sampler, statistics, held-out split,
// workers and mixing work on either without knowing which.
import type { DataError } from './errors.js';
import type { ImageOrientation } from './images.js';

export type Layout = 'original' | 'regenerated';
export type Camera = 'agentview' | 'eye_in_hand';
export type DataFormat = 'hdf5' | 'lerobot';
export const DATA_FORMATS = ['auto', 'hdf5', 'lerobot'] as const;

export interface DemoInfo {
  name: string;
  length: number;
  hasJoints: boolean;
}

/** Per-demo low-dim arrays, row-major, all of the demo's length T. */
export interface DemoLowDim {
  actions: Float64Array; // (T, 7) LIBERO OSC_POSE command in [-1, 1], gripper -1 open / +1 close
  eePos: Float64Array; // (T, 3) m
  eeOri: Float64Array; // (T, 3) axis-angle rad
  gripper: Float64Array; // (T, 2) finger qpos m
  joints: Float64Array | null; // (T, 7) rad
}

/** Frames t0..t1-1 of one camera of one demo, as stored (uint8 HWC), to be written at dst[off..]. */
export interface FrameRequest {
  file: EpisodeFile;
  demo: string;
  camera: Camera;
  t0: number;
  t1: number;
  dst: Uint8Array;
  off: number;
}

/** Reads frames for many requests at once (a LeRobot folder orders a batch's video frames by file and time). */
export interface FrameSource {
  /** Synchronous sources return nothing; the others a promise. */
  readFrames(reqs: FrameRequest[]): void | Promise<void>;
}

export interface EpisodeFile {
  readonly format: DataFormat;
  /** The HDF5 file, or the LeRobot dataset folder. */
  readonly path: string;
  readonly layout: Layout;
  readonly demos: DemoInfo[];
  /** Every problem found while validating; demos with a problem are left out of `demos`. */
  readonly problems: DataError[];
  readonly height: number;
  readonly width: number;
  /** What the stored frames already had done to them, relative to the simulator's raw (upside-down) render. */
  readonly storedOrientation: ImageOrientation;
  /** Shared by the files whose frames are best read together. */
  readonly frameSource: FrameSource;
  readonly taskName: string;
  instruction(source?: 'filename' | 'problem_info'): string;
  lowdim(demo: string): DemoLowDim;
  /** What the statistics cache key depends on (paths, sizes, mtimes). */
  fingerprint(): unknown;
  /** Per-demo work done once before the first batch (direct-read positions, ...). */
  prepare(demo: string): void;
  close(): void;
}

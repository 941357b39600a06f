// Frame-exact reads from LeRobot's MP4 videos, decoded in this process by libav through the native addon
// (native/video_decode.cc: Debian's libavformat/libavcodec/libswscale, the libraries PyAV wraps).
//
// LeRobot picks, for a query timestamp, the decoded frame whose pts is nearest and refuses it when that distance
// exceeds tolerance_s (default 1e-4 s): lerobot/common/datasets/video_utils.py decode_video_frames_* at 0cf8648 and
// src/lerobot/datasets/video_utils.py decode_video_frames_pyav at 7427f31, which seek to the keyframe at or before
// round(ts / time_base) - 1 and decode forward. The addon applies that rule to each timestamp, keeps each file's
// demuxer and decoder open (per thread, the 16 most recent files) and decodes on instead of seeking when the
// wanted frame is ahead in the current or next GOP; frames come out as PyAV's to_ndarray(format='rgb24') gives
// them (same decoders, same swscale conversion: test/data-lerobot.test.ts compares them byte for byte).
//
// The calls are synchronous: a loader worker thread does nothing else meanwhile, and with workers: 0 the batch is
// built on the calling thread as HDF5 batches are.
import { DataError } from '../errors.js';

/** LeRobotDataset's default tolerance_s. */
export const TOLERANCE_S = 1e-4;

export interface VideoFrameRequest {
  path: string;
  /** Timestamps in the file of the frames wanted, s (v3.0: the episode's from_timestamp + each frame's timestamp). */
  times: number[];
  height: number;
  width: number;
  dst: Uint8Array;
  off: number;
  /** For error messages: which episode and frame (of times[0]) asked for it. */
  episode: string;
  frame: number;
}

type NativeOps = (typeof import('../../engine/native.js'))['N'];
let native: NativeOps | null = null;

/** The addon, loaded on first use (reading HDF5 or images in parquet never loads libtorch). */
async function ops(file: string): Promise<NativeOps> {
  if (!native) {
    native = (await import('../../engine/native.js')).N;
    if (native.videoBackend() === null) {
      // the message of a read says what to install; checking here names the file that needed it
      try {
        native.videoReadFrames(file, [], TOLERANCE_S, 1, 1, new Uint8Array(0), 0);
      } catch (e) {
        native = null;
        throw new DataError(nativeMessage(e), { file });
      }
    }
  }
  return native;
}

/** The native error without the op's name and the path (the DataError names the file). */
function nativeMessage(e: unknown): string {
  return String((e as Error).message ?? e).replace(/^video\w+: /, '');
}

/**
 * Decodes every requested frame (the one nearest each timestamp, within tolerance_s) into its destination.
 * Requests are served in file and time order, so frames of one file that follow each other decode on without seeking.
 * A timestamp the video lacks fails with its file, episode and frame.
 */
export async function readVideoFrames(reqs: readonly VideoFrameRequest[]): Promise<void> {
  if (!reqs.length) return;
  const N = await ops(reqs[0].path);
  const order = [...reqs].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.times[0] - b.times[0]));
  for (const r of order) {
    let miss: { index: number; nearest: number | null } | null;
    try {
      miss = N.videoReadFrames(r.path, r.times, TOLERANCE_S, r.height, r.width, r.dst, r.off);
    } catch (e) {
      throw new DataError(nativeMessage(e).replace(`${r.path}: `, ''), { file: r.path, demo: r.episode, step: r.frame },
        'the video is damaged or uses a codec this libavcodec lacks (`rdt-libero doctor` lists the decoders)');
    }
    if (miss) {
      const ts = r.times[miss.index];
      throw new DataError(
        `no video frame within tolerance_s=${TOLERANCE_S} s of timestamp ${ts.toFixed(6)} s (nearest ${miss.nearest === null ? 'none' : `${miss.nearest.toFixed(6)} s`})`,
        { file: r.path, demo: r.episode, step: r.frame + miss.index },
        "the parquet timestamps and the video disagree (LeRobot's decoder refuses this frame too); re-encode or drop the episode");
    }
  }
}

/** Exact packet timestamps (s) of a video's first stream, ascending, read from the container (no decoding). */
export async function videoTimestamps(path: string): Promise<Float64Array> {
  const N = await ops(path);
  try {
    return N.videoPacketTimes(path);
  } catch (e) {
    throw new DataError(nativeMessage(e).replace(`${path}: `, ''), { file: path }, 'the video is damaged; download it again');
  }
}

/** The libav versions and decoders the addon decodes with ('libavformat 59.27.100, ...'), or null when built without. */
export async function videoBackend(): Promise<string | null> {
  return (await import('../../engine/native.js')).N.videoBackend();
}

/** Closes the video files this thread holds open. */
export function closeVideos(): void {
  native?.videoCloseAll();
}

/**
 * LeRobot's tolerance rule over whole files: every wanted timestamp has a frame within tol (default tolerance_s).
 * Returns the first offender, or null.
 */
export function firstUnmatched(frameTimes: Float64Array, wanted: ArrayLike<number>, tol = TOLERANCE_S): { ts: number; nearest: number; k: number } | null {
  for (let k = 0; k < wanted.length; k++) {
    const t = wanted[k];
    let lo = 0;
    let hi = frameTimes.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (frameTimes[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    const cands = [frameTimes[lo - 1], frameTimes[lo]].filter((x) => x !== undefined);
    const nearest = cands.reduce((a, x) => (Math.abs(x - t) < Math.abs(a - t) ? x : a), Infinity);
    if (!(Math.abs(nearest - t) <= tol)) return { ts: t, nearest, k };
  }
  return null;
}

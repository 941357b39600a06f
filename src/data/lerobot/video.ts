// Frame-exact reads from LeRobot's MP4 videos with Debian's ffmpeg, many frames per process.
//
// LeRobot picks, for a query timestamp, the decoded frame whose pts is nearest and refuses it when that distance
// exceeds tolerance_s (default 1e-4 s): lerobot/common/datasets/video_utils.py decode_video_frames_* at 0cf8648 and
// src/lerobot/datasets/video_utils.py decode_video_frames_pyav at 7427f31, which seek to the keyframe before the
// first timestamp and decode forward. We ask ffmpeg for the same frames in one run per batch: an ffconcat script
// with one segment per run of consecutive frames (`inpoint ts - 0.5/fps`, `outpoint last ts + 0.5/fps`; the
// demuxer seeks to the keyframe before), the timestamps kept as stored (-copyts), and `select=concatdec_select` keeping only the frames whose pts
// falls inside their segment: exactly the frames nearest to the wanted times. A segment that yields no frame is a timestamp the
// video lacks (named in the error). Nothing is decoded beyond each segment's keyframe-to-frame run, so no file is
// decoded whole, and one process per batch amortises ffmpeg's start-up (~75 ms of CPU for Debian's build, which
// links every codec library). The windows are half a frame wide because the concat demuxer's offsets are rounded
// to the stream's time base (1/10240 s in LeRobot's files, as coarse as tolerance_s itself); tolerance_s is checked
// against the exact packet timestamps by checkVideoTimestamps (`rdt-libero data inspect`).
import { spawn } from 'node:child_process';
import { DataError } from '../errors.js';

/** LeRobotDataset's default tolerance_s. */
export const TOLERANCE_S = 1e-4;

export interface VideoFrameRequest {
  /** Requests of one group share a process: same codec and frame size (one camera of one dataset). */
  group: string;
  path: string;
  /** Timestamp in the file of the first frame, s (v3.0: the episode's from_timestamp + the frame's timestamp). */
  ts: number;
  /** Consecutive frames wanted from ts on, 1/fps apart (a sample's history). */
  count: number;
  /** The dataset's fps: frames are 1/fps apart. */
  fps: number;
  height: number;
  width: number;
  dst: Uint8Array;
  off: number;
  /** For error messages: which episode and frame asked for it. */
  episode: string;
  frame: number;
}

const FFMPEG = process.env.RDT_FFMPEG || 'ffmpeg';

function script(reqs: readonly VideoFrameRequest[]): string {
  const lines = ['ffconcat version 1.0'];
  for (const r of reqs) {
    const half = 0.5 / r.fps;
    const last = r.ts + (r.count - 1) / r.fps;
    // ffconcat quotes with single quotes; a quote inside the path is written '\''.
    // `file:` because the script arrives on a pipe (relative to which a bare path would resolve).
    lines.push(`file 'file:${r.path.replace(/'/g, "'\\''")}'`, `inpoint ${Math.max(0, r.ts - half).toFixed(6)}`, `outpoint ${(last + half).toFixed(6)}`);
  }
  return lines.join('\n') + '\n';
}

/** Runs one ffmpeg process over frames of one size; resolves with the raw RGB output. */
function runFfmpeg(reqs: readonly VideoFrameRequest[]): Promise<Buffer> {
  const args = [
    '-v', 'error', '-nostdin', '-threads', '1', '-copyts',
    '-f', 'concat', '-safe', '0', '-segment_time_metadata', '1', '-protocol_whitelist', 'file,pipe,fd', '-i', 'pipe:0',
    '-vf', 'select=concatdec_select,setpts=N', '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1',
  ];
  return new Promise((resolve, reject) => {
    let child;
    try {
      child = spawn(FFMPEG, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    } catch (e) {
      reject(new DataError(`cannot start ffmpeg: ${(e as Error).message}`, { file: reqs[0].path }, 'install ffmpeg (scripts/setup.sh does: apt-get install ffmpeg)'));
      return;
    }
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) =>
      reject(new DataError(`cannot run ffmpeg: ${e.message}`, { file: reqs[0].path }, 'install ffmpeg (scripts/setup.sh does: apt-get install ffmpeg)')));
    child.on('close', (code) => {
      if (code !== 0) {
        const line = err.trim().split('\n').find((l) => l.includes('/')) ?? err.trim().split('\n')[0] ?? `exit code ${code}`;
        const file = reqs.find((r) => line.includes(r.path))?.path ?? reqs[0].path;
        reject(new DataError(`ffmpeg could not decode: ${line}`, { file }, 'the video is damaged or uses a codec this ffmpeg lacks (rdt-libero doctor lists the decoders)'));
      } else resolve(Buffer.concat(out));
    });
    child.stdin.on('error', () => undefined); // ffmpeg may exit before reading everything; 'close' reports why
    child.stdin.end(script(reqs));
  });
}

/**
 * Decodes every requested frame (the one nearest its timestamp) into its destination. Requests of one group (one camera of one dataset: one codec and
 * frame size, as the concat demuxer needs) share one ffmpeg process; groups run in parallel. A request whose timestamp the video lacks (beyond `tol`) fails with its file, episode and frame.
 */
export async function readVideoFrames(reqs: readonly VideoFrameRequest[]): Promise<void> {
  const byGroup = new Map<string, VideoFrameRequest[]>();
  for (const r of reqs) {
    const k = r.group;
    let g = byGroup.get(k);
    if (!g) byGroup.set(k, (g = []));
    g.push(r);
  }
  await Promise.all([...byGroup.values()].map((g) => readGroup(g)));
}

async function readGroup(reqs: readonly VideoFrameRequest[]): Promise<void> {
  const frame = reqs[0].height * reqs[0].width * 3;
  const raw = await runFfmpeg(reqs);
  const want = reqs.reduce((a, r) => a + r.count, 0);
  if (raw.length !== want * frame) {
    // Some segment gave no frame (or more than one): find which, one by one, to name it.
    for (const r of reqs) {
      const one = await runFfmpeg([r]);
      if (one.length !== r.count * frame)
        throw new DataError(`the video has ${one.length / frame} frames from ${r.ts.toFixed(6)} s on (half a frame either side), expected ${r.count}`,
          { file: r.path, demo: r.episode, step: r.frame }, "the parquet timestamps and the video disagree (LeRobot's decoder refuses this frame too); re-encode or drop the episode");
    }
    throw new DataError(`ffmpeg returned ${raw.length} bytes for ${want} frames of ${frame} bytes`, { file: reqs[0].path }, 'report this with the dataset');
  }
  let o = 0;
  for (const r of reqs) {
    r.dst.set(raw.subarray(o, o + r.count * frame), r.off);
    o += r.count * frame;
  }
}

/** Exact packet timestamps (s) of a video's first stream, in presentation order, read by ffprobe (no decoding). */
export function videoTimestamps(path: string): Promise<Float64Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.env.RDT_FFPROBE || 'ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts,pts_time', '-show_entries', 'stream=time_base', '-of', 'json', path]);
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.on('error', (e) => reject(new DataError(`cannot run ffprobe: ${e.message}`, { file: path }, 'install ffmpeg (scripts/setup.sh does)')));
    child.on('close', (code) => {
      if (code !== 0) return reject(new DataError(`ffprobe failed: ${err.trim().split('\n')[0]}`, { file: path }, 'the video is damaged; download it again'));
      const j = JSON.parse(out) as { packets?: { pts?: number }[]; streams?: { time_base?: string }[] };
      const [a, b] = (j.streams?.[0]?.time_base ?? '1/1').split('/').map(Number);
      const ts = Float64Array.from((j.packets ?? []).filter((p) => p.pts !== undefined).map((p) => (p.pts! * a) / b)).sort();
      resolve(ts);
    });
  });
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

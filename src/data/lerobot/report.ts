// What `rdt-libero data inspect` says about a LeRobot folder: its version, mapping and storage, the dataset's own
// statistics against the values we read (raw columns, every frame, as LeRobot computes them), and LeRobot's
// timestamp rule checked on every video frame the dataset uses (exact packet times read from the container, tolerance_s).
import type { LiberoDataset } from '../dataset.js';
import { DataError } from '../errors.js';
import type { LeRobotFolder } from './folder.js';
import { TOLERANCE_S, firstUnmatched, videoTimestamps } from './video.js';

export interface LeRobotReport {
  lines: string[];
  warnings: string[];
  problems: DataError[];
}

function moments(rows: number[][]): { mean: number[]; std: number[]; min: number[]; max: number[] } {
  const d = rows[0]?.length ?? 0;
  const mean = new Array<number>(d).fill(0), sq = new Array<number>(d).fill(0);
  const min = new Array<number>(d).fill(Infinity), max = new Array<number>(d).fill(-Infinity);
  for (const r of rows)
    for (let i = 0; i < d; i++) {
      mean[i] += r[i];
      sq[i] += r[i] * r[i];
      min[i] = Math.min(min[i], r[i]);
      max[i] = Math.max(max[i], r[i]);
    }
  const n = Math.max(rows.length, 1);
  for (let i = 0; i < d; i++) mean[i] /= n;
  return { mean, std: sq.map((x, i) => Math.sqrt(Math.max(x / n - mean[i] * mean[i], 0))), min, max };
}

export async function lerobotReport(ds: LiberoDataset, lr: LeRobotFolder): Promise<LeRobotReport> {
  const m = lr.mapping;
  const lines: string[] = [];
  const warnings: string[] = [];
  const problems: DataError[] = [];
  const cams = [...lr.cameraKeys.entries()].map(([c, k]) => `${c}=${k}`).join(', ');
  lines.push(`LeRobot ${lr.name}: codebase ${lr.version}, mapping ${m.name} (${cams}; state ${m.state}[pos ${m.eefPos.join(':')}, ` +
    `${m.eefAxisAngle ? `axis-angle ${m.eefAxisAngle.join(':')}` : `quat ${m.eefQuat!.join(':')}`}, gripper ${m.gripperQpos.join(':')}]; action ${m.action})`);
  lines.push(`  cameras stored as ${lr.cameraStorage === 'video' ? 'MP4 video (decoded by libav in the addon)' : 'PNG/JPEG in the parquet files'}, ${lr.height}x${lr.width}, ` +
    `already turned '${m.storedOrientation}' (training orientation ${ds.cfg.orientation}: frames used as stored, the policy turns simulator frames the same way); ` +
    `fps ${lr.fps} in meta/info.json, ctrl_freq ${ds.cfg.ctrlFreq} Hz used`);
  const own = lr.ownStats();
  if (own) {
    const ours = lr.rawRows();
    for (const [feat, rows] of [[m.state, ours.state], [m.action, ours.action]] as const) {
      const theirs = own.stats[feat];
      if (!theirs || !rows.length) continue;
      const mine = moments(rows);
      const diff = (k: 'mean' | 'std' | 'min' | 'max') => Math.max(...mine[k].map((x, i) => Math.abs(x - Number(theirs[k]?.flat?.(3)?.[i] ?? theirs[k][i]))));
      const d = { mean: diff('mean'), std: diff('std'), min: diff('min'), max: diff('max') };
      const worst = Math.max(d.mean, d.std, d.min, d.max);
      lines.push(`  ${feat}: max |ours - ${own.file.split('/').slice(-2).join('/')}| mean ${d.mean.toExponential(2)}, std ${d.std.toExponential(2)}, min ${d.min.toExponential(2)}, max ${d.max.toExponential(2)} over ${rows.length} frames`);
      // float32 sums over hundreds of thousands of frames differ around 1e-6 relative; more is another dataset.
      if (!(worst <= 1e-4 * Math.max(1, ...mine.max.map(Math.abs))))
        warnings.push(`${lr.name}: the dataset's own statistics of '${feat}' (${own.file}) differ from the values read by up to ${worst.toPrecision(3)}: ` +
          'the stats file was made from other data (another version, or before episodes were dropped); rdt-libero uses its own statistics');
    }
  }
  const reads = lr.videoReads();
  if (reads.size) {
    let frames = 0;
    for (const [path, want] of reads) {
      try {
        const times = await videoTimestamps(path);
        const bad = firstUnmatched(times, want.map((w) => w.ts));
        frames += want.length;
        if (bad) {
          const who = want[bad.k];
          problems.push(new DataError(`no video frame within tolerance_s=${TOLERANCE_S} s of timestamp ${bad.ts.toFixed(6)} s (nearest ${bad.nearest.toFixed(6)} s)`,
            { file: path, demo: who.demo, step: who.step }, "the parquet timestamps and the video disagree; LeRobot's decoder refuses this frame too"));
        }
      } catch (e) {
        problems.push(e instanceof DataError ? e : new DataError(String(e), { file: path }));
      }
    }
    lines.push(`  video timestamps: ${frames} frames in ${reads.size} files checked against the packets (tolerance_s ${TOLERANCE_S} s)`);
  }
  return { lines, warnings, problems };
}

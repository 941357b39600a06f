// One LeRobot dataset folder (codebase v2.0, v2.1 or v3.0), read into the same episode/step interface as a LIBERO
// HDF5 file: one EpisodeFile per task (its episodes are the demos, named episode_NNNNNN), low-dim arrays loaded at
// open, camera frames read on demand from the MP4 videos (libav in the addon, src/data/lerobot/video.ts) or from the PNG/JPEG
// bytes stored in the parquet files.
//
// Layouts, as the producers write them (LeRobot's own code is the reference; see README "LeRobot datasets"):
// - v2.0/v2.1 (lerobot/common/datasets/utils.py and lerobot_dataset.py at 0cf8648, the commit openpi pins):
//   meta/info.json, meta/episodes.jsonl {episode_index, tasks, length}, meta/tasks.jsonl {task_index, task},
//   meta/episodes_stats.jsonl (v2.1) or meta/stats.json (v2.0), one parquet per episode at
//   info.data_path.format(episode_chunk = episode // chunks_size, episode_index), one mp4 per episode and camera at
//   info.video_path.format(episode_chunk, video_key, episode_index); frame k has timestamp k / fps.
// - v3.0 (src/lerobot/datasets/utils.py, dataset_metadata.py, dataset_reader.py at 7427f31): meta/tasks.parquet
//   (task_index, task), meta/episodes/chunk-XXX/file-YYY.parquet with one row per episode (length, tasks,
//   data/chunk_index, data/file_index, dataset_from_index, dataset_to_index, videos/KEY/chunk_index,
//   videos/KEY/file_index, videos/KEY/from_timestamp), data files holding many episodes, video files holding many
//   episodes back to back; a frame's time in its video is from_timestamp + its timestamp (dataset_reader.py
//   _query_videos).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { DataError } from '../errors.js';
import type { Camera, DemoInfo, DemoLowDim, EpisodeFile, FrameRequest, FrameSource } from '../episode_file.js';
import { quatToAxisAngle } from '../rotation.js';
import { type LeRobotMapping, type MappingConfig, isEmptyMapping, knownMapping, userMapping } from './mapping.js';
import { ParquetFile, num } from './parquet.js';
import { TOLERANCE_S, type VideoFrameRequest, closeVideos, readVideoFrames } from './video.js';

export const LEROBOT_VERSIONS = ['v2.0', 'v2.1', 'v3.0'] as const;

/** Whether a folder is a LeRobot dataset (it has meta/info.json). */
export function isLeRobotFolder(dir: string): boolean {
  return existsSync(join(dir, 'meta', 'info.json'));
}

interface Feature {
  dtype: string;
  shape: number[];
}

interface Info {
  codebase_version: string;
  fps: number;
  chunks_size?: number;
  data_path: string;
  video_path: string | null;
  features: Record<string, Feature>;
}

/** A frame's place: where its low-dim row and its camera frames live. */
interface Episode {
  index: number;
  length: number;
  task: string;
  dataFile: string;
  /** Row of frame 0 in dataFile. */
  row: number;
  /** Per camera column: the video file and the episode's offset in it (v3.0 from_timestamp; 0 for v2.x). */
  videos: Map<string, { path: string; from: number }>;
  timestamps: Float64Array;
  lowdim: DemoLowDim;
}

/** Python str.format for LeRobot's path templates ({name} and {name:03d}). */
export function formatPath(template: string, v: Record<string, string | number>): string {
  return template.replace(/\{(\w+)(?::0?(\d+)d)?\}/g, (m, k: string, w?: string) => {
    if (!(k in v)) throw new Error(`path template ${template}: unknown field ${k}`);
    const s = String(v[k]);
    return w ? s.padStart(Number(w), '0') : s;
  });
}

function readJson<T>(path: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new DataError('file not found', { file: path }, 'the dataset folder is incomplete; download it again');
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new DataError(`not valid JSON: ${(e as Error).message}`, { file: path }, 'the download is incomplete; download it again');
  }
}

function readJsonl(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) throw new DataError('file not found', { file: path }, 'the dataset folder is incomplete; download it again');
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l, i) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      throw new DataError(`line ${i + 1} is not valid JSON`, { file: path }, 'the download is incomplete; download it again');
    }
  });
}

const CAMERAS: Camera[] = ['agentview', 'eye_in_hand'];

/** Decoded PNG/JPEG bytes -> RGB uint8 HWC into dst. */
function decodeImage(bytes: Uint8Array, h: number, w: number, dst: Uint8Array, off: number, where: { file: string; key: string; demo: string; step: number }): void {
  const fail = (why: string): never => {
    throw new DataError(why, where, 'the stored image is damaged or of another size than meta/info.json says');
  };
  if (bytes[0] === 0x89 && bytes[1] === 0x50) {
    const img = decodePng(bytes);
    if (img.width !== w || img.height !== h) fail(`image is ${img.height}x${img.width}, meta/info.json says ${h}x${w}`);
    if (img.depth !== 8 || img.palette) fail(`PNG with ${img.depth}-bit ${img.palette ? 'palette ' : ''}pixels (expected 8-bit RGB)`);
    const c = img.channels;
    const src = img.data as Uint8Array;
    if (c === 3) dst.set(src.subarray(0, h * w * 3), off);
    else
      for (let p = 0; p < h * w; p++)
        for (let k = 0; k < 3; k++) dst[off + p * 3 + k] = src[p * c + (c >= 3 ? k : 0)];
  } else if (bytes[0] === 0xff && bytes[1] === 0xd8) {
    const img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false });
    if (img.width !== w || img.height !== h) fail(`image is ${img.height}x${img.width}, meta/info.json says ${h}x${w}`);
    dst.set(img.data.subarray(0, h * w * 3), off);
  } else fail('stored image is neither PNG nor JPEG');
}

/** Caches the image cells of recently read row groups (history frames and neighbours come from the same group). */
class CellCache {
  private map = new Map<string, { cells: Uint8Array[]; bytes: number }>();
  private bytes = 0;
  constructor(private readonly budget: number) {}
  get(k: string) {
    const v = this.map.get(k);
    if (v) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v?.cells;
  }
  put(k: string, cells: Uint8Array[]) {
    const bytes = cells.reduce((a, c) => a + c.length, 0);
    this.map.set(k, { cells, bytes });
    this.bytes += bytes;
    for (const [kk, v] of this.map) {
      if (this.bytes <= this.budget || this.map.size <= 1) break;
      this.map.delete(kk);
      this.bytes -= v.bytes;
    }
  }
}

export class LeRobotFolder implements FrameSource {
  readonly root: string;
  readonly name: string;
  readonly version: string;
  readonly fps: number;
  readonly mapping: LeRobotMapping;
  readonly height: number;
  readonly width: number;
  readonly problems: DataError[] = [];
  /** Things worth saying that are not errors (the fps the metadata claims, ...). */
  readonly notes: string[] = [];
  readonly tasks: TaskEpisodes[] = [];
  readonly cameraKeys: Map<Camera, string> = new Map();
  readonly cameraStorage: 'video' | 'image';
  private readonly info: Info;
  private readonly infoPath: string;
  private episodes = new Map<number, Episode>();
  /** The state column as stored (float32 rows), per episode: what ownStats is compared with. */
  private rawState = new Map<number, Float32Array[]>();
  private parquet = new Map<string, ParquetFile>();
  private cells = new CellCache(256 << 20);

  private constructor(root: string, info: Info, mapping: LeRobotMapping) {
    this.root = root;
    this.name = basename(root);
    this.info = info;
    this.infoPath = join(root, 'meta', 'info.json');
    this.version = info.codebase_version;
    this.fps = info.fps;
    this.mapping = mapping;
    const feat = (key: string, what: string): Feature => {
      const f = info.features[key];
      if (!f) throw new DataError(`no feature '${key}' (${what})`, { file: this.infoPath, key: `features.${key}` }, 'check data.lerobot_mapping against the features listed in meta/info.json');
      return f;
    };
    const cams: [Camera, string | null][] = [['agentview', mapping.agentview], ['eye_in_hand', mapping.eyeInHand]];
    const dtypes = new Set<string>();
    let hw: number[] | null = null;
    for (const [cam, key] of cams) {
      if (!key) continue;
      const f = feat(key, `the ${cam} camera`);
      if (f.dtype !== 'video' && f.dtype !== 'image')
        throw new DataError(`feature '${key}' has dtype ${f.dtype}, expected video or image`, { file: this.infoPath, key: `features.${key}.dtype` });
      const shape = f.shape.length === 3 && f.shape[2] === 3 ? f.shape : null;
      if (!shape) throw new DataError(`feature '${key}' has shape [${f.shape}], expected [height, width, 3]`, { file: this.infoPath, key: `features.${key}.shape` });
      if (hw && (hw[0] !== shape[0] || hw[1] !== shape[1]))
        throw new DataError(`cameras have different sizes (${hw[0]}x${hw[1]} and ${shape[0]}x${shape[1]})`, { file: this.infoPath, key: `features.${key}.shape` }, 'rdt-libero trains on one resolution');
      hw = shape;
      dtypes.add(f.dtype);
      this.cameraKeys.set(cam, key);
    }
    this.height = hw![0];
    this.width = hw![1];
    this.cameraStorage = dtypes.has('video') ? 'video' : 'image';
    const st = feat(mapping.state, 'the robot state');
    const need = Math.max(mapping.eefPos[1], mapping.gripperQpos[1], mapping.eefAxisAngle?.[1] ?? 0, mapping.eefQuat?.[1] ?? 0);
    if ((st.shape[0] ?? 0) < need)
      throw new DataError(`state '${mapping.state}' has shape [${st.shape}], the mapping reads ${need} values`, { file: this.infoPath, key: `features.${mapping.state}.shape` });
    const act = feat(mapping.action, 'the actions');
    if (act.shape.length !== 1 || act.shape[0] !== 7)
      throw new DataError(`actions '${mapping.action}' have shape [${act.shape}], expected [7] (LIBERO's OSC_POSE delta + gripper)`, { file: this.infoPath, key: `features.${mapping.action}.shape` });
    if (Math.abs(this.fps - mapping.ctrlFreq) > 1e-9)
      this.notes.push(`${this.name}: meta/info.json says fps ${this.fps}, but each step is one ${mapping.ctrlFreq} Hz LIBERO command (${mapping.name}); ` +
        `ctrl_freq ${mapping.ctrlFreq} is used and timestamps serve only to find video frames`);
  }

  /** Opens and validates the folder. Throws only when the folder itself is unusable; episode problems go to `problems`. */
  static async open(dir: string, mappingConfig?: Partial<MappingConfig>): Promise<LeRobotFolder> {
    const root = resolve(dir);
    const infoPath = join(root, 'meta', 'info.json');
    const info = readJson<Info>(infoPath);
    if (!LEROBOT_VERSIONS.includes(info.codebase_version as (typeof LEROBOT_VERSIONS)[number]))
      throw new DataError(`codebase_version '${info.codebase_version}' is not one rdt-libero reads`, { file: infoPath, key: 'codebase_version' },
        `readable: ${LEROBOT_VERSIONS.join(', ')}; convert it with LeRobot's converters (e.g. lerobot.scripts.convert_dataset_v21_to_v30)`);
    if (!(info.fps > 0)) throw new DataError(`fps is ${JSON.stringify(info.fps)}`, { file: infoPath, key: 'fps' });
    if (typeof info.data_path !== 'string' || typeof info.features !== 'object')
      throw new DataError('lacks data_path or features', { file: infoPath }, 'not a LeRobot dataset, or a damaged one');
    const mapping = isEmptyMapping(mappingConfig) ? knownMapping(info.features, infoPath) : userMapping(mappingConfig!);
    const f = new LeRobotFolder(root, info, mapping);
    await f.load();
    return f;
  }

  private pq(path: string): ParquetFile {
    let p = this.parquet.get(path);
    if (!p) {
      p = ParquetFile.open(path);
      this.parquet.set(path, p);
    }
    return p;
  }

  private async load(): Promise<void> {
    const v3 = this.version === 'v3.0';
    const tasks = v3 ? await this.tasksV3() : this.tasksV2();
    const metas = v3 ? await this.episodesV3() : this.episodesV2();
    // Episode indices must run 0..N-1 (LeRobot addresses files and rows by them).
    const byIndex = new Map(metas.map((m) => [m.index, m]));
    const epFile = v3 ? join(this.root, 'meta', 'episodes') : join(this.root, 'meta', 'episodes.jsonl');
    const maxIndex = metas.reduce((a, m) => Math.max(a, m.index), -1);
    const missing: number[] = [];
    for (let e = 0; e <= maxIndex; e++) if (!byIndex.has(e)) missing.push(e);
    if (missing.length)
      this.problems.push(new DataError(`episode index gap: ${missing.length} of 0..${maxIndex} missing (first ${missing[0]})`, { file: epFile, key: 'episode_index' },
        'the episode list is incomplete; download the dataset again'));
    // Low-dim columns of every episode, file by file.
    const cols = [this.mapping.state, this.mapping.action, 'timestamp', 'frame_index', 'episode_index', 'index', 'task_index'];
    if (this.mapping.instruction !== 'task') cols.push(this.mapping.instruction);
    const byFile = new Map<string, EpisodeMeta[]>();
    for (const m of metas) {
      let g = byFile.get(m.dataFile);
      if (!g) byFile.set(m.dataFile, (g = []));
      g.push(m);
    }
    const groups = new Map<string, Episode[]>();
    for (const [file, list] of byFile) {
      let rows: Record<string, unknown>[];
      try {
        const pf = this.pq(file);
        pf.require(cols, `needed by the ${this.mapping.name} mapping`);
        rows = await pf.rows(cols);
      } catch (e) {
        this.problems.push(e instanceof DataError ? e : new DataError(String(e), { file }));
        continue;
      }
      // Rows of each episode in this file, located by the episode_index column (contiguous, in order).
      const starts = new Map<number, [number, number]>();
      for (let r = 0; r < rows.length; r++) {
        const e = num(rows[r].episode_index);
        const s = starts.get(e);
        if (!s) starts.set(e, [r, r + 1]);
        else if (s[1] === r) s[1] = r + 1;
        else {
          this.problems.push(new DataError(`rows of episode ${e} are not contiguous (row ${r})`, { file, demo: epName(e), key: 'episode_index' }, 'the data file is damaged'));
          starts.delete(e);
        }
      }
      for (const m of list) {
        try {
          const ep = this.episode(m, rows, starts.get(m.index), file, tasks);
          this.episodes.set(m.index, ep);
          let g = groups.get(ep.task);
          if (!g) groups.set(ep.task, (g = []));
          g.push(ep);
        } catch (e) {
          this.problems.push(e instanceof DataError ? e : new DataError(String(e), { file, demo: epName(m.index) }));
        }
      }
    }
    // One EpisodeFile per task, in task order (task_index, then first appearance), episodes by index.
    const order = [...groups.keys()].sort((a, b) => (tasks.indexOf(a) - tasks.indexOf(b)) || 0);
    for (const t of order) this.tasks.push(new TaskEpisodes(this, t, groups.get(t)!.sort((a, b) => a.index - b.index)));
  }

  private tasksV2(): string[] {
    const path = join(this.root, 'meta', 'tasks.jsonl');
    const out: string[] = [];
    for (const r of readJsonl(path)) {
      if (typeof r.task !== 'string' || typeof r.task_index !== 'number') throw new DataError('a line lacks task or task_index', { file: path });
      out[r.task_index] = r.task;
    }
    return out;
  }

  private async tasksV3(): Promise<string[]> {
    const path = join(this.root, 'meta', 'tasks.parquet');
    const pf = this.pq(path);
    // pandas writes the task strings (the DataFrame's index, named 'task') as a column.
    const col = pf.columns.has('task') ? 'task' : '__index_level_0__';
    pf.require(['task_index', col], 'the task table');
    const out: string[] = [];
    for (const r of await pf.rows(['task_index', col])) out[num(r.task_index)] = String(r[col]);
    return out;
  }

  private episodesV2(): EpisodeMeta[] {
    const path = join(this.root, 'meta', 'episodes.jsonl');
    const chunk = this.info.chunks_size ?? 1000;
    return readJsonl(path).map((r, i) => {
      if (typeof r.episode_index !== 'number' || typeof r.length !== 'number')
        throw new DataError(`line ${i + 1} lacks episode_index or length`, { file: path });
      const e = r.episode_index;
      const videos = new Map<string, { path: string; from: number }>();
      for (const key of this.cameraKeys.values())
        if (this.info.features[key].dtype === 'video') {
          if (!this.info.video_path) throw new DataError(`feature '${key}' is a video but video_path is null`, { file: this.infoPath, key: 'video_path' });
          videos.set(key, { path: join(this.root, formatPath(this.info.video_path, { episode_chunk: Math.floor(e / chunk), video_key: key, episode_index: e })), from: 0 });
        }
      return { index: e, length: r.length, tasks: (r.tasks as string[]) ?? [], dataFile: join(this.root, formatPath(this.info.data_path, { episode_chunk: Math.floor(e / chunk), episode_index: e })), videos };
    });
  }

  private async episodesV3(): Promise<EpisodeMeta[]> {
    const dir = join(this.root, 'meta', 'episodes');
    if (!existsSync(dir)) throw new DataError('folder not found', { file: dir }, 'the dataset folder is incomplete; download it again');
    const files = readdirSync(dir).filter((c) => statSync(join(dir, c)).isDirectory()).sort()
      .flatMap((c) => readdirSync(join(dir, c)).filter((f) => f.endsWith('.parquet')).sort().map((f) => join(dir, c, f)));
    if (!files.length) throw new DataError('no episode files (meta/episodes/chunk-XXX/file-YYY.parquet)', { file: dir }, 'the dataset folder is incomplete; download it again');
    const vkeys = [...this.cameraKeys.values()].filter((k) => this.info.features[k].dtype === 'video');
    const out: EpisodeMeta[] = [];
    for (const path of files) {
      const pf = this.pq(path);
      const cols = ['episode_index', 'length', 'tasks', 'data/chunk_index', 'data/file_index',
        ...vkeys.flatMap((k) => [`videos/${k}/chunk_index`, `videos/${k}/file_index`, `videos/${k}/from_timestamp`])];
      pf.require(cols, 'the episode table');
      for (const r of await pf.rows(cols)) {
        const e = num(r.episode_index);
        const videos = new Map<string, { path: string; from: number }>();
        for (const k of vkeys) {
          if (!this.info.video_path) throw new DataError(`feature '${k}' is a video but video_path is null`, { file: this.infoPath, key: 'video_path' });
          videos.set(k, {
            path: join(this.root, formatPath(this.info.video_path, { video_key: k, chunk_index: num(r[`videos/${k}/chunk_index`]), file_index: num(r[`videos/${k}/file_index`]) })),
            from: num(r[`videos/${k}/from_timestamp`]),
          });
        }
        out.push({
          index: e, length: num(r.length), tasks: (r.tasks as string[]) ?? [],
          dataFile: join(this.root, formatPath(this.info.data_path, { chunk_index: num(r['data/chunk_index']), file_index: num(r['data/file_index']) })), videos,
        });
      }
    }
    return out;
  }

  /** Validates one episode's rows and builds its low-dim arrays. */
  private episode(m: EpisodeMeta, rows: Record<string, unknown>[], span: [number, number] | undefined, file: string, tasks: string[]): Episode {
    const demo = epName(m.index);
    if (!span) throw new DataError(`episode ${m.index} has no rows`, { file, demo, key: 'episode_index' }, 'the data file and the episode table disagree; download the dataset again');
    const T = span[1] - span[0];
    if (T !== m.length) throw new DataError(`episode has ${T} rows, the episode table says length ${m.length}`, { file, demo, key: 'length' }, 'download the dataset again');
    if (T === 0) throw new DataError('episode has zero steps', { file, demo });
    const mp = this.mapping;
    const ts = new Float64Array(T);
    const ld: DemoLowDim = {
      actions: new Float64Array(T * 7), eePos: new Float64Array(T * 3), eeOri: new Float64Array(T * 3), gripper: new Float64Array(T * 2),
      joints: null, // the LIBERO copies' 8-D state holds no joint angles
    };
    let task = '';
    const tol = TOLERANCE_S;
    const stateRows: Float32Array[] = [];
    for (let k = 0; k < T; k++) {
      const r = rows[span[0] + k];
      const fi = num(r.frame_index);
      if (fi !== k) throw new DataError(`frame_index is ${fi} at row ${span[0] + k}, expected ${k}`, { file, demo, step: k, key: 'frame_index' }, 'the data file is damaged');
      ts[k] = Number(r.timestamp);
      // LeRobot's check_timestamps_sync: consecutive timestamps 1/fps apart within tolerance_s.
      if (k > 0 && Math.abs(ts[k] - ts[k - 1] - 1 / this.fps) > tol)
        throw new DataError(`timestamps ${ts[k - 1]} -> ${ts[k]} are not 1/fps = ${1 / this.fps} s apart (tolerance_s ${tol})`, { file, demo, step: k, key: 'timestamp' },
          'the timestamps do not match fps in meta/info.json; LeRobot refuses this episode too');
      const s = r[mp.state] as ArrayLike<number>;
      const a = r[mp.action] as ArrayLike<number>;
      if (s) stateRows.push(Float32Array.from(s));
      if (!s || !a || a.length !== 7) throw new DataError(`row ${span[0] + k} has no ${!s ? mp.state : mp.action} values`, { file, demo, step: k, key: !s ? mp.state : mp.action });
      for (let i = 0; i < 7; i++) ld.actions[k * 7 + i] = a[i];
      for (let i = 0; i < 3; i++) ld.eePos[k * 3 + i] = s[mp.eefPos[0] + i];
      if (mp.eefAxisAngle) for (let i = 0; i < 3; i++) ld.eeOri[k * 3 + i] = s[mp.eefAxisAngle[0] + i];
      else {
        const q = mp.eefQuat![0];
        ld.eeOri.set(quatToAxisAngle([s[q], s[q + 1], s[q + 2], s[q + 3]]), k * 3);
      }
      for (let i = 0; i < 2; i++) ld.gripper[k * 2 + i] = s[mp.gripperQpos[0] + i];
      const rowTask = mp.instruction === 'task' ? tasks[num(r.task_index)] : String(r[mp.instruction]);
      if (rowTask === undefined) throw new DataError(`task_index ${num(r.task_index)} is not in the task table`, { file, demo, step: k, key: 'task_index' });
      if (k === 0) task = rowTask;
      else if (rowTask !== task)
        throw new DataError(`the episode changes task at step ${k} ('${task}' -> '${rowTask}')`, { file, demo, step: k, key: mp.instruction === 'task' ? 'task_index' : mp.instruction },
          'rdt-libero trains one instruction per episode');
    }
    for (const [k, arr] of Object.entries(ld) as [string, Float64Array | null][])
      if (arr) for (let i = 0; i < arr.length; i++)
        if (!Number.isFinite(arr[i]))
          throw new DataError(`non-finite value ${arr[i]}`, { file, demo, step: Math.floor(i / (arr.length / T)), key: k === 'actions' ? mp.action : mp.state }, 'drop this episode');
    for (const [key, v] of m.videos)
      if (!this.exists(v.path)) throw new DataError(`video file of camera ${key} not found`, { file: v.path, demo }, 'the dataset folder is incomplete; download the videos too');
    this.rawState.set(m.index, stateRows);
    return { index: m.index, length: T, task, dataFile: file, row: span[0], videos: m.videos, timestamps: ts, lowdim: ld };
  }

  private seen = new Map<string, boolean>();
  private exists(p: string): boolean {
    let v = this.seen.get(p);
    if (v === undefined) this.seen.set(p, (v = existsSync(p)));
    return v;
  }

  lowdim(index: number): DemoLowDim {
    return this.ep(index).lowdim;
  }

  private ep(index: number): Episode {
    const e = this.episodes.get(index);
    if (!e) throw new DataError('no such valid episode', { file: this.root, demo: epName(index) });
    return e;
  }

  /** Reads every requested frame: from the videos (in file and time order) or from the images stored in the parquet files. */
  async readFrames(reqs: FrameRequest[]): Promise<void> {
    const video: VideoFrameRequest[] = [];
    const frame = this.height * this.width * 3;
    for (const r of reqs) {
      const ep = this.ep(episodeIndex(r.demo));
      const key = this.cameraKeys.get(r.camera);
      if (!key) {
        r.dst.fill(0, r.off, r.off + (r.t1 - r.t0) * frame);
        continue;
      }
      const v = ep.videos.get(key);
      if (v) {
        const times = Array.from(ep.timestamps.subarray(r.t0, r.t1), (t) => v.from + t);
        video.push({ path: v.path, times, height: this.height, width: this.width, dst: r.dst, off: r.off, episode: r.demo, frame: r.t0 });
      } else await this.imageFrames(ep, key, r.t0, r.t1, r.dst, r.off, r.demo);
    }
    if (video.length) await readVideoFrames(video);
  }

  private async imageFrames(ep: Episode, key: string, t0: number, t1: number, dst: Uint8Array, off: number, demo: string): Promise<void> {
    const pf = this.pq(ep.dataFile);
    const starts = pf.rowGroupStarts;
    const frame = this.height * this.width * 3;
    for (let t = t0; t < t1; t++) {
      const row = ep.row + t;
      let g = 0;
      while (starts[g + 1] <= row) g++;
      const ck = `${ep.dataFile}|${key}|${g}`;
      let cells = this.cells.get(ck);
      if (!cells) {
        const rows = await pf.rows([key], starts[g], starts[g + 1], false);
        cells = rows.map((r, i) => {
          const c = r[key] as { bytes?: Uint8Array } | Uint8Array | null;
          const b = c instanceof Uint8Array ? c : c?.bytes;
          if (!(b instanceof Uint8Array)) throw new DataError('image cell holds no bytes', { file: ep.dataFile, key, step: starts[g] + i }, 'the data file is damaged');
          return b;
        });
        this.cells.put(ck, cells);
      }
      decodeImage(cells[row - starts[g]], this.height, this.width, dst, off + (t - t0) * frame, { file: ep.dataFile, key, demo, step: t });
    }
  }

  /**
   * The dataset's own statistics per feature and where they come from: meta/stats.json (v2.0, v3.0), or for v2.1
   * meta/episodes_stats.jsonl aggregated as LeRobot's aggregate_stats does (count-weighted mean, pooled variance).
   */
  ownStats(): { file: string; stats: Record<string, FeatureStats> } | null {
    const p = join(this.root, 'meta', 'stats.json');
    if (existsSync(p)) return { file: p, stats: readJson(p) };
    const e = join(this.root, 'meta', 'episodes_stats.jsonl');
    if (!existsSync(e)) return null;
    const acc: Record<string, { n: number; sum: number[]; sq: number[]; min: number[]; max: number[] }> = {};
    for (const r of readJsonl(e)) {
      for (const [k, st] of Object.entries(r.stats as Record<string, FeatureStats & { count: number[] }>)) {
        const n = Number(st.count?.[0] ?? 0);
        const mean = st.mean.flat(3) as number[];
        const std = st.std.flat(3) as number[];
        const a = (acc[k] ??= { n: 0, sum: mean.map(() => 0), sq: mean.map(() => 0), min: mean.map(() => Infinity), max: mean.map(() => -Infinity) });
        a.n += n;
        mean.forEach((m, i) => {
          a.sum[i] += m * n;
          a.sq[i] += (std[i] * std[i] + m * m) * n;
          a.min[i] = Math.min(a.min[i], (st.min.flat(3) as number[])[i]);
          a.max[i] = Math.max(a.max[i], (st.max.flat(3) as number[])[i]);
        });
      }
    }
    const stats: Record<string, FeatureStats> = {};
    for (const [k, a] of Object.entries(acc)) {
      const mean = a.sum.map((x) => x / a.n);
      stats[k] = { mean, std: a.sq.map((x, i) => Math.sqrt(Math.max(x / a.n - mean[i] * mean[i], 0))), min: a.min, max: a.max };
    }
    return { file: e, stats };
  }

  /** Every valid episode's raw state and action rows (for comparing with ownStats). */
  rawRows(): { state: number[][]; action: number[][] } {
    const state: number[][] = [];
    const action: number[][] = [];
    for (const t of this.tasks)
      for (const d of t.demos) {
        const ld = this.lowdim(episodeIndex(d.name));
        for (let k = 0; k < d.length; k++) action.push(Array.from(ld.actions.subarray(k * 7, k * 7 + 7)));
        state.push(...this.stateRows(episodeIndex(d.name)));
      }
    return { state, action };
  }

  private stateRows(index: number): number[][] {
    return (this.rawState.get(index) ?? []).map((r) => Array.from(r));
  }

  /** For each video file: the times (s) that the valid episodes read from it, with who reads them. */
  videoReads(): Map<string, { ts: number; demo: string; step: number }[]> {
    const out = new Map<string, { ts: number; demo: string; step: number }[]>();
    for (const ep of this.episodes.values())
      for (const v of ep.videos.values()) {
        let g = out.get(v.path);
        if (!g) out.set(v.path, (g = []));
        for (let k = 0; k < ep.length; k++) g.push({ ts: v.from + ep.timestamps[k], demo: epName(ep.index), step: k });
      }
    return out;
  }

  fingerprint(): unknown {
    const files = [join(this.root, 'meta', 'info.json'), ...new Set([...this.episodes.values()].map((e) => e.dataFile))];
    return files.map((f) => {
      const st = statSync(f);
      return [f, st.size, st.mtimeMs];
    });
  }

  close(): void {
    for (const p of this.parquet.values()) p.close();
    this.parquet.clear();
    closeVideos();
  }
}

export interface FeatureStats {
  mean: number[];
  std: number[];
  min: number[];
  max: number[];
}

interface EpisodeMeta {
  index: number;
  length: number;
  tasks: string[];
  dataFile: string;
  videos: Map<string, { path: string; from: number }>;
}

export function epName(index: number): string {
  return `episode_${String(index).padStart(6, '0')}`;
}

function episodeIndex(demo: string): number {
  return Number(/(\d+)$/.exec(demo)?.[1] ?? -1);
}

/** The episodes of one task of a LeRobot folder, as the dataset sees a LIBERO task file. */
export class TaskEpisodes implements EpisodeFile {
  readonly format = 'lerobot' as const;
  /** OpenVLA's regeneration records each observation before its action. */
  readonly layout = 'regenerated' as const;
  readonly demos: DemoInfo[];
  readonly problems: DataError[] = [];
  constructor(readonly folder: LeRobotFolder, readonly task: string, episodes: Episode[]) {
    this.demos = episodes.map((e) => ({ name: epName(e.index), length: e.length, hasJoints: false }));
  }
  get path(): string {
    return this.folder.root;
  }
  get height(): number {
    return this.folder.height;
  }
  get width(): number {
    return this.folder.width;
  }
  get storedOrientation() {
    return this.folder.mapping.storedOrientation;
  }
  get frameSource(): FrameSource {
    return this.folder;
  }
  get taskName(): string {
    return this.task;
  }
  /** The task string of meta/tasks (LeRobot copies carry no BDDL problem_info). */
  instruction(source: 'filename' | 'problem_info' = 'filename'): string {
    if (source === 'problem_info')
      throw new DataError('LeRobot datasets carry one instruction per task (meta/tasks), no problem_info', { file: this.path, key: 'problem_info' }, "use instruction source 'filename'");
    return this.task;
  }
  lowdim(demo: string): DemoLowDim {
    return this.folder.lowdim(episodeIndex(demo));
  }
  fingerprint(): unknown {
    return this.folder.fingerprint();
  }
  prepare(): void {}
  close(): void {}
}

/** Camera keys in the order the dataset's slots use. */
export { CAMERAS as LEROBOT_CAMERAS };

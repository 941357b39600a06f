// A LIBERO dataset: suites discovered under a root (LIBERO HDF5 suite folders, or LeRobot dataset folders), their
// task files opened lazily and validated, the full-step index, and the training-sample builder on top of the one
// observation/action adapter (src/data/adapter.ts). HDF5 and LeRobot sources both give src/data/episode_file.ts's
// interface, so everything below works on either.
import { basename, join, resolve } from 'node:path';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { DataError } from './errors.js';
import {
  type AdapterConfig, type ObsFrame, adapterConfig, buildObservation, allocObservation, encodeActionRows, f32, type ObservationBuffers, writeActionChunk,
} from './adapter.js';
import { discoverSuites } from './discover.js';
import type { Camera, DataFormat, EpisodeFile, FrameRequest, FrameSource } from './episode_file.js';
import { h5ready } from './hdf5/h5.js';
import { type Layout, LiberoFile } from './hdf5/libero_file.js';
import type { ImageOrientation } from './images.js';
import { LeRobotFolder, isLeRobotFolder } from './lerobot/folder.js';
import type { MappingConfig } from './lerobot/mapping.js';
import { axisAngleToMat } from './rotation.js';
import { DEFAULT_INDEX, type IndexOptions, type IndexedEpisode, StepIndex, episodeSteps } from './step_index.js';
import { STATE_VEC_LEN } from './state_vec.js';

export interface DatasetOptions {
  root: string;
  /** 'auto' (default) detects it: a folder with meta/info.json (or sub-folders with one) is LeRobot, else HDF5 suites. */
  format?: 'auto' | DataFormat;
  /** LeRobot only: which columns hold what (data.lerobot_mapping); omitted or all '' picks a known mapping. */
  lerobotMapping?: Partial<MappingConfig>;
  /** Suite names or folder names to use (default: all found); for LeRobot, dataset folder names under the root. */
  suites?: string[];
  instructionSource?: 'filename' | 'problem_info';
  /** Force a layout instead of detecting it from the attributes. */
  layout?: Layout;
  index?: Partial<IndexOptions>;
  adapter?: Partial<AdapterConfig>;
  /** Throw on the first problem (default) or keep going with the valid demos (inspect). */
  strict?: boolean;
  /**
   * Hold out the last `holdoutPerTask` demos of every task file (by demo number) for sample evaluation:
   * part 'train' leaves them out, part 'holdout' keeps only them. Omitted: every demo.
   */
  split?: DemoSplit;
}

export interface DemoSplit {
  holdoutPerTask: number;
  part: 'train' | 'holdout';
}

/** The demo names of one file that belong to `split` (all of them without a split). */
export function demosInSplit(names: readonly string[], split: DemoSplit | undefined): Set<string> {
  if (!split || split.holdoutPerTask <= 0) return new Set(names);
  const num = (n: string) => Number(/(\d+)$/.exec(n)?.[1] ?? -1);
  const sorted = [...names].sort((a, b) => num(a) - num(b));
  const cut = Math.max(0, sorted.length - split.holdoutPerTask);
  return new Set(split.part === 'train' ? sorted.slice(0, cut) : sorted.slice(cut));
}

/** Plain-data form of DatasetOptions that can cross to a worker thread. */
export type ResolvedDatasetOptions = Required<Pick<DatasetOptions, 'root' | 'instructionSource' | 'strict'>> & {
  format: 'auto' | DataFormat;
  lerobotMapping?: Partial<MappingConfig>;
  suites?: string[];
  layout?: Layout;
  index: IndexOptions;
  adapter: Partial<AdapterConfig>;
  split?: DemoSplit;
};

export function resolveDatasetOptions(o: DatasetOptions): ResolvedDatasetOptions {
  return {
    root: o.root,
    format: o.format ?? 'auto',
    lerobotMapping: o.lerobotMapping,
    suites: o.suites,
    instructionSource: o.instructionSource ?? 'filename',
    layout: o.layout,
    strict: o.strict ?? true,
    index: { ...DEFAULT_INDEX, ...o.index },
    adapter: { ...o.adapter },
    split: o.split,
  };
}

export interface SampleId {
  file: string;
  demo: string;
  /** Observation index in the file. */
  t: number;
  /** Index of the first action of the chunk in the file. */
  actionT: number;
}

/** A batch of samples as typed arrays (row-major shapes in the comments). */
export interface Batch extends ObservationBuffers {
  size: number;
  historySize: number;
  height: number;
  width: number;
  chunkSize: number;
  actions: Float32Array; // (B, chunk, 128)
  actionMask: Float32Array; // (B, chunk): 1 for real steps, 0 for end padding
  instruction: string[];
  suite: string[];
  ids: SampleId[];
  /** Global step indices. */
  index: Float64Array;
}

export function allocBatch(cfg: AdapterConfig, B: number, shared = false): Batch {
  return {
    ...allocObservation(cfg, B, shared),
    size: B,
    historySize: cfg.historySize,
    height: cfg.imageHeight,
    width: cfg.imageWidth,
    chunkSize: cfg.chunkSize,
    actions: f32(B * cfg.chunkSize * STATE_VEC_LEN, shared),
    actionMask: f32(B * cfg.chunkSize, shared),
    instruction: new Array<string>(B).fill(''),
    suite: new Array<string>(B).fill(''),
    ids: new Array<SampleId>(B),
    index: shared ? new Float64Array(new SharedArrayBuffer(B * 8)) : new Float64Array(B),
  };
}

/** One mixing unit found under the root: a LIBERO suite folder or a LeRobot dataset folder, with its task files. */
interface Unit {
  name: string;
  folder: string;
  dir: string;
  files: string[];
  lerobot?: LeRobotFolder;
}

/** The format of a dataset root: a LeRobot folder itself, a folder of LeRobot folders, or LIBERO HDF5 suites. */
export function detectFormat(root: string): DataFormat {
  const abs = resolve(root);
  if (isLeRobotFolder(abs)) return 'lerobot';
  if (existsSync(abs) && statSync(abs).isDirectory() && readdirSync(abs).some((n) => isLeRobotFolder(join(abs, n)))) return 'lerobot';
  return 'hdf5';
}

function lerobotDirs(root: string, only?: readonly string[]): string[] {
  const abs = resolve(root);
  if (!existsSync(abs) || !statSync(abs).isDirectory()) throw new DataError('dataset root is not a directory', { file: abs }, 'pass a LeRobot dataset folder (with meta/info.json)');
  const found = isLeRobotFolder(abs) ? [abs] : readdirSync(abs).sort().map((n) => join(abs, n)).filter(isLeRobotFolder);
  if (!found.length) throw new DataError('no LeRobot dataset here (no meta/info.json in it or its sub-folders)', { file: abs }, 'pass the folder the Hugging Face CLI downloaded into');
  if (!only?.length) return found;
  const names = found.map((d) => basename(d));
  const missing = only.filter((n) => !names.includes(n));
  if (missing.length) throw new DataError(`no LeRobot dataset folder named ${missing.join(', ')}`, { file: abs }, `found: ${names.join(', ')}`);
  return found.filter((d) => only.includes(basename(d)));
}

export class LiberoDataset {
  readonly options: ResolvedDatasetOptions;
  /** The resolved format of the root. */
  readonly format: DataFormat;
  /** Mixing units: suite names (HDF5: libero_goal, ...; LeRobot: the dataset folder's name). */
  readonly suites: string[] = [];
  readonly suiteFolders: string[] = [];
  readonly files: EpisodeFile[] = [];
  readonly fileSuite: number[] = [];
  readonly instructions: string[] = [];
  readonly problems: DataError[] = [];
  /** Warnings that are not errors (e.g. a LeRobot fps that is not the control rate). */
  readonly notes: string[] = [];
  /** The LeRobot folders opened (empty for HDF5). */
  readonly lerobot: LeRobotFolder[] = [];
  readonly index: StepIndex;
  readonly cfg: AdapterConfig;
  /** What buildObservation applies to the stored frames: cfg.orientation, less what the data already had done. */
  private readonly frameOrientation: ImageOrientation;

  private constructor(o: ResolvedDatasetOptions, format: DataFormat, units: Unit[]) {
    this.options = o;
    this.format = format;
    for (const u of units) {
      const si = this.suites.length;
      this.suites.push(u.name);
      this.suiteFolders.push(u.folder);
      if (u.lerobot) {
        this.lerobot.push(u.lerobot);
        this.problems.push(...u.lerobot.problems);
        this.notes.push(...u.lerobot.notes);
        if (!u.lerobot.tasks.length) this.problems.push(new DataError('the LeRobot dataset holds no valid episode', { file: u.dir }, 'see the problems above'));
        for (const t of u.lerobot.tasks) this.addFile(t, si);
        continue;
      }
      if (!u.files.length) this.problems.push(new DataError('suite folder holds no .hdf5 files (empty suite)', { file: u.dir }, 'download the suite or leave it out'));
      for (const path of u.files) {
        let f: LiberoFile;
        try {
          f = LiberoFile.open(path, { layout: o.layout });
        } catch (e) {
          this.problems.push(e instanceof DataError ? e : new DataError(String(e), { file: path }));
          continue;
        }
        this.addFile(f, si);
      }
    }
    const sized = this.files.find((f) => f.height > 0);
    const stored = [...new Set(this.files.map((f) => f.storedOrientation))];
    if (stored.length > 1)
      this.problems.push(new DataError(`the sources store their frames differently (${stored.join(' and ')} relative to the simulator's render)`, { file: o.root }, 'train on one kind of source at a time'));
    // A copy whose frames were already turned (openpi's and LeRobot's LIBERO: 180 degrees) trains in that
    // orientation: the model sees the frames as stored, and the policy records the turn for the simulator's frames.
    const orientation = o.adapter.orientation ?? (stored[0] && stored[0] !== 'none' ? stored[0] : undefined);
    this.cfg = adapterConfig({ imageHeight: sized?.height ?? 128, imageWidth: sized?.width ?? 128, ...o.adapter, ...(orientation ? { orientation } : {}) });
    const s0 = stored[0] ?? 'none';
    if (s0 === 'none') this.frameOrientation = this.cfg.orientation;
    else if (s0 === this.cfg.orientation) this.frameOrientation = 'none';
    else {
      this.frameOrientation = 'none';
      this.problems.push(new DataError(`the stored frames are already turned '${s0}', the configuration asks for orientation '${this.cfg.orientation}'`, { file: o.root },
        `train with orientation ${s0} (the default for this dataset)`));
    }
    const rates = new Set(this.lerobot.map((l) => l.mapping.ctrlFreq));
    for (const r of rates)
      if (r !== this.cfg.ctrlFreq)
        this.problems.push(new DataError(`ctrl_freq is ${this.cfg.ctrlFreq} Hz but the dataset's actions are ${r} Hz commands`, { file: o.root, key: 'ctrl_freq' },
          `set ctrl_freq: ${r} (meta/info.json's fps is not the control rate of these copies)`));
    for (const f of this.files)
      if (f.height && (f.height !== this.cfg.imageHeight || f.width !== this.cfg.imageWidth))
        this.problems.push(new DataError(`images are ${f.height}x${f.width}, the dataset uses ${this.cfg.imageHeight}x${this.cfg.imageWidth}`, { file: f.path, key: 'obs/agentview_rgb' }, 'train on one resolution at a time (select suites)'));
    const eps: IndexedEpisode[] = [];
    this.files.forEach((f, fi) => {
      if (f.height && (f.height !== this.cfg.imageHeight || f.width !== this.cfg.imageWidth)) return;
      const inSplit = demosInSplit(f.demos.map((d) => d.name), o.split);
      for (const d of f.demos) {
        if (!inSplit.has(d.name)) continue;
        if (this.cfg.useJoints && !d.hasJoints) {
          this.problems.push(new DataError('useJoints is set but the demo has no joint states', { file: f.path, demo: d.name, key: f.format === 'hdf5' ? 'obs/joint_states' : 'observation.state' },
            f.format === 'hdf5' ? 'set useJoints: false' : 'set useJoints: false: the LIBERO LeRobot copies hold no joint angles'));
          continue;
        }
        try {
          const steps = episodeSteps(f.lowdim(d.name), d.length, f.layout, o.index);
          if (steps.obs.length) eps.push({ ...steps, file: fi, demo: d.name, suite: this.fileSuite[fi] });
        } catch (e) {
          this.problems.push(e instanceof DataError ? e : new DataError(String(e), { file: f.path, demo: d.name }));
        }
      }
    });
    this.index = new StepIndex(eps);
    if (this.index.total === 0) this.problems.push(new DataError('no valid steps in any demo', { file: o.root }, 'see the problems above'));
    if (o.strict && this.problems.length) {
      const p = this.problems;
      this.close();
      if (p.length === 1) throw p[0];
      throw new DataError(`${p.length} problems in the dataset:\n  ${p.map((x) => x.message).join('\n  ')}`, { file: o.root }, "run 'rdt-libero data inspect' for the full report");
    }
  }

  private addFile(f: EpisodeFile, si: number): void {
    this.problems.push(...f.problems);
    let instr = '';
    try {
      instr = f.instruction(this.options.instructionSource);
    } catch (e) {
      this.problems.push(e as DataError);
    }
    this.files.push(f);
    this.fileSuite.push(si);
    this.instructions.push(instr);
  }

  static async open(o: DatasetOptions): Promise<LiberoDataset> {
    const r = resolveDatasetOptions(o);
    const format = r.format === 'auto' ? detectFormat(r.root) : r.format;
    if (format === 'hdf5') {
      await h5ready();
      let suites;
      try {
        suites = discoverSuites(r.root, r.suites);
      } catch (e) {
        // hdf5 asked for on a LeRobot folder: say so, rather than list the folder's meta/, data/, videos/.
        if (r.format === 'hdf5' && detectFormat(r.root) === 'lerobot')
          throw new DataError('format hdf5 was given, but this is a LeRobot dataset (meta/info.json), not LIBERO HDF5 suites', { file: resolve(r.root) },
            'use format lerobot or auto (data.format in a run, --format for data inspect/stats)');
        throw e;
      }
      const units = suites.map((s) => ({ name: s.suite, folder: s.folder, dir: s.dir, files: s.files }));
      return new LiberoDataset(r, format, units);
    }
    const units: Unit[] = [];
    try {
      for (const dir of lerobotDirs(r.root, r.suites)) {
        const lr = await LeRobotFolder.open(dir, r.lerobotMapping);
        units.push({ name: lr.name, folder: lr.name, dir, files: [], lerobot: lr });
      }
    } catch (e) {
      for (const u of units) u.lerobot!.close();
      throw e;
    }
    return new LiberoDataset(r, format, units);
  }

  get size(): number {
    return this.index.total;
  }

  /** The ids (file, demo, obs t, action t) of a global step index. */
  id(i: number): SampleId {
    const { episode, k } = this.index.locate(i);
    const ep = this.index.episodes[episode];
    return { file: this.files[ep.file].path, demo: ep.demo, t: ep.obs[k], actionT: ep.act[k] };
  }

  /** The string fields of a sample (cheap: no file access). */
  meta(i: number): { id: SampleId; instruction: string; suite: string } {
    const { episode, k } = this.index.locate(i);
    const ep = this.index.episodes[episode];
    return {
      id: { file: this.files[ep.file].path, demo: ep.demo, t: ep.obs[k], actionT: ep.act[k] },
      instruction: this.instructions[ep.file],
      suite: this.suites[ep.suite],
    };
  }

  /**
   * Where the frames of the samples go: per batch row, 2 cameras x history frames in `scratch`, requested as runs of
   * consecutive stored frames (a run per camera when the history is contiguous, else one per frame).
   */
  private planFrames(indices: readonly number[]): { requests: FrameRequest[]; frame: number } {
    const cfg = this.cfg;
    const H = cfg.historySize;
    const frame = cfg.imageHeight * cfg.imageWidth * 3;
    const per = 2 * H * frame;
    if (this.scratch.length < indices.length * per) this.scratch = new Uint8Array(indices.length * per);
    const requests: FrameRequest[] = [];
    indices.forEach((i, b) => {
      const { episode, k } = this.index.locate(i);
      const ep = this.index.episodes[episode];
      const f = this.files[ep.file];
      const first = Math.max(0, k - H + 1);
      const contiguous = ep.obs[k] - ep.obs[first] === k - first;
      (['agentview', 'eye_in_hand'] as Camera[]).forEach((camera, c) => {
        const base = b * per + c * H * frame;
        if (contiguous) requests.push({ file: f, demo: ep.demo, camera, t0: ep.obs[first], t1: ep.obs[k] + 1, dst: this.scratch, off: base });
        else for (let kk = first; kk <= k; kk++) requests.push({ file: f, demo: ep.demo, camera, t0: ep.obs[kk], t1: ep.obs[kk] + 1, dst: this.scratch, off: base + (kk - first) * frame });
      });
    });
    return { requests, frame };
  }

  /** Reads the planned frames, one call per frame source (a LeRobot folder serves its video frames in file and time order). */
  private readFrames(requests: FrameRequest[]): void | Promise<void> {
    const bySource = new Map<FrameSource, FrameRequest[]>();
    for (const r of requests) {
      let g = bySource.get(r.file.frameSource);
      if (!g) bySource.set(r.file.frameSource, (g = []));
      g.push(r);
    }
    const pending: Promise<void>[] = [];
    for (const [src, reqs] of bySource) {
      const p = src.readFrames(reqs);
      if (p) pending.push(p);
    }
    if (pending.length) return Promise.all(pending).then(() => undefined);
  }

  /** Builds the samples of `indices` into rows 0.. of the batch (frames from every source, then the one builder). */
  writeBatch(indices: readonly number[], out: Batch): Promise<void> {
    // One batch at a time per dataset: the frames of a batch share this.scratch.
    const run = this.busy.then(async () => {
      const { requests } = this.planFrames(indices);
      await this.readFrames(requests);
      indices.forEach((i, b) => this.buildSample(i, out, b, b));
    });
    this.busy = run.catch(() => undefined);
    return run;
  }

  private busy: Promise<void> = Promise.resolve();

  /** Builds global step i into row b of the batch; synchronous, so only for sources that read synchronously (HDF5). */
  writeSample(i: number, out: Batch, b: number): void {
    const { requests } = this.planFrames([i]);
    if (this.readFrames(requests))
      throw new DataError('this dataset reads its frames asynchronously (LeRobot videos or parquet images)', { file: this.options.root }, 'use writeBatch or sampleAsync');
    this.buildSample(i, out, b, 0);
  }

  /** The one sample builder: observation history from the frames at scratch row `s`, state, action chunk. */
  private buildSample(i: number, out: Batch, b: number, s: number): void {
    const cfg = this.cfg;
    const { episode, k } = this.index.locate(i);
    const ep = this.index.episodes[episode];
    const f = this.files[ep.file];
    const ld = f.lowdim(ep.demo);
    const H = cfg.historySize;
    const frame = cfg.imageHeight * cfg.imageWidth * 3;
    const base = s * 2 * H * frame;
    const first = Math.max(0, k - H + 1);
    // Observation history: steps k-H+1 .. k (before the start: invalid).
    const hist: (ObsFrame | null)[] = [];
    for (let h = 0; h < H; h++) {
      const kk = k - H + 1 + h;
      if (kk < 0) {
        hist.push(null);
        continue;
      }
      const t = ep.obs[kk];
      const rel = (kk - first) * frame;
      hist.push({
        robot: {
          eefPos: ld.eePos.subarray(t * 3, t * 3 + 3),
          eefAxisAngle: ld.eeOri.subarray(t * 3, t * 3 + 3),
          gripperQpos: ld.gripper.subarray(t * 2, t * 2 + 2),
          jointPos: ld.joints ? ld.joints.subarray(t * 7, t * 7 + 7) : null,
        },
        images: {
          agentview: this.scratch.subarray(base + rel, base + rel + frame),
          eyeInHand: this.scratch.subarray(base + H * frame + rel, base + H * frame + rel + frame),
        },
      });
    }
    buildObservation(this.frameOrientation === cfg.orientation ? cfg : { ...cfg, orientation: this.frameOrientation }, hist, out, b);
    // Action chunk: the actions of steps k .. k+chunk-1, each encoded against the pose it was executed from
    // (rows cached per episode), then end padding as the encoding says: the adapter's one target path.
    const n = Math.min(cfg.chunkSize, ep.obs.length - k);
    writeActionChunk(cfg, this.encodedActions(episode), k, n, out.actions, b * cfg.chunkSize * STATE_VEC_LEN, out.actionMask, b * cfg.chunkSize);
    out.instruction[b] = this.instructions[ep.file];
    out.suite[b] = this.suites[ep.suite];
    out.ids[b] = { file: f.path, demo: ep.demo, t: ep.obs[k], actionT: ep.act[k] };
    out.index[b] = i;
  }

  private actionCache = new Map<number, Float64Array>();
  private scratch = new Uint8Array(0);

  /** The encoded rows (adapter.encodeActionRows: steps x encoding slots) of every step of an episode, computed once. */
  encodedActions(episode: number): Float64Array {
    const hit = this.actionCache.get(episode);
    if (hit) return hit;
    const ep = this.index.episodes[episode];
    const ld = this.files[ep.file].lowdim(ep.demo);
    const rows = encodeActionRows(this.cfg, ep.obs.length, (k) => ld.actions.subarray(ep.act[k] * 7, ep.act[k] * 7 + 7), (k) => {
      const t = ep.obs[k];
      return { pos: ld.eePos.subarray(t * 3, t * 3 + 3), R: axisAngleToMat(ld.eeOri.subarray(t * 3, t * 3 + 3)) };
    });
    this.actionCache.set(episode, rows);
    return rows;
  }

  /**
   * Fills the per-episode caches up front (encoded actions, direct-read positions of the image datasets), so a
   * loader's throughput is steady from its first batch. ~1-2 ms per demo.
   */
  prepare(): void {
    this.index.episodes.forEach((ep, e) => {
      this.encodedActions(e);
      this.files[ep.file].prepare(ep.demo);
    });
  }

  /** One sample as a batch of one (HDF5 only: synchronous). */
  sample(i: number): Batch {
    const b = allocBatch(this.cfg, 1);
    this.writeSample(i, b, 0);
    return b;
  }

  /** One sample as a batch of one, from any source. */
  async sampleAsync(i: number): Promise<Batch> {
    const b = allocBatch(this.cfg, 1);
    await this.writeBatch([i], b);
    return b;
  }

  close(): void {
    this.actionCache.clear();
    for (const f of this.files) f.close();
    for (const l of this.lerobot) l.close();
  }
}

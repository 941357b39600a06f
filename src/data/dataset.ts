// A LIBERO dataset: suites discovered under a root, files opened lazily and validated, the full-step index, and
// the training-sample builder on top of the one observation/action adapter (src/data/adapter.ts).
import { DataError } from './errors.js';
import {
  type AdapterConfig, type ObsFrame, adapterConfig, buildObservation, allocObservation, encodeActionRows, f32, type ObservationBuffers, writeActionChunk,
} from './adapter.js';
import { type SuiteName, discoverSuites } from './discover.js';
import { h5ready } from './hdf5/h5.js';
import { type Layout, LiberoFile } from './hdf5/libero_file.js';
import { axisAngleToMat } from './rotation.js';
import { DEFAULT_INDEX, type IndexOptions, type IndexedEpisode, StepIndex, episodeSteps } from './step_index.js';
import { STATE_VEC_LEN } from './state_vec.js';

export interface DatasetOptions {
  root: string;
  /** Suite names or folder names to use (default: all found). */
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
  suites?: string[];
  layout?: Layout;
  index: IndexOptions;
  adapter: Partial<AdapterConfig>;
  split?: DemoSplit;
};

export function resolveDatasetOptions(o: DatasetOptions): ResolvedDatasetOptions {
  return {
    root: o.root,
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

export class LiberoDataset {
  readonly options: ResolvedDatasetOptions;
  readonly suites: SuiteName[] = [];
  readonly suiteFolders: string[] = [];
  readonly files: LiberoFile[] = [];
  readonly fileSuite: number[] = [];
  readonly instructions: string[] = [];
  readonly problems: DataError[] = [];
  readonly index: StepIndex;
  readonly cfg: AdapterConfig;

  private constructor(o: ResolvedDatasetOptions) {
    this.options = o;
    const found = discoverSuites(o.root, o.suites);
    for (const s of found) {
      const si = this.suites.length;
      this.suites.push(s.suite);
      this.suiteFolders.push(s.folder);
      if (!s.files.length) this.problems.push(new DataError('suite folder holds no .hdf5 files (empty suite)', { file: s.dir }, 'download the suite or leave it out'));
      for (const path of s.files) {
        let f: LiberoFile;
        try {
          f = LiberoFile.open(path, { layout: o.layout });
        } catch (e) {
          this.problems.push(e instanceof DataError ? e : new DataError(String(e), { file: path }));
          continue;
        }
        this.problems.push(...f.problems);
        let instr = '';
        try {
          instr = f.instruction(o.instructionSource);
        } catch (e) {
          this.problems.push(e as DataError);
        }
        this.files.push(f);
        this.fileSuite.push(si);
        this.instructions.push(instr);
      }
    }
    const sized = this.files.find((f) => f.height > 0);
    this.cfg = adapterConfig({ imageHeight: sized?.height ?? 128, imageWidth: sized?.width ?? 128, ...o.adapter });
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
          this.problems.push(new DataError('useJoints is set but the demo has no joint states', { file: f.path, demo: d.name, key: 'obs/joint_states' }, 'set useJoints: false'));
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

  static async open(o: DatasetOptions): Promise<LiberoDataset> {
    await h5ready();
    return new LiberoDataset(resolveDatasetOptions(o));
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

  /** Builds global step i into row b of the batch. */
  writeSample(i: number, out: Batch, b: number): void {
    const cfg = this.cfg;
    const { episode, k } = this.index.locate(i);
    const ep = this.index.episodes[episode];
    const f = this.files[ep.file];
    const ld = f.lowdim(ep.demo);
    const frame = cfg.imageHeight * cfg.imageWidth * 3;
    // Observation history: steps k-H+1 .. k (before the start: invalid).
    const H = cfg.historySize;
    const first = Math.max(0, k - H + 1);
    const o0 = ep.obs[first];
    const o1 = ep.obs[k];
    const contiguous = o1 - o0 === k - first;
    const nf = k - first + 1;
    if (this.scratch.length < 2 * H * frame) this.scratch = new Uint8Array(2 * H * frame);
    const av = contiguous ? f.framesInto(ep.demo, 'agentview', o0, o1 + 1, this.scratch, 0).subarray(0, nf * frame) : null;
    const eh = contiguous ? f.framesInto(ep.demo, 'eye_in_hand', o0, o1 + 1, this.scratch, H * frame).subarray(H * frame, (H + nf) * frame) : null;
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
          agentview: av ? av.subarray(rel, rel + frame) : f.frames(ep.demo, 'agentview', t, t + 1),
          eyeInHand: eh ? eh.subarray(rel, rel + frame) : f.frames(ep.demo, 'eye_in_hand', t, t + 1),
        },
      });
    }
    buildObservation(cfg, hist, out, b);
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
      const f = this.files[ep.file];
      f.readsDirect(ep.demo, 'agentview');
      f.readsDirect(ep.demo, 'eye_in_hand');
    });
  }

  /** One sample as a batch of one. */
  sample(i: number): Batch {
    const b = allocBatch(this.cfg, 1);
    this.writeSample(i, b, 0);
    return b;
  }

  close(): void {
    this.actionCache.clear();
    for (const f of this.files) f.close();
  }
}

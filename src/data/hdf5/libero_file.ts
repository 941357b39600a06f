// One LIBERO demonstration file (`<task>_demo.hdf5`), read lazily: opening validates the layout of every demo and
// collects every problem; low-dim arrays are read per demo on demand (and cached), image frames per slice.
// Two layouts: 'original' (the release: 128x128, attributes incl. problem_info, observation stored after its action)
// and 'regenerated' (OpenVLA no-noops replay: 256x256, no attributes, observation before its action).
import { basename } from 'node:path';
import { DataError } from '../errors.js';
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import type { Camera, DemoInfo, DemoLowDim, EpisodeFile, FrameRequest, FrameSource, Layout } from '../episode_file.js';
import { type Dataset, type H5File, attr, checkedDataset, firstLine, isGroup, openHdf5WithInfo, readFloat64 } from './h5.js';
import { type SuperblockInfo, contiguousExtent, preadExact } from './direct.js';

export type { Camera, DemoInfo, DemoLowDim, Layout } from '../episode_file.js';

export const CAMERA_KEYS: Record<Camera, string> = { agentview: 'obs/agentview_rgb', eye_in_hand: 'obs/eye_in_hand_rgb' };

/** File stem -> instruction the way LIBERO's `grab_language_from_filename` (Task.language) builds it. */
export function instructionFromFileName(path: string): string {
  let stem = basename(path).replace(/\.hdf5$/, '').replace(/_demo$/, '');
  const m = stem.match(/SCENE\d+_/);
  if (m && m.index !== undefined) stem = stem.slice(m.index + m[0].length);
  return stem.replace(/_/g, ' ');
}

/**
 * Whether two instructions say the same words: compared case- and whitespace-insensitively, ignoring a trailing
 * period. The released BDDL text (problem_info) is capitalised ("Open the top drawer ...") where the file name
 * is not, which is no disagreement.
 */
export function sameInstruction(a: string, b: string): boolean {
  const norm = (s: string) => s.trim().replace(/\.$/, '').trim().replace(/\s+/g, ' ').toLowerCase();
  return norm(a) === norm(b);
}

function demoOrder(a: string, b: string): number {
  return Number(a.slice(5)) - Number(b.slice(5));
}

export class LiberoFile implements EpisodeFile, FrameSource {
  readonly format = 'hdf5' as const;
  /** Released and regenerated files alike store robosuite's raw (upside-down) render. */
  readonly storedOrientation = 'none' as const;
  readonly path: string;
  readonly layout: Layout;
  readonly demos: DemoInfo[] = [];
  /** Every problem found while validating; demos with a problem are left out of `demos`. */
  readonly problems: DataError[] = [];
  height = 0;
  width = 0;
  private f: H5File;
  private attrs: Record<string, unknown> = {};
  private cache = new Map<string, DemoLowDim>();
  private dsets = new Map<string, Dataset>();
  /** Per demo/camera: file position of frame 0 for direct reads, or null to read through h5wasm. */
  private direct = new Map<string, number | null>();
  private fd: number;
  private sb: SuperblockInfo;
  /** Read images with one pread where the layout allows (default); false forces h5wasm (tests compare the two). */
  directReads = true;

  private constructor(path: string, f: H5File, sb: SuperblockInfo, fd: number, layout?: Layout) {
    this.path = path;
    this.f = f;
    this.sb = sb;
    this.fd = fd;
    const data = f.get('data');
    if (!isGroup(data)) throw new DataError("missing group 'data'", { file: path, key: 'data' }, 'not a LIBERO demonstration file');
    for (const k of Object.keys(data.attrs)) this.attrs[k] = attr(data, k);
    this.layout = layout ?? ('problem_info' in this.attrs || 'env_args' in this.attrs ? 'original' : 'regenerated');
    const names = data.keys().filter((k) => /^demo_\d+$/.test(k)).sort(demoOrder);
    if (names.length === 0)
      this.problems.push(new DataError('no demo_* groups (empty suite file)', { file: path, key: 'data' }, 'the file holds no demonstrations; re-download it'));
    for (const name of names) {
      try {
        this.demos.push(this.validateDemo(name));
      } catch (e) {
        this.problems.push(e instanceof DataError ? e : new DataError(firstLine(e), { file: path, demo: name }));
      }
    }
  }

  /** Opens and validates. Throws DataError only if the file itself cannot be opened; demo problems go to `problems`. */
  static open(path: string, opts: { layout?: Layout } = {}): LiberoFile {
    const { file: f, superblock } = openHdf5WithInfo(path);
    const fd = openSync(path, 'r');
    try {
      return new LiberoFile(path, f, superblock, fd, opts.layout);
    } catch (e) {
      f.close();
      closeSync(fd);
      throw e;
    }
  }

  get frameSource(): FrameSource {
    return this;
  }

  readFrames(reqs: FrameRequest[]): void {
    for (const r of reqs) this.framesInto(r.demo, r.camera, r.t0, r.t1, r.dst, r.off);
  }

  fingerprint(): unknown {
    const st = statSync(this.path);
    return [this.path, st.size, st.mtimeMs];
  }

  prepare(demo: string): void {
    this.readsDirect(demo, 'agentview');
    this.readsDirect(demo, 'eye_in_hand');
  }

  get taskName(): string {
    return basename(this.path).replace(/\.hdf5$/, '').replace(/_demo$/, '');
  }

  /** The instruction: from the file name (the prompt every published evaluation uses) or from problem_info. */
  instruction(source: 'filename' | 'problem_info' = 'filename'): string {
    if (source === 'filename') return instructionFromFileName(this.path);
    const pi = this.attrs.problem_info;
    if (typeof pi !== 'string')
      throw new DataError('no problem_info attribute (regenerated files have none)', { file: this.path, key: 'data.attrs.problem_info' }, "use instruction source 'filename'");
    try {
      const s = (JSON.parse(pi) as { language_instruction?: unknown }).language_instruction;
      if (typeof s === 'string') return s;
      if (Array.isArray(s)) return s.join(' ');
    } catch {
      /* fall through */
    }
    throw new DataError('problem_info has no language_instruction', { file: this.path, key: 'data.attrs.problem_info' });
  }

  get attributes(): Readonly<Record<string, unknown>> {
    return this.attrs;
  }

  private ds(demo: string, key: string): Dataset {
    const id = `${demo}/${key}`;
    let d = this.dsets.get(id);
    if (!d) {
      d = checkedDataset(this.f, `data/${demo}/${key}`, { file: this.path, demo, key });
      this.dsets.set(id, d);
    }
    return d;
  }

  private has(demo: string, key: string): boolean {
    try {
      return !!this.f.get(`data/${demo}/${key}`);
    } catch {
      return false;
    }
  }

  private validateDemo(name: string): DemoInfo {
    const where = (key: string) => ({ file: this.path, demo: name, key });
    const g = this.f.get(`data/${name}`);
    if (!isGroup(g)) throw new DataError('is not a group', { file: this.path, demo: name });
    const shapes: Record<string, number[]> = {};
    const need: [string, number[] | 'image'][] = [
      ['actions', [7]],
      ['obs/gripper_states', [2]],
      ['obs/agentview_rgb', 'image'],
      ['obs/eye_in_hand_rgb', 'image'],
    ];
    if (this.has(name, 'obs/ee_pos') || !this.has(name, 'obs/ee_states')) need.push(['obs/ee_pos', [3]], ['obs/ee_ori', [3]]);
    else need.push(['obs/ee_states', [6]]);
    const hasJoints = this.has(name, 'obs/joint_states');
    if (hasJoints) need.push(['obs/joint_states', [7]]);
    const problems: DataError[] = [];
    for (const [key, inner] of need) {
      let d: Dataset;
      try {
        d = this.ds(name, key);
      } catch (e) {
        problems.push(e as DataError);
        continue;
      }
      const shape = d.shape ?? [];
      shapes[key] = shape;
      if (inner === 'image') {
        if (shape.length !== 4 || shape[3] !== 3 || d.metadata.size !== 1 || d.metadata.type !== 0)
          problems.push(new DataError(`expected uint8 (T, H, W, 3) images, got dtype ${String(d.dtype)} shape [${shape}]`, where(key)));
        else if (this.height === 0) {
          this.height = shape[1];
          this.width = shape[2];
        } else if (shape[1] !== this.height || shape[2] !== this.width)
          problems.push(new DataError(`image size ${shape[1]}x${shape[2]} differs from the file's ${this.height}x${this.width}`, where(key)));
      } else if (shape.length !== 2 || shape[1] !== inner[0] || d.metadata.type !== 1) {
        problems.push(new DataError(`expected float (T, ${inner[0]}), got dtype ${String(d.dtype)} shape [${shape}]`, where(key)));
      }
    }
    const lens = Object.entries(shapes).map(([k, s]) => [k, s[0]] as const);
    // The demo's length is the most common one; the odd ones out are named.
    const counts = new Map<number, number>();
    for (const [, n] of lens) counts.set(n, (counts.get(n) ?? 0) + 1);
    const T = lens.length ? [...counts.entries()].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0][0] : 0;
    const off = lens.filter(([, n]) => n !== T);
    if (off.length)
      problems.push(new DataError(`mismatched lengths: ${lens.map(([k, n]) => `${k}=${n}`).join(', ')}`, { file: this.path, demo: name, key: off[0][0] }, 'the demo is corrupt; drop it or regenerate the file'));
    const ns = attr(g, 'num_samples');
    if (typeof ns === 'number' && lens.length && ns !== T)
      problems.push(new DataError(`attribute num_samples=${ns} but datasets have ${T} steps`, where('num_samples')));
    if (!problems.length && T === 0) problems.push(new DataError('has zero steps', where('actions')));
    if (problems.length === 1) throw problems[0];
    if (problems.length > 1) {
      for (const p of problems.slice(0, -1)) this.problems.push(p);
      throw problems[problems.length - 1];
    }
    return { name, length: T, hasJoints };
  }

  /** Any dataset of a demo, whole, with its shape (numbers as Float64Array, uint8 as Uint8Array). For tools and tests. */
  read(demo: string, key: string): { shape: number[]; data: Float64Array | Uint8Array } {
    const d = this.ds(demo, key);
    const where = { file: this.path, demo, key };
    const shape = d.shape ?? [];
    if (d.metadata.type === 0 && d.metadata.size === 1 && !d.metadata.signed) {
      try {
        return { shape, data: d.value as Uint8Array };
      } catch (e) {
        throw new DataError(`read failed: ${firstLine(e)}`, where);
      }
    }
    return { shape, data: readFloat64(d, where) };
  }

  /** A demo group's attributes (BigInt converted to number). */
  demoAttributes(demo: string): Record<string, unknown> {
    const g = this.f.get(`data/${demo}`);
    if (!isGroup(g)) throw new DataError('no such demo group', { file: this.path, demo });
    return Object.fromEntries(Object.keys(g.attrs).map((k) => [k, attr(g, k)]));
  }

  demo(name: string): DemoInfo {
    const d = this.demos.find((x) => x.name === name);
    if (!d) throw new DataError('no such valid demo', { file: this.path, demo: name });
    return d;
  }

  /** All low-dim arrays of a demo (cached; ~25 KB per demo). */
  lowdim(demo: string): DemoLowDim {
    const hit = this.cache.get(demo);
    if (hit) return hit;
    const info = this.demo(demo);
    const rd = (key: string) => readFloat64(this.ds(demo, key), { file: this.path, demo, key });
    let eePos: Float64Array, eeOri: Float64Array;
    if (this.has(demo, 'obs/ee_pos')) {
      eePos = rd('obs/ee_pos');
      eeOri = rd('obs/ee_ori');
    } else {
      const s = rd('obs/ee_states');
      eePos = new Float64Array(info.length * 3);
      eeOri = new Float64Array(info.length * 3);
      for (let t = 0; t < info.length; t++)
        for (let i = 0; i < 3; i++) {
          eePos[t * 3 + i] = s[t * 6 + i];
          eeOri[t * 3 + i] = s[t * 6 + 3 + i];
        }
    }
    const out: DemoLowDim = {
      actions: rd('actions'),
      eePos,
      eeOri,
      gripper: rd('obs/gripper_states'),
      joints: info.hasJoints ? rd('obs/joint_states') : null,
    };
    // Errors name the file's own keys (obs/ee_pos, or obs/ee_states for the files that pack position + orientation).
    const packed = !this.has(demo, 'obs/ee_pos');
    const fileKey: Record<keyof DemoLowDim, string> = {
      actions: 'actions', eePos: packed ? 'obs/ee_states' : 'obs/ee_pos', eeOri: packed ? 'obs/ee_states' : 'obs/ee_ori',
      gripper: 'obs/gripper_states', joints: 'obs/joint_states',
    };
    for (const [k, v] of Object.entries(out) as [keyof DemoLowDim, Float64Array | null][])
      if (v)
        for (let i = 0; i < v.length; i++)
          if (!Number.isFinite(v[i]))
            throw new DataError(`non-finite value ${v[i]}`, { file: this.path, demo, key: fileKey[k], step: Math.floor(i / (v.length / info.length)) },
              'regenerate or drop this demo; rdt-libero data inspect lists every damaged demo');
    this.cache.set(demo, out);
    return out;
  }

  /** File position of frame 0 if the dataset is contiguous and unfiltered, verified against h5wasm; else null. */
  private directPos(demo: string, key: string, d: Dataset): number | null {
    const id = `${demo}/${key}`;
    const hit = this.direct.get(id);
    if (hit !== undefined) return hit;
    let pos: number | null = null;
    try {
      const shape = d.shape!;
      const frame = shape[1] * shape[2] * shape[3];
      const T = shape[0];
      const ref = d.create_reference().ref_data;
      let addr = 0;
      for (let i = Math.min(ref.length, 8) - 1; i >= 0; i--) addr = addr * 256 + ref[i];
      const ext = d.filters.length === 0 && ref.length === 8 ? contiguousExtent(this.fd, addr, this.sb) : null;
      if (ext && (ext.size < 0 || ext.size === T * frame)) {
        const same = (t: number) => {
          const a = preadExact(this.fd, ext.pos + t * frame, frame);
          const b = d.slice([[t, t + 1]]) as Uint8Array;
          return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
        };
        if (same(0) && same(T - 1)) pos = ext.pos;
      }
    } catch {
      pos = null;
    }
    this.direct.set(id, pos);
    return pos;
  }

  /** Whether frames of this demo/camera are read with one pread (contiguous, unfiltered, verified). */
  readsDirect(demo: string, camera: Camera): boolean {
    return this.directPos(demo, CAMERA_KEYS[camera], this.ds(demo, CAMERA_KEYS[camera])) !== null;
  }

  /**
   * Frames t0..t1-1 of one camera, as stored, written into dst at dstOff (no allocation on the direct path).
   * Returns dst.
   */
  framesInto(demo: string, camera: Camera, t0: number, t1: number, dst: Uint8Array, dstOff = 0): Uint8Array {
    const key = CAMERA_KEYS[camera];
    const frame = this.height * this.width * 3;
    const pos = this.directReads ? this.directPos(demo, key, this.ds(demo, key)) : null;
    if (pos !== null) {
      const len = (t1 - t0) * frame;
      let got = 0;
      while (got < len) {
        const n = readSync(this.fd, dst, dstOff + got, len - got, pos + t0 * frame + got);
        if (n <= 0) throw new DataError(`short read at byte ${pos + t0 * frame + got}`, { file: this.path, demo, key, step: t0 }, 'the file is truncated or changed while open');
        got += n;
      }
      return dst;
    }
    dst.set(this.frames(demo, camera, t0, t1), dstOff);
    return dst;
  }

  /** Frames t0..t1-1 of one camera, as stored (uint8 HWC, the file's orientation), concatenated. */
  frames(demo: string, camera: Camera, t0: number, t1: number): Uint8Array {
    const key = CAMERA_KEYS[camera];
    const d = this.ds(demo, key);
    try {
      if (this.directReads) {
        const pos = this.directPos(demo, key, d);
        if (pos !== null) {
          const frame = this.height * this.width * 3;
          return preadExact(this.fd, pos + t0 * frame, (t1 - t0) * frame);
        }
      }
      return d.slice([[t0, t1]]) as Uint8Array;
    } catch (e) {
      throw new DataError(`read failed: ${firstLine(e)}`, { file: this.path, demo, key, step: t0 }, 'the file may be corrupt or truncated');
    }
  }

  close(): void {
    this.cache.clear();
    this.dsets.clear();
    this.direct.clear();
    this.f.close();
    closeSync(this.fd);
  }
}

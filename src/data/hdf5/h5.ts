// Thin, checked access to HDF5 through h5wasm (imported as `h5wasm/node`, which reads host files lazily).
// The h5wasm traps handled here: a missing or truncated file gives id -1 instead of throwing (we check the file and
// its superblock first); a dataset with a filter h5wasm lacks reads as garbage (we check dataset.filters); int64
// comes back as BigInt (converted); HDF5's own error stack is turned into exceptions instead of stderr noise.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import h5wasm from 'h5wasm/node';
import type { Dataset, File as H5File, Group } from 'h5wasm/node';
import { DataError } from '../errors.js';
import type { SuperblockInfo } from './direct.js';

export type { Dataset, Group, H5File };

let ready: Promise<void> | null = null;
/** Initialise the wasm module once per thread. */
export function h5ready(): Promise<void> {
  if (!ready)
    ready = h5wasm.ready.then((M) => {
      (M as unknown as { activate_throwing_error_handler(): number }).activate_throwing_error_handler();
    });
  return ready;
}

/** Filters h5wasm 0.10.3 decodes correctly (checked in test/data-reader.test.ts); anything else is refused. */
export const SUPPORTED_FILTERS = new Set(['deflate', 'shuffle', 'fletcher32', 'scaleoffset']);

const SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];

/**
 * Checks that `path` is a complete HDF5 file: it exists, carries the signature, and is at least as long as the
 * end-of-file address its superblock declares (a truncated download fails here with a clear message).
 */
export function checkHdf5File(path: string): SuperblockInfo {
  let size: number;
  try {
    const st = statSync(path);
    if (!st.isFile()) throw new DataError('is not a regular file', { file: path });
    size = st.size;
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError('file not found or not readable', { file: path }, 'check the dataset root and file permissions');
  }
  const fd = openSync(path, 'r');
  try {
    // The superblock may sit at 0, 512, 1024, 2048, ... (a user block before it).
    for (let base = 0; base + 48 <= size; base = base === 0 ? 512 : base * 2) {
      const buf = Buffer.alloc(96);
      readSync(fd, buf, 0, 96, base);
      if (!SIGNATURE.every((b, i) => buf[i] === b)) continue;
      const version = buf[8];
      let so: number; // size of offsets
      let sl: number; // size of lengths
      let eofPos: number;
      let basePos: number;
      if (version === 0 || version === 1) {
        so = buf[13];
        sl = buf[14];
        basePos = 24 + (version === 1 ? 4 : 0);
        eofPos = basePos + 2 * so;
      } else {
        so = buf[9];
        sl = buf[10];
        basePos = 12;
        eofPos = 12 + 2 * so;
      }
      let baseAddr = 0;
      for (let i = so - 1; i >= 0; i--) baseAddr = baseAddr * 256 + buf[basePos + i];
      let eof = 0;
      for (let i = so - 1; i >= 0; i--) eof = eof * 256 + buf[eofPos + i];
      if (base + eof > size)
        throw new DataError(
          `truncated: ${size} bytes on disk, the HDF5 superblock says ${base + eof}`,
          { file: path },
          'the download or copy is incomplete; fetch the file again',
        );
      return { base: baseAddr, sizeOffsets: so, sizeLengths: sl };
    }
    throw new DataError('not an HDF5 file (no HDF5 signature)', { file: path });
  } finally {
    closeSync(fd);
  }
}

/** Opens an HDF5 file read-only after checkHdf5File. Call h5ready() first. */
export function openHdf5(path: string): H5File {
  return openHdf5WithInfo(path).file;
}

export function openHdf5WithInfo(path: string): { file: H5File; superblock: SuperblockInfo } {
  const superblock = checkHdf5File(path);
  let f: H5File;
  try {
    f = new h5wasm.File(path, 'r');
  } catch (e) {
    throw new DataError(`HDF5 library could not open the file: ${firstLine(e)}`, { file: path });
  }
  if (f.file_id < 0n) throw new DataError('HDF5 library could not open the file', { file: path });
  return { file: f, superblock };
}

export function firstLine(e: unknown): string {
  const s = String((e as Error)?.message ?? e);
  const m = s.match(/minor: (.*)/g);
  return (m ? m[m.length - 1] : s.split('\n')[0]).trim();
}

export function isDataset(x: unknown): x is Dataset {
  return !!x && (x as { type?: string }).type === 'Dataset';
}
export function isGroup(x: unknown): x is Group {
  return !!x && ((x as { type?: string }).type === 'Group');
}

/** A dataset's shape and dtype checked before any read; throws DataError naming file/demo/key. */
export function checkedDataset(f: H5File, path: string, where: { file: string; demo?: string; key: string }): Dataset {
  let d: unknown;
  try {
    d = f.get(path);
  } catch (e) {
    throw new DataError(`cannot open: ${firstLine(e)}`, where);
  }
  if (!d) throw new DataError('missing key', where, 'the file does not have the LIBERO layout; re-download or regenerate it');
  if (!isDataset(d)) throw new DataError('is not a dataset', where);
  const bad = d.filters.filter((x) => !SUPPORTED_FILTERS.has(x.name));
  if (bad.length)
    throw new DataError(
      `unsupported HDF5 filter ${bad.map((x) => `'${x.name}' (id ${x.id})`).join(', ')}`,
      where,
      `h5wasm decodes only ${[...SUPPORTED_FILTERS].join(', ')}; rewrite the file with h5py using compression='gzip' or none`,
    );
  return d;
}

/** Reads a whole numeric dataset as Float64Array (int64 converted from BigInt). */
export function readFloat64(d: Dataset, where: { file: string; demo?: string; key: string }, rows?: [number, number]): Float64Array {
  let v: unknown;
  try {
    v = rows ? d.slice([rows]) : d.value;
  } catch (e) {
    throw new DataError(`read failed: ${firstLine(e)}`, where, 'the file may be corrupt or truncated');
  }
  if (v instanceof Float64Array) return v;
  if (v instanceof BigInt64Array || v instanceof BigUint64Array) return Float64Array.from(v, (x) => Number(x));
  if (ArrayBuffer.isView(v)) return Float64Array.from(v as unknown as ArrayLike<number>);
  if (typeof v === 'number') return Float64Array.of(v);
  throw new DataError(`expected numbers, got ${typeof v}`, where);
}

/** An attribute as a JS value (BigInt -> number), or undefined if absent. */
export function attr(obj: { attrs: Record<string, { value: unknown }> }, name: string): unknown {
  const a = obj.attrs[name];
  if (!a) return undefined;
  const v = a.value;
  if (typeof v === 'bigint') return Number(v);
  return v;
}

// A read-only zip reader for PyTorch checkpoints: the central directory (zip64 included, for
// archives beyond 4 GB), stored entries located for direct positional reads, deflated entries
// inflated with zlib. Only the directory is held in memory; entry data stays on disk until asked for.
import { inflateRawSync } from 'node:zlib';
import { CheckpointError } from './errors.js';
import type { ReadableFile } from './file.js';

export interface ZipEntry {
  name: string;
  /** 0 = stored, 8 = deflated. */
  method: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  flags: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const U32_MAX = 0xffffffff;
const U16_MAX = 0xffff;

function u64(b: Buffer, at: number, file: string, what: string): number {
  const v = b.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new CheckpointError(file, `zip ${what} ${v} is out of range (corrupt archive)`);
  return Number(v);
}

export class ZipReader {
  readonly entries: ZipEntry[] = [];
  readonly byName = new Map<string, ZipEntry>();
  readonly #f: ReadableFile;

  constructor(f: ReadableFile) {
    this.#f = f;
    const path = f.path;
    const bad = (msg: string) => new CheckpointError(path, msg);
    if (f.size < 22) throw bad(`${f.size} bytes is too small to be a zip archive (truncated or not a PyTorch checkpoint)`);

    // End of central directory: the last 22..(22 + 65535) bytes.
    const tailLen = Math.min(f.size, 22 + 0xffff);
    const tailStart = f.size - tailLen;
    const tail = f.read(tailStart, tailLen, 'zip end-of-central-directory search');
    let eocd = -1;
    for (let i = tailLen - 22; i >= 0; i--) {
      if (tail.readUInt32LE(i) === SIG_EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0)
      throw bad('no zip end-of-central-directory record: the file is truncated (download or save it again) ' +
        'or is not a zip-format PyTorch checkpoint');
    let count = tail.readUInt16LE(eocd + 10);
    let cdSize = tail.readUInt32LE(eocd + 12);
    let cdOffset = tail.readUInt32LE(eocd + 16);
    const eocdAbs = tailStart + eocd;

    if (count === U16_MAX || cdSize === U32_MAX || cdOffset === U32_MAX) {
      // Zip64: a locator sits right before the classic record and points at the zip64 record.
      if (eocdAbs < 20) throw bad('zip64 archive without its zip64 locator (corrupt archive)');
      const loc = f.read(eocdAbs - 20, 20, 'zip64 end-of-central-directory locator');
      if (loc.readUInt32LE(0) !== SIG_ZIP64_LOCATOR) throw bad('zip64 end-of-central-directory locator is missing (corrupt archive)');
      const recAt = u64(loc, 8, path, 'zip64 record offset');
      const rec = f.read(recAt, 56, 'zip64 end-of-central-directory record');
      if (rec.readUInt32LE(0) !== SIG_ZIP64_EOCD) throw bad(`no zip64 end-of-central-directory record at byte ${recAt} (corrupt archive)`);
      count = u64(rec, 32, path, 'entry count');
      cdSize = u64(rec, 40, path, 'central directory size');
      cdOffset = u64(rec, 48, path, 'central directory offset');
    }
    if (cdOffset + cdSize > f.size)
      throw bad(`the zip central directory (bytes ${cdOffset}..${cdOffset + cdSize}) lies beyond the end of the ` +
        `${f.size}-byte file (truncated file; download or save it again)`);

    const cd = f.read(cdOffset, cdSize, 'zip central directory');
    let p = 0;
    for (let k = 0; k < count; k++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) throw bad(`zip central directory entry ${k} is corrupt`);
      const flags = cd.readUInt16LE(p + 8);
      const method = cd.readUInt16LE(p + 10);
      let compressedSize = cd.readUInt32LE(p + 20);
      let size = cd.readUInt32LE(p + 24);
      const nameLen = cd.readUInt16LE(p + 28);
      const extraLen = cd.readUInt16LE(p + 30);
      const commentLen = cd.readUInt16LE(p + 32);
      let localHeaderOffset = cd.readUInt32LE(p + 42);
      if (p + 46 + nameLen + extraLen + commentLen > cd.length) throw bad(`zip central directory entry ${k} is corrupt`);
      const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
      // Zip64 extra field: the 64-bit values of whichever fields hold 0xFFFFFFFF, in this order.
      let e = p + 46 + nameLen;
      const extraEnd = e + extraLen;
      while (e + 4 <= extraEnd) {
        const id = cd.readUInt16LE(e);
        const len = cd.readUInt16LE(e + 2);
        if (id === 0x0001) {
          let q = e + 4;
          const take = (): number => {
            if (q + 8 > e + 4 + len) throw bad(`zip64 extra field of '${name}' is too short (corrupt archive)`);
            const v = u64(cd, q, path, `zip64 field of '${name}'`);
            q += 8;
            return v;
          };
          if (size === U32_MAX) size = take();
          if (compressedSize === U32_MAX) compressedSize = take();
          if (localHeaderOffset === U32_MAX) localHeaderOffset = take();
        }
        e += 4 + len;
      }
      const entry: ZipEntry = { name, method, compressedSize, size, localHeaderOffset, flags };
      this.entries.push(entry);
      this.byName.set(name, entry);
      p += 46 + nameLen + extraLen + commentLen;
    }
  }

  /** Absolute byte offset where the entry's (stored or compressed) data begins. */
  dataOffset(entry: ZipEntry): number {
    const f = this.#f;
    const h = f.read(entry.localHeaderOffset, 30, `zip local header of '${entry.name}'`);
    if (h.readUInt32LE(0) !== SIG_LOCAL)
      throw new CheckpointError(f.path, `zip local header of '${entry.name}' is missing at byte ${entry.localHeaderOffset} (corrupt archive)`);
    const start = entry.localHeaderOffset + 30 + h.readUInt16LE(26) + h.readUInt16LE(28);
    if (start + entry.compressedSize > f.size)
      throw new CheckpointError(f.path, `zip entry '${entry.name}' (bytes ${start}..${start + entry.compressedSize}) runs past ` +
        `the end of the ${f.size}-byte file (truncated file; download or save it again)`);
    return start;
  }

  /** Check the entry can be read by this reader (not encrypted, stored or deflated). */
  checkReadable(entry: ZipEntry): void {
    if (entry.flags & 1) throw new CheckpointError(this.#f.path, `zip entry '${entry.name}' is encrypted, which is not supported`);
    if (entry.method !== 0 && entry.method !== 8)
      throw new CheckpointError(this.#f.path, `zip entry '${entry.name}' uses compression method ${entry.method}; only stored (0) ` +
        'and deflated (8) entries are supported');
  }

  /** The whole entry, decompressed, as a Buffer (for small entries such as data.pkl). */
  read(entry: ZipEntry): Buffer {
    this.checkReadable(entry);
    const raw = this.#f.read(this.dataOffset(entry), entry.compressedSize, `zip entry '${entry.name}'`);
    if (entry.method === 0) return raw;
    let out: Buffer;
    try {
      out = inflateRawSync(raw);
    } catch (e) {
      throw new CheckpointError(this.#f.path, `zip entry '${entry.name}' does not inflate: ${(e as Error).message} (corrupt archive)`);
    }
    if (out.length !== entry.size)
      throw new CheckpointError(this.#f.path, `zip entry '${entry.name}' inflated to ${out.length} bytes, expected ${entry.size} (corrupt archive)`);
    return out;
  }
}

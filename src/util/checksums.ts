// Checksums of the weight files in a model or checkpoint folder, recorded at save in `checksums.json` and
// verified at load, so a damaged file (flipped bytes on a flaky disk, a truncated copy) is named instead of
// silently loaded. Two levels:
//   'quick' (the default at load): size, plus SHA-256 of the first and last MiB and of 32 evenly spaced 64 KiB
//            blocks: a few MiB read whatever the file size, so it catches truncation, a damaged header and most
//            copy errors at no noticeable cost;
//   'full' (on request, e.g. `--verify full`): SHA-256 of every byte.
// Both are recorded at save; the file is hashed right after it is written, while it is still in the page cache.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync, readdirSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { basename, dirname, join, relative } from 'node:path';
import { RdtError } from './errors.js';
import { writeFileAtomic } from './atomic.js';

export const CHECKSUMS_FILE = 'checksums.json';
export type VerifyLevel = 'none' | 'quick' | 'full';
export const VERIFY_LEVELS: readonly VerifyLevel[] = ['none', 'quick', 'full'];

export class ChecksumError extends RdtError {
  override name = 'ChecksumError';
}

interface FileSums {
  size: number;
  quick_sha256: string;
  sha256: string;
}

interface Manifest {
  format: 'rdt-libero.checksums';
  version: 1;
  /** Paths relative to the folder holding checksums.json. */
  files: Record<string, FileSums>;
}

const MIB = 1 << 20;
const BLOCK = 64 << 10;
const BLOCKS = 32;

/** The byte ranges the quick check reads: [offset, length] pairs. */
function quickRanges(size: number): [number, number][] {
  if (size <= 2 * MIB + BLOCKS * BLOCK) return [[0, size]];
  const r: [number, number][] = [[0, MIB]];
  const span = size - 2 * MIB - BLOCK;
  for (let i = 0; i < BLOCKS; i++) r.push([MIB + Math.floor((span * (i + 0.5)) / BLOCKS), BLOCK]);
  r.push([size - MIB, MIB]);
  return r;
}

function hashRanges(fd: number, ranges: [number, number][]): string {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * MIB);
  for (const [off, len] of ranges) {
    let done = 0;
    while (done < len) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, len - done), off + done);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      done += n;
    }
  }
  return h.digest('hex');
}

function sumsOf(path: string, level: 'quick' | 'full'): Partial<FileSums> & { size: number } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const quick = hashRanges(fd, quickRanges(size));
    return level === 'full' ? { size, quick_sha256: quick, sha256: hashRanges(fd, [[0, size]]) } : { size, quick_sha256: quick };
  } finally {
    closeSync(fd);
  }
}

/** Every *.safetensors / *.bin / *.pt file below dir (one level of sub-folders, e.g. ema/), relative to dir. */
function weightFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string, depth: number) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (name.startsWith('.')) continue;
      if (statSync(p).isDirectory()) {
        if (depth < 1) walk(p, depth + 1);
      } else if (/\.(safetensors|bin|pt)$/.test(name)) out.push(relative(dir, p));
    }
  };
  walk(dir, 0);
  return out;
}

/** Hash every weight file of a folder and write its checksums.json (atomically). Returns the manifest. */
export function recordChecksums(dir: string): Manifest {
  const files: Record<string, FileSums> = {};
  for (const rel of weightFiles(dir)) files[rel] = sumsOf(join(dir, rel), 'full') as FileSums;
  const m: Manifest = { format: 'rdt-libero.checksums', version: 1, files };
  writeFileAtomic(join(dir, CHECKSUMS_FILE), JSON.stringify(m, null, 2) + '\n');
  return m;
}

function readManifest(p: string): { path: string; rel: string; m: Manifest } {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(p, 'utf8')) as Manifest;
  } catch (e) {
    throw new ChecksumError(`${p}: not valid JSON (${(e as Error).message}); delete it to load without verification`);
  }
  if (m?.format !== 'rdt-libero.checksums' || typeof m.files !== 'object')
    throw new ChecksumError(`${p}: not an rdt-libero checksums file; delete it to load without verification`);
  return { path: p, rel: '', m };
}

/** The checksums.json that covers `file`: in its folder, or its parent's (for ema/model.safetensors). */
function manifestFor(file: string): { path: string; rel: string; m: Manifest } | null {
  for (const d of [dirname(file), dirname(dirname(file))]) {
    const p = join(d, CHECKSUMS_FILE);
    if (!existsSync(p)) continue;
    const { m } = readManifest(p);
    const rel = relative(d, file);
    if (rel in m.files) return { path: p, rel, m };
  }
  return null;
}

/**
 * Verify `file` against the checksums recorded beside it. Returns false when no checksum covers it (a folder
 * written by another tool, e.g. the hub's rdt-1b); throws a ChecksumError naming the file when it differs.
 */
export function verifyChecksum(file: string, level: VerifyLevel = 'quick'): boolean {
  if (level === 'none') return false;
  const found = manifestFor(file);
  if (!found) return false;
  const want = found.m.files[found.rel];
  const got = sumsOf(file, level);
  const fix = `the file is damaged or was changed after it was saved (${basename(found.path)} records it); ` +
    'copy it again from where it came from, or resume from an earlier checkpoint';
  if (got.size !== want.size) throw new ChecksumError(`${file}: ${got.size} bytes, ${want.size} recorded at save: ${fix}`);
  if (got.quick_sha256 !== want.quick_sha256 || (level === 'full' && got.sha256 !== want.sha256))
    throw new ChecksumError(`${file}: SHA-256 (${level} check) differs from the one recorded at save: ${fix}`);
  return true;
}

/** Verify every file that `dir`'s checksums.json lists (a resumed checkpoint); returns how many were checked. */
export function verifyFolder(dir: string, level: VerifyLevel = 'quick'): number {
  const p = join(dir, CHECKSUMS_FILE);
  if (level === 'none' || !existsSync(p)) return 0;
  const m = readManifest(p);
  let n = 0;
  for (const rel of Object.keys(m.m.files)) {
    const f = join(dir, rel);
    if (!existsSync(f)) throw new ChecksumError(`${f} is missing (${p} lists it); the checkpoint is incomplete, resume from another one`);
    verifyChecksum(f, level);
    n++;
  }
  return n;
}

// safetensors: 8-byte little-endian header length N, N bytes of JSON header (padded with spaces to a
// multiple of 8), then the raw little-endian tensor bytes, contiguous, at the header's data_offsets.
// Reads go from disk straight into tensor storage, tensor by tensor; writes go tensor by tensor into
// a temp file that is fsynced and renamed into place. The output is byte-identical to the Python
// `safetensors` package's (same tensor order, same JSON, same padding).
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { N } from '../native.js';
import { DTYPE_BYTES, DTYPE_CODE, isFloating, type DType } from '../dtype.js';
import { Tensor, type Device } from '../tensor.js';
import { scope } from '../scope.js';
import { CheckpointError, messageOf } from './errors.js';
import { ReadableFile, withFile } from './file.js';

/** safetensors dtype names and ours. */
export const SAFETENSORS_DTYPES: Record<string, DType> = {
  F64: 'float64', F32: 'float32', BF16: 'bfloat16', F16: 'float16',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const TO_ST = Object.fromEntries(Object.entries(SAFETENSORS_DTYPES).map(([k, v]) => [v, k])) as Record<DType, string>;

// The Python package writes tensors sorted by dtype (this rank, descending), then by name.
const PY_RANK: Record<DType, number> = {
  int64: 10, float64: 9, float32: 8, int32: 7, bfloat16: 6, float16: 5, int16: 4, int8: 3, uint8: 2, bool: 1,
};

/** The Python package refuses headers above 100 MB; so do we (a corrupt length would be huge). */
const MAX_HEADER = 100_000_000;

export interface SafetensorsTensorInfo {
  dtype: DType;
  shape: number[];
  /** data_offsets: [begin, end) relative to the start of the data section. */
  offsets: [number, number];
  /** Absolute byte offset of the tensor's first byte in the file. */
  byteOffset: number;
}

export interface SafetensorsHeader {
  /** key -> info, in the header's (text) order. */
  tensors: Map<string, SafetensorsTensorInfo>;
  metadata: Record<string, string>;
  /** Absolute byte offset of the data section (8 + header length). */
  dataStart: number;
}

// Top-level keys of a JSON object in text order (JSON.parse puts integer-like keys first).
function topLevelKeys(s: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    if (ch === '"') {
      let j = i + 1;
      while (s[j] !== '"') j += s[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        keys.push(JSON.parse(s.slice(i, j + 1)) as string);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      if (depth === 1) expectKey = ch === '{';
    } else if (ch === '}' || ch === ']') {
      depth--;
    } else if (ch === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

function parseHeader(f: ReadableFile): SafetensorsHeader {
  const path = f.path;
  const bad = (msg: string, key?: string) => new CheckpointError(path, msg, { key });
  const hint = 'the file is truncated or corrupt; download or save it again';
  if (f.size < 8) throw bad(`${f.size} bytes is too small for a safetensors file (${hint})`);
  const n64 = f.read(0, 8, 'safetensors header length').readBigUInt64LE(0);
  if (n64 > BigInt(MAX_HEADER)) throw bad(`header length ${n64} is larger than ${MAX_HEADER} bytes: not a safetensors file, or ${hint}`);
  const n = Number(n64);
  if (8 + n > f.size) throw bad(`the header claims ${n} bytes but the file has only ${f.size - 8} after the length field (${hint})`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(f.read(8, n, 'safetensors header'));
  } catch (e) {
    if (e instanceof CheckpointError) throw e;
    throw bad(`the header is not valid UTF-8 (${hint})`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw bad(`the header is not valid JSON (${messageOf(e)}); ${hint}`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw bad(`the header is not a JSON object (${hint})`);
  const obj = json as Record<string, unknown>;
  const keys = topLevelKeys(text);
  if (new Set(keys).size !== keys.length) throw bad(`the header repeats a key (${hint})`);

  const metadata: Record<string, string> = {};
  const tensors = new Map<string, SafetensorsTensorInfo>();
  const dataStart = 8 + n;
  for (const key of keys) {
    const v = obj[key];
    if (key === '__metadata__') {
      if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('__metadata__ must be an object of strings');
      for (const [mk, mv] of Object.entries(v as Record<string, unknown>)) {
        if (typeof mv !== 'string') throw bad(`__metadata__ value '${mk}' is not a string`);
        metadata[mk] = mv;
      }
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (e === null || typeof e !== 'object') throw bad('the header entry is not an object', key);
    const dtype = typeof e.dtype === 'string' ? SAFETENSORS_DTYPES[e.dtype] : undefined;
    if (!dtype)
      throw bad(`dtype ${JSON.stringify(e.dtype)} is not supported (supported: ${Object.keys(SAFETENSORS_DTYPES).join(', ')})`, key);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      throw bad(`shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`, key);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1])
      throw bad(`data_offsets ${JSON.stringify(off)} is not [begin, end] with 0 <= begin <= end`, key);
    const shape = e.shape as number[];
    const numel = shape.reduce((a, b) => a * b, 1);
    const want = numel * DTYPE_BYTES[dtype];
    if (off[1] - off[0] !== want)
      throw bad(`shape [${shape.join(', ')}] of ${e.dtype} needs ${want} bytes but data_offsets [${off[0]}, ${off[1]}] ` +
        `span ${off[1] - off[0]} (${hint})`, key);
    tensors.set(key, { dtype, shape, offsets: [off[0], off[1]], byteOffset: dataStart + off[0] });
  }

  // The data section must be covered exactly, without gaps or overlaps, as the Python package checks.
  const byBegin = [...tensors.entries()].sort((a, b) => a[1].offsets[0] - b[1].offsets[0] || a[1].offsets[1] - b[1].offsets[1]);
  let end = 0;
  for (const [key, info] of byBegin) {
    if (info.offsets[0] !== end)
      throw bad(`data_offsets [${info.offsets.join(', ')}] ${info.offsets[0] > end ? 'leave a gap after' : 'overlap'} ` +
        `the previous tensor's data, which ends at ${end} (${hint})`, key);
    end = info.offsets[1];
  }
  const dataLen = f.size - dataStart;
  if (end > dataLen) {
    const last = byBegin[byBegin.length - 1][0];
    throw bad(`the tensor data need ${end} bytes after the header but the file has ${dataLen} (${hint})`, last);
  }
  if (end < dataLen) throw bad(`the file has ${dataLen - end} bytes after the last tensor's data (${hint})`);
  return { tensors, metadata, dataStart };
}

/** The header of a safetensors file: key -> {dtype, shape, offsets}, the metadata, where data start. */
export function readSafetensorsHeader(path: string): SafetensorsHeader {
  return withFile(path, parseHeader);
}

export interface LoadSafetensorsOptions {
  /** Move every tensor to this device after reading. */
  device?: Device;
  /** Cast floating-point tensors to this dtype (integer and bool tensors keep theirs). */
  dtype?: DType;
  /** Load only these keys (each must exist). */
  keys?: Iterable<string>;
}

/**
 * Load a safetensors file: tensors in header order and the metadata. Each tensor is read from disk
 * straight into its storage. On any error, nothing loaded so far is left alive.
 */
export function loadSafetensors(path: string, opts: LoadSafetensorsOptions = {}): {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
} {
  const header = readSafetensorsHeader(path);
  let keys = [...header.tensors.keys()];
  if (opts.keys) {
    const want = [...opts.keys];
    const missing = want.filter((k) => !header.tensors.has(k));
    if (missing.length)
      throw new CheckpointError(path, `no tensor named ${missing.slice(0, 8).map((k) => `'${k}'`).join(', ')}` +
        `${missing.length > 8 ? ` (and ${missing.length - 8} more)` : ''} in the file`);
    const wanted = new Set(want);
    keys = keys.filter((k) => wanted.has(k));
  }
  const tensors = scope(() => {
    const out = new Map<string, Tensor>();
    for (const key of keys) {
      const info = header.tensors.get(key)!;
      let t: Tensor;
      try {
        t = new Tensor(N.fromFile(path, info.byteOffset, DTYPE_CODE[info.dtype], info.shape));
      } catch (e) {
        throw new CheckpointError(path, `reading ${info.offsets[1] - info.offsets[0]} bytes at byte offset ${info.byteOffset}: ` +
          `${messageOf(e)}`, { key, cause: e });
      }
      if ((opts.dtype && opts.dtype !== info.dtype && isFloating(info.dtype)) || (opts.device && opts.device !== 'cpu')) {
        const moved = t.to({ dtype: opts.dtype && isFloating(info.dtype) ? opts.dtype : undefined, device: opts.device });
        t.dispose();
        t = moved;
      }
      out.set(key, t);
    }
    return out;
  });
  return { tensors, metadata: header.metadata };
}

export interface SaveSafetensorsOptions {
  /**
   * 'python' (default): tensors sorted by dtype size, then name, exactly as the Python package
   * writes them, so the file is byte-identical. 'given': keep the order of `tensors`.
   */
  order?: 'python' | 'given';
}

function utf8Compare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/**
 * Write tensors (a Map or a plain object) to `path` as safetensors, atomically: into
 * `path.tmp-<pid>`, fsync, rename. One tensor's bytes are in flight at a time.
 */
export function saveSafetensors(
  path: string,
  tensors: Map<string, Tensor> | Record<string, Tensor>,
  metadata?: Record<string, string> | null,
  opts: SaveSafetensorsOptions = {},
): void {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [k, t] of entries) {
    if (k === '__metadata__') throw new CheckpointError(path, "'__metadata__' cannot be a tensor name", { key: k });
    if (!(t instanceof Tensor)) throw new CheckpointError(path, 'the value is not a Tensor', { key: k });
    if (t.isDisposed) throw new CheckpointError(path, 'the tensor was disposed before it was saved', { key: k });
  }
  if (metadata) {
    for (const [k, v] of Object.entries(metadata))
      if (typeof v !== 'string') throw new CheckpointError(path, `metadata value '${k}' must be a string (safetensors metadata is string to string)`);
  }
  const order = opts.order ?? 'python';
  const infos = entries.map(([name, t]) => ({ name, t, dtype: t.dtype, shape: t.shape, nbytes: t.numel() * DTYPE_BYTES[t.dtype] }));
  if (order === 'python') infos.sort((a, b) => PY_RANK[b.dtype] - PY_RANK[a.dtype] || utf8Compare(a.name, b.name));

  const parts: string[] = [];
  if (metadata) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let off = 0;
  const positions: number[] = [];
  for (const i of infos) {
    positions.push(off);
    parts.push(`${JSON.stringify(i.name)}:{"dtype":"${TO_ST[i.dtype]}","shape":[${i.shape.join(',')}],"data_offsets":[${off},${off + i.nbytes}]}`);
    off += i.nbytes;
  }
  let header = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const padded = Math.ceil(header.length / 8) * 8;
  if (padded !== header.length) header = Buffer.concat([header, Buffer.alloc(padded - header.length, 0x20)]);
  const lenField = Buffer.alloc(8);
  lenField.writeBigUInt64LE(BigInt(header.length));
  const dataStart = 8 + header.length;

  const tmp = `${path}.tmp-${process.pid}`;
  let fd = -1;
  try {
    fd = openSync(tmp, 'w');
    writeSync(fd, lenField, 0, 8, 0);
    writeSync(fd, header, 0, header.length, 8);
    infos.forEach((i, k) => {
      try {
        N.writeToFd(fd, dataStart + positions[k], i.t.h);
      } catch (e) {
        throw new CheckpointError(tmp, `writing tensor data: ${messageOf(e)}`, { key: i.name, cause: e });
      }
    });
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // the temp file may not exist
    }
    if (e instanceof CheckpointError) throw e;
    throw new CheckpointError(path, `saving failed: ${messageOf(e)}`, { cause: e });
  }
  // Make the rename itself durable.
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    // some filesystems refuse fsync on directories; the data are already synced
  }
}

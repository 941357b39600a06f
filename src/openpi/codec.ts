// openpi's wire codec (openpi_client/msgpack_numpy.py), written from its documented byte format (libero-facts.md
// 4.4): msgpack whose maps may stand for numpy values, with BYTES keys:
//   ndarray: {b"__ndarray__": True, b"data": C-order bytes, b"dtype": dtype.str ("<f4", "|u1"), b"shape": [...]}
//   scalar:  {b"__npgeneric__": True, b"data": x.item(), b"dtype": dtype.str}
// Everything else is plain msgpack (str keys, str/bin, ints, floats, bools, nil, arrays). Shared by the server and
// the TypeScript client. Encoded maps are written as msgpack maps sized up front (msgpackr writes a plain object as
// map16, Python as fixmap), so a reply is byte-identical to what openpi's Packer writes for the same dict.
import { Packr, Unpackr } from 'msgpackr';
import { OpenpiError } from './errors.js';

/** A numpy array on the wire: dtype as numpy's dtype.str ("<f4", "|u1"), C-order data. */
export interface NdArray {
  dtype: string;
  shape: number[];
  data: ArrayBufferView;
}

type Ctor = new (buf: ArrayBuffer) => ArrayBufferView;
/** Supported kinds and sizes -> the typed array that holds them (float16 as raw Uint16: Node 20 has no Float16Array). */
const TYPED: Record<string, Ctor> = {
  b1: Uint8Array, u1: Uint8Array, i1: Int8Array,
  u2: Uint16Array, i2: Int16Array, f2: Uint16Array,
  u4: Uint32Array, i4: Int32Array, f4: Float32Array,
  u8: BigUint64Array, i8: BigInt64Array, f8: Float64Array,
};

const MAX_DEPTH = 32;
const MAX_DIMS = 32;

/** Parse a numpy dtype.str; returns the normalised string, the item size and whether it is big-endian. */
export function parseDtype(dtype: unknown, where: string): { str: string; size: number; bigEndian: boolean; ctor: Ctor } {
  const m = typeof dtype === 'string' ? /^([<>|=])([biuf])(\d+)$/.exec(dtype) : null;
  const ctor = m ? TYPED[m[2] + m[3]] : undefined;
  if (!m || !ctor)
    throw new OpenpiError('BadRequest', `${where}: dtype ${JSON.stringify(dtype)} is not supported (bool, int, uint or float of 1-8 bytes, e.g. '|u1', '<f4', '<f8')`);
  const size = Number(m[3]);
  const bigEndian = m[1] === '>' && size > 1;
  return { str: `${size === 1 ? '|' : '<'}${m[2]}${size}`, size, bigEndian, ctor };
}

/** Elements of a shape, or a BadRequest naming `where`. */
export function shapeSize(shape: unknown, where: string): number {
  if (!Array.isArray(shape) || shape.length > MAX_DIMS || !shape.every((d) => Number.isSafeInteger(d) && d >= 0))
    throw new OpenpiError('BadRequest', `${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  return shape.reduce((a: number, b: number) => a * b, 1);
}

function ndarrayFromWire(m: Map<unknown, unknown>, where: string): NdArray {
  const data = field(m, 'data');
  const { str, size, bigEndian, ctor } = parseDtype(field(m, 'dtype'), where);
  const shape = field(m, 'shape') as number[];
  const n = shapeSize(shape, where);
  if (!(data instanceof Uint8Array)) throw new OpenpiError('BadRequest', `${where}: ndarray 'data' must be bytes`);
  if (data.length !== n * size)
    throw new OpenpiError('BadRequest', `${where}: ndarray data has ${data.length} bytes, shape [${shape.join(', ')}] of ${str} needs ${n * size}`);
  // A copy into an aligned buffer of our own: the source slice may be unaligned for the element type.
  const bytes = new Uint8Array(n * size);
  bytes.set(data);
  if (bigEndian) for (let i = 0; i < bytes.length; i += size) bytes.subarray(i, i + size).reverse();
  return { dtype: str, shape: [...shape], data: new ctor(bytes.buffer) };
}

/** A map value under a str or bytes key (openpi writes bytes keys; a hand-written client may write str). */
function field(m: Map<unknown, unknown>, key: string): unknown {
  for (const [k, v] of m) if (keyText(k) === key) return v;
  return undefined;
}

function keyText(k: unknown): string | null {
  if (typeof k === 'string') return k;
  if (k instanceof Uint8Array) return Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('utf8');
  return null;
}

function fromWire(v: unknown, where: string, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new OpenpiError('MalformedMsgpack', `nesting deeper than ${MAX_DEPTH} levels at ${where || 'the top level'}`);
  if (v instanceof Map) {
    if (field(v, '__ndarray__') === true) return ndarrayFromWire(v, where);
    if (field(v, '__npgeneric__') === true) {
      parseDtype(field(v, 'dtype'), where);
      const x = field(v, 'data');
      if (typeof x !== 'number' && typeof x !== 'bigint' && typeof x !== 'boolean') throw new OpenpiError('BadRequest', `${where}: numpy scalar data must be a number or bool`);
      return x;
    }
    const entries: [string, unknown][] = [];
    for (const [k, x] of v) {
      const key = keyText(k);
      if (key === null) throw new OpenpiError('MalformedMsgpack', `a map key at ${where || 'the top level'} is a ${typeof k}, not a string`);
      entries.push([key, fromWire(x, `${where}/${key}`, depth + 1)]);
    }
    return Object.fromEntries(entries); // own properties only: a "__proto__" key cannot reach the prototype
  }
  if (Array.isArray(v)) return v.map((x, i) => fromWire(x, `${where}[${i}]`, depth + 1));
  if (v instanceof Uint8Array) return new Uint8Array(v); // bytes: our own copy, not a view of the frame
  if (v === null || typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return v;
  throw new OpenpiError('MalformedMsgpack', `unsupported msgpack value at ${where || 'the top level'}`);
}

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType: 'number' });
const packr = new Packr({ useRecords: false });

/** One frame -> a value, ndarrays as NdArray, numpy scalars as numbers. Throws OpenpiError('MalformedMsgpack' | 'BadRequest'). */
export function decode(frame: Uint8Array): unknown {
  let raw: unknown;
  try {
    raw = unpackr.unpack(frame);
  } catch (e) {
    throw new OpenpiError('MalformedMsgpack', `the frame is not valid msgpack (${String((e as Error).message ?? e).split('\n')[0].slice(0, 120)})`);
  }
  return fromWire(raw, '', 0);
}

export function isNdArray(v: unknown): v is NdArray {
  const a = v as NdArray;
  return typeof v === 'object' && v !== null && typeof a.dtype === 'string' && Array.isArray(a.shape) && ArrayBuffer.isView(a.data);
}

const bin = (s: string) => Buffer.from(s, 'latin1');
const K_ND = bin('__ndarray__'), K_DATA = bin('data'), K_DTYPE = bin('dtype'), K_SHAPE = bin('shape');

function toWire(v: unknown, where: string): unknown {
  if (isNdArray(v)) {
    const { str, size } = parseDtype(v.dtype, where);
    const n = shapeSize(v.shape, where);
    if (v.data.byteLength !== n * size) throw new OpenpiError('BadRequest', `${where}: ndarray data has ${v.data.byteLength} bytes, shape [${v.shape.join(', ')}] of ${str} needs ${n * size}`);
    return new Map<unknown, unknown>([[K_ND, true], [K_DATA, Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength)], [K_DTYPE, str], [K_SHAPE, [...v.shape]]]);
  }
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map((x, i) => toWire(x, `${where}[${i}]`));
  if (v instanceof Map) return new Map([...v].map(([k, x]) => [k, toWire(x, `${where}/${String(k)}`)]));
  if (typeof v === 'object' && v !== null) return new Map(Object.entries(v).map(([k, x]) => [k, toWire(x, `${where}/${k}`)]));
  return v;
}

/** A value -> one frame; NdArray values become openpi ndarray maps. */
export function encode(value: unknown): Buffer {
  return packr.pack(toWire(value, ''));
}

/** Elements of an NdArray as numbers (bigint dtypes converted). */
export function ndNumbers(a: NdArray): ArrayLike<number> {
  const d = a.data as unknown as ArrayLike<number | bigint>;
  if (a.data instanceof BigInt64Array || a.data instanceof BigUint64Array) return Array.from(d, Number);
  return d as ArrayLike<number>;
}

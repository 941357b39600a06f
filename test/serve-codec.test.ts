// The wire codec against Python's msgpack + numpy with openpi's pack/unpack rules (written in the test from the
// documented format, libero-facts.md 4.4): what Python packs decodes to the same values here, what we encode is
// byte-identical to what Python packs, and malformed frames are refused with a named error, never a crash.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decode, encode, type NdArray } from '../src/openpi/codec.js';
import { OpenpiError } from '../src/openpi/errors.js';
import { runPythonJson } from './helpers/python.js';
import { fileURLToPath } from 'node:url';

// openpi's pack/unpack rules live once, in the Python client the protocol tests use.
const PRELUDE = `import msgpack, numpy as np
sys.path.insert(0, ${JSON.stringify(fileURLToPath(new URL('../../test/py', import.meta.url)))})
from openpi_client_check import pack_array, unpack_array, packb
`;

test('what openpi\'s Python packer writes decodes to the same arrays, scalars and plain values', () => {
  const py = runPythonJson<{ hex: string; want: Record<string, { dtype: string; shape: number[]; values: number[] }> }>(PRELUDE, `
arrays = {
    "u1": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "f4": np.array([0.1, -2.5, 3e38, 1e-30], np.float32),
    "f8": np.array([[np.pi, -1e300], [5e-324, 0.0]]),
    "i8": np.array([-(2**40), 7, 0], np.int64),
    "be": np.array([1.5, -0.25], ">f4"),
    "b1": np.array([True, False, True]),
    "f2": np.array([1.0, -2.0], np.float16),
    "i2": np.array([-300, 300], np.int16),
    "empty": np.zeros((0, 7), np.float32),
}
msg = dict(arrays)
msg["scalar_f4"] = np.float32(0.5)
msg["scalar_i8"] = np.int64(-9)
msg["plain"] = {"a": [1, "x", b"by", None, True, 2.5], "nested": {"k": -3}}
out["hex"] = packb(msg).hex()
out["want"] = {k: {"dtype": v.dtype.str if v.dtype.kind != "f" or v.dtype.itemsize != 2 else "<f2",
                   "shape": list(v.shape),
                   "values": (v.view(np.uint16) if v.dtype == np.float16 else v).astype(np.float64).ravel().tolist()} for k, v in arrays.items()}
`);
  const got = decode(Buffer.from(py.hex, 'hex')) as Record<string, unknown>;
  for (const [k, w] of Object.entries(py.want)) {
    const a = got[k] as NdArray;
    assert.deepEqual(a.shape, w.shape, k);
    // big-endian arrays arrive in our byte order, named little-endian
    assert.equal(a.dtype, k === 'be' ? '<f4' : w.dtype, k);
    const values = Array.from(a.data as unknown as ArrayLike<number | bigint>, Number);
    assert.deepEqual(values, w.values, k);
  }
  assert.ok((got.f4 as NdArray).data instanceof Float32Array);
  assert.ok((got.i8 as NdArray).data instanceof BigInt64Array);
  assert.equal(got.scalar_f4, 0.5);
  assert.equal(got.scalar_i8, -9);
  assert.deepEqual(got.plain, { a: [1, 'x', new Uint8Array([98, 121]), null, true, 2.5], nested: { k: -3 } });
});

test('a reply we encode is byte-identical to what openpi\'s Python packer writes for the same dict, and unpacks there', () => {
  const actions = Float64Array.from({ length: 14 }, (_, i) => Math.sin(i) * 0.7);
  const reply = {
    actions: { dtype: '<f8', shape: [2, 7], data: actions },
    image: { dtype: '|u1', shape: [2, 2, 3], data: Uint8Array.from({ length: 12 }, (_, i) => i * 20) },
    seed: 5, prompt: 'pick up the bowl', flag: true, none: null, list: [1, -2, 2.5],
    policy_timing: { infer_ms: 12.375 },
    server_timing: { infer_ms: 13.5, prev_total_ms: 40.125 },
  };
  const ours = encode(reply).toString('hex');
  const py = runPythonJson<{ hex: string; roundtrip: { shape: number[]; dtype: string; actions: number[]; writeable: boolean } }>(PRELUDE, `
a = np.array(inp["actions"], np.float64).reshape(2, 7)
img = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
msg = {"actions": a, "image": img, "seed": 5, "prompt": "pick up the bowl", "flag": True, "none": None, "list": [1, -2, 2.5],
       "policy_timing": {"infer_ms": 12.375}, "server_timing": {"infer_ms": 13.5, "prev_total_ms": 40.125}}
out["hex"] = packb(msg).hex()
r = msgpack.unpackb(bytes.fromhex(inp["ours"]), object_hook=unpack_array)
out["roundtrip"] = {"shape": list(r["actions"].shape), "dtype": r["actions"].dtype.str, "actions": r["actions"].ravel().tolist(), "writeable": bool(r["actions"].flags.writeable)}
`, { actions: Array.from(actions), ours });
  assert.equal(ours, py.hex);
  assert.deepEqual(py.roundtrip.shape, [2, 7]);
  assert.equal(py.roundtrip.dtype, '<f8');
  assert.deepEqual(py.roundtrip.actions, Array.from(actions));
});

test('malformed frames and bad arrays are refused with a named error', () => {
  const kind = (frame: Uint8Array) => {
    try {
      decode(frame);
    } catch (e) {
      assert.ok(e instanceof OpenpiError, `not a OpenpiError: ${e}`);
      return `${e.kind}: ${e.message}`;
    }
    return 'accepted';
  };
  const nd = (fields: Record<string, unknown>) => encode({ x: new Map<unknown, unknown>([[Buffer.from('__ndarray__'), true], ...Object.entries(fields).map(([k, v]) => [Buffer.from(k), v] as [unknown, unknown])]) });
  assert.match(kind(Buffer.from([0xc1])), /^MalformedMsgpack: unsupported msgpack value at the top level/); // 0xc1: never used
  assert.match(kind(Buffer.from([0x92, 0x01])), /^MalformedMsgpack: the frame is not valid msgpack/); // an array of 2 with 1 element
  assert.match(kind(encode({ a: 'x' }).subarray(0, 4)), /^MalformedMsgpack/);
  assert.match(kind(nd({ data: Buffer.alloc(3), dtype: '<f8', shape: [1] })), /^BadRequest: \/x: ndarray data has 3 bytes, shape \[1\] of <f8 needs 8/);
  assert.match(kind(nd({ data: Buffer.alloc(8), dtype: '|O', shape: [1] })), /^BadRequest: \/x: dtype "\|O" is not supported/);
  assert.match(kind(nd({ data: Buffer.alloc(8), dtype: '<f8', shape: [-1] })), /^BadRequest: \/x: shape \[-1\] is not a list/);
  assert.match(kind(nd({ data: 'text', dtype: '<f8', shape: [1] })), /^BadRequest: \/x: ndarray 'data' must be bytes/);
  let deep: unknown = 1;
  for (let i = 0; i < 60; i++) deep = [deep];
  assert.match(kind(encode(deep)), /^MalformedMsgpack: nesting deeper than 32/);
  assert.match(kind(encode(new Map([[7, 'int key']]))), /^MalformedMsgpack: a map key at the top level is a number/);
  // A "__proto__" key is an own property of the decoded map, never the prototype.
  const got = decode(encode(new Map([['__proto__', { polluted: true }]]))) as Record<string, unknown>;
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  assert.deepEqual(Object.getOwnPropertyDescriptor(got, '__proto__')?.value, { polluted: true });
});

// Checkpoint IO, part 1: the hub fixtures (.bin and safetensors), safetensors files written by the
// Python package and read back by it, data beyond 4 GB, and bad safetensors input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, openSync, readFileSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { N } from '../src/engine/native.js';
import { fixture } from './helpers/fixtures.js';
import { runPython, tempDir } from './helpers/python.js';

const BIN = fixture('rdt', 'tiny_a.hub-bf16', 'pytorch_model.bin');
const BF16 = fixture('rdt', 'tiny_a.weights.bf16.safetensors');
const F32 = fixture('rdt', 'tiny_a.weights.f32.safetensors');
const MANIFEST = fixture('rdt', 'tiny_a.manifest.json');

/** Raw bytes of a tensor's elements, for bit-exact comparison. */
function bytesOf(t: torch.Tensor): Buffer {
  const d = t.data();
  return Buffer.from(d.buffer, d.byteOffset, d.byteLength);
}

function disposeAll(m: Map<unknown, torch.Tensor>): void {
  for (const t of m.values()) t.dispose();
}

test('hub fixture: pytorch_model.bin and the bf16 safetensors hold the same 114 bf16 tensors', () => {
  const live = torch.liveTensors();
  const manifest = JSON.parse(readFileSync(MANIFEST, 'utf8')) as { state_dict: [string, number[]][] };
  const stateDictOrder = manifest.state_dict.map(([k]) => k);

  let t0 = performance.now();
  const ckpt = torch.loadTorchCheckpoint(BIN);
  const binMs = performance.now() - t0;
  const bin = torch.stateDictFrom(ckpt, BIN);
  t0 = performance.now();
  const { tensors: st, metadata } = torch.loadSafetensors(BF16);
  const stMs = performance.now() - t0;
  console.log(`# load times: pytorch_model.bin ${binMs.toFixed(1)} ms, bf16 safetensors ${stMs.toFixed(1)} ms (114 tensors, 1.8 MB)`);

  assert.equal(bin.size, 114);
  assert.equal(st.size, 114);
  // The .bin keeps the state-dict order. The safetensors file was written by the Python package,
  // which sorts tensors by dtype and name, and loadSafetensors returns header order: so the key
  // sets are equal and each file's order is its own writer's.
  assert.deepEqual([...bin.keys()], stateDictOrder);
  assert.deepEqual([...st.keys()], [...stateDictOrder].sort());
  assert.deepEqual(new Set(st.keys()), new Set(bin.keys()));
  assert.deepEqual(metadata, { format: 'pt' });

  for (const [k, shape] of manifest.state_dict) {
    const a = bin.get(k)!;
    const b = st.get(k)!;
    assert.equal(a.dtype, 'bfloat16', k);
    assert.equal(b.dtype, 'bfloat16', k);
    assert.deepEqual(a.shape, shape, k);
    assert.deepEqual(b.shape, shape, k);
    assert.ok(bytesOf(a).equals(bytesOf(b)), `${k}: .bin and safetensors values differ`);
  }

  // Both equal the float32 weights rounded to bf16 (round to nearest even).
  const { tensors: f32 } = torch.loadSafetensors(F32);
  assert.equal(f32.size, 114);
  for (const [k, t] of f32) {
    assert.equal(t.dtype, 'float32');
    const rounded = t.to('bfloat16');
    assert.ok(bytesOf(rounded).equals(bytesOf(bin.get(k)!)), `${k}: .bin differs from the f32 weights rounded to bf16`);
    rounded.dispose();
  }

  // The state dict's _metadata attribute (restored by BUILD) survives as an attribute, not a key.
  const attrs = torch.pickleAttributes(ckpt as object);
  const meta = attrs?.get('_metadata') as Map<string, Map<string, number>> | undefined;
  assert.ok(meta instanceof Map, '_metadata attribute restored');
  assert.equal(meta.get('')?.get('version'), 1);

  disposeAll(bin);
  disposeAll(st);
  disposeAll(f32);
  assert.equal(torch.liveTensors(), live, 'no tensor left behind');
});

test('loadSafetensors options: keys subset, floating dtype cast, header info', () => {
  const live = torch.liveTensors();
  const header = torch.readSafetensorsHeader(BF16);
  const first = header.tensors.get('model.x_pos_embed')!;
  assert.deepEqual(first.shape, [1, 67, 128]);
  assert.equal(first.dtype, 'bfloat16');
  assert.equal(first.offsets[1] - first.offsets[0], 67 * 128 * 2);
  assert.equal(first.byteOffset, header.dataStart + first.offsets[0]);

  const keys = ['model.x_pos_embed', 'lang_adaptor.0.bias'];
  const { tensors } = torch.loadSafetensors(BF16, { keys, dtype: 'float32' });
  assert.deepEqual([...tensors.keys()], [...keys].sort());
  const { tensors: ref } = torch.loadSafetensors(F32, { keys: ['model.x_pos_embed'] });
  const x = tensors.get('model.x_pos_embed')!;
  assert.equal(x.dtype, 'float32');
  torch.scope(() => {
    const back = ref.get('model.x_pos_embed')!.to('bfloat16').to('float32');
    assert.ok(bytesOf(x).equals(bytesOf(back)));
  });
  disposeAll(tensors);
  disposeAll(ref);
  assert.throws(() => torch.loadSafetensors(BF16, { keys: ['no.such.key'] }), (e: Error) =>
    e instanceof torch.CheckpointError && e.message.includes(BF16) && e.message.includes("'no.such.key'"));
  assert.equal(torch.liveTensors(), live);
});

const PY_DTYPES = `
import torch
DT = {'float32': torch.float32, 'float64': torch.float64, 'bfloat16': torch.bfloat16, 'float16': torch.float16,
      'int64': torch.int64, 'int32': torch.int32, 'int16': torch.int16, 'int8': torch.int8, 'uint8': torch.uint8,
      'bool': torch.bool}
NAME = {v: k for k, v in DT.items()}
def desc(t):
    return {'dtype': NAME[t.dtype], 'shape': list(t.shape), 'values': t.double().flatten().tolist()}
`;

test('safetensors written by Python (all 10 dtypes, metadata) load equal', () => {
  const { dir, cleanup } = tempDir('st-py');
  try {
    const file = join(dir, 'py.safetensors');
    const out = runPython(`${PY_DTYPES}
import sys, json
from safetensors.torch import save_file
g = torch.Generator().manual_seed(7)
ts = {}
for i, (name, dt) in enumerate(DT.items()):
    if dt.is_floating_point:
        t = torch.randn(3, 5, generator=g).to(dt)
    elif dt == torch.bool:
        t = torch.rand(3, 5, generator=g) > 0.5
    else:
        t = torch.randint(-100 if dt != torch.uint8 else 0, 100, (3, 5), generator=g).to(dt)
    ts['t.' + name] = t
ts['scalar'] = torch.tensor(2.5)
ts['empty'] = torch.zeros(0, 4)
ts['big64'] = torch.tensor([2**52 + 1, -(2**40)], dtype=torch.int64)
save_file(ts, sys.argv[1], metadata={'format': 'pt', 'note': 'caf\\u00e9 "quoted"\\n'})
print(json.dumps({k: desc(v) for k, v in ts.items()}))
`, file);
    const want = JSON.parse(out) as Record<string, { dtype: torch.DType; shape: number[]; values: number[] }>;
    const { tensors, metadata } = torch.loadSafetensors(file);
    assert.deepEqual(metadata, { format: 'pt', note: 'café "quoted"\n' });
    assert.deepEqual(new Set(tensors.keys()), new Set(Object.keys(want)));
    for (const [k, w] of Object.entries(want)) {
      const t = tensors.get(k)!;
      assert.equal(t.dtype, w.dtype, k);
      assert.deepEqual(t.shape, w.shape, k);
      assert.deepEqual(Array.from(t.toFloat64()), w.values, k);
    }
    disposeAll(tensors);
  } finally {
    cleanup();
  }
});

test('saveSafetensors output loads in Python and is byte-identical to safetensors.torch.save_file', () => {
  const { dir, cleanup } = tempDir('st-save');
  const live = torch.liveTensors();
  try {
    const ours = join(dir, 'ours.safetensors');
    const theirs = join(dir, 'theirs.safetensors');
    const flat = torch.scope(() => torch.arange(0, 24, 1, { dtype: 'float32' }).div(7));
    const base = new torch.Tensor(N.storageView(flat.h, [4, 6], [6, 1], 0));
    const transposed = new torch.Tensor(N.storageView(flat.h, [6, 4], [1, 6], 0));
    assert.equal(transposed.isContiguous(), false);
    const tensors = new Map<string, torch.Tensor>([
      ['w.f32', base],
      ['w.f64', base.to('float64')],
      ['w.bf16', base.to('bfloat16')],
      ['w.f16', base.to('float16')],
      ['i.i64', torch.tensor(new BigInt64Array([1n, -(2n ** 40n), 2n ** 52n + 3n]))],
      ['i.i32', torch.tensor(new Int32Array([7, -8, 2 ** 30]))],
      ['i.i16', torch.tensor(new Int16Array([-300, 300]))],
      ['i.i8', torch.tensor(new Int8Array([-128, 127]))],
      ['i.u8', torch.tensor(new Uint8Array([0, 255, 9]))],
      ['mask', torch.tensor([true, false, true])],
      ['scalar', torch.scalarTensor(1.25)],
      ['empty', torch.zeros([0, 3])],
      ['transposed', transposed], // non-contiguous: written in row-major order of the view
      ['a.name with "quotes"', torch.ones([2])],
    ]);
    torch.saveSafetensors(ours, tensors, { format: 'pt' });
    assert.ok(statSync(ours).isFile());
    const out = runPython(`${PY_DTYPES}
import sys, json
from safetensors.torch import load_file, save_file
from safetensors import safe_open
ts = load_file(sys.argv[1])
with safe_open(sys.argv[1], 'pt') as f:
    meta = f.metadata()
save_file(ts, sys.argv[2], metadata=meta)
print(json.dumps({'meta': meta, 'tensors': {k: desc(v) for k, v in ts.items()}}))
`, ours, theirs);
    const got = JSON.parse(out) as { meta: Record<string, string>; tensors: Record<string, { dtype: string; shape: number[]; values: number[] }> };
    assert.deepEqual(got.meta, { format: 'pt' });
    assert.deepEqual(new Set(Object.keys(got.tensors)), new Set(tensors.keys()));
    for (const [k, t] of tensors) {
      const g = got.tensors[k];
      assert.equal(g.dtype, t.dtype, k);
      assert.deepEqual(g.shape, t.shape, k);
      assert.deepEqual(g.values, Array.from(t.toFloat64()), k);
    }
    assert.ok(readFileSync(ours).equals(readFileSync(theirs)), 'our bytes equal the Python package\'s bytes');

    // 'given' order keeps the Map's order; the file still loads, in that order.
    torch.saveSafetensors(ours, tensors, null, { order: 'given' });
    const { tensors: back, metadata } = torch.loadSafetensors(ours);
    assert.deepEqual([...back.keys()], [...tensors.keys()]);
    assert.deepEqual(metadata, {});
    for (const [k, t] of tensors) assert.ok(bytesOf(back.get(k)!).equals(bytesOf(t)), k);
    disposeAll(back);
    disposeAll(tensors);
    flat.dispose();
    assert.equal(torch.liveTensors(), live);
  } finally {
    cleanup();
  }
});

test('safetensors data beyond 4 GB (sparse file) read correctly', () => {
  const { dir, cleanup } = tempDir('st-4g');
  try {
    const file = join(dir, 'big.safetensors');
    const pad = 2 ** 32 + 13; // a uint8 filler covering the hole, so the tail starts past 4 GiB, unaligned
    const header = JSON.stringify({
      __metadata__: { kind: 'sparse' },
      pad: { dtype: 'U8', shape: [pad], data_offsets: [0, pad] },
      tail: { dtype: 'F32', shape: [2, 2], data_offsets: [pad, pad + 16] },
      tail64: { dtype: 'I64', shape: [1], data_offsets: [pad + 16, pad + 24] },
    });
    const h = Buffer.from(header.padEnd(Math.ceil(header.length / 8) * 8, ' '));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const dataStart = 8 + h.length;
    const fd = openSync(file, 'w');
    writeSync(fd, len, 0, 8, 0);
    writeSync(fd, h, 0, h.length, 8);
    const tail = Buffer.from(new Float32Array([1.5, -2, 3.25, 1e-3]).buffer);
    writeSync(fd, tail, 0, 16, dataStart + pad);
    const i64 = Buffer.alloc(8);
    i64.writeBigInt64LE(-(2n ** 50n) - 7n);
    writeSync(fd, i64, 0, 8, dataStart + pad + 16);
    closeSync(fd);
    assert.equal(statSync(file).size, dataStart + pad + 24);

    const hdr = torch.readSafetensorsHeader(file);
    assert.equal(hdr.tensors.get('tail')!.byteOffset, dataStart + pad);
    const { tensors, metadata } = torch.loadSafetensors(file, { keys: ['tail', 'tail64'] });
    assert.deepEqual(metadata, { kind: 'sparse' });
    assert.deepEqual(tensors.get('tail')!.shape, [2, 2]);
    assert.deepEqual(Array.from(tensors.get('tail')!.data() as Float32Array), [1.5, -2, 3.25, Math.fround(1e-3)]);
    assert.deepEqual(Array.from(tensors.get('tail64')!.data() as BigInt64Array), [-(2n ** 50n) - 7n]);
    disposeAll(tensors);

    // The native reader on its own: an offset past 4 GiB, and a short read naming path, offset and size.
    const direct = new torch.Tensor(N.fromFile(file, dataStart + pad, 6 /* float32 */, [4]));
    assert.deepEqual(Array.from(direct.data() as Float32Array), [1.5, -2, 3.25, Math.fround(1e-3)]);
    direct.dispose();
    assert.throws(() => N.fromFile(file, dataStart + pad + 16, 6, [4]),
      (e: Error) => e.message.includes(file) && e.message.includes('short read') && e.message.includes(`${dataStart + pad + 16}`) &&
        e.message.includes('16 bytes'));
    assert.throws(() => N.fromFile(join(dir, 'nope'), 0, 6, [1]), /nope: cannot open \(No such file/);
  } finally {
    cleanup();
  }
});

test('bad safetensors input: each error names the file (and key) and nothing leaks', () => {
  const { dir, cleanup } = tempDir('st-bad');
  const live = torch.liveTensors();
  const fails = (file: string, ...parts: (string | RegExp)[]) =>
    assert.throws(() => torch.loadSafetensors(file), (e: Error) => {
      assert.ok(e instanceof torch.CheckpointError, `CheckpointError, got ${e.name}: ${e.message}`);
      assert.ok(e.message.includes(file), `names the file: ${e.message}`);
      for (const p of parts) assert.ok(typeof p === 'string' ? e.message.includes(p) : p.test(e.message), `${p} in: ${e.message}`);
      return true;
    });
  const craft = (name: string, header: string, dataBytes: number) => {
    const h = Buffer.from(header);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    const p = join(dir, name);
    writeFileSync(p, Buffer.concat([len, h, Buffer.alloc(dataBytes)]));
    return p;
  };
  try {
    // Truncated: the last tensor's bytes are missing.
    const truncated = join(dir, 'truncated.safetensors');
    copyFileSync(BF16, truncated);
    truncateSync(truncated, statSync(BF16).size - 100);
    fails(truncated, 'truncated', '[state_adaptor.4.weight]');
    // Cut inside the header.
    const cutHeader = join(dir, 'cut-header.safetensors');
    writeFileSync(cutHeader, readFileSync(BF16).subarray(0, 500));
    fails(cutHeader, 'truncated');
    // Corrupt JSON.
    const corrupt = join(dir, 'corrupt.safetensors');
    const bytes = readFileSync(BF16);
    bytes[8 + 15] = 0x2c; // '{"__metadata__",{' instead of ':'
    writeFileSync(corrupt, bytes);
    fails(corrupt, 'not valid JSON');
    // Header length field absurd / larger than the file.
    assert.equal(torch.loadSafetensors(craft('empty.safetensors', '{}', 0)).tensors.size, 0); // valid, unpadded
    const huge = join(dir, 'huge.safetensors');
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(2n ** 62n);
    writeFileSync(huge, b);
    fails(huge, 'header length');
    // Offsets out of range of the file.
    fails(craft('range.safetensors', '{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"v":{"dtype":"F32","shape":[1000],"data_offsets":[16,4016]}}', 16),
      '[v]', 'file has 16');
    // Shape x dtype does not match the span.
    fails(craft('span.safetensors', '{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}}', 16), '[w]', 'needs 12 bytes');
    // Gap and overlap.
    fails(craft('gap.safetensors', '{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}', 6), '[b]', 'gap');
    fails(craft('overlap.safetensors', '{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}', 4), 'overlap');
    // Unknown dtype, bad shape.
    fails(craft('dtype.safetensors', '{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}', 8), '[a]', 'C64');
    fails(craft('shape.safetensors', '{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}', 1), '[a]', 'shape');
    // Missing file and a directory.
    fails(join(dir, 'missing.safetensors'), 'file not found');
    fails(dir, 'directory');
    assert.equal(torch.liveTensors(), live, 'no tensor left behind by failed loads');
  } finally {
    cleanup();
  }
});

// Checkpoint IO, part 2: PyTorch zip checkpoints written by torch.save in Python (several dtypes,
// views with offsets and strides, shared storages, DeepSpeed-style wrappers, pickle protocols 2/4/5,
// deflated entries, other archive names), zip64 archives beyond 4 GB, and bad or hostile files.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, existsSync, openSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import * as torch from '../src/engine/index.js';
import { N } from '../src/engine/native.js';
import { ReadableFile } from '../src/engine/io/file.js';
import { ZipReader } from '../src/engine/io/zip.js';
import { runPython, tempDir } from './helpers/python.js';

type Desc = { dtype: torch.DType; shape: number[]; stride: number[]; offset: number; values: number[] };

// One Python run writes every file the tests below read, and describes what it wrote.
const GEN = `
import sys, os, json, struct, zipfile, collections, torch
d = sys.argv[1]
DT = {'float32': torch.float32, 'float64': torch.float64, 'bfloat16': torch.bfloat16, 'float16': torch.float16,
      'int64': torch.int64, 'int32': torch.int32, 'int16': torch.int16, 'int8': torch.int8, 'uint8': torch.uint8,
      'bool': torch.bool}
NAME = {v: k for k, v in DT.items()}
def desc(t):
    return {'dtype': NAME[t.dtype], 'shape': list(t.shape), 'stride': list(t.stride()), 'offset': t.storage_offset(),
            'values': t.detach().double().flatten().tolist()}
g = torch.Generator().manual_seed(3)
mixed = {}
for name, dt in DT.items():
    if dt.is_floating_point:
        mixed['t.' + name] = torch.randn(3, 4, generator=g).to(dt)
    elif dt == torch.bool:
        mixed['t.' + name] = torch.rand(3, 4, generator=g) > 0.5
    else:
        lo = 0 if dt == torch.uint8 else -100
        mixed['t.' + name] = torch.randint(lo, 100, (3, 4), generator=g).to(dt)
big = torch.randn(6, 8, generator=g)
mixed['row0'] = big[0]                 # these three share one storage
mixed['slice'] = big[1:4, 2:7]         # storage offset 10, stride (8, 1)
mixed['slice_t'] = big[2:5, 1:3].t()   # non-contiguous view
mixed['scalar'] = torch.tensor(3.5, dtype=torch.float64)
mixed['empty'] = torch.zeros(0, 5)
mixed['param'] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
mixed['i64.extreme'] = torch.tensor([2**53 - 1, -(2**53) + 1])
torch.save(mixed, os.path.join(d, 'mixed.pt'))
torch.save(mixed, os.path.join(d, 'proto4.pt'), pickle_protocol=4)
torch.save(mixed, os.path.join(d, 'proto5.pt'), pickle_protocol=5)

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
model.register_buffer('steps', torch.tensor([7]))
sd = model.state_dict()
ds = {'module': sd, 'buffer_names': ['steps'], 'optimizer': None,
      'param_shapes': [collections.OrderedDict((k, v.shape) for k, v in sd.items())],
      'frozen_param_shapes': None, 'shared_params': {}, 'lr_scheduler': None,
      'sparse_tensor_module_names': set(), 'skipped_steps': 0, 'global_steps': 120, 'global_samples': 3840,
      'dp_world_size': 1, 'mp_world_size': 1, 'ds_config': {'train_batch_size': 32, 'bf16': {'enabled': True}, 'lr': 1e-4},
      'ds_version': '0.14.0', 'huge': 2**70, 'neg': -5, 'raw': b'\\x00\\x01\\xff', 'pi': 3.25, 'flags': (True, False, None)}
os.makedirs(os.path.join(d, 'global_step120'))
torch.save(ds, os.path.join(d, 'global_step120', 'mp_rank_00_model_states.pt'))
torch.save({'state_dict': sd, 'epoch': 3}, os.path.join(d, 'lightning.ckpt'))
torch.save(sd, os.path.join(d, 'legacy.pt'), _use_new_zipfile_serialization=False)
torch.save({'w': torch.arange(6.).reshape(2, 3) / 4}, os.path.join(d, 'small.pt'))

# The same archive, deflated, under another record name, without the optional small entries.
optional = ('byteorder', 'version', '.format_version', '.storage_alignment', '.data/serialization_id')
with zipfile.ZipFile(os.path.join(d, 'mixed.pt')) as zi, \\
     zipfile.ZipFile(os.path.join(d, 'deflated.pt'), 'w', zipfile.ZIP_DEFLATED) as zo:
    for info in zi.infolist():
        rest = info.filename.split('/', 1)[1]
        if rest not in optional:
            zo.writestr('some_other_name/' + rest, zi.read(info.filename))

# Hostile and broken pickles in torch-like archives.
def torch_zip(name, pkl):
    with zipfile.ZipFile(os.path.join(d, name), 'w') as z:
        z.writestr('archive/data.pkl', pkl)
        z.writestr('archive/version', '3\\n')
marker = os.path.join(d, 'pwned')
cmd = ('touch ' + marker).encode()
torch_zip('os_system.pt', b'\\x80\\x02cos\\nsystem\\nq\\x00X' + struct.pack('<I', len(cmd)) + cmd + b'\\x85R.')
code = b'open(' + repr(marker).encode() + b', "w")'
torch_zip('eval.pt', b'\\x80\\x04\\x8c\\x08builtins\\x94\\x8c\\x04eval\\x94\\x93\\x94\\x8c' + bytes([len(code)]) + code + b'\\x94\\x85\\x94R\\x94.')
torch_zip('inst.pt', b'\\x80\\x02(X' + struct.pack('<I', len(cmd)) + cmd + b'ios\\nsystem\\n.')
torch.save({'w': torch.ones(2), 'counts': collections.Counter(a=1)}, os.path.join(d, 'counter.pt'))
with zipfile.ZipFile(os.path.join(d, 'small.pt')) as z:
    pkl = z.read('small/data.pkl')
torch_zip('cut_pickle.pt', pkl[:40])

out = {'mixed': {k: desc(v) for k, v in mixed.items()}, 'sd': {k: desc(v) for k, v in sd.items()},
       'param_shapes': {k: list(v.shape) for k, v in sd.items()}}
print(json.dumps(out))
`;

let dir = '';
let cleanup = () => {};
let want: { mixed: Record<string, Desc>; sd: Record<string, Desc>; param_shapes: Record<string, number[]> };

before(() => {
  ({ dir, cleanup } = tempDir('torch-ckpt'));
  want = JSON.parse(runPython(GEN, dir));
});
after(() => cleanup());

function checkTensor(t: unknown, w: Desc, what: string): void {
  assert.ok(t instanceof torch.Tensor, `${what} is a Tensor`);
  assert.equal(t.dtype, w.dtype, `${what} dtype`);
  assert.deepEqual(t.shape, w.shape, `${what} shape`);
  assert.deepEqual(Array.from(t.toFloat64()), w.values, `${what} values`);
}

function checkMixed(file: string): void {
  const live = torch.liveTensors();
  const value = torch.loadTorchCheckpoint(file);
  assert.ok(value instanceof Map, 'a dict comes back as a Map');
  const sd = torch.stateDictFrom(value, file);
  assert.deepEqual([...sd.keys()], Object.keys(want.mixed), 'keys in the file\'s order');
  for (const [k, w] of Object.entries(want.mixed)) {
    const t = sd.get(k)!;
    checkTensor(t, w, `${file} ${k}`);
    // Views keep PyTorch's layout: the same strides over the same storage.
    assert.deepEqual(t.stride(), w.stride, `${k} stride`);
  }
  // row0, slice and slice_t are views of one storage, as in Python.
  const ptr = (k: string) => N.dataPtr(sd.get(k)!.h) as number;
  assert.equal(ptr('slice') - ptr('row0'), want.mixed.slice.offset * 4);
  assert.equal(ptr('slice_t') - ptr('row0'), want.mixed.slice_t.offset * 4);
  assert.equal(sd.get('slice_t')!.isContiguous(), false);
  for (const t of sd.values()) t.dispose();
  assert.equal(torch.liveTensors(), live, 'every storage handle was released');
}

test('torch.save dicts of every dtype, views, shared storages load equal (protocol 2)', () => {
  checkMixed(join(dir, 'mixed.pt'));
});

test('pickle protocols 4 and 5 (FRAME, MEMOIZE, STACK_GLOBAL) load equal', () => {
  checkMixed(join(dir, 'proto4.pt'));
  checkMixed(join(dir, 'proto5.pt'));
});

test('deflated entries, another record name, no optional entries', () => {
  checkMixed(join(dir, 'deflated.pt'));
});

test('DeepSpeed mp_rank_00_model_states.pt: the module dict and the other values', () => {
  const file = join(dir, 'global_step120', 'mp_rank_00_model_states.pt');
  const ck = torch.loadTorchCheckpoint(file) as Map<string, unknown>;
  const sd = torch.stateDictFrom(ck, file);
  assert.deepEqual([...sd.keys()], Object.keys(want.sd));
  for (const [k, w] of Object.entries(want.sd)) checkTensor(sd.get(k), w, k);
  assert.ok(torch.pickleAttributes(ck.get('module') as object)?.get('_metadata') instanceof Map);
  const shapes = (ck.get('param_shapes') as Map<string, number[]>[])[0];
  assert.deepEqual(Object.fromEntries(shapes), want.param_shapes);
  assert.equal(ck.get('global_steps'), 120);
  assert.equal(ck.get('optimizer'), null);
  assert.equal(ck.get('ds_version'), '0.14.0');
  assert.equal(ck.get('huge'), 2n ** 70n);
  assert.equal(ck.get('neg'), -5);
  assert.equal(ck.get('pi'), 3.25);
  assert.deepEqual(ck.get('flags'), [true, false, null]);
  assert.deepEqual(Array.from(ck.get('raw') as Uint8Array), [0, 1, 255]);
  assert.deepEqual(ck.get('sparse_tensor_module_names'), new Set());
  const cfg = ck.get('ds_config') as Map<string, unknown>;
  assert.equal(cfg.get('lr'), 1e-4);
  assert.equal((cfg.get('bf16') as Map<string, unknown>).get('enabled'), true);
  for (const t of sd.values()) t.dispose();

  const lightning = torch.stateDictFrom(torch.loadTorchCheckpoint(join(dir, 'lightning.ckpt')));
  assert.deepEqual([...lightning.keys()], Object.keys(want.sd));
  for (const t of lightning.values()) t.dispose();
});

test('stateDictFrom refuses values that are not tensors, naming them', () => {
  const t = torch.ones([1]);
  assert.throws(() => torch.stateDictFrom(new Map<string, unknown>([['w', t], ['step', 3]]), 'x.pt'),
    (e: Error) => e instanceof torch.CheckpointError && /x\.pt/.test(e.message) && /step/.test(e.message));
  assert.equal(torch.stateDictFrom({ w: t }).get('w'), t);
  t.dispose();
});

// ---- zip64: an archive whose storage lies past 4 GiB (sparse), written here ----

function crc32(b: Buffer): number {
  const z = zlib as unknown as { crc32?: (b: Buffer) => number };
  if (z.crc32) return z.crc32(b);
  let c = ~0;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** Write a zip64 archive with stored entries at the given offsets (holes stay sparse). */
function writeZip64(path: string, entries: { name: string; data: Buffer; at: number }[]): void {
  const fd = openSync(path, 'w');
  const cds: Buffer[] = [];
  let end = 0;
  for (const e of entries) {
    const name = Buffer.from(e.name);
    const crc = crc32(e.data);
    const extra = Buffer.alloc(20);
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(16, 2);
    extra.writeBigUInt64LE(BigInt(e.data.length), 4);
    extra.writeBigUInt64LE(BigInt(e.data.length), 12);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0);
    lh.writeUInt16LE(45, 4);
    lh.writeUInt32LE(crc, 14);
    lh.writeUInt32LE(0xffffffff, 18);
    lh.writeUInt32LE(0xffffffff, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(extra.length, 28);
    const local = Buffer.concat([lh, name, extra, e.data]);
    writeSync(fd, local, 0, local.length, e.at);
    end = Math.max(end, e.at + local.length);
    const cx = Buffer.alloc(28);
    cx.writeUInt16LE(1, 0);
    cx.writeUInt16LE(24, 2);
    cx.writeBigUInt64LE(BigInt(e.data.length), 4);
    cx.writeBigUInt64LE(BigInt(e.data.length), 12);
    cx.writeBigUInt64LE(BigInt(e.at), 20);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0);
    ch.writeUInt16LE(45, 4);
    ch.writeUInt16LE(45, 6);
    ch.writeUInt32LE(crc, 16);
    ch.writeUInt32LE(0xffffffff, 20);
    ch.writeUInt32LE(0xffffffff, 24);
    ch.writeUInt16LE(name.length, 28);
    ch.writeUInt16LE(cx.length, 30);
    ch.writeUInt32LE(0xffffffff, 42);
    cds.push(Buffer.concat([ch, name, cx]));
  }
  const cd = Buffer.concat(cds);
  const cdAt = end;
  const z64 = Buffer.alloc(56);
  z64.writeUInt32LE(0x06064b50, 0);
  z64.writeBigUInt64LE(44n, 4);
  z64.writeUInt16LE(45, 12);
  z64.writeUInt16LE(45, 14);
  z64.writeBigUInt64LE(BigInt(entries.length), 24);
  z64.writeBigUInt64LE(BigInt(entries.length), 32);
  z64.writeBigUInt64LE(BigInt(cd.length), 40);
  z64.writeBigUInt64LE(BigInt(cdAt), 48);
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  loc.writeBigUInt64LE(BigInt(cdAt + cd.length), 8);
  loc.writeUInt32LE(1, 16);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(0xffff, 8);
  eocd.writeUInt16LE(0xffff, 10);
  eocd.writeUInt32LE(0xffffffff, 12);
  eocd.writeUInt32LE(0xffffffff, 16);
  const tail = Buffer.concat([cd, z64, loc, eocd]);
  writeSync(fd, tail, 0, tail.length, cdAt);
  closeSync(fd);
}

test('zip64 checkpoint with its storage past 4 GiB (sparse file) loads', () => {
  const small = join(dir, 'small.pt');
  const f = new ReadableFile(small);
  const zip = new ZipReader(f);
  const pkl = zip.read(zip.byName.get('small/data.pkl')!);
  const data = zip.read(zip.byName.get('small/data/0')!);
  f.close();
  const big = join(dir, 'zip64.pt');
  const at = 2 ** 32 + 2 ** 30 + 7;
  writeZip64(big, [
    { name: 'small/data.pkl', data: pkl, at: 0 },
    { name: 'small/version', data: Buffer.from('3\n'), at: 8192 },
    { name: 'small/data/0', data, at },
  ]);
  assert.ok(statSync(big).size > at);
  // The crafted archive is a valid zip64 torch checkpoint by Python's own readers.
  const py = runPython(`
import sys, zipfile, torch
z = zipfile.ZipFile(sys.argv[1])
assert z.testzip() is None
assert z.getinfo('small/data/0').header_offset > 2**32
print(torch.load(sys.argv[1])['w'].flatten().tolist())
`, big);
  assert.deepEqual(JSON.parse(py), [0, 0.25, 0.5, 0.75, 1, 1.25]);
  const sd = torch.stateDictFrom(torch.loadTorchCheckpoint(big), big);
  assert.deepEqual(sd.get('w')!.shape, [2, 3]);
  assert.deepEqual(Array.from(sd.get('w')!.toFloat64()), [0, 0.25, 0.5, 0.75, 1, 1.25]);
  sd.get('w')!.dispose();
});

// ---- bad input ----

function failsWith(file: string, ...parts: (string | RegExp)[]): void {
  assert.throws(() => torch.loadTorchCheckpoint(file), (e: Error) => {
    assert.ok(e instanceof torch.CheckpointError, `CheckpointError, got ${e.name}: ${e.message}`);
    assert.ok(e.message.includes(file), `names the file: ${e.message}`);
    for (const p of parts) assert.ok(typeof p === 'string' ? e.message.includes(p) : p.test(e.message), `${p} in: ${e.message}`);
    return true;
  });
}

test('hostile pickles are refused by name and never run', () => {
  const live = torch.liveTensors();
  failsWith(join(dir, 'os_system.pt'), 'global os.system is not allowed', 'GLOBAL');
  failsWith(join(dir, 'eval.pt'), 'global builtins.eval is not allowed', 'STACK_GLOBAL');
  failsWith(join(dir, 'inst.pt'), 'INST');
  failsWith(join(dir, 'counter.pt'), 'collections.Counter');
  assert.equal(existsSync(join(dir, 'pwned')), false, 'no code ran');
  assert.equal(torch.liveTensors(), live, 'the tensor loaded before the refusal was released');
});

test('truncated, legacy, missing and foreign files fail with the file named', () => {
  const live = torch.liveTensors();
  const cut = join(dir, 'truncated.pt');
  copyFileSync(join(dir, 'mixed.pt'), cut);
  truncateSync(cut, Math.floor(statSync(cut).size / 2));
  failsWith(cut, 'truncated');
  failsWith(join(dir, 'cut_pickle.pt'), 'data.pkl', 'truncated');
  failsWith(join(dir, 'legacy.pt'), 'legacy');
  failsWith(join(dir, 'missing.pt'), 'file not found');
  const empty = join(dir, 'empty.pt');
  truncateSync(cut, 0);
  copyFileSync(cut, empty);
  failsWith(empty, 'not a zip');
  // A safetensors file handed to the .bin loader says what it is.
  const st = join(dir, 'x.safetensors');
  const w = torch.ones([2]);
  torch.saveSafetensors(st, { w });
  w.dispose();
  failsWith(st, 'loadSafetensors');
  // A storage entry cut short inside an otherwise valid archive.
  const shortData = join(dir, 'short-data.pt');
  const f = new ReadableFile(join(dir, 'small.pt'));
  const pkl = new ZipReader(f).read(new ZipReader(f).byName.get('small/data.pkl')!);
  f.close();
  writeZip64(shortData, [
    { name: 'small/data.pkl', data: pkl, at: 0 },
    { name: 'small/data/0', data: Buffer.alloc(8), at: 4096 },
  ]);
  failsWith(shortData, 'small/data/0', '8 bytes');
  assert.equal(torch.liveTensors(), live);
});

// ---- the pickle VM on its own ----

test('pickle VM: plain values under protocols 2-5 and the MARK-based DICT/LIST/TUPLE forms', async () => {
  const { unpickle } = await import('../src/engine/io/pickle.js');
  const out = runPython(`
import pickle, json, sys
value = {'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**40, -2**52], 'f': [0.5, -1e300, 3.0],
         'nested': {'a': [[], [1, [2, [3]]]], 'b': (1, 'two', None, True, False)}, 'u': 'caf\\u00e9 \\u2603 ' + 'x' * 300,
         'empty': {}, 'tuple1': (7,), 'tuple3': (1, 2, 3), 'tuple4': (1, 2, 3, 4), 'list_big': list(range(1500))}
res = {}
for p in (2, 3, 4, 5):
    res[str(p)] = pickle.dumps(value, protocol=p).hex()
# Hand-made: MARK ... DICT and MARK ... LIST and LONG_BINPUT / LONG_BINGET (protocol 2 header).
res['mark_forms'] = (b'\\x80\\x02(X\\x01\\x00\\x00\\x00a(K\\x01K\\x02lr\\x05\\x00\\x00\\x00X\\x01\\x00\\x00\\x00bj\\x05\\x00\\x00\\x00d.').hex()
print(json.dumps({'pickles': res, 'value': value}))
`);
  const { pickles, value } = JSON.parse(out) as { pickles: Record<string, string>; value: unknown };
  const plain = (v: unknown): unknown =>
    v instanceof Map ? Object.fromEntries([...v].map(([k, x]) => [k, plain(x)])) : Array.isArray(v) ? v.map(plain) : v;
  const run = (hex: string) => unpickle(Buffer.from(hex, 'hex'), { file: 'mem.pkl', findGlobal: () => undefined });
  for (const p of ['2', '3', '4', '5']) assert.deepEqual(plain(run(pickles[p])), value, `protocol ${p}`);
  assert.deepEqual(plain(run(pickles.mark_forms)), { a: [1, 2], b: [1, 2] });
  // Refusals name the opcode and the file; a stream without STOP is reported as truncated.
  assert.throws(() => run('800263706f7369780a73797374656d0a'), /mem\.pkl.*global posix\.system is not allowed/);
  assert.throws(() => run('80024b01'), /mem\.pkl.*without a STOP.*truncated/);
  assert.throws(() => run('800230'), /mem\.pkl.*POP/);
  assert.throws(() => run('80026808'), /memo entry 8/);
});

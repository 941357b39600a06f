// PyTorch zip checkpoints (torch.save since 1.6): `pytorch_model.bin`, `.pt`, DeepSpeed
// `mp_rank_00_model_states.pt`. The archive holds `<prefix>/data.pkl`, a pickle whose tensors point
// at storages `<prefix>/data/<key>` (raw little-endian bytes). Storages are read from disk straight
// into tensor memory, once each, and tensors are strided views of them (shared storages stay shared,
// as with torch.load). The pickle runs in a VM with an allowlist: nothing in the file is executed.
import { N } from '../native.js';
import { DTYPE_BYTES, DTYPE_CODE, type DType } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { scope } from '../scope.js';
import { CheckpointError, messageOf } from './errors.js';
import { withFile } from './file.js';
import { PyCallable, unpickle } from './pickle.js';
import { ZipReader, type ZipEntry } from './zip.js';

/** A torch.*Storage class named in the pickle (e.g. `torch.BFloat16Storage`). */
class StorageType {
  constructor(readonly name: string, readonly dtype: DType) {}
}

/** A storage reference: the persistent id ('storage', type, key, location, numel) resolved lazily. */
class StorageRef {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number, readonly location: string) {}
}

const STORAGE_TYPES: Record<string, DType> = {
  FloatStorage: 'float32',
  DoubleStorage: 'float64',
  HalfStorage: 'float16',
  BFloat16Storage: 'bfloat16',
  LongStorage: 'int64',
  IntStorage: 'int32',
  ShortStorage: 'int16',
  CharStorage: 'int8',
  ByteStorage: 'uint8',
  BoolStorage: 'bool',
};

function isIntList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => Number.isSafeInteger(x));
}

function toMap(v: unknown, what: string): Map<unknown, unknown> {
  if (v instanceof Map) return new Map(v);
  if (Array.isArray(v)) {
    const m = new Map<unknown, unknown>();
    for (const pair of v) {
      if (!Array.isArray(pair) || pair.length !== 2) throw new Error(`${what} expects (key, value) pairs`);
      m.set(pair[0], pair[1]);
    }
    return m;
  }
  throw new Error(`${what} cannot be built from this argument`);
}

/**
 * Load a PyTorch zip checkpoint. Dicts come back as Maps (in the file's order), lists and tuples as
 * arrays, tensors as Tensor (on the CPU, whatever device they were saved from). Tensors created
 * here belong to the caller's current scope, like any factory's.
 */
export function loadTorchCheckpoint(path: string): unknown {
  return withFile(path, (f) => {
    const head = f.read(0, Math.min(9, f.size), 'file signature');
    if (head.length < 4 || head.readUInt32LE(0) !== 0x04034b50) {
      if (head.length === 9 && head[8] === 0x7b && head.readBigUInt64LE(0) < BigInt(f.size))
        throw new CheckpointError(path, 'this is a safetensors file, not a PyTorch zip checkpoint: load it with loadSafetensors');
      // A bare pickle (PROTO opcode first) is torch.save(..., _use_new_zipfile_serialization=False).
      throw new CheckpointError(path, head[0] === 0x80
        ? 'this is a legacy (pre-1.6, non-zip) torch.save file, which is not supported; re-save it with a current ' +
          'torch.save (the default zip format) or convert it to safetensors'
        : 'not a zip-format PyTorch checkpoint (no zip signature at byte 0); the file is corrupt or of another format');
    }
    const zip = new ZipReader(f);
    // The record prefix is the folder holding data.pkl (the archive name torch.save chose); any name works.
    const pkls = zip.entries.filter((e) => /^([^/]+\/)?data\.pkl$/.test(e.name));
    if (pkls.length !== 1)
      throw new CheckpointError(path, pkls.length === 0
        ? 'no data.pkl in the archive: not a torch.save checkpoint (a TorchScript or other zip?)'
        : `several data.pkl entries (${pkls.map((e) => e.name).join(', ')}); expected one torch.save record`);
    const prefix = pkls[0].name.slice(0, -'data.pkl'.length);
    const byteorder = zip.byName.get(`${prefix}byteorder`);
    if (byteorder && zip.read(byteorder).toString('latin1').trim() !== 'little')
      throw new CheckpointError(path, 'the checkpoint was written on a big-endian machine; re-save it on a little-endian one ' +
        'or convert it to safetensors');
    const pickle = zip.read(pkls[0]);

    return scope(() => {
      const storages = new Map<string, { ref: StorageRef; tensor: Tensor }>();

      const loadStorage = (ref: StorageRef): Tensor => {
        const have = storages.get(ref.key);
        if (have) {
          if (have.ref.dtype !== ref.dtype)
            throw new CheckpointError(path, `storage '${ref.key}' is used as ${have.ref.dtype} and as ${ref.dtype}; ` +
              'reinterpreting storages is not supported');
          return have.tensor;
        }
        const name = `${prefix}data/${ref.key}`;
        const entry: ZipEntry | undefined = zip.byName.get(name);
        if (!entry) throw new CheckpointError(path, `the archive has no entry '${name}' for storage '${ref.key}' (corrupt or truncated checkpoint)`);
        zip.checkReadable(entry);
        const nbytes = ref.numel * DTYPE_BYTES[ref.dtype];
        if (entry.size < nbytes)
          throw new CheckpointError(path, `storage entry '${name}' holds ${entry.size} bytes but the pickle needs ${ref.numel} ` +
            `${ref.dtype} elements (${nbytes} bytes); the checkpoint is corrupt`);
        let t: Tensor;
        try {
          if (entry.method === 0) {
            t = new Tensor(N.fromFile(path, zip.dataOffset(entry), DTYPE_CODE[ref.dtype], [ref.numel]));
          } else {
            const raw = zip.read(entry);
            t = new Tensor(N.fromBytes(raw.subarray(0, nbytes), DTYPE_CODE[ref.dtype], [ref.numel]));
          }
        } catch (e) {
          if (e instanceof CheckpointError) throw e;
          throw new CheckpointError(path, `reading storage '${name}': ${messageOf(e)}`, { cause: e });
        }
        storages.set(ref.key, { ref, tensor: t });
        return t;
      };

      const rebuildTensor = new PyCallable('torch._utils._rebuild_tensor_v2', (args) => {
        const [storage, offset, size, stride] = args;
        if (!(storage instanceof StorageRef)) throw new Error('the first argument must be a storage');
        if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || !isIntList(size) || !isIntList(stride))
          throw new Error('storage offset, size and stride must be integers');
        const s = loadStorage(storage);
        try {
          return new Tensor(N.storageView(s.h, size, stride, offset));
        } catch (e) {
          throw new CheckpointError(path, `tensor over storage '${storage.key}': ${messageOf(e)} (corrupt checkpoint)`);
        }
      });

      const globals: Record<string, unknown> = {
        'collections.OrderedDict': new PyCallable('collections.OrderedDict', (a) => (a.length ? toMap(a[0], 'OrderedDict') : new Map())),
        'torch._utils._rebuild_tensor_v2': rebuildTensor,
        // A Parameter comes back as its data; requires_grad is a training-time choice of the caller.
        'torch._utils._rebuild_parameter': new PyCallable('torch._utils._rebuild_parameter', (a) => {
          if (!(a[0] instanceof Tensor)) throw new Error('the first argument must be a tensor');
          return a[0];
        }),
        'torch.Size': new PyCallable('torch.Size', (a) => {
          if (!isIntList(a[0] ?? [])) throw new Error('torch.Size takes a tuple of ints');
          return [...((a[0] as number[]) ?? [])];
        }),
        'torch.device': new PyCallable('torch.device', (a) => {
          if (typeof a[0] !== 'string') throw new Error('torch.device takes a string');
          return a.length > 1 && a[1] !== null ? `${a[0]}:${a[1]}` : a[0];
        }),
        'builtins.dict': new PyCallable('builtins.dict', (a) => (a.length ? toMap(a[0], 'dict') : new Map())),
        'builtins.list': new PyCallable('builtins.list', (a) => (a.length ? [...(a[0] as unknown[])] : [])),
        'builtins.tuple': new PyCallable('builtins.tuple', (a) => (a.length ? [...(a[0] as unknown[])] : [])),
        'builtins.set': new PyCallable('builtins.set', (a) => new Set(a.length ? (a[0] as unknown[]) : [])),
        'builtins.frozenset': new PyCallable('builtins.frozenset', (a) => new Set(a.length ? (a[0] as unknown[]) : [])),
        // Protocol 2 spells bytes as _codecs.encode(text, 'latin1').
        '_codecs.encode': new PyCallable('_codecs.encode', (a) => {
          if (typeof a[0] !== 'string' || !['latin1', 'latin-1'].includes(String(a[1])))
            throw new Error("only _codecs.encode(str, 'latin1') is accepted");
          return new Uint8Array(Buffer.from(a[0], 'latin1'));
        }),
      };
      for (const [cls, dtype] of Object.entries(STORAGE_TYPES)) globals[`torch.${cls}`] = new StorageType(cls, dtype);

      const findGlobal = (module: string, name: string): unknown => {
        const m = module === '__builtin__' ? 'builtins' : module;
        return Object.hasOwn(globals, `${m}.${name}`) ? globals[`${m}.${name}`] : undefined;
      };

      const persistentLoad = (pid: unknown): unknown => {
        if (!Array.isArray(pid) || pid[0] !== 'storage' || pid.length !== 5)
          throw new Error(`unsupported persistent id ${JSON.stringify(Array.isArray(pid) ? pid[0] : typeof pid)}; only tensor storages are expected`);
        const [, type, key, location, numel] = pid;
        if (!(type instanceof StorageType)) throw new Error('the storage type must be a torch.*Storage class');
        if (typeof key !== 'string' || !Number.isSafeInteger(numel) || (numel as number) < 0)
          throw new Error('malformed storage reference');
        return new StorageRef(key, type.dtype, numel as number, String(location));
      };

      return unpickle(pickle, { file: path, what: pkls[0].name, findGlobal, persistentLoad });
    });
  });
}

/**
 * The state dict inside a loaded checkpoint: a bare state dict, or a {"module": ...} (DeepSpeed) or
 * {"state_dict": ...} wrapper. Every value must be a tensor; the error names the ones that are not.
 */
export function stateDictFrom(value: unknown, file = '<checkpoint>'): Map<string, Tensor> {
  const entries = (v: unknown): [unknown, unknown][] | undefined =>
    v instanceof Map ? [...v.entries()]
      : v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype ? Object.entries(v)
        : undefined;
  let es = entries(value);
  if (!es) throw new CheckpointError(file, 'the checkpoint does not hold a dict, so it is not a state dict');
  for (const wrapper of ['module', 'state_dict']) {
    const inner = es.find(([k]) => k === wrapper)?.[1];
    if (inner !== undefined && entries(inner)) {
      es = entries(inner)!;
      break;
    }
  }
  const out = new Map<string, Tensor>();
  const bad: string[] = [];
  for (const [k, v] of es) {
    if (typeof k === 'string' && v instanceof Tensor) out.set(k, v);
    else bad.push(String(k));
  }
  if (bad.length)
    throw new CheckpointError(file, `not a state dict of tensors: ${bad.length} entries are not tensors ` +
      `(${bad.slice(0, 8).join(', ')}${bad.length > 8 ? ', ...' : ''}); pass the dict that holds the weights`);
  return out;
}

// Selective reading of a PyTorch zip checkpoint (`pytorch_model.bin`): the pickle is run once to learn
// every tensor's storage, offset, size and stride, but a storage is read from disk only for the keys
// asked for, each read and converted into its target dtype/device piece by piece. So loading T5-XXL's
// encoder from the ~45 GB float32 encoder-decoder file takes about the encoder's size in the target
// dtype plus a 4 MB read buffer, not the file. (The engine's loadTorchCheckpoint reads
// every storage; this reader uses its zip and pickle pieces with a lazy tensor.)
import { N } from '../engine/native.js';
import { Tensor, scope, type DType, type Device } from '../engine/index.js';
import { DTYPE_BYTES, DTYPE_CODE, isFloating } from '../engine/dtype.js';
import { withFile } from '../engine/io/file.js';
import { PyCallable, unpickle } from '../engine/io/pickle.js';
import { ZipReader, type ZipEntry } from '../engine/io/zip.js';
import { EncoderError } from './errors.js';

const STORAGE_TYPES: Record<string, DType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8', BoolStorage: 'bool',
};

class StorageType {
  constructor(readonly dtype: DType) {}
}
class StorageRef {
  constructor(readonly key: string, readonly dtype: DType, readonly numel: number) {}
}
/** Whether the tensor is a dense row-major block of its storage (what torch.save writes for a state dict). */
function isRowMajor(t: LazyTensor): boolean {
  let expect = 1;
  for (let d = t.size.length - 1; d >= 0; d--) {
    if (t.size[d] !== 1 && t.stride[d] !== expect) return false;
    expect *= t.size[d];
  }
  return t.offset + expect <= t.storage.numel;
}

/** A tensor known by its place in a storage, not yet read. */
class LazyTensor {
  constructor(readonly storage: StorageRef, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}

/** Every key of the checkpoint's state dict with its shape and dtype, without reading tensor data. */
export function listTorchBin(path: string): Map<string, { shape: number[]; dtype: DType }> {
  const { lazy } = parse(path);
  return new Map([...lazy].map(([k, t]) => [k, { shape: t.size, dtype: t.storage.dtype }]));
}

/**
 * Read the tensors whose keys `select` maps to a name (null skips), casting floating ones to dtype and
 * moving them to device one at a time. Returns them under the selected names.
 */
export function loadTorchBinSelected(path: string, select: (key: string) => string | null,
  opts: { dtype?: DType; device?: Device } = {}): Map<string, Tensor> {
  const { lazy, prefix } = parse(path);
  return withFile(path, (f) => {
    const zip = new ZipReader(f);
    return scope(() => {
      const jobs: { key: string; name: string; lt: LazyTensor; entry: ZipEntry; dtype: DType }[] = [];
      for (const [key, lt] of lazy) {
        const name = select(key);
        if (name === null) continue;
        const entryName = `${prefix}data/${lt.storage.key}`;
        const entry = zip.byName.get(entryName);
        if (!entry) throw new EncoderError(`${path} [${key}]: the archive has no entry '${entryName}' (truncated or corrupt checkpoint; download it again)`);
        zip.checkReadable(entry);
        if (entry.size < lt.storage.numel * DTYPE_BYTES[lt.storage.dtype])
          throw new EncoderError(`${path} [${key}]: storage '${entryName}' is shorter than its tensor (corrupt checkpoint)`);
        jobs.push({ key, name, lt, entry, dtype: opts.dtype && isFloating(lt.storage.dtype) ? opts.dtype : lt.storage.dtype });
      }
      const direct = (j: (typeof jobs)[number]) => j.entry.method === 0 && isRowMajor(j.lt) && j.lt.size.length > 0;
      const out = new Map<string, Tensor>();
      for (const j of jobs) {
        const { lt, entry } = j;
        const code = DTYPE_CODE[lt.storage.dtype];
        if (direct(j)) {
          // Read and converted piece by piece in native code (native/ops_encoders.cc), so a large float32
          // tensor (T5-XXL's 32128 x 4096 embedding: 526 MB) never sits in memory whole.
          const base = zip.dataOffset(entry) + lt.offset * DTYPE_BYTES[lt.storage.dtype];
          out.set(j.name, new Tensor(N.fromFileConvert(path, base, code, lt.size, DTYPE_CODE[j.dtype], opts.device ?? 'cpu')));
          continue;
        }
        out.set(j.name, scope(() => {
          const nbytes = lt.storage.numel * DTYPE_BYTES[lt.storage.dtype];
          const raw = entry.method === 0
            ? new Tensor(N.fromFile(path, zip.dataOffset(entry), code, [lt.storage.numel]))
            : new Tensor(N.fromBytes(zip.read(entry).subarray(0, nbytes), code, [lt.storage.numel])); // read() inflates
          const view = new Tensor(N.storageView(raw.h, lt.size, lt.stride, lt.offset));
          // A copy (never a view), so the storage, which may hold more than this tensor, is freed here.
          return view.to({ dtype: j.dtype, device: opts.device, copy: true }).contiguous();
        }));
      }
      // In the checkpoint's key order.
      return new Map(jobs.map((j) => [j.name, out.get(j.name)!]));
    });
  });
}

function parse(path: string): { lazy: Map<string, LazyTensor>; prefix: string } {
  return withFile(path, (f) => {
    const head = f.read(0, Math.min(4, f.size), 'file signature');
    if (head.length < 4 || head.readUInt32LE(0) !== 0x04034b50)
      throw new EncoderError(`${path}: not a zip-format PyTorch checkpoint (legacy torch.save files are not supported); ` +
        're-save it with a current torch.save or convert it to safetensors');
    const zip = new ZipReader(f);
    const pkls = zip.entries.filter((e) => /^([^/]+\/)?data\.pkl$/.test(e.name));
    if (pkls.length !== 1) throw new EncoderError(`${path}: expected one data.pkl record in the archive, found ${pkls.length}`);
    const prefix = pkls[0].name.slice(0, -'data.pkl'.length);
    const lists = (a: unknown): a is number[] => Array.isArray(a) && a.every((x) => Number.isSafeInteger(x));
    const toMap = (v: unknown) => (v instanceof Map ? new Map(v) : new Map(((v ?? []) as [unknown, unknown][])));
    const globals: Record<string, unknown> = {
      'collections.OrderedDict': new PyCallable('collections.OrderedDict', (a) => toMap(a[0])),
      'builtins.dict': new PyCallable('builtins.dict', (a) => toMap(a[0])),
      'torch._utils._rebuild_tensor_v2': new PyCallable('torch._utils._rebuild_tensor_v2', (a) => {
        const [s, offset, size, stride] = a;
        if (!(s instanceof StorageRef) || !Number.isSafeInteger(offset) || !lists(size) || !lists(stride))
          throw new Error('malformed tensor record');
        return new LazyTensor(s, offset as number, size, stride);
      }),
      'torch._utils._rebuild_parameter': new PyCallable('torch._utils._rebuild_parameter', (a) => a[0]),
      'torch.Size': new PyCallable('torch.Size', (a) => [...((a[0] as number[]) ?? [])]),
    };
    for (const [cls, dtype] of Object.entries(STORAGE_TYPES)) globals[`torch.${cls}`] = new StorageType(dtype);
    const value = unpickle(zip.read(pkls[0]), {
      file: path,
      what: pkls[0].name,
      findGlobal: (m, n) => globals[`${m === '__builtin__' ? 'builtins' : m}.${n}`],
      persistentLoad: (pid) => {
        if (!Array.isArray(pid) || pid[0] !== 'storage' || !(pid[1] instanceof StorageType)) throw new Error('unsupported persistent id');
        return new StorageRef(String(pid[2]), pid[1].dtype, Number(pid[4]));
      },
    });
    let dict = value instanceof Map ? value : null;
    for (const w of ['module', 'state_dict']) if (dict?.get(w) instanceof Map) dict = dict.get(w) as Map<unknown, unknown>;
    if (!dict) throw new EncoderError(`${path}: the checkpoint does not hold a state dict`);
    const lazy = new Map<string, LazyTensor>();
    for (const [k, v] of dict) if (typeof k === 'string' && v instanceof LazyTensor) lazy.set(k, v);
    return { lazy, prefix };
  });
}

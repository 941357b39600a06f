// The weights of a Hugging Face hub folder, in any of its layouts: `model.safetensors`, sharded
// safetensors with `model.safetensors.index.json`, or `pytorch_model.bin`. Only the keys `select`
// keeps are read (an encoder out of an encoder-decoder checkpoint, a vision tower out of a full
// SigLIP), each cast to the target dtype and moved to the device as it is read.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensorsHeader, scope, Tensor, type DType, type Device } from '../engine/index.js';
import { DTYPE_CODE, isFloating } from '../engine/dtype.js';
import { N } from '../engine/native.js';
import { EncoderError } from './errors.js';
import { listTorchBin, loadTorchBinSelected } from './torch_bin.js';

export interface HubWeightOptions {
  dtype?: DType;
  device?: Device;
}

/** Which weight files a folder has, in the order transformers prefers them. */
export function weightLayout(dir: string): 'safetensors' | 'sharded' | 'bin' {
  if (existsSync(join(dir, 'model.safetensors'))) return 'safetensors';
  if (existsSync(join(dir, 'model.safetensors.index.json'))) return 'sharded';
  if (existsSync(join(dir, 'pytorch_model.bin'))) return 'bin';
  throw new EncoderError(`${dir}: no weights found (model.safetensors, model.safetensors.index.json or pytorch_model.bin); ` +
    'pass the folder downloaded from the hub');
}

/** The shard of each key, from model.safetensors.index.json; every listed shard must exist. */
function shardMap(dir: string): Map<string, string> {
  const path = join(dir, 'model.safetensors.index.json');
  let idx: { weight_map?: Record<string, string> };
  try {
    idx = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new EncoderError(`${path}: not valid JSON (${(e as Error).message}); download it again`);
  }
  if (!idx.weight_map || typeof idx.weight_map !== 'object') throw new EncoderError(`${path}: no weight_map; download it again`);
  const map = new Map(Object.entries(idx.weight_map));
  for (const shard of new Set(map.values()))
    if (!existsSync(join(dir, shard)))
      throw new EncoderError(`${join(dir, shard)}: shard listed in ${path} is missing; download every shard of the checkpoint`);
  return map;
}

/**
 * Read the tensors whose key `select` maps to a name (null skips them): Map(name -> tensor), in file order.
 * Tensors come back owned by the caller's scope.
 */
export function loadHubWeights(dir: string, select: (key: string) => string | null, opts: HubWeightOptions = {}): Map<string, Tensor> {
  const layout = weightLayout(dir);
  if (layout === 'bin') return loadTorchBinSelected(join(dir, 'pytorch_model.bin'), select, opts);
  const files = new Map<string, string[]>();
  if (layout === 'safetensors') {
    const path = join(dir, 'model.safetensors');
    files.set(path, [...readSafetensorsHeader(path).tensors.keys()]);
  } else {
    for (const [key, shard] of shardMap(dir)) {
      const path = join(dir, shard);
      files.set(path, [...(files.get(path) ?? []), key]);
    }
  }
  const out = new Map<string, Tensor>();
  for (const [path, keys] of files) {
    const wanted = keys.filter((k) => select(k) !== null);
    if (!wanted.length) continue;
    for (const [k, t] of loadSafetensorsConverted(path, wanted, opts)) out.set(select(k)!, t);
  }
  return out;
}

/**
 * The given keys of a safetensors file, each read and converted piece by piece in native code (see
 * native/ops_encoders.cc), so only the converted tensors stay resident.
 */
function loadSafetensorsConverted(path: string, keys: string[], opts: HubWeightOptions): Map<string, Tensor> {
  const header = readSafetensorsHeader(path);
  return scope(() => {
    const out = new Map<string, Tensor>();
    for (const key of keys) {
      const info = header.tensors.get(key);
      if (!info) throw new EncoderError(`${path}: no tensor '${key}' although the index lists it there; download the checkpoint again`);
      const target = opts.dtype && isFloating(info.dtype) ? opts.dtype : info.dtype;
      out.set(key, new Tensor(N.fromFileConvert(path, info.byteOffset, DTYPE_CODE[info.dtype], info.shape, DTYPE_CODE[target], opts.device ?? 'cpu')));
    }
    return out;
  });
}

/** Every key in the folder's weights with its shape, without reading tensor data. */
export function listHubWeights(dir: string): Map<string, number[]> {
  const layout = weightLayout(dir);
  if (layout === 'bin') return new Map([...listTorchBin(join(dir, 'pytorch_model.bin'))].map(([k, v]) => [k, v.shape]));
  const out = new Map<string, number[]>();
  const paths = layout === 'safetensors' ? [join(dir, 'model.safetensors')] : [...new Set(shardMap(dir).values())].map((s) => join(dir, s));
  for (const p of paths) for (const [k, info] of readSafetensorsHeader(p).tensors) out.set(k, info.shape);
  return out;
}

/** config.json of a hub folder. */
export function readHubConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'config.json');
  if (!existsSync(path)) throw new EncoderError(`${path}: missing; the encoder folder needs the config.json from the hub`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new EncoderError(`${path}: not valid JSON (${(e as Error).message}); download it again`);
  }
}

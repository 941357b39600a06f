// Saving nested training state (optimizer state dicts, RNG states, ...) as one safetensors file for
// the tensors plus a JSON skeleton for everything else. Tensors are replaced in the JSON by
// {"__tensor__": key}. The layout mirrors PyTorch's so it stays readable from Python.
import { Tensor } from '../engine/index.js';
import { loadSafetensors, saveSafetensors } from '../engine/io/index.js';
import { writeFileAtomic } from '../util/atomic.js';
import { readJsonFile } from './run_folder.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function flatten(v: unknown, path: string, tensors: Map<string, Tensor>): Json {
  if (v instanceof Tensor) {
    tensors.set(path, v);
    return { __tensor__: path };
  }
  if (v instanceof Map) return flatten(Object.fromEntries(v), path, tensors);
  if (Array.isArray(v)) return v.map((x, i) => flatten(x, `${path}.${i}`, tensors));
  if (v !== null && typeof v === 'object') {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) out[k] = flatten(x, path ? `${path}.${k}` : k, tensors);
    return out;
  }
  if (typeof v === 'bigint') return Number(v);
  return v as Json;
}

function unflatten(v: Json, tensors: Map<string, Tensor>): unknown {
  if (Array.isArray(v)) return v.map((x) => unflatten(x, tensors));
  if (v !== null && typeof v === 'object') {
    if ('__tensor__' in v && typeof v.__tensor__ === 'string') {
      const t = tensors.get(v.__tensor__);
      if (!t) throw new Error(`state file: tensor '${v.__tensor__}' is missing from the .safetensors part`);
      return t;
    }
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = unflatten(x, tensors);
    return out;
  }
  return v;
}

/** Write `<base>.json` and `<base>.safetensors` (atomically, each). */
export function saveState(base: string, state: unknown): void {
  const tensors = new Map<string, Tensor>();
  const json = flatten(state, '', tensors);
  saveSafetensors(`${base}.safetensors`, tensors);
  writeFileAtomic(`${base}.json`, JSON.stringify(json, null, 1));
}

/** Read back what saveState wrote; tensors are new handles owned by the caller. */
export function loadState(base: string): unknown {
  const json = readJsonFile<Json>(`${base}.json`, 'the training state');
  const { tensors } = loadSafetensors(`${base}.safetensors`);
  return unflatten(json, tensors);
}

// Reading configuration values: merging a YAML mapping or command-line overrides into the defaults
// along their shape (unknown keys named with a did-you-mean, removed keys with their replacement,
// values coerced to the default's type), and parsing `key=value` overrides.
import { parse as parseYaml } from 'yaml';
import { didYouMean } from '../util/did-you-mean.js';
import { ConfigError } from './errors.js';

export type Plain = Record<string, unknown>;
export const isObj = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

// Merge `src` into `dst` following the shape of `proto`, rejecting unknown keys and wrong types.
export function mergeChecked(dst: Plain, src: Plain, proto: Plain, where: string, origin: string): void {
  for (const [k, v] of Object.entries(src)) {
    const path = where ? `${where}.${k}` : k;
    if (REMOVED[path]) throw new ConfigError(`${origin}: '${path}' ${REMOVED[path]}`);
    if (!(k in proto)) {
      const hint = didYouMean(k, Object.keys(proto));
      throw new ConfigError(`${origin}: unknown key '${path}'${hint ? ` (did you mean '${where ? where + '.' : ''}${hint}'?)` : ''}`);
    }
    const def = proto[k];
    if (isObj(def) && Object.keys(def).length && !isRecordOfNumbers(k)) {
      if (!isObj(v)) throw new ConfigError(`${origin}: '${path}' must be a mapping`);
      mergeChecked(dst[k] as Plain, v, def, path, origin);
      continue;
    }
    dst[k] = coerce(v, def, path, origin);
  }
}

/** Keys that existed once: refused with a pointer to what replaced them, not as unknown. */
const REMOVED: Record<string, string> = {
  'data.realign_obs_action': "was replaced by 'data.align': use align: realign (what true meant), align: stored (the file's own pairing), " +
    "or align: auto (the default: realigns the released 'original' layout only)",
};

// suite_weights is a free-form mapping from suite name to number.
const isRecordOfNumbers = (k: string) => k === 'suite_weights';

function coerce(v: unknown, def: unknown, path: string, origin: string): unknown {
  const nullable = NULLABLE.has(path);
  // The word none is null only where null is allowed; elsewhere it is a value like any other (stored_orientation:
  // none, report_to: [none]) and the key's own type and check decide.
  if (v === null || v === 'null' || (nullable && (v === 'none' || v === 'None'))) {
    if (nullable) return null;
    throw new ConfigError(`${origin}: '${path}' cannot be null`);
  }
  const want = def === null ? NULL_DEFAULT_TYPES[path] : Array.isArray(def) ? 'array' : typeof def;
  if (want === 'number') {
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new ConfigError(`${origin}: '${path}' must be a number, got ${JSON.stringify(v)}`);
    return n;
  }
  if (want === 'boolean') {
    if (v === 'true' || v === true) return true;
    if (v === 'false' || v === false) return false;
    throw new ConfigError(`${origin}: '${path}' must be true or false, got ${JSON.stringify(v)}`);
  }
  if (want === 'array') {
    if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
    if (!Array.isArray(v)) throw new ConfigError(`${origin}: '${path}' must be a list`);
    return v;
  }
  if (want === 'object') {
    if (!isObj(v)) throw new ConfigError(`${origin}: '${path}' must be a mapping`);
    return v;
  }
  if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(`${origin}: '${path}' must be a string`);
  return String(v);
}

const NULLABLE = new Set(['text_encoder', 'vision_encoder', 'tokenizer', 'text_cache', 'pretrained_model_name_or_path', 'max_train_steps', 'checkpoints_total_limit', 'resume_from_checkpoint', 'state_noise_snr']);
const NULL_DEFAULT_TYPES: Record<string, string> = {
  text_encoder: 'string', vision_encoder: 'string', tokenizer: 'string', text_cache: 'string',
  pretrained_model_name_or_path: 'string', max_train_steps: 'number', checkpoints_total_limit: 'number',
  resume_from_checkpoint: 'string', state_noise_snr: 'number',
};

/**
 * Parse `key=value` / `--key value` / `--key=value` overrides (dotted keys reach nested sections).
 * Returns a nested plain object ready to merge.
 */
export function parseOverrides(args: string[]): Plain {
  const out: Plain = {};
  for (let i = 0; i < args.length; i++) {
    let a = args[i];
    let key: string;
    let value: string;
    if (a.startsWith('--')) a = a.slice(2);
    const eq = a.indexOf('=');
    if (eq >= 0) {
      key = a.slice(0, eq);
      value = a.slice(eq + 1);
    } else {
      key = a;
      if (i + 1 >= args.length) throw new ConfigError(`override '${args[i]}' has no value`);
      value = args[++i];
    }
    const parts = key.split('.');
    let node = out;
    for (const p of parts.slice(0, -1)) node = (node[p] ??= {}) as Plain;
    node[parts[parts.length - 1]] = parseScalar(value);
  }
  return out;
}

function parseScalar(v: string): unknown {
  if (v === 'true' || v === 'false' || v === 'null') return v === 'null' ? null : v === 'true';
  if (v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
  if (v.startsWith('[') || v.startsWith('{')) return parseYaml(v);
  return v;
}

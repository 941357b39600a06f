// Declaring and reading configuration keys. A schema (config.ts) declares each key once: its type, default, doc
// and check; from it come the defaults, the help table, the validation, and the reading of values: merging a YAML
// mapping or command-line overrides along the schema (unknown keys named with a did-you-mean, removed keys with
// their replacement, values coerced to the key's type), and parsing `key=value` overrides.
import { parse as parseYaml } from 'yaml';
import { didYouMean } from '../util/did-you-mean.js';
import { ConfigError } from './errors.js';

export type Plain = Record<string, unknown>;
export const isObj = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** How a value is read: 'map' is a free-form mapping of numbers (data.suite_weights), 'list' a list of strings. */
export type KeyType = 'number' | 'boolean' | 'string' | 'list' | 'map';
/**
 * What is wrong with a (non-null) value, as the words after the quoted key ("must be > 0, got 0"), or a whole
 * message starting with a quoted key of its own; undefined when the value is fine. `c`: the whole config.
 */
export type Check<T> = (v: T, c: any) => string | undefined;
export interface Key<T> {
  readonly key: true;
  readonly type: KeyType;
  readonly default: T;
  readonly nullable: boolean;
  readonly doc: string;
  readonly check?: Check<NonNullable<T>>;
}
// A Section holds keys of every value type: `any`, since a Check's parameter makes Key<T> invariant.
export interface Section { readonly [k: string]: Key<any> | Section }
/** The values a schema describes: each key's type, sections as nested objects. */
export type ValuesOf<S> = { -readonly [K in keyof S]: S[K] extends Key<infer T> ? T : ValuesOf<S[K]> };
/** The value type a KeyType reads to; a key may narrow it (`key<'string', 'a' | 'b'>`). */
interface Natural { number: number; boolean: boolean; string: string; list: string[]; map: Record<string, number> }

export const key = <K extends KeyType, T extends Natural[K] = Natural[K]>(type: K, def: NoInfer<T>, doc: string, check?: NoInfer<Check<T>>): Key<T> =>
  ({ key: true, type, default: def, nullable: false, doc, check: check as Check<NonNullable<T>> });
/** A key that may also be null (written null, or none). */
export const nullable = <K extends KeyType, T extends Natural[K] = Natural[K]>(type: K, def: NoInfer<T> | null, doc: string, check?: NoInfer<Check<T>>): Key<T | null> =>
  ({ key: true, type, default: def, nullable: true, doc, check: check as Check<NonNullable<T>> });
/** A string key taking one of `values` (a misspelling gets a did-you-mean). */
export const oneOf = <const V extends readonly string[]>(values: V, def: V[number], doc: string): Key<V[number]> =>
  key<'string', V[number]>('string', def, doc, (v) => notOneOf(v, values));
export function notOneOf(v: string, allowed: readonly string[]): string | undefined {
  if (allowed.includes(v)) return undefined;
  const hint = didYouMean(v, allowed);
  return `must be one of ${allowed.join(', ')}, got '${v}'${hint ? ` (did you mean '${hint}'?)` : ''}`;
}
export const intFrom = (min: number): Check<number> => (v) =>
  Number.isInteger(v) && v >= min ? undefined : `must be ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got ${v}`;
export const where = (ok: (v: number) => boolean, what: string): Check<number> => (v) => (ok(v) ? undefined : `must be ${what}, got ${v}`);

const isKey = (v: Key<unknown> | Section): v is Key<unknown> => v.key === true;

/** Every key of a schema, dotted, in declaration order. */
export function schemaKeys(s: Section, pre = ''): { path: string; spec: Key<unknown> }[] {
  return Object.entries(s).flatMap(([k, v]) => (isKey(v) ? [{ path: pre + k, spec: v }] : schemaKeys(v, `${pre}${k}.`)));
}

/** The defaults of a schema, as a fresh object. */
export function defaultsOf<S extends Section>(s: S): ValuesOf<S> {
  return Object.fromEntries(Object.entries(s).map(([k, v]) => [k, isKey(v) ? structuredClone(v.default) : defaultsOf(v)])) as ValuesOf<S>;
}

// Merge `src` into `dst` following the schema, rejecting unknown keys and wrong types.
export function mergeChecked(dst: Plain, src: Plain, schema: Section, where: string, origin: string): void {
  for (const [k, v] of Object.entries(src)) {
    const path = where ? `${where}.${k}` : k;
    if (REMOVED[path]) throw new ConfigError(`${origin}: '${path}' ${REMOVED[path]}`);
    if (!(k in schema)) {
      const hint = didYouMean(k, Object.keys(schema));
      throw new ConfigError(`${origin}: unknown key '${path}'${hint ? ` (did you mean '${where ? where + '.' : ''}${hint}'?)` : ''}`);
    }
    const spec = schema[k];
    if (!isKey(spec)) {
      if (!isObj(v)) throw new ConfigError(`${origin}: '${path}' must be a mapping`);
      mergeChecked(dst[k] as Plain, v, spec, path, origin);
      continue;
    }
    dst[k] = coerce(v, spec, path, origin);
  }
}

/** Keys that existed once: refused with a pointer to what replaced them, not as unknown. */
const REMOVED: Record<string, string> = {
  'data.realign_obs_action': "was replaced by 'data.align': use align: realign (what true meant), align: stored (the file's own pairing), " +
    "or align: auto (the default: realigns the released 'original' layout only)",
};

function coerce(v: unknown, spec: Key<unknown>, path: string, origin: string): unknown {
  // The word none is null only where null is allowed; elsewhere it is a value like any other (stored_orientation:
  // none, report_to: [none]) and the key's own type and check decide.
  if (v === null || v === 'null' || (spec.nullable && (v === 'none' || v === 'None'))) {
    if (spec.nullable) return null;
    throw new ConfigError(`${origin}: '${path}' cannot be null`);
  }
  if (spec.type === 'number') {
    const n = typeof v === 'string' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isFinite(n)) throw new ConfigError(`${origin}: '${path}' must be a number, got ${JSON.stringify(v)}`);
    return n;
  }
  if (spec.type === 'boolean') {
    if (v === 'true' || v === true) return true;
    if (v === 'false' || v === false) return false;
    throw new ConfigError(`${origin}: '${path}' must be true or false, got ${JSON.stringify(v)}`);
  }
  if (spec.type === 'list') {
    if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean);
    if (!Array.isArray(v)) throw new ConfigError(`${origin}: '${path}' must be a list`);
    return v;
  }
  if (spec.type === 'map') {
    if (!isObj(v)) throw new ConfigError(`${origin}: '${path}' must be a mapping`);
    return v;
  }
  if (typeof v !== 'string' && typeof v !== 'number') throw new ConfigError(`${origin}: '${path}' must be a string`);
  return String(v);
}

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

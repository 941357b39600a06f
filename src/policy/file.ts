// policy.json: the versioned file in every saved model folder that records the data conventions the model was
// trained with, so the folder alone turns observations into robot commands. Next to it the hub files
// (config.json + model.safetensors) stay exactly as Python loads them. Validation is strict: unknown keys,
// missing keys, wrong types and conventions the adapter does not implement are refused, each with one line
// naming the file and the field.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CAMERA_SLOT, stateSlots } from '../data/adapter.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { ORIENTATIONS, type ImageOrientation } from '../data/images.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import type { DatasetStat } from '../data/stats.js';
import type { EncoderIdentity } from '../encoders/factory.js';
import { PALETTE_RULE, isPalette } from '../encoders/demo.js';
import { didYouMean } from '../util/did-you-mean.js';
import { writeFileAtomic } from '../util/atomic.js';
import { PolicyError } from './errors.js';

export const POLICY_FILE = 'policy.json';
export const POLICY_FORMAT = 'rdt-libero.policy';
export const POLICY_VERSION = 1;

/** The train config's value_normalization, as policy.json records it. */
export const VALUE_NORMALIZATIONS = ['none', 'zscore'] as const;
export type ValueNormalizationName = (typeof VALUE_NORMALIZATIONS)[number];

/** Dataset statistics the run used: the fields of one src/data/stats.ts entry that a policy keeps (128 values per list). */
export type PolicyStatistics = Pick<DatasetStat,
  'dataset_name' | 'state_mean' | 'state_std' | 'state_min' | 'state_max' | 'action_mean' | 'action_std' | 'action_min' |
  'action_max' | 'action_encoding' | 'num_steps' | 'num_episodes'>;

/** Every data convention of a model (the file's content without format and version). */
export interface PolicyConventions {
  /**
   * exec_horizon: the chunk steps an evaluation executes before it asks for the next chunk (the run's
   * `exec_horizon`; rdt-libero eval's default for this policy). null in folders written before it was recorded.
   */
  action: { encoding: string; chunk_size: number; ctrl_freq: number; exec_horizon: number | null };
  /** slots: the unified-vector slots the state fills (derived from use_joints; recorded so a reader sees them). */
  state: { use_joints: boolean; slots: number[] };
  cameras: { slots: Record<string, number>; orientation: ImageOrientation; height: number; width: number; history: number };
  /** null when unknown (a model folder given its conventions by hand). */
  statistics: PolicyStatistics | null;
  /**
   * What the network sees: 'none' = the physical values (the official RDT); 'zscore' = (x - mean) / std of
   * `statistics` for the state and the actions (RDTRunner.setValueNormalization). 'none' in folders written before
   * it was recorded.
   */
  normalization: ValueNormalizationName;
  encoders: EncoderIdentity;
  /** The LoRA adapters of a run with lora.enabled (adapter_model.safetensors beside the weights); null otherwise. */
  lora: { rank: number; alpha: number; targets: string[] } | null;
  origin: { run: string; step: number; ema: boolean; base_model: string; lora_merged_from?: string; data_format?: string } | null;
}

export interface PolicyFileContent extends PolicyConventions {
  format: typeof POLICY_FORMAT;
  version: typeof POLICY_VERSION;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Typed access to one object of the file; every failure names the file and the dotted field. */
class Fields {
  constructor(readonly file: string, readonly obj: Obj, readonly path: string) {}
  fail(key: string, msg: string): never {
    throw new PolicyError(`${this.file}: field '${this.path}${key}' ${msg}`);
  }
  get(key: string): unknown {
    if (this.obj[key] === undefined) this.fail(key, 'is missing (the file may be damaged or from another version)');
    return this.obj[key];
  }
  int(key: string, min: number): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  }
  num(key: string, positive = false): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isFinite(v) || (positive && v <= 0)) this.fail(key, `must be a ${positive ? 'positive ' : ''}number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string): boolean {
    const v = this.get(key);
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  str(key: string, allowed?: readonly string[]): string {
    const v = this.get(key);
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    if (allowed && !allowed.includes(v)) {
      const near = didYouMean(v, allowed);
      this.fail(key, `is '${v}'${near ? ` (did you mean '${near}'?)` : ''}; known: ${allowed.join(', ')}`);
    }
    return v;
  }
  numbers(key: string, length: number): number[] {
    const v = this.get(key);
    if (!Array.isArray(v) || v.length !== length || !v.every((x) => typeof x === 'number' && Number.isFinite(x)))
      this.fail(key, `must be a list of ${length} finite numbers`);
    return v as number[];
  }
  sub(key: string): Fields {
    const v = this.get(key);
    if (!isObj(v)) this.fail(key, `must be an object, got ${JSON.stringify(v)}`);
    return new Fields(this.file, v, `${this.path}${key}.`);
  }
  /** null, or the object's fields. */
  nullable(key: string): Fields | null {
    if (!(key in this.obj)) this.fail(key, 'is missing (use null when it does not apply)');
    return this.obj[key] === null ? null : this.sub(key);
  }
  only(known: string[]): void {
    for (const k of Object.keys(this.obj))
      if (!known.includes(k)) {
        const near = didYouMean(k, known);
        this.fail(k, `is not a policy field${near ? ` (did you mean '${near}'?)` : ''}; known here: ${known.join(', ')}`);
      }
  }
}

const sameList = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((x, i) => x === b[i]);

const SHA256 = /^[0-9a-f]{64}$/;

function parseEncoders(f: Fields): EncoderIdentity {
  f.only(['text', 'vision']);
  const t = f.sub('text');
  const v = f.sub('vision');
  const kind = t.str('kind', ['demo', 'official']);
  if (v.str('kind', ['demo', 'official']) !== kind) v.fail('kind', `is '${v.str('kind')}' but encoders.text.kind is '${kind}'; both are 'demo' or both 'official'`);
  if (kind === 'demo') {
    t.only(['kind', 'token_dim', 'max_length', 'vocab', 'seed']);
    const text = { kind: 'demo' as const, token_dim: t.int('token_dim', 1), max_length: t.int('max_length', 1), vocab: t.int('vocab', 1), seed: t.int('seed', 0) };
    // Two demo vision encoders: patches (no 'tokens' field, as every folder before the palette) and 'palette'.
    if (v.obj.tokens !== undefined && v.str('tokens', ['palette']) === 'palette') {
      v.only(['kind', 'tokens', 'token_dim', 'palette', 'seed']);
      const palette = v.get('palette');
      if (!isPalette(palette)) return v.fail('palette', `must be ${PALETTE_RULE}`);
      return { text, vision: { kind: 'demo', tokens: 'palette', token_dim: v.int('token_dim', 5), palette, seed: v.int('seed', 0) } };
    }
    v.only(['kind', 'token_dim', 'grid', 'cells', 'seed']);
    return { text, vision: { kind: 'demo', token_dim: v.int('token_dim', 1), grid: v.int('grid', 1), cells: v.int('cells', 1), seed: v.int('seed', 0) } };
  }
  t.only(['kind', 'path', 'tokenizer_path', 'token_dim', 'max_length', 'dtype', 'config_sha256', 'tokenizer_sha256']);
  v.only(['kind', 'path', 'token_dim', 'tokens_per_image', 'image_size', 'dtype', 'config_sha256']);
  const sha = (e: Fields, k: string) => {
    const x = e.str(k);
    if (!SHA256.test(x)) e.fail(k, `must be a sha256 (64 hex digits), got '${x}'`);
    return x;
  };
  const dtypes = ['float32', 'bfloat16'];
  return {
    text: {
      kind: 'official', path: t.str('path'), tokenizer_path: t.str('tokenizer_path'), token_dim: t.int('token_dim', 1), max_length: t.int('max_length', 1),
      dtype: t.str('dtype', dtypes) as 'float32', config_sha256: sha(t, 'config_sha256'), tokenizer_sha256: sha(t, 'tokenizer_sha256'),
    },
    vision: {
      kind: 'official', path: v.str('path'), token_dim: v.int('token_dim', 1), tokens_per_image: v.int('tokens_per_image', 1), image_size: v.int('image_size', 1),
      dtype: v.str('dtype', dtypes) as 'float32', config_sha256: sha(v, 'config_sha256'),
    },
  };
}

const STAT_LISTS = ['state_mean', 'state_std', 'state_min', 'state_max', 'action_mean', 'action_std', 'action_min', 'action_max'] as const;

function parseStatistics(f: Fields, encoding: string, useJoints: boolean): PolicyStatistics {
  f.only(['dataset_name', ...STAT_LISTS, 'action_encoding', 'num_steps', 'num_episodes']);
  const s = { dataset_name: f.str('dataset_name') } as PolicyStatistics;
  for (const k of STAT_LISTS) s[k] = f.numbers(k, STATE_VEC_LEN);
  s.action_encoding = f.str('action_encoding');
  s.num_steps = f.int('num_steps', 0);
  s.num_episodes = f.int('num_episodes', 0);
  // The statistics must describe this model's vectors: same encoding, and values only where they are filled.
  if (s.action_encoding !== encoding) f.fail('action_encoding', `is '${s.action_encoding}' but action.encoding is '${encoding}': the statistics belong to another encoding`);
  if (s.state_std.some((x) => x < 0) || s.action_std.some((x) => x < 0)) f.fail('state_std', 'has negative entries');
  const filled = new Set(stateSlots({ useJoints }));
  const stray = s.state_max.findIndex((x, i) => !filled.has(i) && (x !== 0 || s.state_min[i] !== 0));
  if (stray >= 0) f.fail('state_max', `has a value at slot ${stray}, which the state (use_joints ${useJoints}) does not fill: the statistics were computed with other state slots`);
  return s;
}

/** Validate a parsed policy.json object. `file` names it in errors. */
export function parsePolicyFile(obj: unknown, file: string): PolicyFileContent {
  if (!isObj(obj)) throw new PolicyError(`${file}: must hold a JSON object`);
  const r = new Fields(file, obj, '');
  if (r.get('format') !== POLICY_FORMAT) r.fail('format', `must be '${POLICY_FORMAT}', got ${JSON.stringify(obj.format)}`);
  if (r.get('version') !== POLICY_VERSION)
    r.fail('version', `is ${JSON.stringify(obj.version)}; this rdt-libero reads version ${POLICY_VERSION} (a newer rdt-libero wrote it?)`);
  r.only(['format', 'version', 'action', 'state', 'cameras', 'statistics', 'normalization', 'encoders', 'lora', 'origin']);

  const a = r.sub('action');
  a.only(['encoding', 'chunk_size', 'ctrl_freq', 'exec_horizon']);
  const action = {
    encoding: a.str('encoding', Object.keys(ENCODINGS)), chunk_size: a.int('chunk_size', 1), ctrl_freq: a.num('ctrl_freq', true),
    exec_horizon: a.obj.exec_horizon === undefined || a.obj.exec_horizon === null ? null : a.int('exec_horizon', 1),
  };
  if (action.exec_horizon !== null && action.exec_horizon > action.chunk_size)
    a.fail('exec_horizon', `is ${action.exec_horizon}, longer than the chunk (chunk_size ${action.chunk_size})`);

  const st = r.sub('state');
  st.only(['use_joints', 'slots']);
  const useJoints = st.bool('use_joints');
  const want = stateSlots({ useJoints });
  const slots = st.get('slots');
  if (!Array.isArray(slots) || !sameList(slots as number[], want))
    st.fail('slots', `is ${JSON.stringify(slots)}, but use_joints ${useJoints} fills [${want.join(', ')}]; the adapter implements only these slots`);

  const c = r.sub('cameras');
  c.only(['slots', 'orientation', 'height', 'width', 'history']);
  const camSlots = c.get('slots');
  const implemented: Record<string, number> = { ...CAMERA_SLOT };
  if (!isObj(camSlots) || JSON.stringify(camSlots) !== JSON.stringify(implemented))
    c.fail('slots', `is ${JSON.stringify(camSlots)}; the adapter implements ${JSON.stringify(implemented)} (slot 2, the left wrist, stays background)`);
  const cameras = {
    slots: implemented,
    orientation: c.str('orientation', ORIENTATIONS) as ImageOrientation,
    height: c.int('height', 1),
    width: c.int('width', 1),
    history: c.int('history', 1),
  };

  const sf = r.nullable('statistics');
  const statistics = sf ? parseStatistics(sf, action.encoding, useJoints) : null;
  const normalization = r.obj.normalization === undefined ? 'none' : r.str('normalization', VALUE_NORMALIZATIONS) as ValueNormalizationName;
  if (normalization !== 'none' && !statistics)
    r.fail('normalization', `is '${normalization}', but 'statistics' is null: the model reads its values through the run's statistics, so the folder is incomplete`);
  const encoders = parseEncoders(r.sub('encoders'));

  const lf = r.nullable('lora');
  let lora: PolicyConventions['lora'] = null;
  if (lf) {
    lf.only(['rank', 'alpha', 'targets']);
    const targets = lf.get('targets');
    if (!Array.isArray(targets) || !targets.every((x) => typeof x === 'string')) lf.fail('targets', 'must be a list of module names');
    lora = { rank: lf.int('rank', 1), alpha: lf.num('alpha', true), targets: targets as string[] };
  }

  const of = r.nullable('origin');
  let origin: PolicyConventions['origin'] = null;
  if (of) {
    of.only(['run', 'step', 'ema', 'base_model', 'lora_merged_from', 'data_format']);
    origin = { run: of.str('run'), step: of.int('step', 0), ema: of.bool('ema'), base_model: of.str('base_model') };
    if (of.obj.lora_merged_from !== undefined) origin.lora_merged_from = of.str('lora_merged_from');
    // The training data's format (hdf5 or lerobot); cameras.orientation already says how to turn simulator frames.
    if (of.obj.data_format !== undefined) origin.data_format = of.str('data_format', ['hdf5', 'lerobot']);
  }
  return { format: POLICY_FORMAT, version: POLICY_VERSION, action, state: { use_joints: useJoints, slots: want }, cameras, statistics, normalization, encoders, lora, origin };
}

/** policy.json of a folder, validated; null when the folder has none. */
export function readPolicyFile(dir: string): PolicyFileContent | null {
  const p = join(dir, POLICY_FILE);
  if (!existsSync(p)) return null;
  let obj: unknown;
  try {
    obj = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new PolicyError(`${p}: not valid JSON (${(e as Error).message})`);
  }
  return parsePolicyFile(obj, p);
}

/** Write `dir/policy.json` (atomically), validating it first so a run never writes a file it could not read. */
export function writePolicyFile(dir: string, conventions: PolicyConventions): string {
  const p = join(dir, POLICY_FILE);
  const content = { format: POLICY_FORMAT, version: POLICY_VERSION, ...conventions };
  parsePolicyFile(JSON.parse(JSON.stringify(content)), p);
  writeFileAtomic(p, JSON.stringify(content, null, 2) + '\n');
  return p;
}

/**
 * What training calls for every saved model folder: `dir/policy.json` for the weights in `dir`, and, when the
 * folder has EMA weights (`dir/ema/`), `dir/ema/policy.json` with origin.ema true.
 */
export function writePolicyFolder(dir: string, conventions: PolicyConventions, step: number): void {
  const at = (ema: boolean): PolicyConventions => ({ ...conventions, origin: { ...(conventions.origin ?? { run: '', base_model: '' }), step, ema } });
  writePolicyFile(dir, at(false));
  if (existsSync(join(dir, 'ema'))) writePolicyFile(join(dir, 'ema'), at(true));
}

// RdtConfig: the RDT architecture and noise-schedule settings, in the hub's config.json layout.
// The keys are the official ones (configs/base.yaml `model:` merged with RDTRunner's arguments, as
// saved beside `pytorch_model.bin` on the hub), so a hub config.json, our YAML and our saved
// checkpoints all read the same way. See shared/docs/rdt-spec.md 1.1 and 1.9.
import { didYouMean } from '../util/did-you-mean.js';
import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import { ModelError } from './errors.js';

/**
 * Which RmsNorm formula the blocks use (rdt-spec.md 1.4, pitfall 9.1).
 * - 'timm103-unbiased-var': x * rsqrt(var(x, unbiased) + eps) * w, what timm 1.0.3 computes without
 *   NVIDIA apex. This is the unpatched official code path, so it is the default.
 * - 'mean-square': the true RMS norm x * rsqrt(mean(x^2) + eps) * w (apex's fused kernel).
 */
export type RmsNormVariant = 'timm103-unbiased-var' | 'mean-square';
export const RMS_NORM_VARIANTS: readonly RmsNormVariant[] = ['timm103-unbiased-var', 'mean-square'];
export const DEFAULT_RMS_NORM: RmsNormVariant = 'timm103-unbiased-var';

/** One modality of a positional-embedding config: [name, length] or, for images, [name, grid]. A negative size means "no positional variation on this axis". */
export type PosEmbedEntry = [string, number | number[]];

export interface NoiseSchedulerConfig {
  /** Only 'ddpm': the official runner reads no other value (DDPM noise for training, DPM-Solver++ for sampling, always). */
  type: 'ddpm';
  num_train_timesteps: number;
  num_inference_timesteps: number;
  beta_schedule: 'squaredcos_cap_v2';
  prediction_type: 'sample';
  /** Only false: the official runner gives it to the training DDPMScheduler alone, whose add_noise never clips. */
  clip_sample: false;
}

/**
 * The EMA section of the hub config.json (the official trainer built its EMAModel from it). The
 * model reads none of it; rdt-libero's trainer uses its own `ema:` settings and writes them here,
 * so a saved config.json records the EMA that produced its ema/ weights (src/train/build.ts).
 */
export interface EmaConfig {
  update_after_step: number;
  inv_gamma: number;
  power: number;
  min_value: number;
  max_value: number;
}

export interface RdtConfig {
  action_dim: number;
  pred_horizon: number;
  lang_token_dim: number;
  img_token_dim: number;
  state_token_dim: number;
  max_lang_cond_len: number;
  img_cond_len: number;
  lang_pos_embed_config: PosEmbedEntry[];
  img_pos_embed_config: PosEmbedEntry[];
  lang_adaptor: string;
  img_adaptor: string;
  state_adaptor: string;
  rdt: { hidden_size: number; depth: number; num_heads: number; cond_pos_embed_type: string };
  noise_scheduler: NoiseSchedulerConfig;
  ema: EmaConfig;
  /** Our addition (not in the hub's files): the RmsNorm formula. Written to config.json only when it is not the default. */
  rms_norm: RmsNormVariant;
}

const NOISE_SCHEDULER: NoiseSchedulerConfig = {
  type: 'ddpm',
  num_train_timesteps: 1000,
  num_inference_timesteps: 5,
  beta_schedule: 'squaredcos_cap_v2',
  prediction_type: 'sample',
  clip_sample: false,
};
const EMA: EmaConfig = { update_after_step: 0, inv_gamma: 1.0, power: 0.75, min_value: 0.0, max_value: 0.9999 };

function released(hidden: number, depth: number): RdtConfig {
  return {
    action_dim: 128,
    pred_horizon: 64,
    lang_token_dim: 4096,
    img_token_dim: 1152,
    state_token_dim: 128,
    max_lang_cond_len: 1024,
    img_cond_len: 4374,
    lang_pos_embed_config: [['lang', -1024]],
    img_pos_embed_config: [['image', [2, 3, -729]]],
    lang_adaptor: 'mlp2x_gelu',
    img_adaptor: 'mlp2x_gelu',
    state_adaptor: 'mlp3x_gelu',
    rdt: { hidden_size: hidden, depth, num_heads: 32, cond_pos_embed_type: 'multimodal' },
    noise_scheduler: { ...NOISE_SCHEDULER },
    ema: { ...EMA },
    rms_norm: DEFAULT_RMS_NORM,
  };
}

/** Named configurations: the two released models and the tiny config A of the golden fixtures. */
export const PRESETS: Record<string, () => RdtConfig> = {
  'rdt-1b': () => released(2048, 28),
  'rdt-170m': () => released(1024, 14),
  tiny: () => ({
    ...released(128, 4),
    lang_token_dim: 32,
    img_token_dim: 24,
    max_lang_cond_len: 16,
    img_cond_len: 54,
    lang_pos_embed_config: [['lang', -16]],
    img_pos_embed_config: [['image', [2, 3, -9]]],
    rdt: { hidden_size: 128, depth: 4, num_heads: 4, cond_pos_embed_type: 'multimodal' },
  }),
};

/** A preset by name, with optional overrides (validated). Unknown names get a "did you mean". */
export function rdtPreset(name: string, overrides: Record<string, unknown> = {}): RdtConfig {
  const make = PRESETS[name];
  if (!make) throw new ModelError(`unknown RDT preset '${name}'${hint(name, Object.keys(PRESETS))}; presets: ${Object.keys(PRESETS).join(', ')}`);
  return parseRdtConfig(deepMerge(toHubJson(make(), { always: true }), overrides), `preset ${name}`);
}

// ---------------------------------------------------------------- parsing and validation

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** ' (did you mean 'x'?)' for a near miss among `known`, else ''. */
function hint(key: string, known: string[]): string {
  const best = didYouMean(key, known);
  return best ? ` (did you mean '${best}'?)` : '';
}

function deepMerge(base: Obj, over: Obj): Obj {
  const out: Obj = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isObj(v) && isObj(out[k]) ? deepMerge(out[k] as Obj, v) : v;
  return out;
}

class Reader {
  constructor(readonly source: string, readonly obj: Obj, readonly path: string) {}
  private where(key: string): string {
    return `${this.source}: key '${this.path}${key}'`;
  }
  fail(key: string, msg: string): never {
    throw new ModelError(`${this.where(key)} ${msg}`);
  }
  has(key: string): boolean {
    return this.obj[key] !== undefined;
  }
  private get(key: string): unknown {
    if (!(key in this.obj) || this.obj[key] === undefined) this.fail(key, 'is missing');
    return this.obj[key];
  }
  int(key: string, min = 1): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min) this.fail(key, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v;
  }
  num(key: string): number {
    const v = this.get(key);
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number, got ${JSON.stringify(v)}`);
    return v;
  }
  bool(key: string): boolean {
    const v = this.get(key);
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }
  str<T extends string>(key: string, allowed?: readonly T[]): T {
    const v = this.get(key);
    if (typeof v !== 'string') this.fail(key, `must be a string, got ${JSON.stringify(v)}`);
    if (allowed && !allowed.includes(v as T)) this.fail(key, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got '${v}'`);
    return v as T;
  }
  sub(key: string): Reader {
    const v = this.get(key);
    if (!isObj(v)) this.fail(key, `must be an object, got ${JSON.stringify(v)}`);
    return new Reader(this.source, v, `${this.path}${key}.`);
  }
  raw(key: string): unknown {
    return this.get(key);
  }
  /** Unknown keys are errors (a typo would otherwise be silently ignored). */
  noExtra(known: string[]): void {
    for (const k of Object.keys(this.obj))
      if (!known.includes(k)) this.fail(k, `is not an RDT config key${hint(k, known)}; known keys: ${known.join(', ')}`);
  }
}

const TOP_KEYS = [
  'action_dim', 'ema', 'img_adaptor', 'img_cond_len', 'img_pos_embed_config', 'img_token_dim', 'lang_adaptor',
  'lang_pos_embed_config', 'lang_token_dim', 'max_lang_cond_len', 'noise_scheduler', 'pred_horizon', 'rdt',
  'state_adaptor', 'state_token_dim', 'rms_norm',
];

/** Number of Linear layers an adaptor spec builds: 'linear' -> 1, 'mlp{N}x_gelu' -> N. */
export function adaptorDepth(spec: string): number | null {
  if (spec === 'linear') return 1;
  const m = /^mlp(\d+)x_gelu$/.exec(spec);
  return m && Number(m[1]) >= 1 ? Number(m[1]) : null;
}

function parsePosEmbed(r: Reader, key: string): PosEmbedEntry[] {
  const v = r.raw(key);
  const bad = () => r.fail(key, `must be a list of [name, length] or [name, [sizes...]] pairs, got ${JSON.stringify(v)}`);
  if (!Array.isArray(v) || v.length === 0) bad();
  return (v as unknown[]).map((e) => {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string') bad();
    const [name, len] = e as [string, unknown];
    const isInt = (x: unknown) => typeof x === 'number' && Number.isInteger(x) && x !== 0;
    if (isInt(len)) return [name, len as number] as PosEmbedEntry;
    if (Array.isArray(len) && len.length > 0 && len.every(isInt)) return [name, [...(len as number[])]] as PosEmbedEntry;
    return bad();
  });
}

/** Number of tokens a positional-embedding config covers. */
export function posEmbedLength(cfg: PosEmbedEntry[]): number {
  return cfg.reduce((n, [, len]) => n + (Array.isArray(len) ? len.reduce((p, x) => p * Math.abs(x), 1) : Math.abs(len)), 0);
}

/**
 * Validate a config object (a parsed hub config.json or the model section of our YAML). Every
 * problem names the key. `source` says where the object came from (a file path or "preset ...").
 */
export function parseRdtConfig(obj: unknown, source = 'RDT config'): RdtConfig {
  if (!isObj(obj)) throw new ModelError(`${source}: an RDT config must be a JSON object, got ${JSON.stringify(obj)?.slice(0, 80)}`);
  const r = new Reader(source, obj, '');
  r.noExtra(TOP_KEYS);
  const rdt = r.sub('rdt');
  rdt.noExtra(['hidden_size', 'depth', 'num_heads', 'cond_pos_embed_type']);
  const ns = r.sub('noise_scheduler');
  ns.noExtra(['type', 'num_train_timesteps', 'num_inference_timesteps', 'beta_schedule', 'prediction_type', 'clip_sample']);
  // Settings the official runner accepts but never acts on: only the value that matches what it does is accepted.
  if (ns.has('type') && ns.str('type') !== 'ddpm')
    ns.fail('type', `must be 'ddpm', got '${ns.raw('type')}': the official runner reads no other value (it always trains with DDPM noise and samples with DPM-Solver++), and neither does this one`);
  if (ns.has('clip_sample') && ns.bool('clip_sample'))
    ns.fail('clip_sample', 'must be false: the official runner passes it only to the training DDPMScheduler, whose add_noise never clips, and its DPM-Solver++ sampler does not clip; set clip_sample: false');
  const cfg: RdtConfig = {
    action_dim: r.int('action_dim'),
    pred_horizon: r.int('pred_horizon'),
    lang_token_dim: r.int('lang_token_dim'),
    img_token_dim: r.int('img_token_dim'),
    state_token_dim: r.int('state_token_dim'),
    max_lang_cond_len: r.int('max_lang_cond_len'),
    img_cond_len: r.int('img_cond_len'),
    lang_pos_embed_config: parsePosEmbed(r, 'lang_pos_embed_config'),
    img_pos_embed_config: parsePosEmbed(r, 'img_pos_embed_config'),
    lang_adaptor: r.str('lang_adaptor'),
    img_adaptor: r.str('img_adaptor'),
    state_adaptor: r.str('state_adaptor'),
    rdt: {
      hidden_size: rdt.int('hidden_size'),
      depth: rdt.int('depth'),
      num_heads: rdt.int('num_heads'),
      cond_pos_embed_type: rdt.has('cond_pos_embed_type') ? rdt.str('cond_pos_embed_type', ['multimodal']) : 'multimodal',
    },
    noise_scheduler: {
      type: 'ddpm',
      num_train_timesteps: ns.int('num_train_timesteps', 2),
      num_inference_timesteps: ns.int('num_inference_timesteps'),
      // Only the schedule and prediction type the released models use are implemented.
      beta_schedule: ns.str('beta_schedule', ['squaredcos_cap_v2'] as const),
      prediction_type: ns.str('prediction_type', ['sample'] as const),
      clip_sample: false,
    },
    ema: { ...EMA },
    rms_norm: r.has('rms_norm') ? r.str('rms_norm', RMS_NORM_VARIANTS) : DEFAULT_RMS_NORM,
  };
  if (r.has('ema')) {
    const e = r.sub('ema');
    e.noExtra(['update_after_step', 'inv_gamma', 'power', 'min_value', 'max_value']);
    cfg.ema = {
      update_after_step: e.int('update_after_step', 0),
      inv_gamma: e.num('inv_gamma'),
      power: e.num('power'),
      min_value: e.num('min_value'),
      max_value: e.num('max_value'),
    };
  }
  for (const k of ['lang_adaptor', 'img_adaptor', 'state_adaptor'] as const)
    if (adaptorDepth(cfg[k]) === null) r.fail(k, `must be 'linear' or 'mlp{N}x_gelu' (e.g. 'mlp2x_gelu'), got '${cfg[k]}'`);
  const { hidden_size: D, num_heads: H } = cfg.rdt;
  if (D % H !== 0) rdt.fail('hidden_size', `(${D}) must be divisible by rdt.num_heads (${H})`);
  if (D % 4 !== 0) rdt.fail('hidden_size', `(${D}) must be divisible by 4 (the multimodal sin-cos tables split it in halves of even size)`);
  if (cfg.state_token_dim !== cfg.action_dim)
    r.fail('state_token_dim', `(${cfg.state_token_dim}) must equal action_dim (${cfg.action_dim}): state and noisy-action tokens share the state adaptor`);
  const langLen = posEmbedLength(cfg.lang_pos_embed_config);
  if (langLen !== cfg.max_lang_cond_len)
    r.fail('lang_pos_embed_config', `covers ${langLen} tokens but max_lang_cond_len is ${cfg.max_lang_cond_len}`);
  const imgLen = posEmbedLength(cfg.img_pos_embed_config);
  if (imgLen !== cfg.img_cond_len) r.fail('img_pos_embed_config', `covers ${imgLen} tokens but img_cond_len is ${cfg.img_cond_len}`);
  if (cfg.noise_scheduler.num_inference_timesteps > cfg.noise_scheduler.num_train_timesteps)
    ns.fail('num_inference_timesteps', `(${cfg.noise_scheduler.num_inference_timesteps}) cannot exceed num_train_timesteps (${cfg.noise_scheduler.num_train_timesteps})`);
  return cfg;
}

/**
 * The hub config.json object (snake_case keys, as the Python code reads them). `rms_norm` is left
 * out when it is the default, so the file stays byte-compatible with the hub's; pass
 * `{always: true}` to include it.
 */
export function toHubJson(cfg: RdtConfig, opts: { always?: boolean } = {}): Obj {
  const out: Obj = {
    action_dim: cfg.action_dim,
    ema: { ...cfg.ema },
    img_adaptor: cfg.img_adaptor,
    img_cond_len: cfg.img_cond_len,
    img_pos_embed_config: cfg.img_pos_embed_config,
    img_token_dim: cfg.img_token_dim,
    lang_adaptor: cfg.lang_adaptor,
    lang_pos_embed_config: cfg.lang_pos_embed_config,
    lang_token_dim: cfg.lang_token_dim,
    max_lang_cond_len: cfg.max_lang_cond_len,
    noise_scheduler: { ...cfg.noise_scheduler },
    pred_horizon: cfg.pred_horizon,
    rdt: { ...cfg.rdt },
    state_adaptor: cfg.state_adaptor,
    state_token_dim: cfg.state_token_dim,
  };
  if (opts.always || cfg.rms_norm !== DEFAULT_RMS_NORM) out.rms_norm = cfg.rms_norm;
  return out;
}

/** config.json text exactly as Python's json.dumps(config, indent=2, sort_keys=True) writes it (919 bytes for rdt-1b). */
export function hubConfigText(cfg: RdtConfig): string {
  return pyJsonDumps(toHubJson(cfg), 0);
}

// Keys whose values Python holds as floats (written "1.0", not "1").
const FLOAT_KEYS = new Set(['inv_gamma', 'power', 'min_value', 'max_value']);

function pyJsonDumps(v: unknown, depth: number, key = ''): string {
  const pad = (d: number) => '  '.repeat(d);
  if (Array.isArray(v)) {
    if (v.length === 0) return '[]';
    return `[\n${v.map((x) => pad(depth + 1) + pyJsonDumps(x, depth + 1)).join(',\n')}\n${pad(depth)}]`;
  }
  if (isObj(v)) {
    const keys = Object.keys(v).sort();
    if (keys.length === 0) return '{}';
    return `{\n${keys.map((k) => `${pad(depth + 1)}${JSON.stringify(k)}: ${pyJsonDumps(v[k], depth + 1, k)}`).join(',\n')}\n${pad(depth)}}`;
  }
  if (typeof v === 'number' && FLOAT_KEYS.has(key) && Number.isInteger(v)) return v.toFixed(1);
  return JSON.stringify(v);
}

/**
 * A config from a plain object in any of our forms: a hub config.json; `{preset: 'rdt-1b', ...overrides}`;
 * or the official configs/base.yaml layout, whose `model:` section holds these keys and whose
 * `common:` section gives action_dim (state_dim) and pred_horizon (action_chunk_size).
 */
export function rdtConfigFromObject(obj: unknown, source = 'RDT config'): RdtConfig {
  if (!isObj(obj)) return parseRdtConfig(obj, source);
  if (typeof obj.preset === 'string') {
    const { preset, ...overrides } = obj;
    try {
      return rdtPreset(preset as string, overrides);
    } catch (e) {
      throw new ModelError(`${source}: ${(e as Error).message}`);
    }
  }
  if (isObj(obj.model)) {
    // As the official train.py fills in the runner's arguments from common/dataset (SigLIP-384: 729 patches).
    const common = isObj(obj.common) ? obj.common : {};
    const dataset = isObj(obj.dataset) ? obj.dataset : {};
    const model: Obj = { ...obj.model };
    const patches = 729;
    model.action_dim ??= common.state_dim;
    model.pred_horizon ??= common.action_chunk_size;
    model.max_lang_cond_len ??= dataset.tokenizer_max_length;
    if (typeof model.max_lang_cond_len === 'number') model.lang_pos_embed_config ??= [['lang', -model.max_lang_cond_len]];
    if (typeof common.img_history_size === 'number' && typeof common.num_cameras === 'number') {
      model.img_cond_len ??= common.img_history_size * common.num_cameras * patches;
      model.img_pos_embed_config ??= [['image', [common.img_history_size, common.num_cameras, -patches]]];
    }
    return parseRdtConfig(model, `${source} (model section)`);
  }
  return parseRdtConfig(obj, source);
}

/** Read a config file: .json (hub config.json) or .yaml/.yml (our YAML, same keys), see rdtConfigFromObject. */
export function loadRdtConfigFile(path: string): RdtConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ModelError(`cannot read the RDT config ${path}: ${(e as Error).message}`);
  }
  let obj: unknown;
  try {
    obj = /\.ya?ml$/i.test(path) ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    throw new ModelError(`${path}: not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(e as Error).message}`);
  }
  return rdtConfigFromObject(obj, path);
}

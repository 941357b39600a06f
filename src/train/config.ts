// The training configuration: each key declared once below, with its type, default, doc and check; the defaults,
// `rdt-libero train --help`, the validation and the effects test (test/train-config-effects.test.ts) all come from
// this schema. Keys follow the official RDT launch flags (main.py / finetune.sh, rdt-spec.md 6.1) where they
// exist; defaults are the LIBERO fixes the original project learned the hard way: effective batch 256, LR warmup,
// bf16, clipping that is actually on.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { DATA_FORMATS } from '../data/episode_file.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { ALIGNMENTS } from '../data/step_index.js';
import { ConfigError } from './errors.js';
import { VALUE_NORMALIZATIONS } from '../policy/file.js';
import {
  defaultsOf, intFrom, isObj, key, mergeChecked, notOneOf, nullable, oneOf, parseOverrides, schemaKeys, where,
  type Plain, type ValuesOf,
} from './config_parse.js';

export { parseOverrides } from './config_parse.js';
export { ConfigError } from './errors.js';

export const LR_SCHEDULERS = ['constant', 'constant_with_warmup', 'cosine', 'linear'] as const;
/** Where `report_to` can send metrics. */
export const REPORT_SINKS = ['jsonl', 'tensorboard', 'wandb', 'none'] as const;
export type LrSchedulerName = (typeof LR_SCHEDULERS)[number];

const isProb = (v: number) => v >= 0 && v <= 1;
// The demo encoders read no folders: these keys would do nothing.
const demoReadsNoFolders = (_v: string, c: { encoders: string }) =>
  c.encoders !== 'official' ? `is set, but encoders: ${c.encoders} reads no encoder folders; remove it or set encoders: official` : undefined;

/**
 * Every key: key(type, default, doc, check?), nullable(...) when null is a value, oneOf(values, default, doc). A new
 * key is one line here, plus its entry in test/train-config-effects.test.ts (which checks that it does something).
 */
export const TRAIN_CONFIG = {
  model: key('string', 'auto', "architecture: 'auto' (the pretrained checkpoint's own; rdt-1b from scratch), a preset 'rdt-1b', 'rdt-170m', 'tiny', or a hub config.json; must match the pretrained checkpoint"),
  pretrained_model_name_or_path: nullable('string', null, 'checkpoint folder (hub layout: config.json + weights) to fine-tune from; null = from scratch'),
  encoders: oneOf(['demo', 'demo_palette', 'official'], 'official', "'official' (T5-v1.1-XXL + SigLIP from text_encoder / vision_encoder), 'demo' (deterministic stand-ins, for testing only: hashed words, random patch projections) or 'demo_palette' (the demo text encoder + one image token per palette colour: presence, centroid, spread; what the embedded demo trains with)"),
  text_encoder: nullable('string', null, 'encoders: official: hub folder of the T5 v1.1 encoder (google/t5-v1_1-xxl: config.json + weights, spiece.model); required there, refused with the demo encoders', demoReadsNoFolders),
  vision_encoder: nullable('string', null, 'encoders: official: hub folder of the SigLIP tower (google/siglip-so400m-patch14-384); required there, refused with the demo encoders', demoReadsNoFolders),
  tokenizer: nullable('string', null, 'encoders: official: folder of the T5 tokenizer (spiece.model or tokenizer.json) when not in text_encoder; null = text_encoder', demoReadsNoFolders),
  encoder_dtype: key<'string', 'auto' | 'float32' | 'bfloat16'>('string', 'auto', "encoders: official: 'auto' (bfloat16 on cuda, float32 on cpu), 'float32' or 'bfloat16'; the frozen encoders' weights and compute", (v, c) =>
    notOneOf(v, ['auto', 'float32', 'bfloat16']) ?? (c.encoders !== 'official' && v !== 'auto' ? `is ${v}, but the demo encoders always run in float32; remove it or set encoders: official` : undefined)),
  text_cache: nullable('string', null, "encoders: official: T5 token cache from 'rdt-libero encode --cache FILE' covering every instruction; T5 is then never loaded (its folder is only hashed); null = encode live", demoReadsNoFolders),
  output_dir: key('string', 'runs/rdt-libero', 'where checkpoints, metrics.jsonl, tensorboard/, stats/ and run_config.yaml go'),
  seed: key('number', 42, 'seed for the model init, the sampler, noise, timesteps and condition dropout', intFrom(0)),
  device: key('string', 'cpu', "'cpu', 'cuda' or 'cuda:N'", (v) => (/^(cpu|cuda(:\d+)?)$/.test(v) ? undefined : `must be cpu, cuda or cuda:N, got '${v}'`)),
  train_batch_size: key('number', 32, 'samples per micro-batch (per process)', intFrom(1)),
  // 32 x 8 = 256 per GPU-step group: the seeds' batch of 32 was too small.
  gradient_accumulation_steps: key('number', 8, 'micro-batches per optimizer step; effective batch = train_batch_size x this', intFrom(1)),
  learning_rate: key('number', 1e-4, 'peak AdamW learning rate', where((v) => v > 0, '> 0')),
  lr_scheduler: oneOf(LR_SCHEDULERS, 'constant_with_warmup', 'constant, constant_with_warmup, cosine or linear'),
  lr_warmup_steps: key('number', 1000, 'optimizer steps of linear warmup from 0 (not used by constant)', intFrom(0)),
  max_train_steps: nullable('number', 30000, 'optimizer steps to run; null = num_train_epochs over the data', intFrom(1)),
  num_train_epochs: key('number', 1, 'epochs to run when max_train_steps is null', where((v) => v > 0, '> 0')),
  adam_beta1: key('number', 0.9, 'AdamW beta1', where((v) => v >= 0 && v < 1, 'in [0, 1)')),
  adam_beta2: key('number', 0.999, 'AdamW beta2', where((v) => v >= 0 && v < 1, 'in [0, 1)')),
  adam_epsilon: key('number', 1e-8, 'AdamW epsilon', where((v) => v > 0, '> 0')),
  adam_weight_decay: key('number', 1e-2, 'AdamW weight decay (on all parameters, as the official code)', where((v) => v >= 0, '>= 0')),
  max_grad_norm: key('number', 1.0, 'gradient clipping norm, > 0 (always applied; the official DeepSpeed setup silently skipped it)', where((v) => v > 0, '> 0 (clipping is always on; use a large value to make it inactive)')),
  mixed_precision: oneOf(['no', 'bf16'], 'bf16', "'bf16' (bf16 weights and activations, float32 master weights and optimizer) or 'no'"),
  checkpointing_period: key('number', 1000, 'write output_dir/checkpoint-N every this many optimizer steps (and at the end)', intFrom(1)),
  checkpoints_total_limit: nullable('number', 5, 'keep at most this many checkpoints (oldest deleted); null = keep all', intFrom(1)),
  resume_from_checkpoint: nullable('string', null, "'latest' (newest complete checkpoint in output_dir) or a checkpoint-N folder; null = start fresh. The resumed config must match the checkpoint's run_config.yaml except the step budget, cadences, reporting, device and data paths"),
  overwrite: key('boolean', false, "true: a fresh run may take an output_dir that holds another run, whose checkpoints, final/, metrics and stats are deleted first; false: such a folder is refused"),
  sample_period: key('number', 500, 'sample-MSE evaluation on held-out demos before training, every this many steps and at the end; 0 = never', intFrom(0)),
  sample_batch_size: key('number', 64, 'samples per held-out evaluation batch', intFrom(1)),
  num_sample_batches: key('number', 2, 'held-out batches per evaluation', intFrom(0)),
  cond_mask_prob: key('number', 0.1, 'probability of dropping each condition (language, images, state, ...) per sample', where(isProb, 'in [0, 1]')),
  cam_ext_mask_prob: key('number', -1, 'drop probability of the exterior camera; < 0 = use cond_mask_prob', where((v) => v <= 1, '<= 1 (< 0: use cond_mask_prob)')),
  state_noise_snr: nullable('number', 40, 'state noise SNR in dB added during training; null = no noise'),
  image_aug: key('boolean', false, 'augment half of the valid camera frames: colour jitter and/or Gaussian noise + box blur (official recipe, simplified)'),
  ctrl_freq: key('number', 20, 'control frequency in Hz fed to the model (LIBERO: 20)', where((v) => v > 0, '> 0 Hz')),
  value_normalization: oneOf(VALUE_NORMALIZATIONS, 'none', "'none' (the model sees physical units, as the official RDT) or 'zscore' (state and actions as (x - mean) / std of the run's dataset statistics, recorded in policy.json; learns much faster from scratch; slots that never vary are only centred)"),
  exec_horizon: key('number', 16, "chunk steps an evaluation executes before it asks for the next chunk; recorded in every saved policy.json (action.exec_horizon) as rdt-libero eval's and serve's default for the policy; at most the model's chunk", intFrom(1)),
  report_to: key('list', ['jsonl', 'tensorboard'], 'metric sinks: jsonl, tensorboard, wandb, none (list, or comma-separated on the command line)', (v) => v.map((r) => notOneOf(r, REPORT_SINKS)).find(Boolean)),
  log_every: key('number', 10, 'write train/* metrics every this many optimizer steps', intFrom(1)),
  max_bad_steps: key('number', 10, 'stop after this many consecutive optimizer steps with a NaN/Inf loss (each is skipped)', intFrom(1)),
  zero_stage: key<'number', 0 | 2>('number', 0, '0, or 2 with several processes: each keeps the float32 masters, AdamW state and gradients of its share of the parameters only (ZeRO-2 style: each gradient bucket is reduced to the owners); checkpoints stay unsharded', where((v) => v === 0 || v === 2, '0 (no sharding) or 2 (ZeRO-2: optimizer state, masters and gradients sharded)')),
  ddp: {
    bucket_cap_mb: key('number', 25, 'several processes: MiB of gradient per bucket reduced at once (PyTorch DDP bucket_cap_mb); > 0', where((v) => v > 0, '> 0 (MiB of gradient per bucket)')),
    overlap_comm: key('boolean', true, 'several processes: reduce each bucket while backward still runs (true) or after it (false); the results are bit-identical'),
  },
  ema: {
    enabled: key('boolean', true, "keep an exponential moving average of the weights (saved as ema/); the ema.* values replace a pretrained config.json's ema section and are written into every saved config.json"),
    update_after_step: key('number', 0, 'EMA updates before this step copy the weights', intFrom(0)),
    inv_gamma: key('number', 1.0, 'EMA warmup: decay = 1 - (1 + n / inv_gamma)^-power', where((v) => v > 0, '> 0')),
    power: key('number', 0.75, 'EMA warmup power', where((v) => v > 0, '> 0')),
    min_value: key('number', 0.0, 'EMA decay lower bound', where(isProb, 'in [0, 1]')),
    max_value: key('number', 0.9999, 'EMA decay upper bound', (v, c) => (isProb(v) && v >= c.ema.min_value ? undefined : `must be in [ema.min_value, 1], got ${v}`)),
  },
  lora: {
    enabled: key('boolean', false, 'train low-rank adapters instead of all weights (needs pretrained_model_name_or_path; saved as adapter_model.safetensors; rdt-libero lora-merge folds them in)'),
    rank: key('number', 32, 'adapter rank r', intFrom(1)),
    alpha: key('number', 32, 'adapter scale alpha (the update is alpha/r * B A)', where((v) => v > 0, '> 0')),
    targets: key('list', ['attn.qkv', 'attn.proj', 'cross_attn.q', 'cross_attn.kv', 'cross_attn.proj', 'ffn.fc1', 'ffn.fc2'], 'linears of each RDT block that get adapters (official module names)',
      (v, c) => (c.lora.enabled && !v.length ? 'is empty: name the linears of each block to adapt (e.g. attn.qkv, ffn.fc1)' : undefined)),
    train_adaptors: key('boolean', true, 'also train the language/image/state adaptors fully'),
  },
  data: {
    dataset_root: key('string', '', 'folder holding libero_spatial/, libero_goal/, ... (or a suite folder itself); required'),
    format: oneOf(DATA_FORMATS, 'auto', "'auto' (default: a folder with meta/info.json, or sub-folders with one, is a LeRobot dataset), 'hdf5' (LIBERO suite folders) or 'lerobot' (LeRobot v2.0/v2.1/v3.0); run_config.yaml and policy.json record the resolved value"),
    lerobot_mapping: {
      agentview: key('string', '', "LeRobot column of the third-person camera; all mapping keys '' (default) picks openpi's or LeRobot's LIBERO layout by the features in meta/info.json"),
      eye_in_hand: key('string', '', "LeRobot column of the wrist camera ('' = none: that slot is masked)"),
      state: key('string', '', 'LeRobot column of the robot state vector the next keys index into'),
      eef_pos: key('string', '', "'start:end' of the end-effector position (m, 3 values) in the state column"),
      eef_axis_angle: key('string', '', "'start:end' of the end-effector axis-angle (rad, 3 values); or give eef_quat"),
      eef_quat: key('string', '', "'start:end' of the end-effector quaternion (x, y, z, w; 4 values); or give eef_axis_angle"),
      gripper_qpos: key('string', '', "'start:end' of the two finger joint positions (m)"),
      action: key('string', '', "LeRobot column of LIBERO's 7-D OSC_POSE command ([-1, 1], gripper -1 open, +1 close, one per 20 Hz step)"),
      instruction: key('string', '', "'task' (meta/tasks via task_index, the default) or a string column of the data files"),
      stored_orientation: key('string', '', "what the stored frames already had done to the simulator's upside-down render: none (raw), flip_v or rot180 (the OpenVLA/openpi copies)"),
    },
    suites: key('list', [], 'suites to train on; empty = every suite found'),
    suite_weights: key('map', {}, 'relative sampling weight per suite, e.g. {libero_10: 2}; empty = by step count', (v) => Object.entries(v).map(([suite, w]) =>
      typeof w !== 'number' || !(w >= 0) ? `'data.suite_weights.${suite}' must be a number >= 0, got ${JSON.stringify(w)}` : undefined).find(Boolean)),
    // Commanded goal poses look like RDT's pre-training actions (future absolute poses).
    action_encoding: key('string', 'eef_target_pose', 'how LIBERO actions map into the 128-d vector (see rdt-libero data --help)', (v) => notOneOf(v, Object.keys(ENCODINGS))),
    instruction_source: oneOf(['filename', 'problem_info'], 'filename', "'filename' (the evaluation prompt) or 'problem_info' (the BDDL wording)"),
    holdout_demos_per_task: key('number', 1, 'demos per task kept out of training for sample-MSE evaluation', intFrom(0)),
    skip_idle_steps: key('boolean', true, 'skip the no-op steps at the start of each demo'),
    drop_noops: key('boolean', false, 'drop every no-op step'),
    align: oneOf(ALIGNMENTS, 'auto', "which observation each action is paired with: realign (the one before it, as at evaluation), stored (the file's pairing), auto (realign the released layout, keep the regenerated one)"),
    num_workers: key('number', 2, 'background data-loading workers (0 = load on the main thread)', intFrom(0)),
  },
};

export type TrainConfig = ValuesOf<typeof TRAIN_CONFIG>;
export type DdpConfig = TrainConfig['ddp'];
export type EmaConfig = TrainConfig['ema'];
export type LoraConfig = TrainConfig['lora'];
export type DataConfig = TrainConfig['data'];

export const DEFAULT_CONFIG: TrainConfig = defaultsOf(TRAIN_CONFIG);

/** Every key, dotted, with its default (data.suite_weights counts as one key). */
export function configKeys(): { key: string; value: unknown }[] {
  return schemaKeys(TRAIN_CONFIG).map(({ path, spec }) => ({ key: path, value: spec.default }));
}

const show = (v: unknown) => (v === '' ? "''" : Array.isArray(v) ? `[${v.join(', ')}]` : isObj(v) ? JSON.stringify(v) : String(v));

/** The key table of `rdt-libero train --help`: key, default, meaning. */
export function configHelp(): string {
  const rows = schemaKeys(TRAIN_CONFIG).map(({ path, spec }) => ({ key: path, def: show(spec.default), doc: spec.doc }));
  const kw = Math.max(...rows.map((r) => r.key.length));
  const dw = Math.min(24, Math.max(...rows.map((r) => r.def.length)));
  return rows.map((r) => {
    const def = r.def.length > dw ? `${r.def}\n${' '.repeat(2 + kw + 2 + dw + 2)}` : r.def.padEnd(dw);
    return `  ${r.key.padEnd(kw)}  ${def}  ${r.doc}`;
  }).join('\n');
}

/** Dotted paths of the leaves of a plain mapping (suite_weights entries included). */
function leafPaths(o: Plain, prefix = '', out = new Set<string>()): Set<string> {
  for (const [k, v] of Object.entries(o)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (isObj(v)) leafPaths(v, p, out);
    out.add(p);
  }
  return out;
}

/**
 * Refuse every value no run can use, with the key named and where its value came from (`originOf(key)`: 'command
 * line' for an override, the YAML file for a value it set, the defaults otherwise).
 */
export function validate(c: TrainConfig, originOf: (key: string) => string): void {
  for (const { path, spec } of schemaKeys(TRAIN_CONFIG)) {
    const v = path.split('.').reduce<unknown>((o, p) => (o as Plain)[p], c);
    const m = v === null || !spec.check ? undefined : spec.check(v as NonNullable<unknown>, c);
    if (m === undefined) continue;
    const msg = m.startsWith("'") ? m : `'${path}' ${m}`;
    throw new ConfigError(`${originOf(/^'([^']+)'/.exec(msg)![1])}: ${msg}`);
  }
}

/** Build a config: defaults, then the YAML file (if any), then the overrides; validated. */
export function loadConfig(opts: { file?: string; overrides?: Plain | string[]; base?: TrainConfig } = {}): TrainConfig {
  const cfg = structuredClone(opts.base ?? DEFAULT_CONFIG) as unknown as Plain;
  let fileKeys = new Set<string>();
  if (opts.file) {
    if (!existsSync(opts.file)) throw new ConfigError(`config file ${opts.file} does not exist`);
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(opts.file, 'utf8'));
    } catch (e) {
      throw new ConfigError(`${opts.file}: not valid YAML (${(e as Error).message.split('\n')[0]})`);
    }
    if (parsed !== null && parsed !== undefined) {
      if (!isObj(parsed)) throw new ConfigError(`${opts.file}: the top level must be a mapping of config keys`);
      mergeChecked(cfg, parsed, TRAIN_CONFIG, '', opts.file);
      fileKeys = leafPaths(parsed);
    }
  }
  let fromCli = new Set<string>();
  if (opts.overrides) {
    const o = Array.isArray(opts.overrides) ? parseOverrides(opts.overrides) : opts.overrides;
    mergeChecked(cfg, o, TRAIN_CONFIG, '', 'command line');
    fromCli = leafPaths(o);
  }
  const fromFile = fileKeys;
  const c = cfg as unknown as TrainConfig;
  validate(c, (key) => (fromCli.has(key) ? 'command line' : fromFile.has(key) ? opts.file! : opts.file ? `${opts.file} (default value)` : 'config'));
  return c;
}

/**
 * encoders: official needs both encoder folders. Checked when a run starts (train), not by loadConfig, so a
 * config can be read, shown and completed on the command line before the folders are known.
 */
export function checkEncoderFolders(c: TrainConfig): void {
  if (c.encoders !== 'official') return;
  const hub = { text_encoder: 'google/t5-v1_1-xxl', vision_encoder: 'google/siglip-so400m-patch14-384' } as const;
  for (const k of ['text_encoder', 'vision_encoder'] as const) {
    if (c[k] === null || c[k] === '')
      throw new ConfigError(`'${k}' is required with encoders: official: the folder of a download of ${hub[k]} (see README "The official encoders"), or set encoders: demo for the test stand-ins`);
    if (!existsSync(join(c[k]!, 'config.json')))
      throw new ConfigError(`'${k}': ${c[k]} holds no config.json; give the hub folder of ${hub[k]} (config.json + weights)`);
  }
  if (c.text_cache !== null && !existsSync(c.text_cache))
    throw new ConfigError(`'text_cache': ${c.text_cache} does not exist; make it with rdt-libero encode --text-encoder ${c.text_encoder} --dataset-root ROOT --cache ${c.text_cache}, or set text_cache: null`);
  if (c.tokenizer !== null && !existsSync(c.tokenizer)) throw new ConfigError(`'tokenizer': folder ${c.tokenizer} does not exist`);
}

/** The dtype the official encoders run in: encoder_dtype, or for 'auto' bfloat16 on cuda and float32 on cpu. */
export function encoderDtype(c: TrainConfig): 'float32' | 'bfloat16' {
  return c.encoder_dtype !== 'auto' ? c.encoder_dtype : c.device.startsWith('cuda') ? 'bfloat16' : 'float32';
}

/** Effective batch = per-device batch x accumulation x world size (printed at start). */
export function effectiveBatch(c: TrainConfig, worldSize = 1): number {
  return c.train_batch_size * c.gradient_accumulation_steps * worldSize;
}

// The training configuration. Keys follow the official RDT launch flags (main.py / finetune.sh,
// rdt-spec.md 6.1) where they exist; defaults are the LIBERO fixes the original project learned
// the hard way: effective batch 256, LR warmup, bf16, clipping that is actually on.
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { Alignment } from '../data/step_index.js';
import { EMPTY_MAPPING, type MappingConfig } from '../data/lerobot/mapping.js';
import { ConfigError } from './errors.js';
import { isObj, mergeChecked, parseOverrides, type Plain } from './config_parse.js';
import { leafPaths, validate } from './config_validate.js';

export { parseOverrides } from './config_parse.js';

export { ConfigError } from './errors.js';

export const LR_SCHEDULERS = ['constant', 'constant_with_warmup', 'cosine', 'linear'] as const;
/** Where `report_to` can send metrics. */
export const REPORT_SINKS = ['jsonl', 'tensorboard', 'wandb', 'none'] as const;
export type LrSchedulerName = (typeof LR_SCHEDULERS)[number];

export interface EmaConfig {
  enabled: boolean;
  update_after_step: number;
  inv_gamma: number;
  power: number;
  min_value: number;
  max_value: number;
}

export interface LoraConfig {
  enabled: boolean;
  rank: number;
  alpha: number;
  /** Which linears of each RDT block get adapters (official module names). */
  targets: string[];
  /** Also train the language/image/state adaptors fully. */
  train_adaptors: boolean;
}

/** Data-parallel gradient reduction (src/train/ddp.ts); only used with several processes. */
export interface DdpConfig {
  /** Bytes of gradient per bucket, in MiB (PyTorch DDP's bucket_cap_mb, default 25). */
  bucket_cap_mb: number;
  /** Reduce each bucket as soon as its gradients are ready, during backward (DeepSpeed's overlap_comm); false: after backward. */
  overlap_comm: boolean;
}

export interface DataConfig {
  /** Folder holding libero_spatial/, libero_object/, ... (or the suite folders themselves), or LeRobot dataset folder(s). */
  dataset_root: string;
  /** 'auto' detects it from dataset_root (a meta/info.json makes it LeRobot); a run records the resolved value. */
  format: 'auto' | 'hdf5' | 'lerobot';
  /** LeRobot: which columns hold what; all '' picks the known mapping of openpi's or LeRobot's LIBERO copy. */
  lerobot_mapping: MappingConfig;
  /** Suites to train on; empty = every suite found under dataset_root. */
  suites: string[];
  /** Relative sampling weight per suite (default: proportional to step count). */
  suite_weights: Record<string, number>;
  action_encoding: string;
  instruction_source: 'filename' | 'problem_info';
  /** Demos per task held out for sample evaluation (0: sample evaluation on training batches). */
  holdout_demos_per_task: number;
  skip_idle_steps: boolean;
  drop_noops: boolean;
  /**
   * Which observation each action is paired with: 'realign' pairs it with the observation before it (as
   * at evaluation; undoes the released files' one-step offset), 'stored' keeps the file's pairing,
   * 'auto' realigns the released ('original') layout and keeps the regenerated one.
   */
  align: Alignment;
  num_workers: number;
}

export interface TrainConfig {
  /**
   * Architecture preset ('rdt-1b', 'rdt-170m', 'tiny'), a hub config.json (or a folder holding one), or 'auto': the pretrained checkpoint's own
   * architecture (rdt-1b when training from scratch). A preset that differs from the checkpoint is an error.
   */
  model: string;
  /** Checkpoint directory to fine-tune from (hub layout), or null to train from scratch. */
  pretrained_model_name_or_path: string | null;
  /** 'demo' = deterministic stand-in encoders (no T5/SigLIP); labelled as such in every output. */
  encoders: 'demo' | 'official';
  /** encoders: official: the T5 v1.1 hub folder (config.json + weights), e.g. a download of google/t5-v1_1-xxl. */
  text_encoder: string | null;
  /** encoders: official: the SigLIP hub folder, e.g. a download of google/siglip-so400m-patch14-384. */
  vision_encoder: string | null;
  /** encoders: official: the T5 tokenizer folder when it is not text_encoder itself (null: text_encoder). */
  tokenizer: string | null;
  /** encoders: official: 'auto' (bfloat16 on cuda, float32 on cpu), 'float32' or 'bfloat16'. */
  encoder_dtype: 'auto' | 'float32' | 'bfloat16';
  /** encoders: official: T5 tokens from this cache (rdt-libero encode --cache) instead of loading T5; null: T5 is loaded. */
  text_cache: string | null;
  output_dir: string;
  seed: number;
  device: string;
  train_batch_size: number;
  gradient_accumulation_steps: number;
  learning_rate: number;
  lr_scheduler: LrSchedulerName;
  lr_warmup_steps: number;
  max_train_steps: number | null;
  num_train_epochs: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  adam_weight_decay: number;
  max_grad_norm: number;
  mixed_precision: 'no' | 'bf16';
  checkpointing_period: number;
  checkpoints_total_limit: number | null;
  resume_from_checkpoint: string | null;
  /** Start a fresh run in an output_dir that holds another run's outputs, deleting them first. */
  overwrite: boolean;
  sample_period: number;
  sample_batch_size: number;
  num_sample_batches: number;
  cond_mask_prob: number;
  cam_ext_mask_prob: number;
  state_noise_snr: number | null;
  image_aug: boolean;
  ctrl_freq: number;
  /** Chunk steps an evaluation executes before replanning: recorded in policy.json (action.exec_horizon). */
  exec_horizon: number;
  report_to: string[];
  log_every: number;
  /** Stop after this many consecutive non-finite losses (each such step is skipped). */
  max_bad_steps: number;
  /** 0: every process keeps the whole optimizer state; 2: ZeRO-2-style sharding across processes (src/train/zero.ts). */
  zero_stage: 0 | 2;
  ddp: DdpConfig;
  ema: EmaConfig;
  lora: LoraConfig;
  data: DataConfig;
}

export const DEFAULT_CONFIG: TrainConfig = {
  model: 'auto',
  pretrained_model_name_or_path: null,
  encoders: 'official',
  text_encoder: null,
  vision_encoder: null,
  tokenizer: null,
  encoder_dtype: 'auto',
  text_cache: null,
  output_dir: 'runs/rdt-libero',
  seed: 42,
  device: 'cpu',
  train_batch_size: 32,
  gradient_accumulation_steps: 8, // 32 x 8 = 256 per GPU-step group: the seeds' batch of 32 was too small
  learning_rate: 1e-4,
  lr_scheduler: 'constant_with_warmup',
  lr_warmup_steps: 1000,
  max_train_steps: 30000,
  num_train_epochs: 1,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  adam_weight_decay: 1e-2,
  max_grad_norm: 1.0,
  mixed_precision: 'bf16',
  checkpointing_period: 1000,
  checkpoints_total_limit: 5,
  resume_from_checkpoint: null,
  overwrite: false,
  sample_period: 500,
  sample_batch_size: 64,
  num_sample_batches: 2,
  cond_mask_prob: 0.1,
  cam_ext_mask_prob: -1,
  state_noise_snr: 40,
  image_aug: false,
  ctrl_freq: 20,
  exec_horizon: 16,
  report_to: ['jsonl', 'tensorboard'],
  log_every: 10,
  max_bad_steps: 10,
  zero_stage: 0,
  ddp: { bucket_cap_mb: 25, overlap_comm: true },
  ema: { enabled: true, update_after_step: 0, inv_gamma: 1.0, power: 0.75, min_value: 0.0, max_value: 0.9999 },
  lora: { enabled: false, rank: 32, alpha: 32, targets: ['attn.qkv', 'attn.proj', 'cross_attn.q', 'cross_attn.kv', 'cross_attn.proj', 'ffn.fc1', 'ffn.fc2'], train_adaptors: true },
  data: {
    dataset_root: '',
    format: 'auto',
    lerobot_mapping: { ...EMPTY_MAPPING },
    suites: [],
    suite_weights: {},
    // Commanded goal poses look like RDT's pre-training actions (future absolute poses).
    action_encoding: 'eef_target_pose',
    instruction_source: 'filename',
    holdout_demos_per_task: 1,
    skip_idle_steps: true,
    drop_noops: false,
    align: 'auto',
    num_workers: 2,
  },
};

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
      mergeChecked(cfg, parsed, DEFAULT_CONFIG as unknown as Plain, '', opts.file);
      fileKeys = leafPaths(parsed);
    }
  }
  let fromCli = new Set<string>();
  if (opts.overrides) {
    const o = Array.isArray(opts.overrides) ? parseOverrides(opts.overrides) : opts.overrides;
    mergeChecked(cfg, o, DEFAULT_CONFIG as unknown as Plain, '', 'command line');
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

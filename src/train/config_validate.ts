// Validating a resolved training config: every value no run can use is refused with the key named, and with
// where that value came from (the command line, the YAML file, or the defaults).
import { DATA_FORMATS } from '../data/episode_file.js';
import { didYouMean } from '../util/did-you-mean.js';
import { ENCODINGS } from '../data/encodings/index.js';
import { ALIGNMENTS } from '../data/step_index.js';
import { ConfigError } from './errors.js';
import { isObj, type Plain } from './config_parse.js';
import { LR_SCHEDULERS, REPORT_SINKS, type TrainConfig } from './config.js';

/** Dotted paths of the leaves of a plain mapping (suite_weights entries included). */
export function leafPaths(o: Plain, prefix = '', out = new Set<string>()): Set<string> {
  for (const [k, v] of Object.entries(o)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (isObj(v)) leafPaths(v, p, out);
    out.add(p);
  }
  return out;
}

/**
 * `originOf(key)`: where a bad value came from, for the error message: 'command line' for an override, the YAML
 * file for a value it set, 'defaults' otherwise.
 */
export function validate(c: TrainConfig, originOf: (key: string) => string): void {
  // Every message starts with the key in quotes; the error names where that key's value was given.
  const fail = (m: string) => { throw new ConfigError(`${originOf(/^'([^']+)'/.exec(m)?.[1] ?? '')}: ${m}`); };
  const get = (k: string) => k.split('.').reduce<unknown>((o, p) => (o as Plain)[p], c) as number;
  const int = (k: string, min: number) => {
    const v = get(k);
    if (!Number.isInteger(v) || v < min) fail(`'${k}' must be ${min === 1 ? 'a positive integer' : `an integer >= ${min}`}, got ${v}`);
  };
  const range = (k: string, ok: (v: number) => boolean, what: string) => {
    if (!ok(get(k))) fail(`'${k}' must be ${what}, got ${get(k)}`);
  };
  const oneOf = (k: string, v: string, allowed: readonly string[]) => {
    if (allowed.includes(v)) return;
    const hint = didYouMean(v, allowed);
    fail(`'${k}' must be one of ${allowed.join(', ')}, got '${v}'${hint ? ` (did you mean '${hint}'?)` : ''}`);
  };
  for (const k of ['train_batch_size', 'gradient_accumulation_steps', 'checkpointing_period', 'log_every', 'max_bad_steps', 'sample_batch_size'])
    int(k, 1);
  for (const k of ['seed', 'lr_warmup_steps', 'sample_period', 'num_sample_batches', 'ema.update_after_step', 'data.holdout_demos_per_task', 'data.num_workers'])
    int(k, 0);
  if (c.max_train_steps !== null) int('max_train_steps', 1);
  if (c.checkpoints_total_limit !== null) int('checkpoints_total_limit', 1);
  oneOf('lr_scheduler', c.lr_scheduler, LR_SCHEDULERS);
  range('zero_stage', (v) => v === 0 || v === 2, '0 (no sharding) or 2 (ZeRO-2: optimizer state, masters and gradients sharded)');
  oneOf('mixed_precision', c.mixed_precision, ['no', 'bf16']);
  oneOf('encoders', c.encoders, ['demo', 'official']);
  oneOf('encoder_dtype', c.encoder_dtype, ['auto', 'float32', 'bfloat16']);
  if (c.encoders === 'demo') {
    // The demo encoders read no folders and run in float32: these keys would do nothing.
    for (const k of ['text_encoder', 'vision_encoder', 'tokenizer', 'text_cache'] as const)
      if (c[k] !== null) fail(`'${k}' is set, but encoders: demo reads no encoder folders; remove it or set encoders: official`);
    if (c.encoder_dtype !== 'auto') fail(`'encoder_dtype' is ${c.encoder_dtype}, but the demo encoders always run in float32; remove it or set encoders: official`);
  }
  oneOf('data.instruction_source', c.data.instruction_source, ['filename', 'problem_info']);
  oneOf('data.action_encoding', c.data.action_encoding, Object.keys(ENCODINGS));
  oneOf('data.align', c.data.align, ALIGNMENTS);
  oneOf('data.format', c.data.format, DATA_FORMATS);
  for (const r of c.report_to) oneOf('report_to', r, REPORT_SINKS);
  if (!/^(cpu|cuda(:\d+)?)$/.test(c.device)) fail(`'device' must be cpu, cuda or cuda:N, got '${c.device}'`);
  const prob = (v: number) => v >= 0 && v <= 1;
  range('learning_rate', (v) => v > 0, '> 0');
  range('num_train_epochs', (v) => v > 0, '> 0');
  range('adam_beta1', (v) => v >= 0 && v < 1, 'in [0, 1)');
  range('adam_beta2', (v) => v >= 0 && v < 1, 'in [0, 1)');
  range('adam_epsilon', (v) => v > 0, '> 0');
  range('adam_weight_decay', (v) => v >= 0, '>= 0');
  range('max_grad_norm', (v) => v > 0, '> 0 (clipping is always on; use a large value to make it inactive)');
  range('cond_mask_prob', prob, 'in [0, 1]');
  range('cam_ext_mask_prob', (v) => v <= 1, '<= 1 (< 0: use cond_mask_prob)');
  range('ctrl_freq', (v) => v > 0, '> 0 Hz');
  int('exec_horizon', 1);
  range('ema.inv_gamma', (v) => v > 0, '> 0');
  range('ema.power', (v) => v > 0, '> 0');
  range('ema.min_value', prob, 'in [0, 1]');
  range('ema.max_value', (v) => prob(v) && v >= c.ema.min_value, 'in [ema.min_value, 1]');
  range('ddp.bucket_cap_mb', (v) => v > 0, '> 0 (MiB of gradient per bucket)');
  int('lora.rank', 1);
  range('lora.alpha', (v) => v > 0, '> 0');
  if (c.lora.enabled && !c.lora.targets.length) fail(`'lora.targets' is empty: name the linears of each block to adapt (e.g. attn.qkv, ffn.fc1)`);
  for (const [suite, w] of Object.entries(c.data.suite_weights))
    if (typeof w !== 'number' || !(w >= 0)) fail(`'data.suite_weights.${suite}' must be a number >= 0, got ${JSON.stringify(w)}`);
}


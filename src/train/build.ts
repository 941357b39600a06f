// Building what a run trains: the runner (from a preset, a config.json or a pretrained checkpoint),
// the frozen encoders, LoRA adapters, bf16 master weights, AdamW and the EMA, as one disposable
// TrainParts. Nothing here reads data or knows about the loop.
import { existsSync, readFileSync } from 'node:fs';
import * as torch from '../engine/index.js';
import { optim, type nn } from '../engine/index.js';
import { RDTRunner } from '../model/runner.js';
import { PRESETS, parseRdtConfig, rdtPreset, type RdtConfig, type EmaConfig as RdtEmaConfig } from '../model/config.js';
import { loadRdtCheckpoint, readCheckpointConfig } from '../model/checkpoint.js';
import type { TrainConfig, EmaConfig } from './config.js';
import type { Encoders } from './conditioning.js';
import { buildEncoders, type EncoderFactory } from './encoder_choice.js';
import { Ema } from './ema.js';
import { injectLora, markOnlyLoraTrainable } from './lora.js';
import { MasterWeights } from './mixed_precision.js';
import { TrainError } from './errors.js';

const ARCH_KEYS = ['lang_token_dim', 'img_token_dim', 'img_cond_len', 'max_lang_cond_len', 'action_dim', 'pred_horizon'] as const;
const EMA_KEYS = ['update_after_step', 'inv_gamma', 'power', 'min_value', 'max_value'] as const;
/** Adaptors trained fully beside the LoRA adapters with lora.train_adaptors. */
const ADAPTOR_PREFIXES = ['lang_adaptor.', 'img_adaptor.', 'state_adaptor.'];

/** Differences between two architectures, as 'key: a vs b' lines (empty when they agree). */
function archDiff(a: RdtConfig, b: RdtConfig): string[] {
  const d: string[] = [];
  for (const k of ['hidden_size', 'depth', 'num_heads'] as const) if (a.rdt[k] !== b.rdt[k]) d.push(`rdt.${k}: ${a.rdt[k]} vs ${b.rdt[k]}`);
  for (const k of ARCH_KEYS) if (a[k] !== b[k]) d.push(`${k}: ${a[k]} vs ${b[k]}`);
  return d;
}

/** `model`: a preset name, or a hub config.json (or a folder holding one). */
function modelConfig(model: string): RdtConfig {
  if (model in PRESETS) return rdtPreset(model);
  if (existsSync(model)) return model.endsWith('.json') ? parseRdtConfig(JSON.parse(readFileSync(model, 'utf8')), model) : readCheckpointConfig(model).config;
  return rdtPreset(model); // unknown name: the preset error with its did-you-mean
}

/** The architecture a run trains: the pretrained checkpoint's config.json, or `model` ('auto' from scratch: rdt-1b). */
export function runModelConfig(cfg: TrainConfig): RdtConfig {
  return cfg.pretrained_model_name_or_path
    ? readCheckpointConfig(cfg.pretrained_model_name_or_path).config
    : modelConfig(cfg.model === 'auto' ? 'rdt-1b' : cfg.model);
}

function buildRunner(cfg: TrainConfig): RDTRunner {
  if (cfg.pretrained_model_name_or_path) {
    const path = cfg.pretrained_model_name_or_path;
    const { runner } = loadRdtCheckpoint(path, { dtype: 'float32', device: cfg.device });
    if (cfg.model !== 'auto') {
      const diff = archDiff(modelConfig(cfg.model), runner.config);
      if (diff.length) {
        runner.dispose();
        throw new TrainError(`pretrained checkpoint ${path} does not match model '${cfg.model}' (${diff.join('; ')}); ` +
          'set model: auto to use the checkpoint\'s own architecture, or pick the matching preset');
      }
    }
    return runner;
  }
  const config = modelConfig(cfg.model === 'auto' ? 'rdt-1b' : cfg.model);
  return new RDTRunner(config, { dtype: 'float32', device: cfg.device, generator: new torch.Generator(cfg.seed) });
}

/**
 * The trainer's `ema:` section is the one source of truth for the EMA: the model config's `ema`
 * (the hub config.json section, which the official trainer fed to its EMAModel) is overwritten with
 * it, so every saved config.json records the EMA that produced ema/. Returns a note when a config
 * read from a file said otherwise.
 */
function adoptTrainerEma(config: RdtConfig, ema: EmaConfig, source: string | null): string | null {
  const was: RdtEmaConfig = { ...config.ema };
  for (const k of EMA_KEYS) config.ema[k] = ema[k];
  const diff = EMA_KEYS.filter((k) => was[k] !== ema[k]).map((k) => `${k} ${was[k]} -> ${ema[k]}`);
  return source && diff.length ? `EMA: the trainer's ema: settings replace the ema section of ${source} (${diff.join(', ')})` : null;
}

/**
 * The run's model with no memory behind it (libtorch's meta device): the architecture of `model` or of the
 * pretrained checkpoint's config.json, with LoRA injected and the trainable parameters marked as buildParts
 * does. For counting parameters (train --dry-run); dispose it after.
 */
export function buildMetaRunner(cfg: TrainConfig): RDTRunner {
  const config = runModelConfig(cfg);
  const runner = new RDTRunner(config, { dtype: 'float32', device: 'meta' });
  if (cfg.lora.enabled) {
    injectLora(runner.model, { rank: cfg.lora.rank, alpha: cfg.lora.alpha, targets: cfg.lora.targets });
    markOnlyLoraTrainable(runner, cfg.lora.train_adaptors ? ADAPTOR_PREFIXES : []);
  }
  return runner;
}

export class TrainParts {
  /** The parameters AdamW updates: the trained ones, or their float32 masters under bf16. */
  readonly optimized: nn.Parameter[];

  constructor(
    readonly runner: RDTRunner,
    readonly encoders: Encoders,
    /** Parameters with requiresGrad (all of them, or the LoRA adapters and adaptors). */
    readonly trainable: nn.Parameter[],
    readonly masters: MasterWeights | null,
    readonly optimizer: optim.AdamW,
    readonly ema: Ema | null,
    readonly lora: boolean,
    /** The trained parameters whose optimizer state this process keeps (all, unless zero_stage 2). */
    kept: nn.Parameter[] = trainable,
  ) {
    this.optimized = masters ? masters.masters : kept;
  }

  /** Free everything, in the reverse order of construction. */
  dispose(): void {
    for (const o of [this.ema, this.optimizer, this.masters, this.encoders.vision, this.encoders.text, this.runner]) o?.dispose();
  }
}

/**
 * Build the model, encoders, adapters, masters, optimizer and EMA of a run; on failure, what was built is freed.
 * `shard` (zero_stage 2) picks, from the trained parameters, those whose masters and AdamW state this process keeps.
 */
export function buildParts(cfg: TrainConfig, encoderHook: EncoderFactory | null, say: (line: string) => void,
  shard?: (trainable: nn.Parameter[]) => nn.Parameter[]): TrainParts {
  const owned: { dispose(): void }[] = [];
  try {
    const runner = buildRunner(cfg);
    owned.push(runner);
    const fromFile = cfg.pretrained_model_name_or_path ?? (cfg.model in PRESETS || cfg.model === 'auto' ? null : cfg.model);
    const note = adoptTrainerEma(runner.config, cfg.ema, fromFile);
    if (note) say(note);
    const enc = buildEncoders(runner.config, cfg, encoderHook);
    owned.push(enc.text, enc.vision);
    if (cfg.lora.enabled) {
      const adapted = injectLora(runner.model, { rank: cfg.lora.rank, alpha: cfg.lora.alpha, targets: cfg.lora.targets, generator: new torch.Generator(cfg.seed + 7) });
      markOnlyLoraTrainable(runner, cfg.lora.train_adaptors ? ADAPTOR_PREFIXES : []);
      say(`LoRA: rank ${cfg.lora.rank}, alpha ${cfg.lora.alpha}, ${adapted.length} adapted linears`);
    }
    const trainable = runner.parameters().filter((p) => p.requiresGrad);
    const kept = shard ? shard(trainable) : trainable;
    const bf16 = cfg.mixed_precision === 'bf16';
    const masters = bf16 ? new MasterWeights(kept) : null;
    if (masters) owned.push(masters);
    if (bf16) runner.to({ dtype: 'bfloat16' });
    const optimizer = new optim.AdamW(masters ? masters.masters : kept, {
      lr: cfg.learning_rate, betas: [cfg.adam_beta1, cfg.adam_beta2], eps: cfg.adam_epsilon, weightDecay: cfg.adam_weight_decay,
    });
    owned.push(optimizer);
    const ema = cfg.ema.enabled ? new Ema(runner, cfg.ema) : null;
    return new TrainParts(runner, enc, trainable, masters, optimizer, ema, cfg.lora.enabled, kept);
  } catch (e) {
    for (const o of owned.reverse()) o.dispose();
    throw e;
  }
}

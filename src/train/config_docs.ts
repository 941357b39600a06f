// One line per training-config key, for `rdt-libero train --help`. The keys and defaults come from
// DEFAULT_CONFIG; this table only adds the meaning. configHelp() lists every key of DEFAULT_CONFIG,
// so a key added to the config without a line here still shows up (marked undocumented).
import { DEFAULT_CONFIG } from './config.js';

export const CONFIG_DOCS: Record<string, string> = {
  model: "architecture: 'auto' (the pretrained checkpoint's own; rdt-1b from scratch), a preset 'rdt-1b', 'rdt-170m', 'tiny', or a hub config.json; must match the pretrained checkpoint",
  pretrained_model_name_or_path: 'checkpoint folder (hub layout: config.json + weights) to fine-tune from; null = from scratch',
  encoders: "'official' (T5-v1.1-XXL + SigLIP from text_encoder / vision_encoder) or 'demo' (deterministic stand-ins, for testing only)",
  text_encoder: 'encoders: official: hub folder of the T5 v1.1 encoder (google/t5-v1_1-xxl: config.json + weights, spiece.model); required there, refused with demo',
  vision_encoder: 'encoders: official: hub folder of the SigLIP tower (google/siglip-so400m-patch14-384); required there, refused with demo',
  tokenizer: 'encoders: official: folder of the T5 tokenizer (spiece.model or tokenizer.json) when not in text_encoder; null = text_encoder',
  encoder_dtype: "encoders: official: 'auto' (bfloat16 on cuda, float32 on cpu), 'float32' or 'bfloat16'; the frozen encoders' weights and compute",
  text_cache: "encoders: official: T5 token cache from 'rdt-libero encode --cache FILE' covering every instruction; T5 is then never loaded (its folder is only hashed); null = encode live",
  output_dir: 'where checkpoints, metrics.jsonl, tensorboard/, stats/ and run_config.yaml go',
  seed: 'seed for the model init, the sampler, noise, timesteps and condition dropout',
  device: "'cpu', 'cuda' or 'cuda:N'",
  train_batch_size: 'samples per micro-batch (per process)',
  gradient_accumulation_steps: 'micro-batches per optimizer step; effective batch = train_batch_size x this',
  learning_rate: 'peak AdamW learning rate',
  lr_scheduler: 'constant, constant_with_warmup, cosine or linear',
  lr_warmup_steps: 'optimizer steps of linear warmup from 0 (not used by constant)',
  max_train_steps: 'optimizer steps to run; null = num_train_epochs over the data',
  num_train_epochs: 'epochs to run when max_train_steps is null',
  adam_beta1: 'AdamW beta1',
  adam_beta2: 'AdamW beta2',
  adam_epsilon: 'AdamW epsilon',
  adam_weight_decay: 'AdamW weight decay (on all parameters, as the official code)',
  max_grad_norm: 'gradient clipping norm, > 0 (always applied; the official DeepSpeed setup silently skipped it)',
  mixed_precision: "'bf16' (bf16 weights and activations, float32 master weights and optimizer) or 'no'",
  checkpointing_period: 'write output_dir/checkpoint-N every this many optimizer steps (and at the end)',
  checkpoints_total_limit: 'keep at most this many checkpoints (oldest deleted); null = keep all',
  resume_from_checkpoint: "'latest' (newest complete checkpoint in output_dir) or a checkpoint-N folder; null = start fresh. The resumed config must match the checkpoint's run_config.yaml except the step budget, cadences, reporting, device and data paths",
  overwrite: "true: a fresh run may take an output_dir that holds another run, whose checkpoints, final/, metrics and stats are deleted first; false: such a folder is refused",
  sample_period: 'sample-MSE evaluation on held-out demos before training, every this many steps and at the end; 0 = never',
  sample_batch_size: 'samples per held-out evaluation batch',
  num_sample_batches: 'held-out batches per evaluation',
  cond_mask_prob: 'probability of dropping each condition (language, images, state, ...) per sample',
  cam_ext_mask_prob: 'drop probability of the exterior camera; < 0 = use cond_mask_prob',
  state_noise_snr: 'state noise SNR in dB added during training; null = no noise',
  image_aug: 'augment half of the valid camera frames: colour jitter and/or Gaussian noise + box blur (official recipe, simplified)',
  ctrl_freq: 'control frequency in Hz fed to the model (LIBERO: 20)',
  exec_horizon: "chunk steps an evaluation executes before it asks for the next chunk; recorded in every saved policy.json (action.exec_horizon) as rdt-libero eval's and serve's default for the policy; at most the model's chunk",
  report_to: 'metric sinks: jsonl, tensorboard, wandb, none (list, or comma-separated on the command line)',
  log_every: 'write train/* metrics every this many optimizer steps',
  max_bad_steps: 'stop after this many consecutive optimizer steps with a NaN/Inf loss (each is skipped)',
  zero_stage: '0, or 2 with several processes: each keeps the float32 masters, AdamW state and gradients of its share of the parameters only (ZeRO-2 style: each gradient bucket is reduced to the owners); checkpoints stay unsharded',
  'ddp.bucket_cap_mb': 'several processes: MiB of gradient per bucket reduced at once (PyTorch DDP bucket_cap_mb); > 0',
  'ddp.overlap_comm': 'several processes: reduce each bucket while backward still runs (true) or after it (false); the results are bit-identical',
  'ema.enabled': "keep an exponential moving average of the weights (saved as ema/); the ema.* values replace a pretrained config.json's ema section and are written into every saved config.json",
  'ema.update_after_step': 'EMA updates before this step copy the weights',
  'ema.inv_gamma': 'EMA warmup: decay = 1 - (1 + n / inv_gamma)^-power',
  'ema.power': 'EMA warmup power',
  'ema.min_value': 'EMA decay lower bound',
  'ema.max_value': 'EMA decay upper bound',
  'lora.enabled': 'train low-rank adapters instead of all weights (needs pretrained_model_name_or_path; saved as adapter_model.safetensors; rdt-libero lora-merge folds them in)',
  'lora.rank': 'adapter rank r',
  'lora.alpha': 'adapter scale alpha (the update is alpha/r * B A)',
  'lora.targets': 'linears of each RDT block that get adapters (official module names)',
  'lora.train_adaptors': 'also train the language/image/state adaptors fully',
  'data.dataset_root': 'folder holding libero_spatial/, libero_goal/, ... (or a suite folder itself); required',
  'data.suites': 'suites to train on; empty = every suite found',
  'data.suite_weights': 'relative sampling weight per suite, e.g. {libero_10: 2}; empty = by step count',
  'data.action_encoding': 'how LIBERO actions map into the 128-d vector (see rdt-libero data --help)',
  'data.instruction_source': "'filename' (the evaluation prompt) or 'problem_info' (the BDDL wording)",
  'data.holdout_demos_per_task': 'demos per task kept out of training for sample-MSE evaluation',
  'data.skip_idle_steps': 'skip the no-op steps at the start of each demo',
  'data.drop_noops': 'drop every no-op step',
  'data.format': "'auto' (default: a folder with meta/info.json, or sub-folders with one, is a LeRobot dataset), 'hdf5' (LIBERO suite folders) or 'lerobot' (LeRobot v2.0/v2.1/v3.0); run_config.yaml and policy.json record the resolved value",
  'data.lerobot_mapping.agentview': "LeRobot column of the third-person camera; all mapping keys '' (default) picks openpi's or LeRobot's LIBERO layout by the features in meta/info.json",
  'data.lerobot_mapping.eye_in_hand': "LeRobot column of the wrist camera ('' = none: that slot is masked)",
  'data.lerobot_mapping.state': 'LeRobot column of the robot state vector the next keys index into',
  'data.lerobot_mapping.eef_pos': "'start:end' of the end-effector position (m, 3 values) in the state column",
  'data.lerobot_mapping.eef_axis_angle': "'start:end' of the end-effector axis-angle (rad, 3 values); or give eef_quat",
  'data.lerobot_mapping.eef_quat': "'start:end' of the end-effector quaternion (x, y, z, w; 4 values); or give eef_axis_angle",
  'data.lerobot_mapping.gripper_qpos': "'start:end' of the two finger joint positions (m)",
  'data.lerobot_mapping.action': "LeRobot column of LIBERO's 7-D OSC_POSE command ([-1, 1], gripper -1 open, +1 close, one per 20 Hz step)",
  'data.lerobot_mapping.instruction': "'task' (meta/tasks via task_index, the default) or a string column of the data files",
  'data.lerobot_mapping.stored_orientation': "what the stored frames already had done to the simulator's upside-down render: none (raw), flip_v or rot180 (the OpenVLA/openpi copies)",
  'data.align': "which observation each action is paired with: realign (the one before it, as at evaluation), stored (the file's pairing), auto (realign the released layout, keep the regenerated one)",
  'data.num_workers': 'background data-loading workers (0 = load on the main thread)',
};

type Plain = Record<string, unknown>;
const isObj = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every leaf key of DEFAULT_CONFIG, dotted, with its default (suite_weights counts as a leaf). */
export function configKeys(): { key: string; value: unknown }[] {
  const out: { key: string; value: unknown }[] = [];
  const walk = (o: Plain, pre: string) => {
    for (const [k, v] of Object.entries(o)) {
      const key = pre + k;
      if (isObj(v) && k !== 'suite_weights') walk(v, key + '.');
      else out.push({ key, value: v });
    }
  };
  walk(DEFAULT_CONFIG as unknown as Plain, '');
  return out;
}

const show = (v: unknown) => (v === '' ? "''" : Array.isArray(v) ? `[${v.join(', ')}]` : isObj(v) ? JSON.stringify(v) : String(v));

/** The key table of `rdt-libero train --help`: key, default, meaning. */
export function configHelp(): string {
  const rows = configKeys().map(({ key, value }) => ({ key, def: show(value), doc: CONFIG_DOCS[key] ?? '(undocumented)' }));
  const kw = Math.max(...rows.map((r) => r.key.length));
  const dw = Math.min(24, Math.max(...rows.map((r) => r.def.length)));
  return rows.map((r) => {
    const def = r.def.length > dw ? `${r.def}\n${' '.repeat(2 + kw + 2 + dw + 2)}` : r.def.padEnd(dw);
    return `  ${r.key.padEnd(kw)}  ${def}  ${r.doc}`;
  }).join('\n');
}

// A LoRA run to test what loads (or refuses) its folders: 2 full steps of the tiny model on a synthetic suite, then
// 2 LoRA steps (rank 4, alpha 8) from that model (LoRA adapts trained weights: from scratch the zero output layer
// would pass no gradient). Returns the base model folder and the LoRA run's checkpoint-2.
import { join } from 'node:path';
import { writeSyntheticSuite } from '../../src/data/synthetic.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

export async function makeLoraRun(work: string): Promise<{ data: string; base: string; run: string; checkpoint: string }> {
  const data = join(work, 'data');
  await writeSyntheticSuite({ root: data, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 30, size: 32, seed: 8 });
  const common = {
    model: 'tiny', encoders: 'demo', train_batch_size: 4, gradient_accumulation_steps: 1, lr_warmup_steps: 0, sample_period: 0,
    report_to: ['none'], mixed_precision: 'no', data: { dataset_root: data, num_workers: 0, holdout_demos_per_task: 1 },
  };
  const baseRun = join(work, 'base');
  await train(loadConfig({ overrides: { ...common, output_dir: baseRun, max_train_steps: 2, learning_rate: 1e-3, checkpointing_period: 2 } }), { verbose: false });
  const base = join(baseRun, 'final');
  const run = join(work, 'lora');
  await train(loadConfig({
    overrides: {
      ...common, output_dir: run, pretrained_model_name_or_path: base, max_train_steps: 2, learning_rate: 1e-2,
      checkpointing_period: 2, lora: { enabled: true, rank: 4, alpha: 8 },
    },
  }), { verbose: false });
  return { data, base, run, checkpoint: join(run, 'checkpoint-2') };
}

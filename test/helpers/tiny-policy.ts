// A tiny rdt-libero policy folder: 2 full training steps of the tiny model (demo encoders) on a generated
// synthetic suite of `size` x `size` frames. Returns the data root, the run folder and its final/ policy folder.
import { join } from 'node:path';
import { writeSyntheticSuite } from '../../src/data/synthetic.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

/** Training settings every tiny run shares (the LoRA helper starts its adapter run from them too). */
export function tinyRunSettings(data: string): Record<string, unknown> {
  return {
    model: 'tiny', encoders: 'demo', train_batch_size: 4, gradient_accumulation_steps: 1, lr_warmup_steps: 0, sample_period: 0,
    report_to: ['none'], mixed_precision: 'no', data: { dataset_root: data, num_workers: 0, holdout_demos_per_task: 1 },
  };
}

export async function makeTinyPolicy(work: string, opts: { size?: number; seed?: number } = {}): Promise<{ data: string; run: string; policy: string }> {
  const data = join(work, 'data');
  await writeSyntheticSuite({ root: data, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 30, size: opts.size ?? 32, seed: opts.seed ?? 8 });
  const run = join(work, 'base');
  await train(loadConfig({ overrides: { ...tinyRunSettings(data), output_dir: run, max_train_steps: 2, learning_rate: 1e-3, checkpointing_period: 2 } }), { verbose: false });
  return { data, run, policy: join(run, 'final') };
}

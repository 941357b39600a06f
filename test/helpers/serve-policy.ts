// A small trained policy folder for the serve tests and bench:serve: 3 steps of the tiny model with the demo
// encoders on a generated LIBERO suite (32x32 frames, flip_v, history 2, chunk 64), as test/policy-folder does.
import { join } from 'node:path';
import { writeSyntheticSuite } from '../../src/data/synthetic.js';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';

/** Train into `work`; returns the policy folder (final/). */
export async function makeServePolicy(work: string, opts: { size?: number } = {}): Promise<string> {
  const data = join(work, 'data');
  const out = join(work, 'run');
  await writeSyntheticSuite({ root: data, suite: 'libero_goal', tasks: 2, demos: 2, meanLength: 24, size: opts.size ?? 32, seed: 5 });
  await train(loadConfig({
    overrides: {
      model: 'tiny', encoders: 'demo', output_dir: out, train_batch_size: 4, gradient_accumulation_steps: 1,
      max_train_steps: 3, learning_rate: 1e-3, checkpointing_period: 3, sample_period: 0, report_to: ['none'], mixed_precision: 'no',
      data: { dataset_root: data, num_workers: 0, holdout_demos_per_task: 1, action_encoding: 'eef_target_pose' },
    },
  }), { verbose: false });
  return join(out, 'final');
}

// A LoRA run to test what loads (or refuses) its folders: 2 full steps of the tiny model on a synthetic suite, then
// 2 LoRA steps (rank 4, alpha 8) from that model (LoRA adapts trained weights: from scratch the zero output layer
// would pass no gradient). Returns the base model folder and the LoRA run's checkpoint-2.
import { join } from 'node:path';
import { loadConfig } from '../../src/train/config.js';
import { train } from '../../src/train/trainer.js';
import { makeTinyPolicy, tinyRunSettings } from './tiny-policy.js';

export async function makeLoraRun(work: string): Promise<{ data: string; base: string; run: string; checkpoint: string }> {
  const { data, policy: base } = await makeTinyPolicy(work);
  const run = join(work, 'lora');
  await train(loadConfig({
    overrides: {
      ...tinyRunSettings(data), output_dir: run, pretrained_model_name_or_path: base, max_train_steps: 2, learning_rate: 1e-2,
      checkpointing_period: 2, lora: { enabled: true, rank: 4, alpha: 8 },
    },
  }), { verbose: false });
  return { data, base, run, checkpoint: join(run, 'checkpoint-2') };
}

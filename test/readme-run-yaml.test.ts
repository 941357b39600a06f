// The README's run.yaml works as written, with the data layout the README describes (libero_goal/ next to
// libero_goal_no_noops/ under one root). Only what names this machine is replaced: the paths (pretrained model,
// encoders, data, output), the device, and the sizes that make it a test (a tiny RDT of the fixture encoders'
// widths instead of rdt-1b, 2 optimizer steps of batch 2 x 2). Everything else (encoders: official, suites,
// encoding, alignment, schedule, bf16, EMA, LoRA off, hold-out) runs as the README says.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { RDTRunner } from '../src/model/runner.js';
import { saveRdtCheckpoint } from '../src/model/checkpoint.js';
import { loadConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { fixture } from './helpers/fixtures.js';
import { fixtureEncoderRdt } from './helpers/encoder-fixtures.js';

const README = join(import.meta.dirname, '..', '..', 'README.md');

function readmeRunYaml(): Record<string, unknown> {
  const text = readFileSync(README, 'utf8');
  const m = /### A run\.yaml[\s\S]*?```yaml\n([\s\S]*?)```/.exec(text);
  assert.ok(m, 'README has a ### A run.yaml section with a yaml block');
  return parseYaml(m[1]) as Record<string, unknown>;
}

test("the README's run.yaml trains as written on the README's data layout", async () => {
  const work = mkdtempSync(join(tmpdir(), 'rdt-readme-'));
  const yaml = readmeRunYaml();
  const data = yaml.data as Record<string, unknown>;
  assert.equal(yaml.encoders, 'official');

  // The README's layout: the original release and the regenerated one side by side.
  const root = join(work, 'libero');
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 24, size: 32, seed: 1 });
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 2, meanLength: 24, layout: 'regenerated', seed: 2 });

  // A pretrained tiny RDT whose condition widths are the fixture encoders' (T5 d_model, SigLIP hidden size,
  // 2 frames x 3 cameras x (image_size / patch_size)^2 tokens), in the hub layout.
  const pretrained = join(work, 'rdt-tiny');
  const runner = new RDTRunner(fixtureEncoderRdt(), { generator: new torch.Generator(0) });
  saveRdtCheckpoint(runner, pretrained);
  runner.dispose();

  const machine = {
    pretrained_model_name_or_path: pretrained, text_encoder: fixture('encoders', 't5'), tokenizer: fixture('encoders', 'tokenizer'),
    vision_encoder: fixture('encoders', 'siglip'), output_dir: join(work, 'runs', 'libero-goal'), device: 'cpu',
    train_batch_size: 2, gradient_accumulation_steps: 2, max_train_steps: 2, lr_warmup_steps: 1, checkpointing_period: 2,
    sample_period: 2, sample_batch_size: 2, num_sample_batches: 1,
    data: { ...data, dataset_root: root },
  };
  const file = join(work, 'run.yaml');
  writeFileSync(file, stringify({ ...yaml, ...machine }));
  const cfg = loadConfig({ file });
  const r = await train(cfg, { verbose: false });
  assert.equal(r.steps, 2);
  assert.ok(r.losses.every(Number.isFinite), `losses ${r.losses}`);
  assert.ok(r.sampleAfter && Number.isFinite(r.sampleAfter.overall_avg_sample_mse));
  // suites: [libero_goal] trained on the original folder only (its 2 tasks x 2 training demos), not the regenerated one
  const stats = JSON.parse(readFileSync(join(cfg.output_dir, 'stats', statsFile(join(cfg.output_dir, 'stats'))), 'utf8'));
  assert.deepEqual(Object.keys(stats).sort(), ['libero', 'libero_goal']);
  assert.equal(stats.libero.num_episodes, 2 * 2);
  const policy = JSON.parse(readFileSync(join(cfg.output_dir, 'final', 'policy.json'), 'utf8'));
  assert.equal(policy.encoders.text.kind, 'official');
  assert.equal(policy.action.encoding, data.action_encoding);
  assert.ok(existsSync(join(cfg.output_dir, 'checkpoint-2', 'ema', 'model.safetensors')));
});

function statsFile(dir: string): string {
  const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
  assert.equal(files.length, 1, `one statistics file in ${dir}: ${files}`);
  return files[0];
}

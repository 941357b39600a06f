// `rdt-libero lora-merge` run as the user runs it (the compiled CLI in a child process): --out must be a new or
// empty folder unless --overwrite is given, in which case it is replaced whole (written beside it, then renamed);
// --out may never be the --checkpoint folder nor a folder holding it; usage errors are one line with exit 2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { tempDir } from './helpers/python.js';
import { repoRoot } from './helpers/fixtures.js';

const { dir: work, cleanup } = tempDir('cli-lora-merge');
after(cleanup);

function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], {
    cwd: work, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The one line a failed command writes. */
function oneLine(stderr: string): string {
  const lines = stderr.split('\n').filter(Boolean);
  assert.equal(lines.length, 1, `expected one line, got:\n${stderr}`);
  return lines[0];
}

let run = '';
let ck = '';

before(async () => {
  const root = join(work, 'data');
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 30, size: 32, seed: 8 });
  const common = {
    model: 'tiny', encoders: 'demo', train_batch_size: 4, gradient_accumulation_steps: 1, lr_warmup_steps: 0, sample_period: 0,
    report_to: ['none'], mixed_precision: 'no', data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1 },
  };
  // LoRA adapts a trained model (from scratch the zero output layer would pass no gradient): 2 full steps first.
  const base = join(work, 'base');
  await train(loadConfig({ overrides: { ...common, output_dir: base, max_train_steps: 2, learning_rate: 1e-3, checkpointing_period: 2 } }), { verbose: false });
  run = join(work, 'lora');
  await train(loadConfig({
    overrides: {
      ...common, output_dir: run, pretrained_model_name_or_path: join(base, 'final'), max_train_steps: 2, learning_rate: 1e-2,
      checkpointing_period: 2, lora: { enabled: true, rank: 4, alpha: 8 },
    },
  }), { verbose: false });
  ck = join(run, 'checkpoint-2');
  assert.ok(existsSync(join(ck, 'adapter_model.safetensors')));
});

test('lora-merge refuses an --out that holds files, and replaces it whole with --overwrite', () => {
  const out = join(work, 'merged-used');
  mkdirSync(out);
  writeFileSync(join(out, 'notes.txt'), 'a researcher\'s notes\n');
  const refused = cli(['lora-merge', '--checkpoint', ck, '--out', out]);
  assert.equal(refused.code, 2, refused.stderr);
  assert.match(oneLine(refused.stderr), /^rdt-libero lora-merge: --out .*merged-used already exists and is not empty \(1 entries: notes\.txt\); pass --overwrite to replace it, or pick a new folder$/);
  assert.deepEqual(readdirSync(out), ['notes.txt'], 'a refused merge left --out as it was');
  assert.equal(readFileSync(join(out, 'notes.txt'), 'utf8'), 'a researcher\'s notes\n');

  const r = cli(['lora-merge', '--checkpoint', ck, '--out', out, '--overwrite']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(out).sort(), ['checksums.json', 'config.json', 'model.safetensors', 'policy.json'], 'the old folder is replaced, not added to');
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('.tmp-')), [], 'no temporary sibling left behind');
  // A plain checkpoint: it loads without LoRA.
  const p = cli(['lora-merge', '--checkpoint', out, '--out', join(work, 'again')]);
  assert.equal(p.code, 1);
  assert.match(p.stderr, /has no adapter_model\.safetensors/);
});

test('lora-merge writes a new --out and accepts an empty one', () => {
  const fresh = cli(['lora-merge', '--checkpoint', ck, '--out', join(work, 'new', 'merged')]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.ok(existsSync(join(work, 'new', 'merged', 'model.safetensors')));
  const empty = join(work, 'empty');
  mkdirSync(empty);
  const r = cli(['lora-merge', '--checkpoint', ck, '--out', empty]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(empty, 'model.safetensors')));
});

test('lora-merge: --out is never the checkpoint nor a folder holding it, even with --overwrite; a bad --dtype is one line, exit 2', () => {
  const before = readdirSync(ck).sort();
  const same = cli(['lora-merge', '--checkpoint', ck, '--out', ck + '/', '--overwrite']);
  assert.equal(same.code, 2, same.stderr);
  assert.match(oneLine(same.stderr), /^rdt-libero lora-merge: --out must differ from --checkpoint \(.*checkpoint-2\): the adapters would no longer match the base weights; rdt-libero lora-merge --help lists the options$/);
  const parent = cli(['lora-merge', '--checkpoint', ck, '--out', run, '--overwrite']);
  assert.equal(parent.code, 2, parent.stderr);
  assert.match(oneLine(parent.stderr), /^rdt-libero lora-merge: --out .*lora holds the --checkpoint folder .*checkpoint-2: writing it would replace the checkpoint; pick another --out$/);
  assert.deepEqual(readdirSync(ck).sort(), before, 'the checkpoint is untouched');
  const dtype = cli(['lora-merge', '--checkpoint', ck, '--out', join(work, 'x'), '--dtype', 'float16']);
  assert.equal(dtype.code, 2, dtype.stderr);
  assert.match(oneLine(dtype.stderr), /^rdt-libero lora-merge: --dtype must be float32 or bfloat16, got 'float16'; rdt-libero lora-merge --help lists the options$/);
  assert.ok(!existsSync(join(work, 'x')));
});

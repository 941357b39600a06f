// LoRA checkpoints from the command line (the compiled CLI in a child process).
// `rdt-libero lora-merge`: --out must be a new or empty folder unless --overwrite is given, in which case it is
// replaced whole (written beside it, then renamed); --out may never be the --checkpoint folder nor a folder holding
// it; usage errors are one line with exit 2.
// A LoRA folder (adapter_model.safetensors beside the base weights) given where a model is loaded (predict
// --checkpoint, train's pretrained_model_name_or_path) is refused with one line naming it and the exact lora-merge
// command, instead of silently giving the base model; that command works and its output loads.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { readCheckpointConfig } from '../src/model/checkpoint.js';
import { tempDir } from './helpers/python.js';
import { makeLoraRun } from './helpers/lora-run.js';
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
let data = '';

before(async () => {
  ({ data, run, checkpoint: ck } = await makeLoraRun(work));
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

/** The line loadRdtCheckpoint refuses a LoRA folder with, for `given` (the path as passed) whose adapters live in `checkpoint`. */
const refusal = (command: string, given: string, checkpoint: string) =>
  `rdt-libero ${command}: ${given}: LoRA adapters (${join(checkpoint, 'adapter_model.safetensors')}) sit beside the base weights, which alone are not the trained model; ` +
  `fold them into the weights first: rdt-libero lora-merge --checkpoint ${checkpoint} --out ${checkpoint}-merged, then load ${checkpoint}-merged`;

test('predict refuses a LoRA checkpoint (also its ema/ and --weights ema) with the lora-merge command, which works', () => {
  // Valid inputs for the tiny model: without the refusal, predict would run on the base weights and exit 0.
  const { config: c } = readCheckpointConfig(ck);
  const inputs = join(work, 'predict-in.safetensors');
  torch.scope(() => torch.saveSafetensors(inputs, {
    lang_tokens: torch.zeros([1, 4, c.lang_token_dim]), lang_mask: torch.ones([1, 4], { dtype: 'bool' }),
    img_tokens: torch.zeros([1, c.img_cond_len, c.img_token_dim]), state: torch.zeros([1, 1, c.state_token_dim]),
    state_mask: torch.ones([1, c.action_dim]), ctrl_freq: torch.tensor(new Float32Array([20])),
  }));
  const outFile = join(work, 'predict-out.safetensors');
  const r = cli(['predict', '--checkpoint', ck, '--inputs', inputs, '--out', outFile, '--seed', '0']);
  assert.equal(r.code, 1, r.stderr);
  assert.equal(oneLine(r.stderr), refusal('predict', ck, ck));
  assert.ok(!existsSync(outFile), 'no actions written from the base weights');
  const ema = cli(['predict', '--checkpoint', join(ck, 'ema'), '--inputs', inputs, '--out', outFile]);
  assert.equal(ema.code, 1, ema.stderr);
  assert.equal(oneLine(ema.stderr), refusal('predict', join(ck, 'ema'), ck));
  const weightsEma = cli(['predict', '--checkpoint', ck, '--weights', 'ema', '--inputs', inputs, '--out', outFile]);
  assert.equal(weightsEma.code, 1, weightsEma.stderr);
  assert.equal(oneLine(weightsEma.stderr), refusal('predict', ck, ck));

  // The command it names, as written, folds the adapters; the merged folder predicts.
  const command = /rdt-libero (lora-merge .*), then load/.exec(r.stderr)![1].split(' ');
  const m = cli(command);
  assert.equal(m.code, 0, m.stderr);
  const ok = cli(['predict', '--checkpoint', `${ck}-merged`, '--inputs', inputs, '--out', outFile, '--seed', '0']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(existsSync(outFile));
});

test('train refuses a LoRA checkpoint as pretrained_model_name_or_path with the lora-merge command', () => {
  const out = join(work, 'from-lora');
  const r = cli(['train', 'model=auto', 'encoders=demo', `data.dataset_root=${data}`, 'mixed_precision=no', 'train_batch_size=4',
    'gradient_accumulation_steps=1', 'lr_warmup_steps=0', 'sample_period=0', 'report_to=jsonl', 'data.num_workers=0',
    `output_dir=${out}`, `pretrained_model_name_or_path=${ck}`, 'max_train_steps=1', 'checkpointing_period=1']);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.split('\n').includes(refusal('train', ck, ck)), r.stderr);
  assert.ok(!existsSync(join(out, 'checkpoint-1')), 'nothing trained from the base weights alone');
});

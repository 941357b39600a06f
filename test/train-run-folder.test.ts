// One output_dir, one run: a new run refuses another run's folder unless told to overwrite; a resume refuses
// trajectory-changing config changes (listing each) and accepts the safe ones; metrics are cut back to the
// resumed checkpoint's step, a torn last line dropped; unusable output folders and damaged JSON are named.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { execFileSync } from 'node:child_process';
import { TensorBoardWriter } from '../src/metrics/tensorboard.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { DEFAULT_CONFIG, type TrainConfig } from '../src/train/config.js';
import { checkResumeConfig, claimRunFolder, ensureWritableDir, readJsonFile, rewindJsonl } from '../src/train/run_folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'rdt-runfolder-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('a used output_dir is refused for a new run; --overwrite clears only the run outputs', () => {
  const dir = join(tmp, 'used');
  claimRunFolder(dir, { overwrite: false }); // new folder: fine
  mkdirSync(join(dir, 'checkpoint-10'), { recursive: true });
  writeFileSync(join(dir, 'metrics.jsonl'), '{"step":1}\n');
  writeFileSync(join(dir, 'notes.txt'), 'mine');
  assert.throws(() => claimRunFolder(dir, { overwrite: false }), /holds another run \(checkpoint-10, metrics\.jsonl\).*--resume_from_checkpoint latest.*--overwrite true/);
  const said: string[] = [];
  claimRunFolder(dir, { overwrite: true, say: (s) => said.push(s) });
  assert.ok(!existsSync(join(dir, 'checkpoint-10')) && !existsSync(join(dir, 'metrics.jsonl')));
  assert.equal(readFileSync(join(dir, 'notes.txt'), 'utf8'), 'mine');
  assert.match(said[0], /removed the earlier run's checkpoint-10, metrics\.jsonl/);
});

test('resume: changed trajectory keys are refused, each listed; the step budget may change', () => {
  const ck = join(tmp, 'ck');
  mkdirSync(ck, { recursive: true });
  const then: TrainConfig = structuredClone(DEFAULT_CONFIG);
  writeFileSync(join(ck, 'run_config.yaml'), stringify(then));
  const same = structuredClone(then);
  assert.deepEqual(checkResumeConfig(ck, same), []);
  const longer = structuredClone(then);
  longer.max_train_steps = 60000;
  assert.deepEqual(checkResumeConfig(ck, longer), ['max_train_steps: 30000 -> 60000']);
  const changed = structuredClone(then);
  changed.train_batch_size = 16;
  changed.seed = 7;
  changed.data.action_encoding = 'eef_velocity';
  assert.throws(() => checkResumeConfig(ck, changed), (e: Error) =>
    /train_batch_size: 32 -> 16/.test(e.message) && /seed: 42 -> 7/.test(e.message) &&
    /data\.action_encoding: "eef_target_pose" -> "eef_velocity"/.test(e.message) && !e.message.includes('\n'));
  writeFileSync(join(ck, 'run_config.yaml'), 'a: [');
  assert.throws(() => checkResumeConfig(ck, same), /run_config\.yaml: not valid YAML/);
});

test('metrics.jsonl is cut back to the checkpoint step and a torn last line dropped', () => {
  const p = join(tmp, 'metrics.jsonl');
  const lines = [1, 2, 3, 4, 5, 6].map((s) => JSON.stringify({ step: s, 'train/loss': 1 / s }));
  writeFileSync(p, lines.join('\n') + '\n{"step": 7, "train/lo');
  assert.equal(rewindJsonl(p, 4), 3);
  const kept = readFileSync(p, 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(kept, [1, 2, 3, 4]);
  assert.equal(rewindJsonl(p, 4), 0);
});

test('an output_dir that cannot be made is named with the reason; damaged JSON names its file', () => {
  const file = join(tmp, 'afile');
  writeFileSync(file, 'x');
  assert.throws(() => ensureWritableDir(join(file, 'out')), /output_dir .*afile\/out cannot be created \(a part of its path is a file\).*choose another output_dir/);
  assert.throws(() => ensureWritableDir(file), /is a file, not a folder/);
  const js = join(tmp, 'training_state.json');
  writeFileSync(js, '{"global_step": 3');
  assert.throws(() => readJsonFile(js, 'the training state'), (e: Error) => e.message.startsWith(`${js}: the training state is not valid JSON`));
});

test('TensorBoard: a resumed writer (startStep) makes TensorBoard drop the abandoned steps', () => {
  const dir = join(tmp, 'tb');
  const first = new TensorBoardWriter(dir);
  for (let s = 1; s <= 6; s++) first.scalars(s, { 'train/loss': s });
  first.close();
  const resumed = new TensorBoardWriter(dir, { startStep: 5 }); // resumed from checkpoint-4
  for (let s = 5; s <= 7; s++) resumed.scalars(s, { 'train/loss': 100 + s });
  resumed.close();
  const out = execFileSync(process.env.PYTHON || 'python3', ['-c', `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1]); ea.Reload()
print(json.dumps([[e.step, e.value] for e in ea.Scalars('train/loss')]))
`, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.deepEqual(JSON.parse(out), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 105], [6, 106], [7, 107]]);
});

test('resume: a damaged checkpoint is named (training_state.json, flipped weight bytes) before anything is loaded', async () => {
  const root = join(tmp, 'data');
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 1, demos: 3, meanLength: 20, size: 32, seed: 2 });
  const out = join(tmp, 'damaged');
  const cfg = (over: Record<string, unknown> = {}) => loadConfig({ overrides: {
    model: 'tiny', encoders: 'demo', output_dir: out, train_batch_size: 2, gradient_accumulation_steps: 1, max_train_steps: 4,
    mixed_precision: 'no', checkpointing_period: 2, sample_period: 0, report_to: ['jsonl'], data: { dataset_root: root, num_workers: 0 }, ...over,
  } });
  await train(cfg(), { verbose: false, haltAfterStep: 2 });
  const ck = join(out, 'checkpoint-2');
  const state = readFileSync(join(ck, 'training_state.json'), 'utf8');
  writeFileSync(join(ck, 'training_state.json'), state.slice(0, state.length / 2));
  await assert.rejects(train(cfg({ resume_from_checkpoint: 'latest' }), { verbose: false }),
    (e: Error) => e.message.startsWith(`${join(ck, 'training_state.json')}: the training state is not valid JSON`));
  writeFileSync(join(ck, 'training_state.json'), state);
  const w = join(ck, 'ema', 'model.safetensors');
  const bytes = readFileSync(w);
  bytes[bytes.length - 3] ^= 0x10;
  writeFileSync(w, bytes);
  await assert.rejects(train(cfg({ resume_from_checkpoint: 'latest' }), { verbose: false }),
    (e: Error) => e.name === 'ChecksumError' && e.message.startsWith(`${w}: SHA-256 (quick check) differs from the one recorded at save`));
  await assert.rejects(train(cfg({ resume_from_checkpoint: join(out, 'checkpoint-9') }), { verbose: false }), /checkpoint-9 does not exist/);
  await assert.rejects(train(cfg({ output_dir: join(tmp, 'empty'), resume_from_checkpoint: 'latest' }), { verbose: false }), /holds no complete checkpoint to resume/);
});

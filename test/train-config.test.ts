// Training configuration, LR schedules, EMA decay and metric files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { loadConfig, effectiveBatch, DEFAULT_CONFIG, parseOverrides } from '../src/train/config.js';
import { lrFactor } from '../src/train/lr_schedule.js';
import { emaDecay } from '../src/train/ema.js';
import { TensorBoardWriter, crc32c } from '../src/metrics/tensorboard.js';
import { JsonlSink } from '../src/metrics/sink.js';
import { configKeys, configHelp } from '../src/train/config.js';

/** Dotted leaf keys of a config object (data.suite_weights is one key). */
const flat = (o: object, pre = ''): Record<string, unknown> => Object.fromEntries(Object.entries(o).flatMap(([k, v]) =>
  v && typeof v === 'object' && !Array.isArray(v) && k !== 'suite_weights' ? Object.entries(flat(v, `${pre}${k}.`)) : [[pre + k, v]]));

test('config: defaults, YAML file, then overrides, each validated', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-cfg-'));
  const file = join(dir, 'run.yaml');
  writeFileSync(file, 'model: tiny\ntrain_batch_size: 8\nlearning_rate: 3.0e-4\nema:\n  power: 0.5\ndata:\n  dataset_root: /data/libero\n  suites: [libero_goal]\n');
  const c = loadConfig({ file, overrides: ['--gradient_accumulation_steps', '4', 'data.action_encoding=eef_target_pose', '--max_train_steps=100'] });
  assert.equal(c.model, 'tiny');
  assert.equal(c.train_batch_size, 8);
  assert.equal(c.learning_rate, 3e-4);
  assert.equal(c.ema.power, 0.5);
  assert.equal(c.ema.max_value, 0.9999, 'untouched nested keys keep defaults');
  assert.deepEqual(c.data.suites, ['libero_goal']);
  assert.equal(c.data.action_encoding, 'eef_target_pose');
  assert.equal(c.max_train_steps, 100);
  assert.equal(effectiveBatch(c, 2), 8 * 4 * 2);
  assert.equal(effectiveBatch(DEFAULT_CONFIG), 256, 'default effective batch is 256');
});

test('config: unknown keys and bad values are named, with a did-you-mean', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-cfg-'));
  const file = join(dir, 'bad.yaml');
  writeFileSync(file, 'learning_rte: 1e-4\n');
  assert.throws(() => loadConfig({ file }), /bad\.yaml: unknown key 'learning_rte' \(did you mean 'learning_rate'\?\)/);
  assert.throws(() => loadConfig({ overrides: ['data.action_encodng=x'] }), /unknown key 'data\.action_encodng' \(did you mean 'data\.action_encoding'\?\)/);
  assert.throws(() => loadConfig({ overrides: ['lr_scheduler=cosin'] }), /'lr_scheduler' must be one of .* \(did you mean 'cosine'\?\)/);
  assert.throws(() => loadConfig({ overrides: ['train_batch_size=abc'] }), /'train_batch_size' must be a number/);
  assert.throws(() => loadConfig({ overrides: ['train_batch_size=0'] }), /positive integer/);
  assert.throws(() => loadConfig({ file: join(dir, 'missing.yaml') }), /missing\.yaml does not exist/);
  assert.deepEqual(parseOverrides(['a.b=1', '--c', 'x']), { a: { b: 1 }, c: 'x' });
});

test('train --help lists exactly the config keys, each with its meaning', () => {
  const keys = configKeys().map((k) => k.key).sort();
  assert.deepEqual(Object.keys(flat(DEFAULT_CONFIG)).sort(), keys, 'the defaults and the schema hold the same keys');
  const help = configHelp();
  assert.doesNotMatch(help, /\(undocumented\)/);
  const listed = help.split('\n').map((l) => /^  (\S+)\s/.exec(l)?.[1]).filter(Boolean).sort();
  assert.deepEqual(listed, keys);
});

test('config: values no run can use are refused, naming the key', () => {
  const bad = (over: Record<string, unknown>, re: RegExp) => assert.throws(() => loadConfig({ overrides: over }), re);
  bad({ data: { realign_obs_action: true } }, /'data\.realign_obs_action' was replaced by 'data\.align': use align: realign \(what true meant\)/);
  bad({ data: { align: 'realigned' } }, /'data\.align' must be one of auto, stored, realign, got 'realigned' \(did you mean 'realign'\?\)/);
  bad({ data: { action_encoding: 'eef_target_pos' } }, /'data\.action_encoding' must be one of .*, got 'eef_target_pos' \(did you mean 'eef_target_pose'\?\)/);
  bad({ data: { instruction_source: 'file' } }, /'data\.instruction_source' must be one of filename, problem_info/);
  bad({ data: { num_workers: -1 } }, /'data\.num_workers' must be an integer >= 0, got -1/);
  bad({ data: { suite_weights: { libero_goal: -1 } } }, /'data\.suite_weights\.libero_goal' must be a number >= 0/);
  bad({ report_to: 'jsonl,tensorbord' }, /'report_to' must be one of jsonl, tensorboard, wandb, none, got 'tensorbord' \(did you mean 'tensorboard'\?\)/);
  bad({ device: 'gpu' }, /'device' must be cpu, cuda or cuda:N, got 'gpu'/);
  bad({ mixed_precision: 'fp16' }, /'mixed_precision' must be one of no, bf16, got 'fp16'/);
  bad({ adam_beta2: 1 }, /'adam_beta2' must be in \[0, 1\), got 1/);
  bad({ max_grad_norm: 0 }, /'max_grad_norm' must be > 0/);
  bad({ cond_mask_prob: 1.5 }, /'cond_mask_prob' must be in \[0, 1\]/);
  bad({ sample_period: 2.5 }, /'sample_period' must be an integer >= 0, got 2\.5/);
  bad({ checkpoints_total_limit: 0 }, /'checkpoints_total_limit' must be a positive integer/);
  bad({ ema: { min_value: 0.5, max_value: 0.4 } }, /'ema\.max_value' must be in \[ema\.min_value, 1\], got 0\.4/);
  bad({ lora: { enabled: true, targets: [] } }, /'lora\.targets' is empty/);
  // Accepted as written: the defaults and the documented alternatives.
  assert.equal(loadConfig({ overrides: { data: { align: 'stored' }, device: 'cuda:1', report_to: 'jsonl,wandb' } }).data.align, 'stored');
});

test('LR schedules follow the diffusers/transformers formulas', () => {
  // constant_with_warmup: linear ramp over 100 steps starting at 0, then flat.
  assert.equal(lrFactor('constant_with_warmup', 0, 100, 1000), 0);
  assert.equal(lrFactor('constant_with_warmup', 50, 100, 1000), 0.5);
  assert.equal(lrFactor('constant_with_warmup', 100, 100, 1000), 1);
  assert.equal(lrFactor('constant', 0, 100, 1000), 1);
  // cosine: half a cosine from 1 after warmup to 0 at the end; midpoint 0.5.
  assert.equal(lrFactor('cosine', 100, 100, 1100), 1);
  assert.ok(Math.abs(lrFactor('cosine', 600, 100, 1100) - 0.5) < 1e-12);
  assert.ok(Math.abs(lrFactor('cosine', 1100, 100, 1100)) < 1e-12);
  // linear: decays to 0 at the end.
  assert.equal(lrFactor('linear', 600, 100, 1100), 0.5);
  assert.equal(lrFactor('linear', 2000, 100, 1100), 0);
});

test('EMA decay follows the official schedule (power 0.75, max 0.9999)', () => {
  const c = DEFAULT_CONFIG.ema;
  assert.equal(emaDecay(0, c), 0);
  assert.equal(emaDecay(1, c), 0);
  assert.ok(Math.abs(emaDecay(2, c) - (1 - 2 ** -0.75)) < 1e-15); // n' = 1
  assert.ok(Math.abs(emaDecay(101, c) - (1 - 101 ** -0.75)) < 1e-15); // n' = 100
  assert.equal(emaDecay(10_000_000, c), 0.9999);
});

test('TensorBoard event files are read back by TensorBoard itself', () => {
  assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283); // the CRC-32C check value
  const dir = mkdtempSync(join(tmpdir(), 'rdt-tb-'));
  const w = new TensorBoardWriter(dir);
  w.scalars(1, { 'train/loss': 0.5, 'train/lr': 1e-4 });
  w.scalars(2, { 'train/loss': 0.25, 'train/lr': 2e-4, skipped: Number.NaN });
  w.close();
  const out = execFileSync(process.env.PYTHON || 'python3', ['-c', `
import json, sys
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
ea = EventAccumulator(sys.argv[1]); ea.Reload()
print(json.dumps({t: [[e.step, e.value] for e in ea.Scalars(t)] for t in ea.Tags()['scalars']}))
`, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const got = JSON.parse(out) as Record<string, [number, number][]>;
  assert.deepEqual(got['train/loss'], [[1, 0.5], [2, 0.25]]);
  assert.equal(got['train/lr'][1][0], 2);
  assert.ok(Math.abs(got['train/lr'][1][1] - 2e-4) < 1e-10);
  assert.ok(!('skipped' in got), 'non-finite values are not written');
});

test('JSONL metrics: one parseable object per line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-jsonl-'));
  const s = new JsonlSink(join(dir, 'm', 'metrics.jsonl'));
  s.log(1, { loss: 0.5 });
  s.log(2, { loss: 0.25, note: 'x' });
  const lines = readFileSync(s.path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.step, l.loss]), [[1, 0.5], [2, 0.25]]);
});

test('config errors name where the bad value was given: the command line, the YAML file, or its defaults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-cfg-origin-'));
  const file = join(dir, 'run.yaml');
  writeFileSync(file, 'learning_rate: 1.0e-4\nema:\n  power: -1\n');
  assert.throws(() => loadConfig({ file, overrides: ['ema.power=0.5', 'train_batch_size=0'] }), (e: Error) => e.message.startsWith("command line: 'train_batch_size' must be a positive integer, got 0"));
  assert.throws(() => loadConfig({ file }), (e: Error) => e.message.startsWith(`${file}: 'ema.power' must be > 0, got -1`));
  writeFileSync(file, 'ema:\n  min_value: 0.5\n');
  assert.throws(() => loadConfig({ file, overrides: ['ema.max_value=0.4'] }), (e: Error) => e.message.startsWith("command line: 'ema.max_value' must be in [ema.min_value, 1]"));
});

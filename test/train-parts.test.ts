// The trainer's parts and hooks: model-folder writers see every saved folder (checkpoint-N, its
// ema/, final/) before it is complete; a gradient synchroniser runs after accumulation and before
// clipping; evaluators run on their cadence; an encoder factory replaces the built-in choice; what
// was built is freed when building fails. Also the two single sources of truth: the trainer's EMA
// settings (written into every config.json), and the statistics cache keyed by the demo split.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig, type TrainConfig } from '../src/train/config.js';
import { train, type TrainHooks, type ModelFolderKind } from '../src/train/trainer.js';
import { mergeHooks } from '../src/train/hooks.js';
import { RDTRunner } from '../src/model/runner.js';
import { rdtPreset } from '../src/model/config.js';
import { DemoTextEncoder, DemoVisionEncoder } from '../src/encoders/demo.js';
import { fixture } from './helpers/fixtures.js';
import { undisposed } from './helpers/leaks.js';
import { LiberoDataset } from '../src/data/dataset.js';
import { loadOrComputeStats } from '../src/data/stats.js';

const work = mkdtempSync(join(tmpdir(), 'rdt-parts-'));
const root = join(work, 'data');
let n = 0;

before(async () => {
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 24, size: 32, seed: 3 });
});

function cfgFor(over: Record<string, unknown> = {}, out = join(work, `run-${n++}`)): TrainConfig {
  return loadConfig({
    overrides: {
      model: 'tiny', encoders: 'demo', output_dir: out, train_batch_size: 2, gradient_accumulation_steps: 1, max_train_steps: 3,
      learning_rate: 1e-3, lr_scheduler: 'constant', mixed_precision: 'no', checkpointing_period: 2, sample_period: 0,
      log_every: 1, report_to: ['jsonl'], data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1 },
      ...over,
    },
  });
}
const metricLines = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
const tensorsOf = (file: string) => torch.scope(() => new Map([...torch.loadSafetensors(file).tensors].map(([k, t]) => [k, Array.from(t.toFloat64())])));

test('model-folder writers: called for checkpoint-N, its ema/ and final/, inside the folder before it is complete', async () => {
  const calls: { dir: string; kind: ModelFolderKind; step: number; had: string[] }[] = [];
  const cfg = cfgFor();
  const hooks: TrainHooks = {
    modelFolderWriters: [(dir, info, ctx) => {
      calls.push({ dir, ...info, had: readdirSync(dir).filter((f) => !f.startsWith('.')).sort() });
      assert.equal(ctx.cfg, cfg);
      writeFileSync(join(dir, 'marker.json'), JSON.stringify(info));
    }],
  };
  const r = await train(cfg, { verbose: false, hooks });
  const out = cfg.output_dir;
  const pid = process.pid;
  assert.deepEqual(calls.map((c) => [c.kind, c.step, c.dir.slice(out.length + 1)]), [
    ['checkpoint', 2, `.checkpoint-2.tmp-${pid}`], ['ema', 2, join(`.checkpoint-2.tmp-${pid}`, 'ema')],
    ['checkpoint', 3, `.checkpoint-3.tmp-${pid}`], ['ema', 3, join(`.checkpoint-3.tmp-${pid}`, 'ema')],
    ['final', 3, `.final.tmp-${pid}`],
  ]);
  // The model folder is written (and not yet marked complete) when the writer runs.
  // (policy.json is the built-in writer's, which runs first; checksums.json is recorded after every writer.)
  for (const c of calls) assert.deepEqual(c.had, ['config.json', 'model.safetensors', 'policy.json'], `${c.kind} ${c.step}`);
  for (const [dir, kind, step] of [['checkpoint-2', 'checkpoint', 2], ['checkpoint-2/ema', 'ema', 2], ['checkpoint-3/ema', 'ema', 3], ['final', 'final', 3]] as const)
    assert.deepEqual(JSON.parse(readFileSync(join(out, dir, 'marker.json'), 'utf8')), { kind, step }, dir);
  assert.equal(r.finalModelDir, join(out, 'final'));

  // A writer that fails leaves no half-written folder under the final name.
  const cfg2 = cfgFor({ max_train_steps: 1, checkpointing_period: 5 });
  await assert.rejects(train(cfg2, { verbose: false, hooks: { modelFolderWriters: [(_d, info) => { if (info.kind === 'final') throw new Error('disk full'); }] } }), /disk full/);
  assert.ok(!existsSync(join(cfg2.output_dir, 'final')));
  assert.ok(!readdirSync(cfg2.output_dir).some((f) => f.includes('.tmp-')));
  assert.ok(existsSync(join(cfg2.output_dir, 'checkpoint-1', 'trainer_state.json')), 'the checkpoint before it is complete');
});

test('gradient sync: sees each step\'s accumulated gradients before clipping and AdamW, and can skip a step', async () => {
  const seen: { step: number; params: number; withGrad: number }[] = [];
  const cfg = cfgFor({ adam_weight_decay: 0, checkpointing_period: 1 });
  const r = await train(cfg, {
    verbose: false,
    hooks: {
      gradientSync: (s, ctx) => {
        seen.push({ step: s.step, params: s.params.length, withGrad: s.params.filter((p) => p.grad).length });
        assert.equal(s.params.length, ctx.parts.trainable.length);
        torch.noGrad(() => s.params.forEach((p) => p.grad!.zero_())); // as if every other process had the opposite gradient
        return seen.length === 2 ? { loss: s.loss, finite: false } : undefined; // the second call: one process saw NaN
      },
    },
  });
  const fresh = new RDTRunner(rdtPreset('tiny'));
  const count = fresh.parameters().length;
  fresh.dispose();
  assert.deepEqual(seen.map((x) => x.step), [0, 1, 1, 2], 'step 1 was skipped and redone');
  assert.ok(seen.every((x) => x.params === count && x.withGrad === count), 'every trained parameter, each with its gradient');
  assert.equal(r.skippedSteps, 1);
  // Zeroed before clipping: the clipped norm is 0, and AdamW (no weight decay) moves nothing.
  const lines = metricLines(cfg.output_dir);
  assert.deepEqual(lines.filter((l) => 'train/grad_norm' in l).map((l) => l['train/grad_norm']), [0, 0, 0]);
  assert.deepEqual(lines.filter((l) => 'train/skipped_nonfinite' in l).map((l) => l.step), [1]);
  const a = tensorsOf(join(cfg.output_dir, 'checkpoint-1', 'model.safetensors'));
  const b = tensorsOf(join(cfg.output_dir, 'checkpoint-3', 'model.safetensors'));
  for (const [k, v] of a) assert.deepEqual(v, b.get(k), k);
});

test('evaluators: every N steps with the runner, before a fresh run and after the last step, logged under their name', async () => {
  const calls: number[] = [];
  const cfg = cfgFor();
  await train(cfg, {
    verbose: false,
    hooks: {
      evaluators: [
        { name: 'probe', every: 2, atStart: true, evaluate: (runner, step) => (assert.ok(runner instanceof RDTRunner), calls.push(step), { x: step * 10 }) },
        { name: 'end', every: 1, atEnd: true, evaluate: (_r, step) => ({ y: step }) },
      ],
    },
  });
  assert.deepEqual(calls, [0, 2]);
  const lines = metricLines(cfg.output_dir);
  assert.deepEqual(lines.filter((l) => 'probe/x' in l).map((l) => [l.step, l['probe/x']]), [[0, 0], [2, 20]]);
  assert.deepEqual(lines.filter((l) => 'end/y' in l).map((l) => l.step), [1, 2, 3], 'the last step once (from the end call)');
  assert.throws(() => mergeHooks({ evaluators: [{ name: 'a', every: 1, evaluate: () => null }] }, { evaluators: [{ name: 'a', every: 2, evaluate: () => null }] }), /two evaluators are named 'a'/);
  assert.throws(() => mergeHooks({ gradientSync: () => undefined }, { gradientSync: () => undefined }), /two gradient synchronisers/);
});

test('encoders: a factory replaces the built-in choice; a failure while building frees what was built', async () => {
  const live = undisposed();
  let built = 0;
  const r = await train(cfgFor({ encoders: 'official', max_train_steps: 1, checkpointing_period: 1 }), {
    verbose: false,
    hooks: { encoders: (c) => (built++, { text: new DemoTextEncoder(c.lang_token_dim, c.max_lang_cond_len), vision: new DemoVisionEncoder(c.img_token_dim, 3, 4, 99) }) },
  });
  assert.equal(built, 1);
  assert.equal(r.steps, 1, "encoders: 'official' runs when a factory provides them");
  await assert.rejects(train(cfgFor({ mixed_precision: 'bf16' }), { verbose: false, hooks: { encoders: () => { throw new Error('no encoder weights'); } } }), /no encoder weights/);
  assert.equal(undisposed(), live, 'the model built before the encoders failed is freed');
});

test('EMA: the trainer\'s ema settings are written into every saved config.json; a different pretrained one is reported', async () => {
  const lines: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string) => (lines.push(String(s)), true)) as typeof process.stderr.write;
  let cfg: TrainConfig;
  try {
    cfg = cfgFor({ pretrained_model_name_or_path: fixture('rdt', 'tiny_a.hub-bf16'), model: 'auto', ema: { power: 0.5 }, checkpointing_period: 3 });
    await train(cfg, { verbose: true });
  } finally {
    process.stderr.write = write;
  }
  const pretrainedEma = JSON.parse(readFileSync(fixture('rdt', 'tiny_a.hub-bf16', 'config.json'), 'utf8')).ema;
  assert.equal(pretrainedEma.power, 0.75);
  for (const dir of ['checkpoint-3', 'checkpoint-3/ema', 'final']) {
    const ema = JSON.parse(readFileSync(join(cfg.output_dir, dir, 'config.json'), 'utf8')).ema;
    assert.deepEqual(ema, { ...pretrainedEma, power: 0.5 }, dir);
  }
  assert.ok(lines.some((l) => /EMA: the trainer's ema: settings replace the ema section of .*tiny_a\.hub-bf16 \(power 0\.75 -> 0\.5\)/.test(l)), lines.join(''));
});

test('statistics cache: another held-out split is another cache entry', async () => {
  // A run folder holds one run now, so two splits meet in one cache only through the data layer itself.
  const dir = join(work, 'stats-split');
  const statsOf = () => readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')).libero.num_episodes).sort();
  for (const holdoutPerTask of [1, 2]) {
    const ds = await LiberoDataset.open({ root, split: { holdoutPerTask, part: 'train' } });
    try {
      assert.equal(loadOrComputeStats(ds, dir).cached, false);
      assert.equal(loadOrComputeStats(ds, dir).cached, true);
    } finally {
      ds.close();
    }
  }
  // 2 tasks x 3 demos: 2 train demos per task with 1 held out, 1 with 2 held out.
  assert.deepEqual(statsOf(), [2 * 1, 2 * 2]);
});

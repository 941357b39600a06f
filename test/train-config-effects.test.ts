// Every key of the training config does something, or is refused. One table entry per key (the
// test fails when a key is added without one): a tiny run with the key changed, compared with a
// baseline run, against a rule written out here (LR schedule formulas, the EMA decay rule, counts
// of demos and steps), never against the trainer's own helpers. Refusals are checked where a value
// cannot work.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { LiberoDataset } from '../src/data/dataset.js';
import { loadConfig, type TrainConfig } from '../src/train/config.js';
import { configKeys } from '../src/train/config.js';
import { train, type TrainResult, type TrainHooks } from '../src/train/trainer.js';
import { listCheckpoints } from '../src/policy/checkpoints.js';
import { rdtPreset, toHubJson, type RdtConfig } from '../src/model/config.js';
import { DemoTextEncoder, DemoVisionEncoder } from '../src/encoders/demo.js';
import { T5TextEncoder } from '../src/encoders/official.js';
import { buildTextCache } from '../src/encoders/text_cache.js';
import { fixture } from './helpers/fixtures.js';
import { undisposed } from './helpers/leaks.js';

const work = mkdtempSync(join(tmpdir(), 'rdt-effects-'));
const root = join(work, 'data');
const PRETRAINED = fixture('rdt', 'tiny_a.hub-bf16');
const SUITES = { libero_goal: { tasks: 2, demos: 3 }, libero_object: { tasks: 1, demos: 3 } };

// A 2-block (one attends to the language, one to the images), 32-wide RDT with the tiny preset's
// condition sizes (the demo encoders'): the checks need a model that trains, not a good one, and
// there are many runs.
const MICRO = join(work, 'micro.json');
// The micro model at the fixture-sized official encoders' sizes: T5 d_model 64, SigLIP hidden 48 with 56/14 = 4x4
// patches, so img_cond_len = 2 history x 3 cameras x 16.
const MICRO_OFFICIAL = join(work, 'micro-official.json');
const OFFICIAL = {
  model: MICRO_OFFICIAL, encoders: 'official', text_encoder: fixture('encoders', 't5'), vision_encoder: fixture('encoders', 'siglip'),
  tokenizer: fixture('encoders', 'tokenizer'),
};

before(async () => {
  writeFileSync(MICRO, JSON.stringify(toHubJson(rdtPreset('tiny', { rdt: { hidden_size: 32, depth: 2, num_heads: 2 } }))));
  writeFileSync(MICRO_OFFICIAL, JSON.stringify(toHubJson(rdtPreset('tiny', {
    rdt: { hidden_size: 32, depth: 2, num_heads: 2 }, lang_token_dim: 64, img_token_dim: 48, img_cond_len: 96,
    img_pos_embed_config: [['image', [2, 3, -16]]], max_lang_cond_len: 1024, lang_pos_embed_config: [['lang', -1024]],
  }))));
  for (const [suite, s] of Object.entries(SUITES))
    await writeSyntheticSuite({ root, suite: suite as 'libero_goal', tasks: s.tasks, demos: s.demos, meanLength: 24, size: 32, seed: 5 });
});

/** The baseline: the micro model, 3 optimizer steps of batch 2, warmup 1, no condition dropout, one checkpoint at the end. */
const BASE = {
  model: MICRO, encoders: 'demo', train_batch_size: 2, gradient_accumulation_steps: 1, max_train_steps: 3,
  learning_rate: 1e-3, lr_scheduler: 'constant_with_warmup', lr_warmup_steps: 1, mixed_precision: 'no',
  checkpointing_period: 3, sample_period: 0, log_every: 1, report_to: ['jsonl'], cond_mask_prob: 0,
  data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1 },
};

interface Run {
  out: string;
  cfg: TrainConfig;
  r: TrainResult;
  /** train/* metric lines and sample/* lines of metrics.jsonl. */
  lines: Record<string, number>[];
  /** Workers alive while the loop ran (seen by an evaluator at step 1). */
  workers: number;
}

let n = 0;
const merge = (a: Record<string, any>, b: Record<string, any>): Record<string, any> => {
  const o = { ...a };
  for (const [k, v] of Object.entries(b)) o[k] = v && typeof v === 'object' && !Array.isArray(v) && typeof a[k] === 'object' ? merge(a[k], v) : v;
  return o;
};
const cfgOf = (over: Record<string, unknown>, out = join(work, `run-${n++}`)) => loadConfig({ overrides: merge({ ...BASE, output_dir: out }, over) });

const runs = new Map<string, Promise<Run>>();
/** A run with `over` changed from the baseline; runs without hooks are shared between checks. */
function run(over: Record<string, unknown> = {}, hooks?: TrainHooks): Promise<Run> {
  if (hooks) return runNow(over, hooks);
  const key = JSON.stringify(over);
  if (!runs.has(key)) runs.set(key, runNow(over));
  return runs.get(key)!;
}

async function runNow(over: Record<string, unknown>, hooks?: TrainHooks): Promise<Run> {
  const cfg = cfgOf(over);
  let workers = -1;
  const probe: TrainHooks = { evaluators: [{ name: 'probe', every: 1, evaluate: (_r, step) => {
    if (step === 1) workers = (process.report.getReport() as unknown as { workers: unknown[] }).workers.length;
    return null;
  } }] };
  const r = await train(cfg, { verbose: false, hooks: { ...probe, ...hooks, evaluators: [...probe.evaluators!, ...(hooks?.evaluators ?? [])] } });
  const file = join(cfg.output_dir, 'metrics.jsonl');
  const lines = existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : [];
  return { out: cfg.output_dir, cfg, r, lines, workers };
}

const series = (x: Run, key: string) => x.lines.filter((l) => key in l).map((l) => l[key]);
const steps = (x: Run, key: string) => x.lines.filter((l) => key in l).map((l) => l.step);
const stats = (x: Run) => {
  const dir = join(x.out, 'stats');
  return JSON.parse(readFileSync(join(dir, readdirSync(dir)[0]), 'utf8'));
};
const policyOf = (x: Run) => JSON.parse(readFileSync(join(x.out, 'checkpoint-3', 'policy.json'), 'utf8'));
const trainerState = (x: Run, step = 3) => JSON.parse(readFileSync(join(x.out, `checkpoint-${step}`, 'trainer_state.json'), 'utf8'));
/** A safetensors file's tensors as plain arrays (the loaded tensors are freed). */
const tensorsOf = (file: string) => torch.scope(() => {
  const { tensors } = torch.loadSafetensors(file);
  return new Map([...tensors].map(([k, t]) => [k, { dtype: t.dtype, shape: t.shape, values: Array.from(t.toFloat64()) }]));
});
const weights = (dir: string) => new Map([...tensorsOf(join(dir, 'model.safetensors'))].map(([k, t]) => [k, t.values]));
const same = (a: number[], b: number[]) => a.length === b.length && a.every((x, i) => x === b[i]);
const weightsDiffer = (a: string, b: string) => {
  const wa = weights(a), wb = weights(b);
  return [...wa].some(([k, v]) => !same(v, wb.get(k)!));
};
const ck = (x: Run, sub = '') => join(x.out, 'checkpoint-3', sub);
const closeTo = (a: number[], b: number[], what: string) =>
  assert.ok(a.length === b.length && a.every((x, i) => Math.abs(x - b[i]) < 1e-9 * Math.max(1, Math.abs(b[i]))), `${what}: ${a} vs ${b}`);

/** The official EMA rule (rdt-spec.md 6.2), after n updates. */
const emaRule = (n: number, e: { update_after_step: number; inv_gamma: number; power: number; min_value: number; max_value: number }) => {
  const k = n - e.update_after_step - 1;
  return k <= 0 ? 0 : Math.min(e.max_value, Math.max(e.min_value, 1 - (1 + k / e.inv_gamma) ** -e.power));
};
const EMA0 = { update_after_step: 0, inv_gamma: 1, power: 0.75, min_value: 0, max_value: 0.9999 };

/** Training steps of the train split, counted by the data layer alone. */
async function datasetSteps(c: TrainConfig): Promise<number> {
  const ds = await LiberoDataset.open({ root, split: { holdoutPerTask: c.data.holdout_demos_per_task, part: 'train' } });
  try {
    return ds.index.total;
  } finally {
    ds.close();
  }
}

let base: Run;
let pre: Run; // fine-tuned from the pretrained fixture
let lora: Run; // LoRA on the pretrained fixture
const fixtureWeights = () => weights(join(work, 'fixture-as-safetensors'));

type Check = () => Promise<void>;

/** One entry per config key. */
const EFFECTS: Record<string, Check> = {
  model: async () => {
    const file = join(work, 'depth2.json');
    writeFileSync(file, JSON.stringify(toHubJson(rdtPreset('tiny', { rdt: { depth: 2 } }))));
    const x = await run({ model: file });
    const blocks = new Set([...weights(ck(x)).keys()].map((k) => /^model\.blocks\.(\d+)\./.exec(k)?.[1]).filter(Boolean));
    assert.equal(blocks.size, 2, 'a 2-block model from the config.json');
    // The data follows the architecture: a model with 8-step chunks trains on 8-step chunks (and its policy says so).
    const short = join(work, 'horizon8.json');
    writeFileSync(short, JSON.stringify(toHubJson(rdtPreset('tiny', { rdt: { hidden_size: 32, depth: 2, num_heads: 2 }, pred_horizon: 8 }))));
    const seen: number[] = [];
    const y = await run({ model: short, exec_horizon: 8 }, { evaluators: [{ name: 'horizon', every: 1, evaluate: (_r, _s, ctx) => (seen.push(ctx.data.dataset.cfg.chunkSize), null) }] });
    assert.deepEqual([...new Set(seen)], [8]);
    assert.equal(JSON.parse(readFileSync(ck(y, 'policy.json'), 'utf8')).action.chunk_size, 8);
    assert.equal(tensorsOf(join(ck(y), 'model.safetensors')).get('model.x_pos_embed')!.shape[1], 8 + 3);
  },
  pretrained_model_name_or_path: async () => {
    assert.notEqual(pre.r.losses[0], base.r.losses[0], 'the first loss is the pretrained model\'s');
  },
  encoders: async () => {
    const x = await run(OFFICIAL);
    assert.equal(policyOf(x).encoders.text.kind, 'official');
    assert.equal(policyOf(base).encoders.text.kind, 'demo');
    assert.notDeepEqual(x.r.losses, base.r.losses);
  },
  text_encoder: async () => {
    assert.equal(policyOf(await run(OFFICIAL)).encoders.text.path, OFFICIAL.text_encoder);
    await assert.rejects(run({ ...OFFICIAL, text_encoder: null }), /'text_encoder' is required with encoders: official/);
    assert.throws(() => cfgOf({ text_encoder: OFFICIAL.text_encoder }), /'text_encoder' is set, but encoders: demo reads no encoder folders/);
  },
  vision_encoder: async () => {
    assert.equal(policyOf(await run(OFFICIAL)).encoders.vision.path, OFFICIAL.vision_encoder);
    await assert.rejects(run({ ...OFFICIAL, vision_encoder: null }), /'vision_encoder' is required with encoders: official/);
    assert.throws(() => cfgOf({ vision_encoder: OFFICIAL.vision_encoder }), /'vision_encoder' is set, but encoders: demo/);
  },
  tokenizer: async () => {
    assert.equal(policyOf(await run(OFFICIAL)).encoders.text.tokenizer_path, OFFICIAL.tokenizer);
    // null: the tokenizer is read from text_encoder, which (in the fixtures) holds none.
    await assert.rejects(run({ ...OFFICIAL, tokenizer: null }), /spiece\.model/);
    assert.throws(() => cfgOf({ tokenizer: OFFICIAL.tokenizer }), /'tokenizer' is set, but encoders: demo/);
  },
  encoder_dtype: async () => {
    const x = await run({ ...OFFICIAL, encoder_dtype: 'bfloat16' });
    assert.equal(policyOf(x).encoders.vision.dtype, 'bfloat16');
    assert.equal(policyOf(await run(OFFICIAL)).encoders.vision.dtype, 'float32', "'auto' on the CPU");
    assert.notDeepEqual(x.r.losses, (await run(OFFICIAL)).r.losses, 'bf16 conditions');
    assert.throws(() => cfgOf({ encoder_dtype: 'bfloat16' }), /'encoder_dtype' is bfloat16, but the demo encoders always run in float32/);
  },
  text_cache: async () => {
    // T5's tokens of every instruction (and "") cached; text_encoder then only needs config.json (no weights: T5 never loads).
    const cache = join(work, 't5cache.safetensors');
    const t5 = T5TextEncoder.load(OFFICIAL.text_encoder, { tokenizerDir: OFFICIAL.tokenizer });
    try {
      buildTextCache(cache, t5, (await LiberoDataset.open({ root })).instructions);
    } finally {
      t5.dispose();
    }
    const configOnly = join(work, 't5-config-only');
    mkdirSync(configOnly, { recursive: true });
    copyFileSync(join(OFFICIAL.text_encoder, 'config.json'), join(configOnly, 'config.json'));
    const x = await run({ ...OFFICIAL, text_encoder: configOnly, text_cache: cache });
    assert.deepEqual(x.r.losses, (await run(OFFICIAL)).r.losses, 'the cached tokens are the live ones');
    await assert.rejects(run({ ...OFFICIAL, text_encoder: configOnly }), /model\.safetensors|weights/i, 'without the cache T5 must load');
    assert.throws(() => cfgOf({ text_cache: cache }), /'text_cache' is set, but encoders: demo/);
  },
  output_dir: async () => {
    for (const f of ['checkpoint-3', 'final', 'metrics.jsonl', 'run_config.yaml', 'stats']) assert.ok(existsSync(join(base.out, f)), f);
  },
  seed: async () => assert.notDeepEqual((await run({ seed: 7 })).r.losses, base.r.losses),
  device: async () => {
    assert.throws(() => cfgOf({ device: 'tpu' }), /'device' must be cpu, cuda or cuda:N, got 'tpu'/);
    await assert.rejects(run({ device: 'cuda:99' }), /device: 'cuda:99' is not available/);
  },
  train_batch_size: async () => {
    const x = await run({ train_batch_size: 3 });
    assert.notDeepEqual(x.r.losses, base.r.losses);
    assert.equal(trainerState(x).loader.position, 3 * 3, '3 steps of 3 samples');
    assert.equal(trainerState(base).loader.position, 3 * 2);
  },
  gradient_accumulation_steps: async () => {
    const x = await run({ gradient_accumulation_steps: 2 });
    assert.notDeepEqual(x.r.losses, base.r.losses);
    assert.equal(trainerState(x).loader.position, 3 * 2 * 2, '3 steps of 2 micro-batches of 2');
  },
  learning_rate: async () => {
    const x = await run({ learning_rate: 3e-3 });
    closeTo(series(x, 'train/lr'), [0, 3e-3, 3e-3], 'lr after a 1-step warmup');
    assert.ok(weightsDiffer(ck(x), ck(base)));
  },
  lr_scheduler: async () => {
    // linear: 1 - (step - warmup) / (total - warmup) after the warmup; at steps 0, 1, 2 of 3: 0, 1, 1/2.
    closeTo(series(await run({ lr_scheduler: 'linear' }), 'train/lr'), [0, 1e-3, 0.5e-3], 'linear');
    closeTo(series(base, 'train/lr'), [0, 1e-3, 1e-3], 'constant_with_warmup');
  },
  lr_warmup_steps: async () => closeTo(series(await run({ lr_warmup_steps: 2 }), 'train/lr'), [0, 0.5e-3, 1e-3], 'warmup over 2 steps'),
  max_train_steps: async () => {
    const x = await run({ max_train_steps: 2, checkpointing_period: 2 });
    assert.equal(x.r.steps, 2);
    assert.equal(x.r.losses.length, 2);
  },
  num_train_epochs: async () => {
    const x = await run({ max_train_steps: null, num_train_epochs: 0.05, checkpointing_period: 100 });
    assert.equal(x.r.steps, Math.ceil((0.05 * (await datasetSteps(x.cfg))) / 2), 'ceil(epochs x training steps / effective batch)');
  },
  adam_beta1: async () => assert.ok(weightsDiffer(ck(await run({ adam_beta1: 0.5 })), ck(base))),
  adam_beta2: async () => assert.ok(weightsDiffer(ck(await run({ adam_beta2: 0.9 })), ck(base))),
  adam_epsilon: async () => assert.ok(weightsDiffer(ck(await run({ adam_epsilon: 1e-2 })), ck(base))),
  adam_weight_decay: async () => assert.ok(weightsDiffer(ck(await run({ adam_weight_decay: 0.5 })), ck(base))),
  max_grad_norm: async () => {
    const x = await run({ max_grad_norm: 1e-9 });
    assert.deepEqual(series(x, 'train/grad_norm')[0], series(base, 'train/grad_norm')[0], 'the logged norm is the one before clipping');
    assert.ok(weightsDiffer(ck(x), ck(base)));
  },
  mixed_precision: async () => {
    const x = await run({ mixed_precision: 'bf16' });
    assert.equal(tensorsOf(join(ck(x), 'model.safetensors')).get('model.blocks.0.attn.qkv.weight')!.dtype, 'bfloat16');
    assert.equal(tensorsOf(join(ck(base), 'model.safetensors')).get('model.blocks.0.attn.qkv.weight')!.dtype, 'float32');
  },
  checkpointing_period: async () => assert.deepEqual(listCheckpoints((await run({ checkpointing_period: 1 })).out).map((c) => c.step), [1, 2, 3]),
  checkpoints_total_limit: async () =>
    assert.deepEqual(listCheckpoints((await run({ checkpointing_period: 1, checkpoints_total_limit: 1 })).out).map((c) => c.step), [3]),
  resume_from_checkpoint: async () => {
    const out = join(work, 'resume');
    const full = await run({ checkpointing_period: 1 }); // shared with the checkpointing_period check
    const half = await train(cfgOf({ checkpointing_period: 1 }, out), { verbose: false, haltAfterStep: 1 });
    const rest = await train(cfgOf({ checkpointing_period: 1, resume_from_checkpoint: 'latest' }, out), { verbose: false });
    assert.equal(rest.losses.length, 2, 'continues at step 1');
    assert.deepEqual([...half.losses, ...rest.losses], full.r.losses);
  },
  overwrite: async () => {
    // A fresh run in base's folder is refused; with overwrite it starts over there (base's files are replaced).
    const used = { out: join(work, 'used') };
    await train(cfgOf({}, used.out), { verbose: false });
    await assert.rejects(train(cfgOf({}, used.out), { verbose: false }), /holds another run \(checkpoint-3, final, metrics\.jsonl, run_config\.yaml, stats\).*--overwrite true/);
    const again = await train(cfgOf({ max_train_steps: 2, checkpointing_period: 2, overwrite: true }, used.out), { verbose: false });
    assert.equal(again.steps, 2);
    assert.deepEqual(listCheckpoints(used.out).map((c) => c.step), [2], 'the earlier run\'s checkpoint-3 is gone');
    const steps = readFileSync(join(used.out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
    assert.ok(Math.max(...steps) === 2, `metrics.jsonl holds only the new run: steps ${steps}`);
  },
  sample_period: async () => {
    const x = await run({ sample_period: 1 });
    assert.deepEqual(steps(x, 'sample/overall_avg_sample_mse'), [0, 1, 2, 3], 'before, every step, after');
    assert.deepEqual(steps(base, 'sample/overall_avg_sample_mse'), []);
  },
  sample_batch_size: async () => assert.deepEqual(series(await run({ sample_period: 3, sample_batch_size: 3 }), 'sample/samples'), [3 * 2, 3 * 2]),
  num_sample_batches: async () => assert.deepEqual(series(await run({ sample_period: 3, sample_batch_size: 2, num_sample_batches: 3 }), 'sample/samples'), [2 * 3, 2 * 3]),
  cond_mask_prob: async () => assert.notDeepEqual((await run({ cond_mask_prob: 1 })).r.losses, base.r.losses),
  cam_ext_mask_prob: async () => assert.notDeepEqual((await run({ cam_ext_mask_prob: 1 })).r.losses, base.r.losses),
  // The state reaches the loss only through state_adaptor, and the fresh model's zero output layer hides it from
  // the first losses: the noise shows in the trained weights (state_adaptor's gradient is taken on the state).
  state_noise_snr: async () => assert.ok(weightsDiffer(ck(await run({ state_noise_snr: null })), ck(base)), 'state noise changes the trained weights'),
  image_aug: async () => assert.notDeepEqual((await run({ image_aug: true })).r.losses, base.r.losses),
  ctrl_freq: async () => assert.notDeepEqual((await run({ ctrl_freq: 10 })).r.losses, base.r.losses),
  // The runner's z-scores themselves: test/model-runner.test.ts; here the run uses the data's statistics and records it.
  value_normalization: async () => {
    const z = await run({ value_normalization: 'zscore' });
    assert.notDeepEqual(z.r.losses, base.r.losses);
    assert.equal(policyOf(z).normalization, 'zscore');
    assert.equal(policyOf(base).normalization, 'none');
    assert.throws(() => cfgOf({ value_normalization: 'minmax' }), /'value_normalization' must be one of none, zscore, got 'minmax'/);
  },
  // Recorded for the evaluation (its default exec horizon, test/eval-policy.test.ts); training does not use it.
  exec_horizon: async () => {
    assert.equal(policyOf(base).action.exec_horizon, 16);
    assert.equal(policyOf(await run({ exec_horizon: 8 })).action.exec_horizon, 8);
    assert.throws(() => cfgOf({ exec_horizon: 0 }), /'exec_horizon' must be a positive integer, got 0/);
    await assert.rejects(run({ exec_horizon: 65 }), /exec_horizon 65 is longer than the model's chunk of 64 steps/);
  },
  report_to: async () => {
    const x = await run({ report_to: ['tensorboard'] });
    assert.ok(readdirSync(join(x.out, 'tensorboard')).some((f) => f.startsWith('events.out.tfevents')));
    assert.ok(!existsSync(join(x.out, 'metrics.jsonl')));
    const none = await run({ report_to: ['none'] });
    assert.ok(!existsSync(join(none.out, 'metrics.jsonl')) && !existsSync(join(none.out, 'tensorboard')));
    assert.throws(() => cfgOf({ report_to: ['jsnl'] }), /'report_to' must be one of jsonl, tensorboard, wandb, none, got 'jsnl' \(did you mean 'jsonl'\?\)/);
  },
  log_every: async () => {
    assert.deepEqual(steps(await run({ log_every: 5 }), 'train/loss'), [1, 3], 'the first and the last step always');
    assert.deepEqual(steps(base, 'train/loss'), [1, 2, 3]);
  },
  zero_stage: async () => {
    // Sharding needs several processes: its effect (same weights, sharded state, unsharded checkpoints) is
    // checked with 2 real processes in ddp-train.test.ts; one process refuses it.
    await assert.rejects(run({ zero_stage: 2 }), /zero_stage: 2 shards the optimizer state across processes, and this run has one/);
    assert.throws(() => cfgOf({ zero_stage: 1 }), /'zero_stage' must be 0 \(no sharding\) or 2/);
  },
  'ddp.bucket_cap_mb': async () => {
    // Gradient buckets exist with several processes: their layout (cut at this size) and the same bits whatever the
    // size are checked with real processes in distributed-engine.test.ts and ddp-train.test.ts; one process refuses it.
    await assert.rejects(run({ ddp: { bucket_cap_mb: 5 } }), /ddp\.bucket_cap_mb: 5 applies to several processes, and this run has one/);
    assert.throws(() => cfgOf({ ddp: { bucket_cap_mb: 0 } }), /'ddp\.bucket_cap_mb' must be > 0/);
  },
  'ddp.overlap_comm': async () => {
    // Reducing during or after backward: checked bit for bit with 2 processes in ddp-train.test.ts; one process refuses it.
    await assert.rejects(run({ ddp: { overlap_comm: false } }), /ddp\.overlap_comm: false applies to several processes, and this run has one/);
  },
  max_bad_steps: async () => {
    // lr 1e30 blows the weights up in the first update: every later loss is NaN/Inf.
    await assert.rejects(run({ learning_rate: 1e30, lr_scheduler: 'constant', max_bad_steps: 2, max_train_steps: 10 }), /loss was NaN\/Inf in 2 optimizer steps in a row/);
  },
  'ema.enabled': async () => {
    const x = await run({ ema: { enabled: false } });
    assert.ok(!existsSync(ck(x, 'ema')) && existsSync(ck(base, 'ema/model.safetensors')));
    assert.deepEqual(series(x, 'train/ema_decay'), [0, 0, 0]);
  },
  ...Object.fromEntries(([['update_after_step', 1], ['inv_gamma', 0.5], ['power', 0.5], ['min_value', 0.5], ['max_value', 0.3]] as const).map(([k, v]) => [`ema.${k}`, async () => {
    const x = await run({ ema: { [k]: v } });
    const e = { ...EMA0, [k]: v };
    closeTo(series(x, 'train/ema_decay'), [1, 2, 3].map((s) => emaRule(s, e)), `decay with ema.${k} ${v}`);
    // The third update used decay(2), which each of these values changes.
    assert.notEqual(emaRule(2, e), emaRule(2, EMA0));
    assert.ok(weightsDiffer(ck(x, 'ema'), ck(base, 'ema')), 'other averaged weights');
  }])),
  'lora.enabled': async () => {
    assert.ok(existsSync(ck(lora, 'adapter_model.safetensors')) && !existsSync(ck(pre, 'adapter_model.safetensors')));
    const f = fixtureWeights(), l = weights(ck(lora)), p = weights(ck(pre));
    const k = 'model.blocks.0.attn.qkv.weight';
    assert.ok(same(l.get(k)!, f.get(k)!), 'LoRA leaves the base weights as they were');
    assert.ok(!same(p.get(k)!, f.get(k)!), 'full fine-tuning changes them');
  },
  'lora.rank': async () => {
    const x = await run({ pretrained_model_name_or_path: PRETRAINED, model: 'auto', lora: { enabled: true, rank: 2 } });
    const a = tensorsOf(join(ck(x), 'adapter_model.safetensors')).get('model.blocks.0.attn.qkv.lora_A')!;
    assert.deepEqual(a.shape, [2, 128], 'lora_A is (rank, in_features)');
  },
  'lora.alpha': async () => {
    const x = await run({ pretrained_model_name_or_path: PRETRAINED, model: 'auto', lora: { enabled: true, alpha: 64 } });
    // B starts at zero and the first step has LR 0 (warmup), so the scale shows from the third loss on.
    assert.deepEqual(x.r.losses.slice(0, 2), lora.r.losses.slice(0, 2));
    assert.notEqual(x.r.losses[2], lora.r.losses[2]);
  },
  'lora.targets': async () => {
    const x = await run({ pretrained_model_name_or_path: PRETRAINED, model: 'auto', lora: { enabled: true, targets: ['ffn.fc1'] } });
    const keys = [...tensorsOf(join(ck(x), 'adapter_model.safetensors')).keys()];
    assert.ok(keys.length === 4 * 2 && keys.every((k) => /^model\.blocks\.\d\.ffn\.fc1\.lora_[AB]$/.test(k)), keys.join(', '));
  },
  'lora.train_adaptors': async () => {
    const x = await run({ pretrained_model_name_or_path: PRETRAINED, model: 'auto', lora: { enabled: true, train_adaptors: false } });
    const f = fixtureWeights(), k = 'lang_adaptor.0.weight';
    assert.ok(same(weights(ck(x)).get(k)!, f.get(k)!), 'adaptors frozen');
    assert.ok(!same(weights(ck(lora)).get(k)!, f.get(k)!), 'adaptors trained (the default)');
  },
  'data.dataset_root': async () => await assert.rejects(run({ data: { dataset_root: '' } }), /data\.dataset_root is not set/),
  'data.suites': async () => {
    assert.deepEqual(Object.keys(stats(await run({ data: { suites: ['libero_object'] } }))).sort(), ['libero', 'libero_object']);
    assert.deepEqual(Object.keys(stats(base)).sort(), ['libero', 'libero_goal', 'libero_object']);
  },
  'data.suite_weights': async () => assert.notDeepEqual((await run({ data: { suite_weights: { libero_goal: 100, libero_object: 1 } } })).r.losses, base.r.losses),
  'data.action_encoding': async () => {
    const x = await run({ data: { action_encoding: 'eef_velocity' } });
    assert.equal(stats(x).libero.action_encoding, 'eef_velocity');
    assert.notDeepEqual(x.r.losses, base.r.losses);
    assert.throws(() => cfgOf({ data: { action_encoding: 'eef_velocty' } }), /'data\.action_encoding' must be one of eef_velocity, eef_target_pose, raw_delta, got 'eef_velocty' \(did you mean 'eef_velocity'\?\)/);
  },
  'data.instruction_source': async () => {
    // The synthetic files word problem_info like the release: the file name's words, capitalised.
    const seen = async (source: string) => {
      const texts = new Set<string>();
      const encoders = (c: RdtConfig) => {
        const text = new DemoTextEncoder(c.lang_token_dim, c.max_lang_cond_len);
        const encode = text.encode.bind(text);
        text.encode = (xs: string[]) => (xs.forEach((x) => texts.add(x)), encode(xs));
        return { text, vision: new DemoVisionEncoder(c.img_token_dim) };
      };
      await run({ data: { instruction_source: source } }, { encoders });
      return [...texts].sort();
    };
    const fromName = await seen('filename');
    const fromProblem = await seen('problem_info');
    assert.ok(fromName.length > 0 && fromName.every((t) => t === t.toLowerCase() && !t.includes('_')), fromName.join(' | '));
    assert.deepEqual(fromProblem, fromName.map((t) => t[0].toUpperCase() + t.slice(1)));
  },
  'data.holdout_demos_per_task': async () => {
    // Train split = (demos - held out) x tasks, per suite: (3 - 2) x 2 + (3 - 2) x 1 with 2 held out.
    assert.equal(stats(await run({ data: { holdout_demos_per_task: 2 } })).libero.num_episodes, 1 * 2 + 1 * 1);
    assert.equal(stats(base).libero.num_episodes, 2 * 2 + 2 * 1);
  },
  'data.skip_idle_steps': async () => assert.ok(stats(await run({ data: { skip_idle_steps: false } })).libero.num_steps > stats(base).libero.num_steps),
  'data.drop_noops': async () => assert.ok(stats(await run({ data: { drop_noops: true } })).libero.num_steps < stats(base).libero.num_steps),
  'data.align': async () => {
    // Released ('original') files: 'realign' pairs each action with the observation before it and so loses
    // one action per demo; 'stored' keeps the file's pairing; 'auto' realigns them.
    const stored = stats(await run({ data: { align: 'stored', skip_idle_steps: false } })).libero;
    const realign = stats(await run({ data: { align: 'realign', skip_idle_steps: false } })).libero;
    const auto = stats(await run({ data: { skip_idle_steps: false } })).libero; // shared with the skip_idle_steps check
    assert.equal(stored.num_steps - realign.num_steps, stored.num_episodes);
    assert.equal(auto.num_steps, realign.num_steps);
    assert.deepEqual(auto.state_mean, realign.state_mean);
    assert.throws(() => cfgOf({ data: { realign_obs_action: false } }), /'data\.realign_obs_action' was replaced by 'data\.align'/);
  },
  'data.num_workers': async () => {
    const x = await run({ data: { num_workers: 2 } });
    assert.equal(x.workers, 2, 'batches built in 2 worker threads');
    assert.equal(base.workers, 0);
    assert.deepEqual(x.r.losses, base.r.losses, 'workers change where batches are built, not what they hold');
  },
  'data.format': async () => {
    const lr = await lerobotRoot();
    // auto resolves from the folder, recorded in run_config.yaml and policy.json; a forced format that the folder
    // is not is refused.
    const x = await run({ data: { dataset_root: lr } });
    assert.match(readFileSync(join(x.out, 'run_config.yaml'), 'utf8'), /format: lerobot/);
    assert.equal(policyOf(x).origin.data_format, 'lerobot');
    assert.equal(policyOf(base).origin.data_format, 'hdf5');
    await assert.rejects(run({ data: { format: 'lerobot' } }), /meta\/info\.json/);
    await assert.rejects(run({ data: { dataset_root: lr, format: 'hdf5' } }), /hdf5/i);
  },
  // The mapping keys, on the LeRobot copy: a user mapping equal to LeRobot's LIBERO layout trains exactly as the
  // auto-picked one; changing one key changes the samples (losses, statistics, cameras) or is refused.
  'data.lerobot_mapping.agentview': async () => {
    const m = await mapped({});
    assert.deepEqual(m.r.losses, (await run({ data: { dataset_root: await lerobotRoot() } })).r.losses, 'the explicit LeRobot layout is the auto-picked one');
    assert.notDeepEqual((await mapped({ agentview: 'observation.images.image2' })).r.losses, m.r.losses);
    await assert.rejects(mapped({ agentview: 'observation.images.top' }), /missing column 'observation\.images\.top'|observation\.images\.top/);
  },
  'data.lerobot_mapping.eye_in_hand': async () => assert.notDeepEqual((await mapped({ eye_in_hand: '' })).r.losses, (await mapped({})).r.losses),
  'data.lerobot_mapping.state': async () => await assert.rejects(mapped({ state: 'observation.proprio' }), /observation\.proprio/),
  'data.lerobot_mapping.eef_pos': async () => {
    assert.notDeepEqual(stats(await mapped({ eef_pos: '1:4' })).libero.state_mean, stats(await mapped({})).libero.state_mean);
    await assert.rejects(mapped({ eef_pos: '0:2' }), /data\.lerobot_mapping\.eef_pos is '0:2'/);
  },
  'data.lerobot_mapping.eef_axis_angle': async () => {
    assert.notDeepEqual(stats(await mapped({ eef_axis_angle: '4:7' })).libero.state_mean, stats(await mapped({})).libero.state_mean);
    await assert.rejects(mapped({ eef_axis_angle: '' }), /needs eef_axis_angle or eef_quat/);
  },
  'data.lerobot_mapping.eef_quat': async () =>
    assert.notDeepEqual(stats(await mapped({ eef_axis_angle: '', eef_quat: '2:6' })).libero.state_mean, stats(await mapped({})).libero.state_mean),
  'data.lerobot_mapping.gripper_qpos': async () =>
    assert.notDeepEqual(stats(await mapped({ gripper_qpos: '5:7' })).libero.state_mean, stats(await mapped({})).libero.state_mean),
  'data.lerobot_mapping.action': async () => await assert.rejects(mapped({ action: 'observation.state' }), /no observation\.state values|action/),
  'data.lerobot_mapping.instruction': async () => {
    // A per-row column that is not one instruction per episode is refused; a missing column too.
    await assert.rejects(mapped({ instruction: 'frame_index' }), /changes task at step 1/);
    await assert.rejects(mapped({ instruction: 'language' }), /language/);
  },
  'data.lerobot_mapping.stored_orientation': async () => {
    // rot180 (these copies): frames trained as stored, the policy turns the simulator's by rot180. none (raw renders,
    // a word the config otherwise reads as null): the loader turns the stored frames by the default orientation,
    // flip_v, which the policy records.
    const x = await mapped({ stored_orientation: 'none' });
    assert.equal(policyOf(x).cameras.orientation, 'flip_v');
    assert.equal(policyOf(await mapped({})).cameras.orientation, 'rot180');
    assert.notDeepEqual(x.r.losses, (await mapped({})).r.losses);
    await assert.rejects(mapped({ stored_orientation: 'sideways' }), /stored_orientation is 'sideways'/);
  },
};

/**
 * A LeRobot v3.0 copy (LeRobot's LIBERO column names, PNG in parquet) of a small regenerated suite, written with
 * pyarrow by test/py/lerobot_from_hdf5.py (as test/data-lerobot.test.ts does).
 */
let lerobotCopy: Promise<string> | null = null;
function lerobotRoot(): Promise<string> {
  lerobotCopy ??= (async () => {
    const hdf5 = join(work, 'lr-hdf5');
    await writeSyntheticSuite({ root: hdf5, suite: 'libero_goal', layout: 'regenerated', tasks: 2, demos: 3, meanLength: 24, size: 32, seed: 5 });
    const out = join(work, 'lerobot');
    const writer = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', 'test', 'py', 'lerobot_from_hdf5.py');
    execFileSync(process.env.PYTHON || 'python3', [writer, join(hdf5, 'libero_goal_no_noops'), out, '--version', 'v3.0', '--cameras', 'image', '--names', 'lerobot'],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    return out;
  })();
  return lerobotCopy;
}

/** LeRobot's LIBERO layout given explicitly, with `over` changed. */
async function mapped(over: Record<string, string>): Promise<Run> {
  const mapping = {
    agentview: 'observation.images.image', eye_in_hand: 'observation.images.image2', state: 'observation.state', eef_pos: '0:3',
    eef_axis_angle: '3:6', gripper_qpos: '6:8', action: 'action', stored_orientation: 'rot180', ...over,
  };
  return run({ data: { dataset_root: await lerobotRoot(), lerobot_mapping: mapping } });
}

test('every config key has an effect check (a new key needs one)', () => {
  assert.deepEqual(Object.keys(EFFECTS).sort(), configKeys().map((k) => k.key).sort());
});

test('every config key changes what a run does, or its bad values are refused', async () => {
  const live = undisposed();
  base = await run();
  pre = await run({ pretrained_model_name_or_path: PRETRAINED, model: 'auto' });
  lora = await run({ pretrained_model_name_or_path: PRETRAINED, model: 'auto', lora: { enabled: true, rank: 4, alpha: 8 } });
  // The fixture's weights as training saw them (float32), for "unchanged" checks.
  const { loadRdtCheckpoint, saveRdtCheckpoint } = await import('../src/model/checkpoint.js');
  const fx = loadRdtCheckpoint(PRETRAINED).runner;
  saveRdtCheckpoint(fx, join(work, 'fixture-as-safetensors'));
  fx.dispose();
  const failed: string[] = [];
  for (const [key, check] of Object.entries(EFFECTS)) {
    try {
      await check();
    } catch (e) {
      failed.push(`${key}: ${(e as Error).message.split('\n')[0]}`);
    }
  }
  assert.deepEqual(failed, []);
  assert.equal(undisposed(), live, 'no run leaks a tensor');
});

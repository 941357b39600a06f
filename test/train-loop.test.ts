// The trainer end to end on generated LIBERO-format data: exact resume, a crash while writing a
// checkpoint, gradient accumulation, LoRA, non-finite losses, and bad input. (The single-demo
// overfitting check is in train-overfit.test.ts.)
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import * as torch from '../src/engine/index.js';
import { optim } from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig, type TrainConfig } from '../src/train/config.js';
import { train, TrainError } from '../src/train/trainer.js';
import { listCheckpoints } from '../src/policy/checkpoints.js';
import { accumulateGradients } from '../src/train/step.js';
import { injectLora, markOnlyLoraTrainable, mergeLora, loraStateDict } from '../src/train/lora.js';
import { RDTRunner } from '../src/model/runner.js';
import { rdtPreset } from '../src/model/config.js';
import { loadRdtCheckpoint } from '../src/model/checkpoint.js';
import type { ModelInputs } from '../src/train/conditioning.js';
import { fixture } from './helpers/fixtures.js';
import { undisposed } from './helpers/leaks.js';
import { maxAbsDiff } from './helpers/assert-close.js';

let root: string;
const work = mkdtempSync(join(tmpdir(), 'rdt-train-'));

before(async () => {
  root = join(work, 'data');
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 30, size: 32, seed: 11 });
});

function cfgFor(out: string, over: Record<string, unknown> = {}): TrainConfig {
  return loadConfig({
    overrides: {
      model: 'tiny', encoders: 'demo', output_dir: out, train_batch_size: 4, gradient_accumulation_steps: 2,
      max_train_steps: 6, learning_rate: 1e-3, lr_scheduler: 'cosine', lr_warmup_steps: 2, mixed_precision: 'no',
      checkpointing_period: 3, sample_period: 0, log_every: 1, report_to: ['jsonl'],
      data: { dataset_root: root, num_workers: 0, holdout_demos_per_task: 1 },
      ...over,
    },
  });
}

test('resume: 0..6 in one run equals 0..3, killed, then resumed to 6 (bit for bit on CPU)', async () => {
  const live = undisposed();
  const full = await train(cfgFor(join(work, 'full')), { verbose: false });
  assert.equal(full.steps, 6);
  assert.equal(undisposed(), live, 'a finished run frees every tensor it made');
  const half = await train(cfgFor(join(work, 'half')), { verbose: false, haltAfterStep: 3 });
  assert.equal(half.steps, 3);
  assert.deepEqual(listCheckpoints(join(work, 'half')).map((c) => c.step), [3]);
  const rest = await train(cfgFor(join(work, 'half'), { resume_from_checkpoint: 'latest' }), { verbose: false });
  assert.equal(rest.steps, 6);
  assert.equal(undisposed(), live, 'resuming leaks none of the loaded state');
  assert.deepEqual([...half.losses, ...rest.losses], full.losses, 'same loss sequence');
  // The final weights are identical too.
  const ra = loadRdtCheckpoint(join(work, 'full', 'checkpoint-6')).runner;
  const rb = loadRdtCheckpoint(join(work, 'half', 'checkpoint-6')).runner;
  const b = rb.stateDict();
  for (const [k, t] of ra.stateDict()) assert.equal(maxAbsDiff(t.toFloat64(), b.get(k)!.toFloat64()), 0, k);
  // Freed here: left to the GC, their finalisation would shift a later test's live-tensor count.
  ra.dispose();
  rb.dispose();
  // Metrics: one JSONL line per step, steps 1..6 across the two processes.
  const steps = readFileSync(join(work, 'half', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'train/loss' in l).map((l) => l.step);
  assert.deepEqual(steps, [1, 2, 3, 4, 5, 6]);
  // A checkpoint holds everything resume needs, in the hub layout for the model.
  for (const f of ['config.json', 'model.safetensors', 'ema/model.safetensors', 'training_state.json', 'training_state.safetensors', 'trainer_state.json', 'run_config.yaml'])
    assert.ok(existsSync(join(work, 'full', 'checkpoint-6', f)), f);
});

test('checkpoints_total_limit is enforced', async () => {
  const out = join(work, 'limit');
  await train(cfgFor(out, { checkpointing_period: 1, checkpoints_total_limit: 2, max_train_steps: 4, gradient_accumulation_steps: 1 }), { verbose: false });
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [3, 4]);
});

test('crash: a process killed while writing a checkpoint leaves the previous one usable, and resume works', async () => {
  const out = join(work, 'crash');
  const cfg = cfgFor(out, { checkpointing_period: 2 });
  const trainer = pathToFileURL(join(import.meta.dirname, '..', 'src', 'train', 'trainer.js')).href;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', `
    const { train } = await import(${JSON.stringify(trainer)});
    await train(${JSON.stringify(cfg)}, { verbose: false, onCheckpointWrite: (dir, step) => { if (step === 4) process.kill(process.pid, 'SIGKILL'); } });
  `], { encoding: 'utf8' });
  assert.equal(child.signal, 'SIGKILL', `the child should die mid-checkpoint (stderr: ${child.stderr})`);
  assert.ok(readdirSync(out).some((n) => n.startsWith('.checkpoint-4.tmp-')), 'the half-written checkpoint is left as a temporary');
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [2], 'only the complete checkpoint counts');
  const { runner } = loadRdtCheckpoint(join(out, 'checkpoint-2'));
  assert.equal(runner.numParameters(), 918400);
  runner.dispose();
  const resumed = await train({ ...cfg, resume_from_checkpoint: 'latest' }, { verbose: false });
  assert.equal(resumed.steps, 6);
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [2, 4, 6]);
  assert.ok(!readdirSync(out).some((n) => n.includes('.tmp-')), 'stale temporaries are cleaned on start');
});

function randomInputs(B: number, gen: torch.Generator): ModelInputs {
  return {
    langTokens: torch.randn([B, 5, 32], { generator: gen }),
    langMask: torch.ones([B, 5], { dtype: 'bool' }),
    imgTokens: torch.randn([B, 54, 24], { generator: gen }),
    stateTokens: torch.randn([B, 1, 128], { generator: gen }),
    actionMask: torch.ones([B, 1, 128]),
    ctrlFreqs: torch.full([B], 20),
    actionGt: torch.randn([B, 64, 128], { generator: gen }),
  };
}
const slice = (x: ModelInputs, i: number, n: number): ModelInputs =>
  Object.fromEntries(Object.entries(x).map(([k, t]) => [k, t.narrow(0, i * n, n).contiguous()])) as unknown as ModelInputs;

test('gradient accumulation: 4 x 8 gives the same AdamW update as one batch of 32', async () => {
  const make = () => new RDTRunner(rdtPreset('tiny'), { generator: new torch.Generator(5) });
  const [r1, r2] = [make(), make()];
  const gen = new torch.Generator(9);
  const x = randomInputs(32, gen);
  const noise = torch.randn([32, 64, 128], { generator: gen });
  const t = torch.randint(0, 1000, [32], { generator: gen });
  const whole = Object.fromEntries(Object.entries(x).map(([k, v]) => [k, v.clone()])) as unknown as ModelInputs;
  const a = await accumulateGradients(r1, 1, () => whole, () => ({ noise, timesteps: t }));
  const b = await accumulateGradients(r2, 4, (i) => slice(x, i, 8), (i) => ({ noise: noise.narrow(0, i * 8, 8), timesteps: t.narrow(0, i * 8, 8) }));
  assert.ok(Math.abs(a.loss - b.loss) < 1e-6, `loss ${a.loss} vs ${b.loss}`);
  for (const r of [r1, r2]) {
    const opt = new optim.AdamW(r.parameters(), { lr: 1e-3 });
    opt.step();
  }
  const p2 = new Map(r2.namedParameters());
  let worst = 0;
  for (const [k, p] of r1.namedParameters()) worst = Math.max(worst, maxAbsDiff(p.toFloat64(), p2.get(k)!.toFloat64()));
  // Adam normalises each update to ~lr; float32 summation order differences stay far below it.
  assert.ok(worst < 1e-5, `max parameter difference ${worst}`);
});

test('LoRA: only adapters train, and merged weights reproduce the adapted model', async () => {
  // LoRA adapts pretrained weights: the fixture checkpoint (a from-scratch model's zero-initialised final
  // layer would pass no gradient back to the blocks).
  const r = loadRdtCheckpoint(fixture('rdt', 'tiny_a.hub-bf16')).runner;
  const before = new Map(r.namedParameters().map(([k, p]) => [k, p.toFloat64()]));
  const adapted = injectLora(r.model, { rank: 4, alpha: 8, targets: ['attn.qkv', 'cross_attn.q', 'ffn.fc1'], generator: new torch.Generator(1) });
  assert.equal(adapted.length, 12);
  markOnlyLoraTrainable(r);
  const trainable = r.parameters().filter((p) => p.requiresGrad);
  assert.equal(trainable.length, 24);
  const opt = new optim.AdamW(trainable, { lr: 1e-2 });
  const gen = new torch.Generator(3);
  for (let s = 0; s < 2; s++) {
    await accumulateGradients(r, 1, () => randomInputs(4, gen), () => ({ generator: gen }));
    opt.step();
    opt.zeroGrad();
  }
  for (const [k, p] of r.namedParameters()) {
    if (k.includes('lora_')) continue;
    assert.equal(maxAbsDiff(p.toFloat64(), before.get(k)!), 0, `${k} must not change`);
  }
  const lora = loraStateDict(r);
  assert.ok([...lora.values()].every((p) => torch.scope(() => p.abs().sum().item()) > 0), 'adapters trained');
  const x = randomInputs(2, new torch.Generator(4));
  const noise = torch.randn([2, 64, 128], { generator: new torch.Generator(8) });
  const out1 = torch.noGrad(() => r.predictAction(x, { noise }));
  assert.equal(mergeLora(r), 12);
  assert.ok(!r.namedParameters().some(([k]) => k.includes('lora_')), 'adapters removed after merging');
  const out2 = torch.noGrad(() => r.predictAction(x, { noise }));
  assert.ok(maxAbsDiff(out1.toFloat64(), out2.toFloat64()) < 1e-4, 'merged model matches the adapted one');
});

test('non-finite losses: steps are skipped and counted, and the run stops after max_bad_steps in a row', async () => {
  // A learning rate of 1e30 blows the weights up after the first update; every later loss is NaN/Inf.
  const cfg = cfgFor(join(work, 'nan'), { learning_rate: 1e30, lr_scheduler: 'constant', max_bad_steps: 3, max_train_steps: 20, gradient_accumulation_steps: 1 });
  await assert.rejects(train(cfg, { verbose: false }), (e: Error) => e instanceof TrainError && /loss was NaN\/Inf in 3 optimizer steps in a row/.test(e.message));
  const skipped = readFileSync(join(work, 'nan', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'train/skipped_nonfinite' in l);
  assert.deepEqual(skipped.map((l) => l['train/skipped_nonfinite']), [1, 2, 3]);
});

test('bad input: empty dataset folder, mismatched pretrained checkpoint', async () => {
  const empty = join(work, 'empty');
  mkdirSync(empty, { recursive: true });
  await assert.rejects(train(cfgFor(join(work, 'e-out'), { data: { dataset_root: empty, num_workers: 0 } }), { verbose: false }), new RegExp(empty.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  await assert.rejects(train(cfgFor(join(work, 'lora0'), { lora: { enabled: true } }), { verbose: false }), /lora\.enabled needs pretrained_model_name_or_path/);
  await assert.rejects(train(cfgFor(join(work, 'off'), { encoders: 'official' }), { verbose: false }), /'text_encoder' is required with encoders: official/);
  const hub = fixture('rdt', 'tiny_a.hub-bf16');
  await assert.rejects(train(cfgFor(join(work, 'mm'), { model: 'rdt-170m', pretrained_model_name_or_path: hub }), { verbose: false }),
    /does not match model 'rdt-170m' \(rdt\.hidden_size: 1024 vs 128; rdt\.depth: 14 vs 4; rdt\.num_heads: 32 vs 4; lang_token_dim: 4096 vs 32/);
  // With model: auto the fixture checkpoint (the tiny architecture) is fine-tuned as it is.
  const ok = await train(cfgFor(join(work, 'ft'), { model: 'auto', pretrained_model_name_or_path: hub, max_train_steps: 2, checkpointing_period: 2 }), { verbose: false });
  assert.equal(ok.steps, 2);
});

test('bf16 mixed precision: bf16 weights, float32 masters and AdamW state, exact resume', async () => {
  const over = { mixed_precision: 'bf16', max_train_steps: 4, checkpointing_period: 2 };
  const live = undisposed();
  const full = await train(cfgFor(join(work, 'bf16-full'), over), { verbose: false });
  assert.equal(undisposed(), live, 'the bf16 run frees its master weights too');
  assert.ok(full.losses.every(Number.isFinite));
  const half = await train(cfgFor(join(work, 'bf16-half'), over), { verbose: false, haltAfterStep: 2 });
  const rest = await train(cfgFor(join(work, 'bf16-half'), { ...over, resume_from_checkpoint: 'latest' }), { verbose: false });
  assert.deepEqual([...half.losses, ...rest.losses], full.losses, 'bf16 runs resume exactly too');
  const ck = join(work, 'bf16-full', 'checkpoint-4');
  const { tensors: model } = torch.loadSafetensors(join(ck, 'model.safetensors'));
  assert.equal(model.get('model.blocks.0.attn.qkv.weight')!.dtype, 'bfloat16', 'the model computes in bf16');
  const { tensors: state } = torch.loadSafetensors(join(ck, 'training_state.safetensors'));
  const masters = [...state].filter(([k]) => k.startsWith('masters.'));
  const moments = [...state].filter(([k]) => k.includes('exp_avg'));
  assert.equal(masters.length, 114);
  assert.ok(masters.every(([, t]) => t.dtype === 'float32'), 'float32 master weights');
  assert.ok(moments.length > 0 && moments.every(([, t]) => t.dtype === 'float32'), 'float32 AdamW moments');
});

// The user-facing training commands, run as the user runs them (the compiled CLI in a child process) (the demo has
// its own file, test/demo.test.ts): `train` fails with exit 2 and a
// "did you mean" on a misspelt key and with exit 1 naming the folder on a dataset root without LIBERO files;
// `lora-merge` folds a LoRA run's adapters so the merged checkpoint predicts what the adapted model predicts.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { loadSafetensors } from '../src/engine/io/index.js';
import { loadRdtCheckpoint } from '../src/model/checkpoint.js';
import type { RDTRunner } from '../src/model/runner.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { injectLora } from '../src/train/lora.js';
import { repoRoot } from './helpers/fixtures.js';

torch.setNumThreads(1);
const tmp = mkdtempSync(join(tmpdir(), 'rdt-cli-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// One libtorch thread per child: idle OpenMP threads spin when the machine is shared, and the tiny model gains nothing.
function cli(args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), ...args], {
    cwd: tmp, encoding: 'utf8', env: { ...process.env, OMP_NUM_THREADS: '1' }, timeout: 120_000,
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

test('train: a misspelt key exits 2 with a did-you-mean', () => {
  const r = cli(['train', 'model=tiny', '--lerning_rate', '1e-3']);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /unknown key 'lerning_rate' \(did you mean 'learning_rate'\?\)/);
  const nested = cli(['train', '--data.dataset_rot=/x']);
  assert.equal(nested.code, 2);
  assert.match(nested.stderr, /did you mean 'data\.dataset_root'/);
  const help = cli(['train', '--help']);
  assert.equal(help.code, 0);
  for (const k of ['gradient_accumulation_steps', 'lr_warmup_steps', 'mixed_precision', 'lora.rank', 'data.dataset_root', 'resume_from_checkpoint'])
    assert.match(help.stdout, new RegExp(`^  ${k.replace('.', '\\.')}\\s`, 'm'), `--help lacks ${k}`);
  assert.doesNotMatch(help.stdout, /\(undocumented\)/, 'a config key has no doc in src/train/config.ts');
});

test('train: a dataset root without LIBERO files exits 1 with a one-line message naming the folder', () => {
  const empty = join(tmp, 'no-libero-here');
  mkdirSync(empty);
  const r = cli(['train', 'model=tiny', 'encoders=demo', `data.dataset_root=${empty}`, `output_dir=${join(tmp, 'empty-run')}`]);
  assert.equal(r.code, 1, r.stderr);
  assert.ok(r.stderr.includes(empty), r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
});

test('lora-merge: the merged checkpoint predicts what the adapted model predicts', async (t) => {
  const data = join(tmp, 'lora-data');
  await writeSyntheticSuite({ root: data, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 40, size: 32, seed: 3 });
  // LoRA fine-tunes a trained model: from scratch, RDT's zero-initialised (and, under LoRA, frozen) output
  // layer would stop every gradient. So: 2 full steps first, then 3 LoRA steps from that model.
  const common = ['model=tiny', 'encoders=demo', `data.dataset_root=${data}`, 'mixed_precision=no', 'train_batch_size=4',
    'gradient_accumulation_steps=1', 'lr_warmup_steps=0', 'sample_period=0', 'report_to=jsonl', 'data.num_workers=0'];
  const base0 = join(tmp, 'full-run');
  const r0 = cli(['train', ...common, `output_dir=${base0}`, 'max_train_steps=2', 'learning_rate=1e-3', 'checkpointing_period=2']);
  assert.equal(r0.code, 0, r0.stderr);
  const run = join(tmp, 'lora-run');
  const r = cli(['train', ...common, `output_dir=${run}`, `pretrained_model_name_or_path=${join(base0, 'final')}`,
    'lora.enabled=true', 'lora.rank=4', 'lora.alpha=8', 'max_train_steps=3', 'learning_rate=1e-2', 'checkpointing_period=3']);
  assert.equal(r.code, 0, r.stderr);
  const ck = join(run, 'checkpoint-3');
  assert.ok(existsSync(join(ck, 'adapter_model.safetensors')), readdirSync(ck).join(', '));
  const merged = join(tmp, 'merged');
  const m = cli(['lora-merge', '--checkpoint', ck, '--out', merged]);
  assert.equal(m.code, 0, m.stderr);
  assert.ok(existsSync(join(merged, 'config.json')) && existsSync(join(merged, 'model.safetensors')));

  // The adapted model, built by hand: base weights + adapters with the run's rank/alpha.
  const adapted = loadRdtCheckpoint(ck, { adapters: 'ignore' }).runner;
  injectLora(adapted.model, { rank: 4, alpha: 8, targets: ['attn.qkv', 'attn.proj', 'cross_attn.q', 'cross_attn.kv', 'cross_attn.proj', 'ffn.fc1', 'ffn.fc2'] });
  const ad = loadSafetensors(join(ck, 'adapter_model.safetensors'));
  assert.ok(torch.scope(() => [...ad.tensors].filter(([k]) => k.endsWith('lora_B')).some(([, t]) => t.abs().max().item() > 0)), 'training left every lora_B at zero');
  adapted.loadStateDict(ad.tensors, { strict: false });
  const base = loadRdtCheckpoint(ck, { adapters: 'ignore' }).runner;
  const plain = loadRdtCheckpoint(merged).runner;
  assert.ok(![...plain.stateDict().keys()].some((k) => k.includes('lora')), 'merged checkpoint still has adapter keys');

  const c = adapted.config;
  const g = new torch.Generator(11);
  const B = 2;
  const inputs = torch.scope(() => {
    const t = {
      langTokens: torch.randn([B, 5, c.lang_token_dim], { generator: g }),
      langMask: torch.ones([B, 5], { dtype: 'bool' }),
      imgTokens: torch.randn([B, c.img_cond_len, c.img_token_dim], { generator: g }),
      stateTokens: torch.randn([B, 1, c.state_token_dim], { generator: g }).mul(0.1),
      actionMask: torch.ones([B, 1, c.action_dim]),
      ctrlFreqs: torch.tensor(new Float32Array([20, 20])),
    };
    for (const v of Object.values(t)) v.keep();
    return t;
  });
  const noise = torch.scope(() => torch.randn([B, c.pred_horizon, c.action_dim], { generator: g }).keep());
  const predict = (runner: RDTRunner) => torch.scope(() => {
    runner.eval();
    return runner.predictAction(inputs, { noise }).toFloat64();
  });
  const [pa, pm, pb] = [predict(adapted), predict(plain), predict(base)];
  let maxDiff = 0, maxBase = 0, scale = 0;
  for (let i = 0; i < pa.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(pa[i] - pm[i]));
    maxBase = Math.max(maxBase, Math.abs(pa[i] - pb[i]));
    scale = Math.max(scale, Math.abs(pa[i]));
  }
  t.diagnostic(`merged vs adapted max |diff| ${maxDiff.toExponential(2)}, adapted vs base ${maxBase.toExponential(2)}, output scale ${scale.toFixed(3)}`);
  // float32 merge: W + s*BA rounds once per weight; through 4 blocks and 5 solver steps that stays ~1e-6 of the output scale.
  assert.ok(maxDiff <= 1e-5 * Math.max(1, scale), `merged vs adapted: max |diff| ${maxDiff} (output scale ${scale})`);
  assert.ok(maxBase > 100 * Math.max(maxDiff, 1e-7), `the adapters barely change the output (${maxBase}); the test would prove nothing`);
});

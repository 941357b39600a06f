// SIGTERM (a cluster scheduler's pre-emption notice) and Ctrl-C: `rdt-libero train` finishes the step it is in,
// saves a complete checkpoint at that step, prints the command that continues the run and exits 128 + signal;
// the resumed run is bit-identical to one that was never stopped. A second Ctrl-C stops at once.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { loadConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { listCheckpoints } from '../src/policy/checkpoints.js';
import * as torch from '../src/engine/index.js';

const work = mkdtempSync(join(tmpdir(), 'rdt-signals-'));
const root = join(work, 'data');
const CLI = join(import.meta.dirname, '..', 'src', 'cli', 'main.js');

before(async () => {
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 30, size: 32, seed: 3 });
});

const overrides = (out: string, extra: Record<string, string | number> = {}) => Object.entries({
  model: 'tiny', encoders: 'demo', output_dir: out, train_batch_size: 4, gradient_accumulation_steps: 2, max_train_steps: 12,
  learning_rate: 1e-3, lr_warmup_steps: 2, mixed_precision: 'no', checkpointing_period: 100, sample_period: 0, log_every: 1,
  report_to: 'jsonl', 'data.dataset_root': root, 'data.num_workers': 0, ...extra,
}).map(([k, v]) => `${k}=${v}`);

const lossSteps = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'train/loss' in l);

/** Start `rdt-libero train`; `signal(child)` is called once metrics.jsonl shows step `atStep`. */
function runCli(args: string[], atStep: number, signal: (pid: number) => void): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, 'train', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const out = args.find((a) => a.startsWith('output_dir='))!.slice('output_dir='.length);
    const poll = setInterval(() => {
      const file = join(out, 'metrics.jsonl');
      if (existsSync(file) && lossSteps(file.slice(0, -'/metrics.jsonl'.length)).some((l) => l.step >= atStep)) {
        clearInterval(poll);
        signal(child.pid!);
      }
    }, 20);
    child.on('exit', (code) => {
      clearInterval(poll);
      resolve({ code, stderr });
    });
  });
}

test('SIGTERM mid-run: a checkpoint at the current step, the resume command, exit 143; the resumed run is bit-identical', async () => {
  const full = join(work, 'full');
  const stopped = join(work, 'stopped');
  const ref = await train(loadConfig({ overrides: overrides(full) }), { verbose: false });
  const r = await runCli(overrides(stopped), 2, (pid) => process.kill(pid, 'SIGTERM'));
  assert.equal(r.code, 143, r.stderr);
  const [ck] = listCheckpoints(stopped);
  assert.ok(ck && ck.step >= 2 && ck.step < 12, `one checkpoint at the step the signal arrived: ${JSON.stringify(listCheckpoints(stopped))}`);
  assert.match(r.stderr, new RegExp(`stopped by SIGTERM after step ${ck.step}; to continue: rdt-libero train .*--resume_from_checkpoint latest`));
  assert.ok(!existsSync(join(stopped, 'final')), 'a stopped run has no final/');

  const rest = await train(loadConfig({ overrides: overrides(stopped, { resume_from_checkpoint: 'latest' }) }), { verbose: false });
  assert.equal(rest.steps, 12);
  assert.deepEqual(lossSteps(stopped).map((l) => [l.step, l['train/loss']]), lossSteps(full).map((l) => [l.step, l['train/loss']]), 'one timeline, same losses');
  assert.deepEqual(ref.losses.slice(ck.step), rest.losses);
  torch.scope(() => {
    const a = torch.loadSafetensors(join(full, 'final', 'model.safetensors')).tensors;
    const b = torch.loadSafetensors(join(stopped, 'final', 'model.safetensors')).tensors;
    for (const [k, t] of a) assert.deepEqual(t.toFloat64(), b.get(k)!.toFloat64(), `final weights differ at ${k}`);
  });
});

test('Ctrl-C twice: the second one stops at once, without a checkpoint at that step', async () => {
  const out = join(work, 'twice');
  // Long steps (many micro-batches), so both signals land inside one step.
  const r = await runCli(overrides(out, { gradient_accumulation_steps: 64 }), 1, (pid) => {
    process.kill(pid, 'SIGINT');
    setTimeout(() => process.kill(pid, 'SIGINT'), 300);
  });
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /SIGINT again: stopping now/);
  assert.deepEqual(listCheckpoints(out), [], 'no checkpoint was written for the interrupted step');
});

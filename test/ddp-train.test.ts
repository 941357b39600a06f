// Data-parallel training end to end on Gloo with real processes (issues 13 and 25): 2 processes at
// train_batch_size 4 train the same weights as 1 process at 8 (with and without accumulation, with
// condition dropout, state noise and image augmentation on); gradients reduced during backward and after it give
// the same bits, and so do ZeRO-2's reduce-to-owner and ZeRO-0's all-reduce; the ranks' loaders split every global
// batch; resuming 2 -> 1 and 1 -> 2 processes continues the same trajectory; killing a rank, or stopping one, ends
// the job with a named line from every process; 2 nodes x 2 processes train the weights of 1 node x 4;
// torchrun --no-python works. The reference is a 1-process run of the same global batch, or, where bits must
// match, the same job with the other setting.
import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as torch from '../src/engine/index.js';
import { writeSyntheticSuite } from '../src/data/synthetic.js';
import { DataLoader } from '../src/data/loader.js';
import { loadConfig } from '../src/train/config.js';
import { train } from '../src/train/trainer.js';
import { listCheckpoints } from '../src/policy/checkpoints.js';
import { rdtPreset, toHubJson } from '../src/model/config.js';
import { verifyFolder } from '../src/util/checksums.js';
import { maxAbsDiff } from './helpers/assert-close.js';
import { fixture } from './helpers/fixtures.js';
import { freePort } from './helpers/ports.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const work = mkdtempSync(join(tmpdir(), 'rdt-ddp-'));
const root = join(work, 'data');
const MICRO = join(work, 'micro.json');

before(async () => {
  // A 2-block, 32-wide RDT with the tiny preset's condition sizes (the demo encoders').
  writeFileSync(MICRO, JSON.stringify(toHubJson(rdtPreset('tiny', { rdt: { hidden_size: 32, depth: 2, num_heads: 2 } }))));
  await writeSyntheticSuite({ root, suite: 'libero_goal', tasks: 2, demos: 3, meanLength: 24, size: 32, seed: 3 });
});

/** Every random draw of training is on (dropout, state noise, image augmentation), so all of them must be keyed per sample. */
function overrides(out: string, over: Record<string, string | number> = {}): string[] {
  const o: Record<string, string | number> = {
    model: MICRO, encoders: 'demo', output_dir: out, train_batch_size: 4, gradient_accumulation_steps: 1, max_train_steps: 4,
    learning_rate: 1e-3, lr_scheduler: 'constant', mixed_precision: 'no', checkpointing_period: 2, sample_period: 0,
    log_every: 1, report_to: 'jsonl', cond_mask_prob: 0.3, state_noise_snr: 40, image_aug: 'true',
    'data.dataset_root': root, 'data.num_workers': 0, 'data.holdout_demos_per_task': 1, ...over,
  };
  return Object.entries(o).map(([k, v]) => `${k}=${v}`);
}

/** One process, in this process. */
async function trainHere(out: string, over: Record<string, string | number> = {}) {
  return train(loadConfig({ overrides: overrides(out, over) }), { verbose: false });
}

interface Done {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
  err: string;
}

function run(cmd: string, args: string[], env: Record<string, string> = {}, onStart?: (pid: number) => void): Promise<Done> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    onStart?.(p.pid!);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code, signal) => resolve({ code, signal, out, err }));
  });
}

/** `rdt-libero train --nproc_per_node 2` (the built-in launcher). */
async function launch2(out: string, over: Record<string, string | number> = {}, onStart?: (pid: number) => void, flags: string[] = []): Promise<Done> {
  const port = await freePort();
  return run(process.execPath, [MAIN, 'train', '--nproc_per_node', '2', '--master_port', String(port), ...flags, ...overrides(out, over)], {}, onStart);
}

function weights(dir: string): Map<string, torch.Tensor> {
  return torch.loadSafetensors(join(dir, 'model.safetensors')).tensors;
}

/** Largest difference between two model folders' weights, over every tensor. */
function weightDiff(a: string, b: string): number {
  const wa = weights(a), wb = weights(b);
  assert.deepEqual([...wa.keys()].sort(), [...wb.keys()].sort());
  let m = 0;
  for (const [k, t] of wa) m = Math.max(m, maxAbsDiff(t.toFloat64(), wb.get(k)!.toFloat64()));
  for (const t of [...wa.values(), ...wb.values()]) t.dispose();
  return m;
}

function losses(out: string): number[] {
  return readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((l) => 'train/loss' in l).map((l) => l['train/loss']);
}

const TOL = 1e-6; // float32: the two runs sum the same per-sample gradients in a different order

let ref: string;
let refAcc: string;
let ddpB4: string;
let ddpAcc: string;

/** Every safetensors tensor of two files, compared: the largest difference (0: the same bits, NaN never). */
function fileDiff(a: string, b: string): number {
  const [ta, tb] = [torch.loadSafetensors(a).tensors, torch.loadSafetensors(b).tensors];
  assert.deepEqual([...tb.keys()].sort(), [...ta.keys()].sort());
  let m = 0;
  for (const [k, t] of ta) m = Math.max(m, maxAbsDiff(t.toFloat64(), tb.get(k)!.toFloat64()));
  for (const t of [...ta.values(), ...tb.values()]) t.dispose();
  return m;
}

test('2 processes x batch 4 train the weights of 1 process x batch 8 (max diff <= 1e-6)', async () => {
  ref = join(work, 'ref-b8');
  await trainHere(ref, { train_batch_size: 8 });
  const two = join(work, 'ddp-b4');
  ddpB4 = two;
  const d = await launch2(two);
  assert.equal(d.code, 0, d.err);
  assert.match(d.err, /effective batch 8 = 4 x 1 accumulation x 2 processes/);
  assert.match(d.err, /gradients averaged in buckets of 25 MB during backward/);
  for (const step of [2, 4]) {
    const diff = weightDiff(join(ref, `checkpoint-${step}`), join(two, `checkpoint-${step}`));
    assert.ok(diff <= TOL, `checkpoint-${step}: max weight difference ${diff}`);
    assert.ok(weightDiff(join(ref, `checkpoint-${step}`, 'ema'), join(two, `checkpoint-${step}`, 'ema')) <= TOL, 'EMA weights too');
  }
  assert.ok(weightDiff(join(ref, 'final'), join(two, 'final')) <= TOL);
  const [a, b] = [losses(ref), losses(two)];
  assert.equal(b.length, 4, 'rank 0 alone logs: one line per step');
  assert.ok(maxAbsDiff(a, b) <= 1e-5 * Math.max(...a), `losses ${a} vs ${b}`);
  // Rank 0 alone wrote the run folder: no file names a rank, and nothing was written twice.
  assert.deepEqual(readdirSync(two).filter((f) => /rank/.test(f)), []);
});

test('with gradient accumulation (2 micro-batches): 2 x 4 x 2 equals 1 x 8 x 2', async () => {
  refAcc = join(work, 'ref-b8-acc2');
  await trainHere(refAcc, { train_batch_size: 8, gradient_accumulation_steps: 2 });
  const two = join(work, 'ddp-b4-acc2');
  ddpAcc = two;
  const d = await launch2(two, { gradient_accumulation_steps: 2 });
  assert.equal(d.code, 0, d.err);
  const diff = weightDiff(join(refAcc, 'final'), join(two, 'final'));
  assert.ok(diff <= TOL, `max weight difference ${diff}`);
  // And it is a different run from the one without accumulation (the check can fail).
  assert.ok(weightDiff(join(ref, 'final'), join(two, 'final')) > 1e-4);
});

test('gradients reduced after backward (ddp.overlap_comm false) give the same bits as during it, with accumulation and small buckets', async () => {
  // Small buckets (0.01 MiB: several per model) so that buckets really go out one by one during backward.
  const small = { gradient_accumulation_steps: 2, 'ddp.bucket_cap_mb': 0.01 };
  const on = join(work, 'overlap-on');
  const off = join(work, 'overlap-off');
  const a = await launch2(on, small);
  assert.equal(a.code, 0, a.err);
  const b = await launch2(off, { ...small, 'ddp.overlap_comm': 'false' });
  assert.equal(b.code, 0, b.err);
  assert.match(b.err, /buckets of 0\.01 MB after backward/);
  for (const step of [2, 4]) {
    assert.equal(fileDiff(join(on, `checkpoint-${step}`, 'model.safetensors'), join(off, `checkpoint-${step}`, 'model.safetensors')), 0, `checkpoint-${step} weights`);
    assert.equal(fileDiff(join(on, `checkpoint-${step}`, 'training_state.safetensors'), join(off, `checkpoint-${step}`, 'training_state.safetensors')), 0, 'AdamW state');
  }
  // Other bucket sizes add the same numbers: the default-bucket run of the same job has these bits too.
  assert.equal(fileDiff(join(ddpAcc, 'final', 'model.safetensors'), join(on, 'final', 'model.safetensors')), 0);
});

test('ZeRO-2 (zero_stage 2): the same weights, each rank keeping half the optimizer state; its checkpoint resumes unsharded in 1 process', async () => {
  const two = join(work, 'zero2');
  const d = await launch2(two, { zero_stage: 2, max_train_steps: 2 });
  assert.equal(d.code, 0, d.err);
  assert.match(d.err, /ZeRO-2: each process keeps the masters, AdamW state and gradients of its share/);
  // Each rank keeps a disjoint share of the trained parameters, about half of the elements each.
  const kept = [...d.err.matchAll(/ZeRO-2: rank (\d) keeps the optimizer state of (\d+) of (\d+) trained parameters \((\d+) of (\d+) elements\)/g)];
  assert.deepEqual(kept.map((k) => k[1]).sort(), ['0', '1']);
  const [p0, p1] = kept.map((k) => [Number(k[2]), Number(k[4])]);
  assert.equal(p0[0] + p1[0], Number(kept[0][3]), 'every parameter has one owner');
  assert.equal(p0[1] + p1[1], Number(kept[0][5]));
  assert.ok(Math.abs(p0[1] - p1[1]) < 0.1 * Number(kept[0][5]), `balanced: ${p0[1]} vs ${p1[1]} elements`);
  assert.ok(weightDiff(join(ref, 'checkpoint-2'), join(two, 'checkpoint-2')) <= TOL);
  // Reduced to the owners instead of all-reduced, clipped from the gathered per-parameter norms: the bits of ZeRO-0.
  assert.equal(fileDiff(join(ddpB4, 'checkpoint-2', 'model.safetensors'), join(two, 'checkpoint-2', 'model.safetensors')), 0, 'ZeRO-2 weights = ZeRO-0 weights');
  assert.equal(fileDiff(join(ddpB4, 'checkpoint-2', 'training_state.safetensors'), join(two, 'checkpoint-2', 'training_state.safetensors')), 0, 'and AdamW state');
  // The checkpoint holds the whole optimizer state, as an unsharded run writes it.
  const state = (dir: string) => torch.loadSafetensors(join(dir, 'training_state.safetensors')).tensors;
  const [a, b] = [state(join(ref, 'checkpoint-2')), state(join(two, 'checkpoint-2'))];
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  let m = 0;
  for (const [k, t] of a) m = Math.max(m, maxAbsDiff(t.toFloat64(), b.get(k)!.toFloat64()));
  assert.ok(m <= 1e-5, `AdamW state max difference ${m}`);
  // Continue it in one process without sharding: the 1-process trajectory.
  await trainHere(two, { train_batch_size: 8, resume_from_checkpoint: 'latest' });
  assert.ok(weightDiff(join(ref, 'final'), join(two, 'final')) <= TOL);
});

test('ZeRO-2 under bf16: sharded float32 masters and AdamW state equal the unsharded run\'s, across a resume', async () => {
  const bf16 = { mixed_precision: 'bf16', max_train_steps: 2 };
  const plain = join(work, 'bf16-ddp');
  const sharded = join(work, 'bf16-zero2');
  for (const [dir, over] of [[plain, bf16], [sharded, { ...bf16, zero_stage: 2 }]] as const) {
    const d = await launch2(dir, over);
    assert.equal(d.code, 0, d.err);
  }
  // Both runs then continue to step 4 from their checkpoint-2, each as it started (the sharded one re-shards it).
  for (const [dir, over] of [[plain, bf16], [sharded, { ...bf16, zero_stage: 2 }]] as const) {
    const d = await launch2(dir, { ...over, max_train_steps: 4, resume_from_checkpoint: 'latest' });
    assert.equal(d.code, 0, d.err);
  }
  for (const step of [2, 4]) {
    const state = (dir: string) => torch.loadSafetensors(join(dir, `checkpoint-${step}`, 'training_state.safetensors')).tensors;
    const [a, b] = [state(plain), state(sharded)];
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    assert.ok([...a.keys()].some((k) => k.startsWith('masters.')), 'float32 masters are saved');
    let m = 0;
    for (const [k, t] of a) m = Math.max(m, maxAbsDiff(t.toFloat64(), b.get(k)!.toFloat64()));
    assert.equal(m, 0, `checkpoint-${step}: masters / AdamW state max difference ${m}`);
    assert.equal(fileDiff(join(plain, `checkpoint-${step}`, 'model.safetensors'), join(sharded, `checkpoint-${step}`, 'model.safetensors')), 0, 'bf16 weights');
  }
});

test('the two ranks\' loaders see disjoint samples that together cover the epoch', async () => {
  const opts = (rank: number) => ({ dataset: { root }, batchSize: 5, workers: 0, sampler: { seed: 42, rank, worldSize: 2 } });
  const [r0, r1] = [await DataLoader.create(opts(0)), await DataLoader.create(opts(1))];
  const total = r0.dataset.index.total;
  const seen: number[][] = [[], []];
  try {
    // Global batches of 10 until the epoch is covered; positions past the epoch's end belong to the next one.
    for (let g = 0; g * 10 < total; g++) {
      const [b0, b1] = [await r0.next(), await r1.next()];
      assert.deepEqual(b0.next, b1.next, 'the ranks agree where the next global batch starts');
      for (const [r, b] of [[0, b0], [1, b1]] as const)
        for (let i = 0; i < b.size; i++) if (g * 10 + r * 5 + i < total) seen[r].push(b.index[i]);
    }
  } finally {
    await r0.close();
    await r1.close();
  }
  assert.equal(seen[0].filter((i) => seen[1].includes(i)).length, 0, 'disjoint');
  assert.deepEqual([...seen[0], ...seen[1]].sort((a, b) => a - b), Array.from({ length: total }, (_, i) => i), 'every step of the epoch once');
});

test('resume: 2 processes -> 1 and 1 -> 2 continue the 1-process trajectory', async () => {
  // ref: 4 steps in one process (batch 8), checkpoints at 2 and 4.
  const a = join(work, 'resume-2to1');
  const d = await launch2(a, { max_train_steps: 2 });
  assert.equal(d.code, 0, d.err);
  await trainHere(a, { train_batch_size: 8, resume_from_checkpoint: 'latest' });
  assert.ok(weightDiff(join(ref, 'final'), join(a, 'final')) <= TOL, '2 -> 1');

  const b = join(work, 'resume-1to2');
  await trainHere(b, { train_batch_size: 8, max_train_steps: 2 });
  const e = await launch2(b, { resume_from_checkpoint: 'latest' });
  assert.equal(e.code, 0, e.err);
  assert.match(e.err, /train_batch_size: 8 x 1 processes -> 4 x 2 \(the same global batch\)/);
  assert.ok(weightDiff(join(ref, 'final'), join(b, 'final')) <= TOL, '1 -> 2');
  assert.ok(maxAbsDiff(losses(b), losses(ref)) <= 1e-5 * Math.max(...losses(ref)), 'one loss timeline across the resume');
});

test('killing one rank ends the job with a message naming it; the last complete checkpoint stays usable', async () => {
  const out = join(work, 'killed');
  let launcher = 0;
  const t0 = Date.now();
  const job = launch2(out, { max_train_steps: 100000, checkpointing_period: 2}, (pid) => (launcher = pid));
  // Wait for the first complete checkpoint, then kill -9 rank 1 (found by its RANK among the launcher's children).
  while (!listCheckpoints(out).length) {
    assert.ok(Date.now() - t0 < 60_000, 'no checkpoint within a minute');
    await new Promise((r) => setTimeout(r, 100));
  }
  const rank1 = workerPid(launcher, 1);
  const tKill = Date.now();
  process.kill(rank1, 'SIGKILL');
  const d = await job;
  const took = Date.now() - tKill;
  assert.equal(d.code, 1);
  assert.match(d.err, /the job stopped because rank 1 was killed by SIGKILL/);
  assert.match(d.err, /rank 0 of 2 \(gloo\): another rank closed its connection|then stopped: rank 0/);
  assert.ok(took < 30_000, `the job took ${took} ms to end after the kill`);
  // The newest complete checkpoint verifies and resumes (one more step in one process, batch 8).
  const last = listCheckpoints(out).pop()!;
  verifyFolder(last.path, 'full');
  const r = await trainHere(out, { train_batch_size: 8, resume_from_checkpoint: 'latest', max_train_steps: last.step + 1 });
  assert.equal(r.steps, last.step + 1);
});

/** The pid of the launcher's worker with RANK=rank. */
function workerPid(launcher: number, rank: number): number {
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(launcher)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  const pid = children.find((c) => readFileSync(`/proc/${c}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`));
  assert.ok(pid, `rank ${rank} among ${children}`);
  return pid;
}

test('a stalled rank (SIGSTOP) ends the job after dist_timeout_s with one named line from each process', async () => {
  const out = join(work, 'stalled');
  let launcher = 0;
  const t0 = Date.now();
  // 20 s: far above a step of this model even on a loaded machine, so only the stall can time out.
  let ended: Done | null = null;
  const job = launch2(out, { max_train_steps: 100000, checkpointing_period: 100000 }, (pid) => (launcher = pid), ['--dist_timeout_s', '20']);
  void job.then((d) => (ended = d));
  while (!existsSync(join(out, 'metrics.jsonl')) || losses(out).length < 2) {
    assert.equal(ended, null, `the job ended before the stall: ${(ended as Done | null)?.err}`);
    assert.ok(Date.now() - t0 < 120_000, 'no training step within two minutes');
    await new Promise((r) => setTimeout(r, 100));
  }
  const rank1 = workerPid(launcher, 1);
  const tStop = Date.now();
  process.kill(rank1, 'SIGSTOP');
  const d = await job;
  const took = Date.now() - tStop;
  assert.equal(d.code, 1, d.err);
  // Rank 0: one line naming the timeout (DistributedTimeoutError's message); the launcher names rank 0 and what it said.
  const timeoutLine = /no answer from the other ranks within 20000 ms/;
  assert.match(d.err, new RegExp(`the job stopped because rank 0 exited with code 1: .*${timeoutLine.source}`));
  assert.equal(d.err.split('\n').filter((l) => !l.startsWith('[rank') && timeoutLine.test(l) && !/the job stopped/.test(l)).length, 1, 'one line from rank 0');
  // The stalled rank, continued by the launcher, fails by name too (its peer is gone, or its own wait ran out while
  // it was stopped), instead of being killed.
  assert.match(d.err, /\[rank 1\] rdt-libero train: .*(no answer from the other ranks within 20000 ms|another rank closed its connection)/);
  assert.match(d.err, /then stopped: rank 1/);
  assert.ok(took >= 19_000 && took < 20_000 + 40_000, `the job ended ${took} ms after the stall (timeout 20000 ms)`);
});

test('2 nodes x 2 processes (--nnodes 2 --node_rank R on the loopback) train the weights of 1 node x 4 processes', async () => {
  const over = { train_batch_size: 2, max_train_steps: 2, checkpointing_period: 2 };
  const one = join(work, 'nodes-1x4');
  const port1 = await freePort();
  const d1 = await run(process.execPath, [MAIN, 'train', '--nproc_per_node', '4', '--master_port', String(port1), '--dist_timeout_s', '300', ...overrides(one, over)]);
  assert.equal(d1.code, 0, d1.err);
  const two = join(work, 'nodes-2x2');
  const port = await freePort();
  const node = (rank: number) => run(process.execPath, [MAIN, 'train', '--nproc_per_node', '2', '--nnodes', '2', '--node_rank', String(rank),
    '--master_addr', '127.0.0.1', '--master_port', String(port), '--dist_timeout_s', '300', ...overrides(two, over)]);
  const [n0, n1] = await Promise.all([node(0), node(1)]);
  assert.equal(n0.code, 0, n0.err);
  assert.equal(n1.code, 0, n1.err);
  assert.match(n0.err, /effective batch 8 = 2 x 1 accumulation x 4 processes/);
  assert.equal(fileDiff(join(one, 'final', 'model.safetensors'), join(two, 'final', 'model.safetensors')), 0, 'same weights, same bits');
  assert.equal(fileDiff(join(one, 'checkpoint-2', 'training_state.safetensors'), join(two, 'checkpoint-2', 'training_state.safetensors')), 0);
  // And 4 x 2 is the 1-process batch of 8 (within float32 summation order).
  assert.ok(weightDiff(join(ref, 'checkpoint-2'), join(two, 'checkpoint-2')) <= TOL);
});

test('LoRA: 2 processes train the adapters of 1 process with the same global batch', async () => {
  const lora = { model: 'auto', pretrained_model_name_or_path: fixture('rdt', 'tiny_a.hub-bf16'), 'lora.enabled': 'true', 'lora.rank': 4, max_train_steps: 2 };
  const one = join(work, 'lora-1');
  await trainHere(one, { ...lora, train_batch_size: 8 });
  const two = join(work, 'lora-2');
  const d = await launch2(two, lora);
  assert.equal(d.code, 0, d.err);
  const a = torch.loadSafetensors(join(one, 'checkpoint-2', 'adapter_model.safetensors')).tensors;
  const b = torch.loadSafetensors(join(two, 'checkpoint-2', 'adapter_model.safetensors')).tensors;
  let m = 0;
  let moved = 0;
  for (const [k, t] of a) {
    m = Math.max(m, maxAbsDiff(t.toFloat64(), b.get(k)!.toFloat64()));
    if (k.endsWith('lora_B')) moved = Math.max(moved, Math.max(...Array.from(t.toFloat64(), Math.abs)));
  }
  // AdamW normalises each element's gradient, so float32 rounding in a near-zero gradient element can move
  // that element by a small fraction of one step (lr 1e-3): 1e-5 is 1% of a step. Measured: 1.3e-6 here.
  const LORA_TOL = 1e-5;
  assert.ok(moved > 100 * LORA_TOL, `the adapters trained (lora_B starts at zero; now up to ${moved})`);
  assert.ok(m <= LORA_TOL, `adapter max difference ${m}`);
  assert.ok(weightDiff(join(one, 'final'), join(two, 'final')) <= LORA_TOL, 'and the adaptors / saved weights');
});

test('Ctrl-C to the launcher: every rank stops at the same step and rank 0 saves a checkpoint there', async () => {
  const out = join(work, 'sigint');
  let launcher = 0;
  const t0 = Date.now();
  const job = launch2(out, { max_train_steps: 100000, checkpointing_period: 100000 }, (pid) => (launcher = pid));
  while (!existsSync(join(out, 'metrics.jsonl')) || losses(out).length < 2) {
    assert.ok(Date.now() - t0 < 60_000, 'no training step within a minute');
    await new Promise((r) => setTimeout(r, 100));
  }
  process.kill(launcher, 'SIGINT');
  const d = await job;
  assert.equal(d.code, 130, d.err);
  assert.doesNotMatch(d.err, /the job stopped because/);
  const cks = listCheckpoints(out);
  assert.equal(cks.length, 1);
  assert.equal(cks[0].step, losses(out).length, 'the checkpoint is at the last step every rank finished');
  assert.match(d.err, new RegExp(`SIGINT: stopped after step ${cks[0].step}`));
  assert.match(d.err, /to continue: rdt-libero train --nproc_per_node 2 --master_port \d+ .* --resume_from_checkpoint latest/);
});

test('a run under torchrun --no-python trains the same weights', async () => {
  const out = join(work, 'torchrun');
  const port = await freePort();
  const d = await run('torchrun', ['--no-python', '--nproc_per_node', '2', '--master_addr', '127.0.0.1', '--master_port', String(port),
    process.execPath, MAIN, 'train', ...overrides(out)]);
  assert.equal(d.code, 0, d.err + d.out);
  assert.ok(existsSync(join(out, 'final', 'model.safetensors')));
  assert.ok(weightDiff(join(ref, 'final'), join(out, 'final')) <= TOL);
});

// The real rdt-libero policy (a tiny trained checkpoint) in the evaluation loop on the test back-end: the
// conventions (render size, history, exec horizon) come from its policy.json; the first executed actions equal the
// policy's own predict on the observation the simulator gave, with the request's seed computed here from the
// documented rule, step 0 decoded against the pose measured then and step 1 against the pose measured after step 0
// (Policy.predict's `poses`), so observation -> model input and chunk -> action go through exactly the data layer
// and decoder of training. Two workers share batched model calls. Reproducibility: --workers 1, --workers 3 and a
// run killed with SIGKILL and resumed execute the same actions in every episode (the noise of request i of an
// episode comes from its own seed, never from the batch or the process history), and record the same outcomes,
// step counts and replanning points.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { repoRoot } from './helpers/fixtures.js';
import { obsFrameFromEnv } from '../src/data/adapter.js';
import { openPolicy, RdtChunkPolicy } from '../src/eval/policy_source.js';
import { PROTOCOLS } from '../src/eval/protocol.js';
import { runEval } from '../src/eval/run.js';
import { readRecords } from '../src/eval/results.js';
import { watchRun } from '../src/eval/watch.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
import { loadPolicy } from '../src/policy/policy.js';
import { actionLog, testEvalOptions } from './helpers/eval.js';
import { tempDir } from './helpers/python.js';
import { makeTinyPolicy } from './helpers/tiny-policy.js';

const { dir: work, cleanup } = tempDir('eval-policy');
after(cleanup);
let policyDir = '';
let runDir = '';

before(async () => {
  ({ policy: policyDir, run: runDir } = await makeTinyPolicy(work, { size: 32 }));
});

test('the tiny policy through the loop: conventions from policy.json, first actions = Policy.predict on the same observation', async () => {
  const log = join(work, 'actions.log');
  const chunkPolicy = await openPolicy({ policy: policyDir });
  assert.ok(chunkPolicy instanceof RdtChunkPolicy);
  assert.equal(chunkPolicy.resolution, 32);
  assert.equal(chunkPolicy.historySize, 2);
  assert.equal(chunkPolicy.checkpointStep, 2);
  assert.equal(chunkPolicy.execHorizon, 16, 'policy.json action.exec_horizon');
  const out = join(work, 'one');
  try {
    await runEval(chunkPolicy, testEvalOptions(out, { tasks: [1], episodesPerTask: 1, maxSteps: 20, execHorizon: 8, seed: 11 }, { RDT_TEST_ENV_ACTION_LOG: log }));
  } finally {
    await chunkPolicy.close();
  }
  const [rec] = readRecords(join(out, 'episodes.jsonl'));
  assert.equal(rec.checkpoint_step, 2);
  if (!rec.success) assert.deepEqual(rec.replans, [0, 8, 16]);
  const [ep] = actionLog(log);

  // Independently: the same episode start in a fresh sidecar, then the policy's own predict.
  const sim = await SidecarWorker.start({ backend: 'test' });
  const policy = loadPolicy(policyDir);
  try {
    const info = await sim.open({ suite: 'libero_goal', task: 1, resolution: 32, seed: 11, horizon: 100 });
    let o = await sim.reset({ initIndex: 0, seed: 11 });
    for (let i = 0; i < 10; i++) o = await sim.step(PROTOCOLS.openpi.waitAction);
    const f0 = obsFrameFromEnv(o.obs);
    const input = { history: [null, f0], instruction: info.language };
    const seed = fnv1a31('11/libero_goal/1/0/0'); // request 0 of episode 0 of libero_goal task 1, --seed 11
    const a0 = policy.predict(input, { seed }).actions.slice(0, 7);
    assert.deepEqual(ep[10].action, Array.from(a0), 'policy step 0');
    const o1 = await sim.step(a0);
    const f1 = obsFrameFromEnv(o1.obs);
    const a1 = policy.predict(input, { seed, poses: [[undefined, f1.robot]] }).actions.slice(7, 14);
    assert.deepEqual(ep[11].action, Array.from(a1), 'policy step 1, decoded against the pose measured after step 0');
  } finally {
    policy.dispose();
    await sim.close();
  }
});

test('Policy.predict calls the text encoder once per distinct instruction (per-process cache), with the chunks of an uncached batch', () => {
  const policy = loadPolicy(policyDir);
  try {
    const frame = (v: number) => ({ robot: { eefPos: [0.1 * v, 0, 1], eefAxisAngle: [0, 0, 0], gripperQpos: [0.04, -0.04] },
      images: { agentview: new Uint8Array(32 * 32 * 3).fill(40 * v), eyeInHand: new Uint8Array(32 * 32 * 3).fill(200 - 40 * v) } });
    const inputs = ['put the bowl on the plate', 'open the middle drawer of the cabinet now', 'put the bowl on the plate'].map((instruction, i) => ({ history: [null, frame(i)], instruction }));
    const text = policy.encoders.text;
    let calls = 0;
    const encode = text.encode.bind(text);
    text.encode = (xs: string[]) => (calls++, encode(xs));
    const first = policy.predict(inputs, { seeds: [1, 2, 3] }).actions;
    assert.equal(calls, 2, 'two distinct instructions');
    for (let i = 0; i < 3; i++) policy.predict(inputs[i], { seed: i + 1 });
    assert.equal(calls, 2, 'nothing new to encode');
    // Each row as predicted alone (cached) equals its row of the batch: the padding to the batch's longest text is masked.
    for (let i = 0; i < 3; i++) {
      const alone = policy.predict(inputs[i], { seed: i + 1 }).actions;
      const row = first.subarray(i * alone.length, (i + 1) * alone.length);
      alone.forEach((x, j) => assert.ok(Math.abs(x - row[j]) < 1e-4, `row ${i} value ${j}: ${x} vs ${row[j]}`));
    }
  } finally {
    policy.dispose();
  }
});

test('a folder that is not a policy is refused when the eval opens it, with the loader\'s message', async () => {
  await assert.rejects(openPolicy({ policy: join(work, 'nope') }), /policy folder .*nope does not exist/);
  await assert.rejects(openPolicy({ policy: join(work, 'data') }), /EvalError|no policy.json|config/);
});

test('two workers: every episode recorded with its budget; the model calls are shared (fewer calls than chunk requests); the text encoder ran once per task', async () => {
  const p = await openPolicy({ policy: policyDir }) as RdtChunkPolicy;
  try {
    const r = await runEval(p, testEvalOptions(join(work, 'two'), { tasks: [0, 1], episodesPerTask: 2, maxSteps: 16, execHorizon: 4, workers: 2, maxBatch: 2 }));
    assert.equal(p.textEncodes, 2, 'two tasks, two distinct instructions: two text-encoder calls for all the chunk requests');
    const recs = readRecords(join(work, 'two', 'episodes.jsonl'));
    assert.equal(recs.length, 4);
    const requests = recs.reduce((s, x) => s + x.model_calls, 0);
    for (const x of recs) if (!x.success) assert.deepEqual([x.steps, x.model_calls], [16, 4]);
    assert.equal(r.batchSizes.reduce((a, b) => a + b, 0), requests);
    assert.ok(r.modelCalls < requests, `${r.modelCalls} model calls for ${requests} chunk requests`);
  } finally {
    await p.close();
  }
});

test('eval --watch: each checkpoint of a run is evaluated once; success rate vs step in RUN_DIR/eval/metrics.jsonl and TensorBoard', async () => {
  const { out: _unused, ...opts } = testEvalOptions('', { tasks: [0], episodesPerTask: 2, maxSteps: 8, execHorizon: 8 });
  const lines: string[] = [];
  const watch = { ...opts, log: (l: string) => lines.push(l), policyOpts: { dtype: 'float32' as const, device: 'cpu' }, pollS: 1, once: true };
  await watchRun(runDir, watch);
  const metrics = readFileSync(join(runDir, 'eval', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(metrics.map((m) => m.step), [2]);
  const recs = readRecords(join(runDir, 'eval', 'checkpoint-2', 'episodes.jsonl'));
  assert.equal(recs.length, 2);
  assert.equal(metrics[0]['eval/success_rate'], recs.filter((r) => r.success).length / 2);
  assert.equal(metrics[0]['eval/libero_goal/success_rate'], metrics[0]['eval/success_rate']);
  assert.equal(metrics[0]['eval/episodes'], 2);
  assert.ok(readdirSync(join(runDir, 'tensorboard', 'eval')).some((f) => f.startsWith('events.out.tfevents.')));
  // Again: nothing new to evaluate.
  await watchRun(runDir, watch);
  assert.equal(readFileSync(join(runDir, 'eval', 'metrics.jsonl'), 'utf8').trim().split('\n').length, 1);
  assert.ok(existsSync(join(runDir, 'eval', 'checkpoint-2', 'summary.md')));
  assert.equal(lines.filter((l) => l.includes('eval --watch: checkpoint 2')).length, 1);
});

test('rdt-libero eval with the policy folder: its render size and history from policy.json, --threads, the checkpoint step in the report', () => {
  const out = join(work, 'cli');
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'eval', '--policy', policyDir, '--sim', 'test', '--suite', 'libero_goal',
    '--tasks', '1', '--episodes', '1', '--max-steps', '8', '--exec-horizon', '4', '--threads', '1', '--videos', 'all', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /sim test at 32px/);
  assert.match(r.stdout, /checkpoint step: 2; protocol: openpi; exec_horizon: 4/);
  const [rec] = readRecords(join(out, 'episodes.jsonl'));
  if (!rec.success) assert.deepEqual(rec.replans, [0, 4]);
  assert.ok(rec.video && existsSync(join(out, rec.video)));
});

/** seeding.ts's documented rule, written out here: 32-bit FNV-1a of the UTF-8 string, modulo 2^31. */
function fnv1a31(s: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(s, 'utf8')) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h % 2 ** 31;
}

test('--workers 1, --workers 3 and a run killed with SIGKILL and resumed: the same actions in every episode, the same outcomes, steps and replans', async () => {
  const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
  const env = { ...process.env, OMP_NUM_THREADS: '1' };
  const args = (out: string, workers: number) => [MAIN, 'eval', '--policy', policyDir, '--sim', 'test', '--suite', 'libero_goal', '--tasks', '0,1', '--episodes', '3',
    '--max-steps', '12', '--exec-horizon', '4', '--seed', '5', '--workers', String(workers), '--threads', '1', '--videos', 'none', '--out', out];
  const runs: Record<string, { out: string; log: string; stderr: string }> = {};
  for (const [tag, workers] of [['w1', 1], ['w3', 3]] as const) {
    const out = join(work, `repro-${tag}`), log = join(work, `repro-${tag}.log`);
    const r = spawnSync(process.execPath, args(out, workers), { encoding: 'utf8', env: { ...env, RDT_TEST_ENV_ACTION_LOG: log } });
    assert.equal(r.status, 0, r.stderr);
    runs[tag] = { out, log, stderr: r.stderr };
  }
  // The 3-worker run shared model calls: the batch-independence of the noise was exercised.
  assert.ok(Number(/mean batch ([\d.]+)/.exec(runs.w3.stderr)![1]) > 1, runs.w3.stderr);
  // Killed after its second episode, then the same command again.
  const out = join(work, 'repro-killed'), log = join(work, 'repro-killed.log');
  const child = spawn(process.execPath, args(out, 1), { stdio: 'ignore', env: { ...env, RDT_TEST_ENV_ACTION_LOG: log } });
  const file = join(out, 'episodes.jsonl');
  const t0 = Date.now();
  while ((existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0) < 2 && Date.now() - t0 < 120_000) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const again = spawnSync(process.execPath, args(out, 1), { encoding: 'utf8', env: { ...env, RDT_TEST_ENV_ACTION_LOG: log } });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /resuming .*: [2-5] episode\(s\) already recorded/);
  runs.killed = { out, log, stderr: again.stderr };

  const outcome = (tag: string) => readRecords(join(runs[tag].out, 'episodes.jsonl')).map((r) => `${r.task}/${r.episode}: ${r.success} ${r.steps} [${r.replans}] ${r.model_calls}`).sort();
  assert.equal(outcome('w1').length, 6);
  assert.deepEqual(outcome('w3'), outcome('w1'));
  assert.deepEqual(outcome('killed'), outcome('w1'));
  // Every episode's executed actions: the last start of each (task, init) in the log (the killed run's cut episode
  // was started again). One worker: bit-identical; three (batches of up to 3): equal to float32 rounding.
  const actions = (tag: string) => {
    const m = new Map<string, number[][]>();
    for (const ep of actionLog(runs[tag].log)) m.set(`${ep[0].task}/${ep[0].init}`, ep.map((a) => a.action));
    return m;
  };
  const a1 = actions('w1');
  assert.equal(a1.size, 6);
  assert.deepEqual(actions('killed'), a1);
  let worst = 0;
  for (const [k, ep] of actions('w3')) ep.forEach((a, t) => a.forEach((x, d) => (worst = Math.max(worst, Math.abs(x - a1.get(k)![t][d])))));
  assert.ok(worst < 1e-4, `workers 3 vs 1: actions differ by ${worst}`);
});

test('eval --watch while training deletes old checkpoints: the folder is listed again before each, the newest goes first, a vanished one is skipped', async () => {
  const run = join(work, 'watch-run');
  mkdirSync(run);
  for (const step of [1, 2, 3]) cpSync(join(runDir, 'checkpoint-2'), join(run, `checkpoint-${step}`), { recursive: true });
  const { out: _unused, ...opts } = testEvalOptions('', { tasks: [0], episodesPerTask: 1, maxSteps: 4, execHorizon: 4 });
  const lines: string[] = [];
  const log = (l: string) => {
    lines.push(l);
    // Training's checkpoints_total_limit deletes checkpoint-1 just as the watch gets to it, and writes checkpoint-4
    // while checkpoint-3 is evaluated.
    if (l.startsWith('eval --watch: checkpoint 1 (')) rmSync(join(run, 'checkpoint-1'), { recursive: true });
    if (l.startsWith('eval --watch: checkpoint 3 (')) cpSync(join(runDir, 'checkpoint-2'), join(run, 'checkpoint-4'), { recursive: true });
  };
  await watchRun(run, { ...opts, log, policyOpts: { dtype: 'float32' as const, device: 'cpu' }, pollS: 1, once: true });
  assert.deepEqual(lines.filter((l) => /^eval --watch: checkpoint \d+ \(/.test(l)).map((l) => Number(/checkpoint (\d+)/.exec(l)![1])), [3, 4, 2, 1]);
  assert.ok(lines.some((l) => l === 'eval --watch: checkpoint 1 was deleted before it could be loaded (the run keeps checkpoints_total_limit of them); skipped'), lines.join('\n'));
  const metrics = readFileSync(join(run, 'eval', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).step);
  assert.deepEqual(metrics, [3, 4, 2]);
});

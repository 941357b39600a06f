// The evaluation loop end to end on the sidecar's test back-end (real processes, the real protocol, real
// geometry): success counts of a scripted expert and of the same expert with the wrong image orientation, the
// per-suite step budgets, the wait steps, the replanning points for exec_horizon 8/16/64, temporal ensembling,
// a sidecar killed mid-episode (restart + retry, counted) and a policy that fails (an error, never a failure).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runEval } from '../src/eval/run.js';
import { PROTOCOLS } from '../src/eval/protocol.js';
import { scriptedPolicy } from '../src/eval/scripted_policy.js';
import { readRecords } from '../src/eval/results.js';
import type { ActionChunk, ChunkPolicy } from '../src/eval/chunk_policy.js';
import type { PolicyInput } from '../src/policy/policy.js';
import { actionLog, testEvalOptions } from './helpers/eval.js';
import { runPythonJson, tempDir } from './helpers/python.js';

const { dir: work, cleanup } = tempDir('eval-loop');
after(cleanup);

const WAIT = [0, 0, 0, 0, 0, 0, -1];

test('the scripted expert solves every episode; reading the image unflipped fails, running the full 300-step budget of libero_goal', async () => {
  const log = join(work, 'a.log');
  const good = await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'good'), { tasks: [0, 1], episodesPerTask: 4, workers: 2, maxBatch: 2 }, { RDT_TEST_ENV_ACTION_LOG: log }));
  assert.equal(good.ran, 8);
  assert.equal(good.summary.suites.libero_goal.successes, 8);
  const recs = readRecords(join(work, 'good', 'episodes.jsonl'));
  assert.deepEqual(recs.map((r) => `${r.task}/${r.init}`).sort(), ['0/0', '0/1', '0/2', '0/3', '1/0', '1/1', '1/2', '1/3']);
  for (const r of recs) {
    assert.ok(r.success && r.steps > 5 && r.steps < 40, `expert: ${r.steps} steps`);
    assert.equal(r.env_steps, r.steps + 10, 'env steps = 10 wait steps + policy steps');
    assert.equal(r.max_steps, 300);
  }
  // Every episode starts with exactly 10 wait steps of [0,0,0,0,0,0,-1], then the policy's (moving) actions.
  const eps = actionLog(log);
  assert.equal(eps.length, 8);
  for (const ep of eps) {
    for (let t = 0; t < 10; t++) assert.deepEqual(ep[t].action, WAIT);
    assert.notDeepEqual(ep[10].action, WAIT);
  }

  const bad = await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 'bad'), { tasks: [0, 1], episodesPerTask: 4, workers: 2, maxBatch: 2 }));
  const badRecs = readRecords(join(work, 'bad', 'episodes.jsonl'));
  assert.ok(bad.summary.suites.libero_goal.successes <= 1, `unflipped: ${bad.summary.suites.libero_goal.successes} successes`);
  for (const r of badRecs.filter((x) => !x.success)) {
    assert.equal(r.steps, 300, 'a failed libero_goal episode runs the whole openpi budget');
    assert.equal(r.env_steps, 310);
  }
});

test('--videos failures keeps the failures only, and no temporary file', async () => {
  await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'vf-ok'), { episodesPerTask: 2, videos: 'failures' }));
  await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 'vf-bad'), { episodesPerTask: 1, maxSteps: 15, videos: 'failures' }));
  assert.deepEqual(readRecords(join(work, 'vf-ok', 'episodes.jsonl')).map((r) => r.video), [null, null]);
  assert.deepEqual(readdirSync(join(work, 'vf-ok', 'videos', 'libero_goal')), []);
  const [bad] = readRecords(join(work, 'vf-bad', 'episodes.jsonl'));
  assert.equal(bad.video, join('videos', 'libero_goal', 'task00_init00_ep00_failure.mp4'));
  assert.deepEqual(readdirSync(join(work, 'vf-bad', 'videos', 'libero_goal')), ['task00_init00_ep00_failure.mp4']);
});

test('libero_spatial budget is 220 policy steps (openpi/OFT table)', async () => {
  const r = await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 'spatial'), { suites: ['libero_spatial'], tasks: [2], episodesPerTask: 1 }));
  const [rec] = readRecords(join(work, 'spatial', 'episodes.jsonl'));
  assert.equal(r.ran, 1);
  assert.equal(rec.max_steps, 220);
  if (!rec.success) assert.equal(rec.steps, 220);
});

for (const h of [8, 16, 64]) {
  test(`exec_horizon ${h}: a chunk is requested at policy steps 0, ${h}, ${2 * h}, ... and nowhere else`, async () => {
    const maxSteps = 100;
    await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, `h${h}`), { execHorizon: h, maxSteps, episodesPerTask: 2, tasks: [3] }));
    for (const r of readRecords(join(work, `h${h}`, 'episodes.jsonl'))) {
      const expected: number[] = [];
      for (let s = 0; s < r.steps; s += h) expected.push(s);
      assert.deepEqual(r.replans, expected);
      assert.equal(r.model_calls, Math.ceil(r.steps / h));
      assert.equal(r.exec_horizon, h);
    }
  });
}

test('--protocol libero: 5 wait steps of zeros (gripper held), init index k mod 50, 600 steps by default', async () => {
  const log = join(work, 'lib.log');
  await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'lib'), { protocol: PROTOCOLS.libero, episodesPerTask: 2, tasks: [5] }, { RDT_TEST_ENV_ACTION_LOG: log }));
  const recs = readRecords(join(work, 'lib', 'episodes.jsonl'));
  assert.deepEqual(recs.map((r) => [r.protocol, r.init, r.max_steps, r.env_steps - r.steps]), [['libero', 0, 600, 5], ['libero', 1, 600, 5]]);
  for (const ep of actionLog(log)) {
    for (let t = 0; t < 5; t++) assert.deepEqual(ep[t].action, [0, 0, 0, 0, 0, 0, 0]);
    assert.notDeepEqual(ep[5].action, [0, 0, 0, 0, 0, 0, 0]);
  }
  assert.equal(PROTOCOLS.libero.initIndex(57, 50), 7);
  assert.equal(PROTOCOLS.libero.episodesPerTask, 20);
});

/** Chunks whose every step is the constant action [c, 0, 0, 0, 0, 0, -1], c = 0.1 x (call number). */
class CountingPolicy implements ChunkPolicy {
  readonly describe = 'counting test policy';
  readonly chunkSize = 5;
  readonly historySize = 2;
  readonly resolution = 32;
  readonly checkpointStep = 42;
  calls = 0;
  failAt = Infinity;
  async predictChunks(inputs: readonly PolicyInput[]): Promise<ActionChunk[]> {
    return inputs.map((inp) => {
      assert.equal(inp.history.length, 2);
      if (++this.calls >= this.failAt) throw new Error(`policy exploded on call ${this.calls}`);
      const c = 0.1 * this.calls;
      return { length: this.chunkSize, action: () => Float64Array.from([c, 0, 0, 0, 0, 0, -1]) };
    });
  }
  async close(): Promise<void> {}
}

test('temporal ensembling: one call per step, action = sum exp(-k i) a_i / sum exp(-k i) over the live chunks, oldest i = 0', async () => {
  const log = join(work, 'te.log');
  const k = 0.5;
  const p = new CountingPolicy();
  await runEval(p, testEvalOptions(join(work, 'te'), { temporalEnsemble: k, maxSteps: 12, episodesPerTask: 1 }, { RDT_TEST_ENV_ACTION_LOG: log }));
  const [rec] = readRecords(join(work, 'te', 'episodes.jsonl'));
  assert.equal(rec.model_calls, 12);
  assert.deepEqual(rec.replans, Array.from({ length: 12 }, (_, i) => i));
  assert.equal(rec.checkpoint_step, 42);
  const [ep] = actionLog(log);
  for (let s = 0; s < 12; s++) {
    // Chunks asked at steps max(0, s-4) .. s are live (5 steps each); chunk j has value 0.1 (j + 1).
    const live = [];
    for (let j = Math.max(0, s - 4); j <= s; j++) live.push(0.1 * (j + 1));
    const w = live.map((_, i) => Math.exp(-k * i));
    const want = live.reduce((acc, v, i) => acc + w[i] * v, 0) / w.reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(ep[10 + s].action[0] - want) < 1e-12, `step ${s}: ${ep[10 + s].action[0]} vs ${want}`);
  }
});

test('a sidecar killed mid-episode is restarted and the episode retried from its initial state, counted', async () => {
  const log = join(work, 'crash.log');
  const marker = join(work, 'crash.marker');
  const r = await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'crash'), { episodesPerTask: 3, tasks: [4] },
    { RDT_TEST_ENV_KILL_ONCE: `${marker}:4:1:15`, RDT_TEST_ENV_ACTION_LOG: log }));
  assert.equal(r.ran, 3);
  assert.equal(r.crashRetries, 1);
  const recs = readRecords(join(work, 'crash', 'episodes.jsonl'));
  assert.deepEqual(recs.map((x) => [x.init, x.crash_retries, x.success]), [[0, 0, true], [1, 1, true], [2, 0, true]]);
  assert.equal(r.summary.suites.libero_goal.crash_retries, 1);
  // init 1 was started twice: 15 actions before the kill, then a whole episode from t = 0 with its wait steps.
  const starts = actionLog(log).filter((ep) => ep[0].init === 1);
  assert.equal(starts.length, 2);
  assert.equal(starts[0].length, 15);
  for (let t = 0; t < 10; t++) assert.deepEqual(starts[1][t].action, WAIT);
});

test('a sidecar that stops answering is killed after its timeout and the episode retried like a crash', async () => {
  const marker = join(work, 'hang.marker');
  const opts = testEvalOptions(join(work, 'hang'), { episodesPerTask: 2, tasks: [6] }, { RDT_TEST_ENV_HANG_ONCE: `${marker}:6:0:4` });
  const lines: string[] = [];
  const r = await runEval(scriptedPolicy('reach'), { ...opts, sidecar: { ...opts.sidecar, timeoutS: 1 }, log: (l) => lines.push(l) });
  assert.equal(r.crashRetries, 1);
  assert.deepEqual(readRecords(join(work, 'hang', 'episodes.jsonl')).map((x) => [x.init, x.crash_retries, x.success]), [[0, 1, true], [1, 0, true]]);
  assert.ok(lines.some((l) => /did not answer 'step' within 1 s and was killed\); restarting it and retrying the episode from its initial state/.test(l)), lines.join('\n'));
});

test('a sidecar that keeps crashing ends the run with an error naming the retries', async () => {
  const marker = join(work, 'never');
  // With --max-retries 0 the first crash is final.
  await assert.rejects(
    runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'crash0'), { episodesPerTask: 2, tasks: [4], maxRetries: 0 }, { RDT_TEST_ENV_KILL_ONCE: `${marker}:4:0:3` })),
    /exited by signal SIGKILL[\s\S]*retried 0 time/);
  assert.deepEqual(readRecords(join(work, 'crash0', 'episodes.jsonl')), []);
});

test('a policy error stops the run with that error; finished episodes stay recorded, none is counted as a failure', async () => {
  const p = new CountingPolicy();
  p.failAt = 7; // maxSteps 12, exec_horizon 5: calls 1-3 are episode 0, calls 4-6 episode 1, call 7 fails in episode 2
  await assert.rejects(runEval(p, testEvalOptions(join(work, 'perr'), { execHorizon: 5, maxSteps: 12, episodesPerTask: 4 })), /policy exploded on call 7/);
  const recs = readRecords(join(work, 'perr', 'episodes.jsonl'));
  assert.deepEqual(recs.map((r) => [r.init, r.model_calls]), [[0, 3], [1, 3]]);
});

test('exec_horizon longer than the chunk, and results of other settings in --out, are refused', async () => {
  await assert.rejects(runEval(new CountingPolicy(), testEvalOptions(join(work, 'long'), { execHorizon: 6 })), /exec_horizon 6 is longer than the policy's chunk \(5 steps\)/);
  await assert.rejects(runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'h8'), { execHorizon: 16 })), /eval_config\.json: this folder holds an evaluation with policy = /);
});

interface ResetLine { task: number; init: number; seeded: boolean; placement: number[][]; since_open: number; pid: number }
const resetLog = (f: string): ResetLine[] => readFileSync(f, 'utf8').trim().split('\n').map((l) => JSON.parse(l));

test('seeding: per-episode seeds every reset alike; per-task seeds the task\'s env once and each reset draws on (openpi\'s order), replayed after a resume and on 2 workers', async () => {
  // reach_env.py's documented placement rule, in numpy here: the env's generator default_rng(seed) from `open` (or
  // from a seeded reset), one uniform(-0.002, 0.002, (4, 2)) draw per reset (x, y of each of the four blocks).
  const ref = runPythonJson<number[][][]>('import numpy as np', 'rng = np.random.default_rng(7); out = [rng.uniform(-0.002, 0.002, (4, 2)).tolist() for _ in range(4)]', {});
  const close = (a: number[][], b: number[][]) => a.length === b.length && a.every((row, i) => row.length === 2 && row.every((x, j) => Math.abs(x - b[i][j]) < 1e-15));

  // per-episode (the default): every reset is seeded, so every episode draws the first placement.
  const pe = join(work, 'seed-pe.log');
  await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'seed-pe'), { episodesPerTask: 3, tasks: [2] }, { RDT_TEST_ENV_RESET_LOG: pe }));
  for (const r of resetLog(pe)) assert.ok(r.seeded && close(r.placement, ref[0]), JSON.stringify(r));
  assert.deepEqual(readRecords(join(work, 'seed-pe', 'episodes.jsonl')).map((r) => r.seeding), ['per-episode', 'per-episode', 'per-episode']);

  // per-task, one worker: resets 0, 1 of the freshly opened env, unseeded: openpi's first two draws.
  const pt = join(work, 'seed-pt.log');
  const out = join(work, 'seed-pt');
  await runEval(scriptedPolicy('reach'), testEvalOptions(out, { episodesPerTask: 2, tasks: [2], seeding: 'per-task' }, { RDT_TEST_ENV_RESET_LOG: pt }));
  const first = resetLog(pt);
  assert.deepEqual(first.map((r) => [r.init, r.seeded, r.since_open]), [[0, false, 0], [1, false, 1]]);
  first.forEach((r, k) => assert.ok(close(r.placement, ref[k]), `episode ${k}`));
  // The same folder with 4 episodes: episodes 2 and 3 run in a new process, after the 2 resets openpi made before
  // them are replayed (reset only), so they draw openpi's 3rd and 4th placements.
  writeFileSync(pt, '');
  const r = await runEval(scriptedPolicy('reach'), testEvalOptions(out, { episodesPerTask: 4, tasks: [2], seeding: 'per-task' }, { RDT_TEST_ENV_RESET_LOG: pt }));
  assert.equal(r.skipped, 2);
  const resumed = resetLog(pt);
  assert.deepEqual(resumed.map((x) => [x.init, x.since_open]), [[0, 0], [1, 1], [2, 2], [3, 3]]);
  resumed.forEach((x, k) => assert.ok(close(x.placement, ref[k]), `reset ${k}`));
  assert.deepEqual(readRecords(join(out, 'episodes.jsonl')).map((x) => x.init), [0, 1, 2, 3]);

  // Two workers: whichever worker runs episode k, its reset is the k-th of a freshly seeded env.
  const two = join(work, 'seed-pt2.log');
  await runEval(scriptedPolicy('reach'), testEvalOptions(join(work, 'seed-pt2'), { episodesPerTask: 4, tasks: [2], seeding: 'per-task', workers: 2, maxBatch: 2 }, { RDT_TEST_ENV_RESET_LOG: two }));
  const lines = resetLog(two);
  assert.equal(new Set(lines.map((x) => x.pid)).size, 2);
  for (const x of lines) assert.ok(x.init === x.since_open && !x.seeded && close(x.placement, ref[x.since_open]), JSON.stringify(x));
  // A folder evaluated with one seeding refuses the other.
  await assert.rejects(runEval(scriptedPolicy('reach'), testEvalOptions(out, { episodesPerTask: 4, tasks: [2] })), /this folder holds an evaluation with seeding = "per-task", this run has "per-episode"/);
});

test('a simulator error ends its episode as a recorded failure carrying the error (as openpi counts it); --stop-on-env-error stops instead', async () => {
  const marker = join(work, 'raise.marker');
  const lines: string[] = [];
  const out = join(work, 'enverr');
  const r = await runEval(scriptedPolicy('reach'), { ...testEvalOptions(out, { episodesPerTask: 3, tasks: [7] }, { RDT_TEST_ENV_RAISE_ONCE: `${marker}:7:1:14` }), log: (l) => lines.push(l) });
  const recs = readRecords(join(out, 'episodes.jsonl'));
  assert.deepEqual(recs.map((x) => [x.init, x.success, x.steps, x.error === null]), [[0, true, recs[0].steps, true], [1, false, 4, false], [2, true, recs[2].steps, true]]);
  assert.match(recs[1].error!, /sidecar step failed \(env\): FloatingPointError: injected: the physics diverged .* at .*reach_env\.py:\d+/);
  assert.equal(recs[1].env_steps, 14, 'the 10 wait steps and 4 policy steps before the error');
  assert.equal(r.summary.suites.libero_goal.env_errors, 1);
  assert.equal(r.summary.suites.libero_goal.successes, 2);
  assert.match(r.summaryText, /1 episode\(s\) ended by a simulator error, counted as failures/);
  assert.ok(lines.some((l) => /the simulator raised .*recorded as a failure with the error, as openpi counts it \(--stop-on-env-error stops instead/.test(l)), lines.join('\n'));
  assert.match(readFileSync(join(out, 'tasks.csv'), 'utf8'), /,crash_retries,reconnect_retries,env_errors\nlibero_goal,7,.*,0,0,1\n/);

  const marker2 = join(work, 'raise2.marker');
  const out2 = join(work, 'enverr-stop');
  await assert.rejects(runEval(scriptedPolicy('reach'), testEvalOptions(out2, { episodesPerTask: 3, tasks: [7], stopOnEnvError: true }, { RDT_TEST_ENV_RAISE_ONCE: `${marker2}:7:1:14` })),
    /sidecar step failed \(env\): FloatingPointError/);
  assert.deepEqual(readRecords(join(out2, 'episodes.jsonl')).map((x) => x.init), [0]);
});

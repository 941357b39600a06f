// Results and reports: Wilson 95% intervals against an independent reference (Python: z from the normal
// quantile, the interval as the roots of the score-test quadratic), the per-task CSV and summary, a torn last
// line of the results file, and shards merged into the same numbers as one run.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Z95, summarize, tasksCsv, wilson } from '../src/eval/report.js';
import { type EpisodeRecord, RecordWriter, mergeRecords, readRecords } from '../src/eval/results.js';
import { mergeInto } from '../src/eval/merge.js';
import { runEval } from '../src/eval/run.js';
import { scriptedPolicy } from '../src/eval/scripted_policy.js';
import { runPythonJson, tempDir } from './helpers/python.js';
import { testEvalOptions } from './helpers/eval.js';

const { dir: work, cleanup } = tempDir('eval-report');
after(cleanup);

const CASES: [number, number][] = [[0, 10], [10, 10], [1, 50], [25, 50], [49, 50], [37, 50], [0, 1], [1, 1], [430, 500], [3, 7]];

test('wilson(k, n) = the p where the score test |p_hat - p| = z sqrt(p (1 - p) / n) is at the 95% boundary', () => {
  const ref = runPythonJson<{ z: number; ci: [number, number][] }>('from statistics import NormalDist', `
z = NormalDist().inv_cdf(0.975)
ci = []
for k, n in inp["cases"]:
    ph = k / n
    # (ph - p)^2 = z^2 p (1 - p) / n  <=>  (1 + z^2/n) p^2 - (2 ph + z^2/n) p + ph^2 = 0
    a, b, c = 1 + z * z / n, -(2 * ph + z * z / n), ph * ph
    d = math.sqrt(max(b * b - 4 * a * c, 0.0))
    ci.append([(-b - d) / (2 * a), (-b + d) / (2 * a)])
out = {"z": z, "ci": ci}
`, { cases: CASES });
  assert.ok(Math.abs(Z95 - ref.z) < 1e-12);
  CASES.forEach(([k, n], i) => {
    const [lo, hi] = wilson(k, n);
    assert.ok(Math.abs(lo - ref.ci[i][0]) < 1e-12 && Math.abs(hi - ref.ci[i][1]) < 1e-12, `${k}/${n}: [${lo}, ${hi}] vs [${ref.ci[i]}]`);
  });
});

function rec(suite: string, task: number, episode: number, success: boolean, steps = 50): EpisodeRecord {
  return {
    suite, task, task_name: `T${task}`, language: `do task ${task}, carefully`, episode, init: episode, seed: 7, success, steps, max_steps: 220, env_steps: steps + 10,
    wall_s: 1, model_calls: 4, replans: [0, 16, 32, 48], crash_retries: episode === 0 ? 1 : 0, reconnect_retries: 0, error: null, video: null, checkpoint_step: 1000,
    policy: 'p', protocol: 'openpi', exec_horizon: 16, temporal_ensemble: null, seeding: 'per-episode', inputs: 'the current frame', worker: 0, finished_at: '2026-01-01T00:00:00Z',
  };
}

test('summary: per task and suite counts, rates, intervals; the average is the mean of the suite rates', () => {
  const rs = [
    ...Array.from({ length: 10 }, (_, e) => rec('libero_goal', 0, e, e < 7, 100 + e)),
    ...Array.from({ length: 10 }, (_, e) => rec('libero_goal', 1, e, e < 10)),
    ...Array.from({ length: 4 }, (_, e) => rec('libero_10', 5, e, e < 1)),
  ];
  const s = summarize(rs);
  assert.equal(s.suites.libero_goal.successes, 17);
  assert.equal(s.suites.libero_goal.episodes, 20);
  assert.deepEqual(s.suites.libero_goal.ci95, wilson(17, 20));
  assert.equal(s.suites.libero_goal.tasks[0].mean_steps, 104.5);
  assert.equal(s.suites.libero_goal.crash_retries, 2);
  assert.equal(s.suites.libero_10.rate, 0.25);
  assert.ok(Math.abs(s.average.rate - (0.85 + 0.25) / 2) < 1e-15);
  assert.equal(s.average.pooled.successes, 18);
  assert.equal(s.average.pooled.episodes, 24);
  const csv = tasksCsv(s).trim().split('\n');
  assert.equal(csv[0], 'suite,task,task_name,episodes,successes,success_rate,ci95_low,ci95_high,mean_steps,crash_retries,reconnect_retries,env_errors');
  assert.equal(csv.length, 4);
  assert.equal(csv[3], `libero_goal,1,T1,10,10,1.0000,${wilson(10, 10)[0].toFixed(4)},1.0000,50.0,1,0,0`);
});

test('a results line cut short by a kill is dropped on resume; appends continue after it', () => {
  const f = join(work, 'torn.jsonl');
  const w = new RecordWriter(f);
  w.append(rec('libero_goal', 0, 0, true));
  w.append(rec('libero_goal', 0, 1, false));
  w.close();
  appendFileSync(f, '{"suite":"libero_goal","task":0,"epis');
  assert.throws(() => readRecords(f), /line 3 is not a JSON episode record \(cut short/);
  assert.equal(readRecords(f, true).length, 2);
  const w2 = new RecordWriter(f);
  w2.append(rec('libero_goal', 0, 2, true));
  w2.close();
  assert.deepEqual(readRecords(f).map((r) => r.episode), [0, 1, 2]);
  assert.throws(() => mergeRecords([rec('libero_goal', 0, 0, true), rec('libero_goal', 0, 0, false)]), /episode libero_goal\/0\/0\/0\/7 appears twice with different results/);
});

test('--shard 0/2 and 1/2, merged, give the episodes and the numbers of one unsharded run', async () => {
  const opts = { tasks: [0, 1], episodesPerTask: 3 };
  const whole = await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 'whole'), { ...opts, maxSteps: 30 }));
  const a = await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 's0'), { ...opts, maxSteps: 30, shard: { index: 0, count: 2 } }));
  const b = await runEval(scriptedPolicy('reach-unflipped'), testEvalOptions(join(work, 's1'), { ...opts, maxSteps: 30, shard: { index: 1, count: 2 } }));
  assert.equal(a.ran, 3);
  assert.equal(b.ran, 3);
  assert.deepEqual(readRecords(join(work, 's0', 'episodes.shard-0-of-2.jsonl')).map((r) => `${r.task}/${r.episode}`), ['0/0', '0/2', '1/1']);
  const m = mergeInto(join(work, 'merged'), [join(work, 's0'), join(work, 's1')]);
  assert.equal(m.episodes, 6);
  const merged = JSON.parse(readFileSync(join(work, 'merged', 'summary.json'), 'utf8'));
  assert.deepEqual(merged.suites, whole.summary.suites);
  assert.throws(() => mergeInto(join(work, 'merged'), [join(work, 's0')]), /exists; merge into an empty folder/);
});

test('eval merge refuses folders whose settings or policy differ, naming the setting; a folder resumed with --shard after an unsharded run counts each episode once', async () => {
  const base = { tasks: [0], episodesPerTask: 2, maxSteps: 10 };
  const run = (d: string, over: Record<string, unknown>, p = 'reach-unflipped') => runEval(scriptedPolicy(p), testEvalOptions(join(work, d), { ...base, ...over }));
  await run('m-a', { shard: { index: 0, count: 2 } });
  await run('m-b', { shard: { index: 1, count: 2 } });
  await run('m-h8', { shard: { index: 1, count: 2 }, execHorizon: 8 });
  await run('m-pt', { shard: { index: 1, count: 2 }, seeding: 'per-task' });
  await run('m-pol', { shard: { index: 1, count: 2 } }, 'reach');
  const m = (d: string) => mergeInto(join(work, `${d}-out`), [join(work, 'm-a'), join(work, d)]);
  assert.equal(m('m-b').episodes, 2);
  assert.throws(() => m('m-h8'), /m-h8\/eval_config\.json has exec_horizon = 8, .*m-a\/eval_config\.json has 16: these folders hold different evaluations/);
  assert.throws(() => m('m-pt'), /m-pt\/eval_config\.json has seeding = "per-task", .*has "per-episode"/);
  assert.throws(() => m('m-pol'), /m-pol\/eval_config\.json has policy = "scripted:reach \(test back-end expert, orientation flip_v\)", .*has "scripted:reach-unflipped/);
  // A record of another policy than its folder's settings name (two evaluations' files copied together).
  const mixed = join(work, 'm-mixed');
  cpSync(join(work, 'm-b'), mixed, { recursive: true });
  const f = join(mixed, 'episodes.shard-1-of-2.jsonl');
  writeFileSync(f, readFileSync(f, 'utf8').replace(/"policy":"[^"]*"/, '"policy":"another"'));
  assert.throws(() => m('m-mixed'), /m-mixed holds a record of libero_goal task 0 episode 1 by policy another \(step null\), but its eval_config\.json names scripted:reach-unflipped/);
  rmSync(join(mixed, 'eval_config.json'));
  assert.throws(() => m('m-mixed'), /m-mixed\/eval_config\.json is missing/);

  // 2 of 4 episodes run unsharded, then the folder is finished by its two shards: every episode counted once.
  await run('resumed', {});
  const s0 = await run('resumed', { episodesPerTask: 4, shard: { index: 0, count: 2 } });
  assert.deepEqual([s0.ran, s0.skipped], [1, 1], 'shard 0 (episodes 0 and 2): episode 0 was recorded by the unsharded run');
  const s1 = await run('resumed', { episodesPerTask: 4, shard: { index: 1, count: 2 } });
  assert.deepEqual([s1.ran, s1.skipped], [1, 1]);
  assert.equal(s1.summary.suites.libero_goal.episodes, 4);
  assert.equal(JSON.parse(readFileSync(join(work, 'resumed', 'summary.json'), 'utf8')).average.pooled.episodes, 4);
});

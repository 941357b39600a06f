// `rdt-libero eval` as a user runs it: kill -9 in the middle, re-run the same command, and every episode is
// recorded exactly once; videos named by suite/task/init/outcome, never overwritten; usage errors; the
// websocket policy's flag and address errors; `doctor --sim` end to end on the test back-end and its message for a missing LIBERO.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readRecords } from '../src/eval/results.js';
import { unusedName } from '../src/eval/video.js';
import { repoRoot } from './helpers/fixtures.js';
import { tempDir } from './helpers/python.js';

const { dir: work, cleanup } = tempDir('eval-cli');
after(cleanup);
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
const cli = (...args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });

test('kill -9 mid-run, then the same command again: every episode recorded once, the finished ones not re-run, one video each', async () => {
  const out = join(work, 'resume');
  const args = [MAIN, 'eval', '--policy', 'scripted:reach-unflipped', '--sim', 'test', '--suite', 'libero_goal', '--tasks', '0,1', '--episodes', '4',
    '--max-steps', '120', '--videos', 'all', '--out', out];
  const child = spawn(process.execPath, args, { stdio: 'ignore' });
  const file = join(out, 'episodes.jsonl');
  const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0);
  const t0 = Date.now();
  while (lines() < 2 && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const before = readRecords(file, true).length;
  assert.ok(before >= 2 && before < 8, `${before} episodes recorded before the kill`);
  const again = spawnSync(process.execPath, args, { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, new RegExp(`resuming .*: ${before} episode\\(s\\) already recorded, ${8 - before} to run`));
  const recs = readRecords(file);
  assert.equal(recs.length, 8);
  assert.deepEqual(recs.map((r) => `${r.task}/${r.episode}`).sort(), ['0/0', '0/1', '0/2', '0/3', '1/0', '1/1', '1/2', '1/3']);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.suites.libero_goal.episodes, 8);
  assert.match(readFileSync(join(out, 'summary.md'), 'utf8'), /\| libero_goal \| \d+\.\d \| \d+\.\d-\d+\.\d \| \d \/ 8 \| 0 \|/);
  assert.equal(readFileSync(join(out, 'tasks.csv'), 'utf8').trim().split('\n').length, 3);
  // One video per recorded episode; the killed run's partial video (a .tmp- file) is gone.
  const videos = readdirSync(join(out, 'videos', 'libero_goal'));
  assert.deepEqual(videos.sort(), recs.map((r) => r.video!.split('/').pop()!).sort());
  assert.equal(videos.length, 8);
});

test('videos: one MP4 per episode, both cameras side by side under the step bar, named by task/init/outcome, never overwritten', () => {
  const out = join(work, 'videos');
  const r = cli('eval', '--policy', 'scripted:reach', '--sim', 'test', '--suite', 'libero_object', '--tasks', '2', '--episodes', '2', '--videos', 'all', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const dir = join(out, 'videos', 'libero_object');
  assert.deepEqual(readdirSync(dir).sort(), ['task02_init00_ep00_success.mp4', 'task02_init01_ep01_success.mp4']);
  const [rec] = readRecords(join(out, 'episodes.jsonl'));
  assert.equal(rec.video, join('videos', 'libero_object', 'task02_init00_ep00_success.mp4'));
  const probe = spawnSync('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', join(out, rec.video!)], { encoding: 'utf8' });
  // 64 px renders: 2 x 64 wide; 20 px bar + 64 rows; frames = reset + env steps + 1 s (20 frames) of outcome.
  assert.equal(probe.stdout.trim(), `128,84,${1 + rec.env_steps + 20}`);
  writeFileSync(join(dir, 'x.mp4'), '');
  writeFileSync(join(dir, 'x.2.mp4'), '');
  assert.equal(unusedName(join(dir, 'x.mp4')), join(dir, 'x.3.mp4'));
});

test('eval --shard 0/2 and 1/2, then eval merge: the summary of one unsharded run', () => {
  const common = ['eval', '--policy', 'scripted:reach', '--sim', 'test', '--suite', 'libero_spatial', '--tasks', '3', '--episodes', '3', '--videos', 'none'];
  for (const [i, d] of [[0, 'sa'], [1, 'sb']] as const) assert.equal(cli(...common, '--shard', `${i}/2`, '--out', join(work, d)).status, 0);
  assert.equal(cli(...common, '--out', join(work, 'sall')).status, 0);
  const m = cli('eval', 'merge', '--out', join(work, 'smerged'), '--in', join(work, 'sa'), '--in', join(work, 'sb'));
  assert.equal(m.status, 0, m.stderr);
  assert.match(m.stdout, /\| libero_spatial \| 100\.0 \| 43\.9-100\.0 \| 3 \/ 3 \| 0 \|/);
  const read = (d: string) => JSON.parse(readFileSync(join(work, d, 'summary.json'), 'utf8')).suites;
  assert.deepEqual(read('smerged'), read('sall'));
  const again = cli('eval', 'merge', '--out', join(work, 'smerged'), '--in', join(work, 'sa'));
  assert.equal(again.status, 1);
  assert.match(again.stderr, /exists; merge into an empty folder/);
});

test('usage errors are one line with exit 2; a websocket policy that cannot be reached is one line with exit 1', () => {
  const bad: [string[], RegExp][] = [
    [['--policy', 'p', '--suite', 'libero_gaol', '--out', 'o'], /--suite must be one of .* got 'libero_gaol' \(did you mean 'libero_goal'\?\)/],
    [['--policy', 'p', '--suite', 'libero_goal', '--out', 'o', '--shard', '2/2'], /--shard must be I\/N with 0 <= I < N/],
    [['--policy', 'p', '--suite', 'libero_goal', '--out', 'o', '--tasks', '10'], /--tasks 10: libero_goal has tasks 0..9/],
    [['--policy', 'p', '--suite', 'libero_goal', '--out', 'o', '--episodes', '51'], /the openpi protocol has 50 fixed initial states/],
    [['--policy', 'p', '--suite', 'libero_goal', '--out', 'o', '--temporal-ensemble', '0.01', '--exec-horizon', '8'], /exclude each other/],
    [['--policy', 'scripted:reach', '--suite', 'libero_goal', '--out', 'o'], /solves only the test back-end; add --sim test/],
    [['--policy', 'ws://127.0.0.1:8000', '--suite', 'libero_goal', '--out', 'o', '--threads', '1'], /--threads places an rdt-libero policy folder's model; a remote policy \(--policy ws:\/\/127\.0\.0\.1:8000\) runs where its server runs: drop --threads/],
    [['--policy', 'ws://127.0.0.1:8000', '--suite', 'libero_goal', '--out', 'o', '--max-batch', '4'], /--max-batch gathers observations into one local model call; a remote policy's requests go out at once, one per env, .*drop --max-batch/],
    [['--suite', 'libero_goal', '--out', 'o'], /--policy is required \(or --watch RUN_DIR\)/],
    [['--policy', 'p', '--suite', 'libero_goal', '--out', 'o', '--videos', 'some'], /--videos must be one of none, failures, all/],
  ];
  for (const [args, re] of bad) {
    const r = cli('eval', ...args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  // Port 1 on localhost: nothing listens there.
  const r = cli('eval', '--policy', 'ws://127.0.0.1:1', '--sim', 'test', '--suite', 'libero_goal', '--out', join(work, 'unreachable'));
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /--policy ws:\/\/127\.0\.0\.1:1: cannot connect to ws:\/\/127\.0\.0\.1:1: .*; start the policy server \(e\.g\. rdt-libero serve --checkpoint DIR --port N\) or fix the address/);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
});

test('doctor --sim checks import, reset, step and render through the sidecar; a missing LIBERO is one message with the fix', () => {
  const ok = cli('doctor', '--sim', '--sim-backend', 'test');
  assert.equal(ok.status, 0, ok.stderr);
  for (const stage of ['sim import', 'sim open', 'sim reset', 'sim step', 'sim render']) assert.match(ok.stdout, new RegExp(`${stage} +ok`));
  assert.match(ok.stdout, /robot0_eef_pos 3, robot0_eef_quat 4, robot0_gripper_qpos 2, robot0_joint_pos 7/);
  const hasLibero = spawnSync(process.env.PYTHON || 'python3', ['-c', 'import libero'], { stdio: 'ignore' }).status === 0;
  if (hasLibero) return; // this machine has LIBERO: the message below cannot be provoked
  const missing = cli('doctor', '--sim');
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /the 'libero' package is not installed in this Python; fix: install LIBERO into the interpreter given with --sim-python: .*pip install robosuite==1\.4\.1/);
});

test('SIGTERM mid-run: every sidecar closed (a hung one killed), the finished episodes kept, the resume command printed; running it finishes the evaluation', async () => {
  const out = join(work, 'signal');
  const marker = join(work, 'signal.hang');
  const args = ['eval', '--policy', 'scripted:reach', '--sim', 'test', '--suite', 'libero_goal', '--tasks', '0', '--episodes', '4', '--workers', '2', '--videos', 'none', '--out', out];
  // The sidecar running init 1 stops answering at its env step 12 (the request timeout is 300 s).
  const child = spawn(process.execPath, [MAIN, ...args], { env: { ...process.env, RDT_TEST_ENV_HANG_ONCE: `${marker}:0:1:12` }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const t0 = Date.now();
  while (!existsSync(marker) && Date.now() - t0 < 60_000) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 200));
  const hung = Number(readFileSync(marker, 'utf8'));
  child.kill('SIGTERM');
  assert.equal(await exited, 143, stderr);
  assert.ok(Date.now() - t0 < 60_000);
  assert.throws(() => process.kill(hung, 0), /ESRCH/, 'the hung sidecar was killed');
  const last = stderr.trim().split('\n').at(-1)!;
  assert.equal(last, `eval: interrupted by SIGTERM; the episodes recorded in ${out} are kept; resume with: rdt-libero ${args.join(' ')}`);
  const kept = readRecords(join(out, 'episodes.jsonl'));
  assert.ok(kept.length < 4 && !kept.some((r) => r.init === 1), `${kept.length} episodes recorded, the interrupted one not among them`);
  const again = spawnSync(process.execPath, [MAIN, ...last.split('resume with: rdt-libero ')[1].split(' ')], { encoding: 'utf8' });
  assert.equal(again.status, 0, again.stderr);
  assert.deepEqual(readRecords(join(out, 'episodes.jsonl')).map((r) => r.init).sort(), [0, 1, 2, 3]);
});

// The real LIBERO simulator, when a LIBERO interpreter is given: RDT_LIBERO_PYTHON=/path/to/python (the Python with
// LIBERO, robosuite 1.4.x, MuJoCo and torch; ../shared/sim/ builds one). Without it both tests are skipped with the
// reason "no LIBERO interpreter given", visible in the test report. With it: `rdt-libero doctor --sim` on that
// interpreter passes every stage, then `rdt-libero eval` runs one short episode of task 0 in every suite with
// scripted:zero (holds still) and records each with the suite's real task, its language and the steps it ran.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { SUITES } from '../src/eval/protocol.js';
import { readRecords } from '../src/eval/results.js';
import { repoRoot } from './helpers/fixtures.js';
import { tempDir } from './helpers/python.js';

const PY = process.env.RDT_LIBERO_PYTHON;
const skip = PY ? false : 'no LIBERO interpreter given (set RDT_LIBERO_PYTHON to a Python with LIBERO, robosuite 1.4.x and MuJoCo to run it)';
const MAIN = join(repoRoot(), 'dist', 'src', 'cli', 'main.js');
const { dir: work, cleanup } = tempDir('eval-libero-real');
after(cleanup);

test('real LIBERO: doctor --sim passes every stage on the given interpreter', { skip }, () => {
  const r = spawnSync(process.execPath, [MAIN, 'doctor', '--sim', '--sim-python', PY!], { encoding: 'utf8', timeout: 600_000 });
  process.stdout.write(r.stdout.split('\n').filter((l) => l.startsWith('sim ')).map((l) => `${l}\n`).join(''));
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  for (const stage of ['sim import', 'sim open', 'sim reset', 'sim step']) assert.match(r.stdout, new RegExp(`^${stage} +ok`, 'm'));
  assert.match(r.stdout, /^sim versions +(ok|warning: )/m);
  assert.equal((r.stdout.match(/^sim render +ok/gm) ?? []).length, 2, 'both cameras');
  assert.match(r.stdout, /sim open +ok \(libero_spatial task 0: "pick up the black bowl between the plate and the ramekin and place it on the plate", 50 initial states of 92 values\)/);
});

test('real LIBERO: one short episode per suite with scripted:zero, each recorded with its task and steps', { skip }, () => {
  const out = join(work, 'zero');
  const suites = Object.keys(SUITES);
  const r = spawnSync(process.execPath, [MAIN, 'eval', '--policy', 'scripted:zero', '--sim-python', PY!, '--suite', suites.join(','), '--tasks', '0', '--episodes', '1',
    '--max-steps', '5', '--workers', '2', '--videos', 'none', '--out', out], { encoding: 'utf8', timeout: 1_200_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const recs = readRecords(join(out, 'episodes.jsonl'));
  for (const x of recs) process.stdout.write(`${x.suite} task 0 "${x.language}": ${x.success ? 'success' : 'failure'} after ${x.steps} steps, ${x.env_steps} env steps, ${x.wall_s.toFixed(1)} s\n`);
  assert.deepEqual(recs.map((x) => x.suite).sort(), [...suites].sort());
  for (const x of recs) {
    assert.equal(x.error, null, `${x.suite}: ${x.error}`);
    // Holding still solves none of them: the whole budget of 5 policy steps after openpi's 10 wait steps.
    assert.deepEqual([x.success, x.steps, x.env_steps, x.max_steps, x.init, x.seeding], [false, 5, 15, 5, 0, 'per-episode'], x.suite);
    assert.ok(x.language.length > 10 && x.task_name.length > 10, `${x.suite}: ${x.task_name} "${x.language}"`);
  }
  assert.equal(recs.find((x) => x.suite === 'libero_10')!.language, 'put both the alphabet soup and the tomato sauce in the basket');
});

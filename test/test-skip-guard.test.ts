// scripts/test-skip-guard.mjs, the reporter `npm test` runs with: a skip for lack of CUDA or of a LIBERO interpreter
// passes, any other skip fails the run with one line per test naming its file and reason; todo tests are listed.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from './helpers/fixtures.js';
import { tempDir } from './helpers/python.js';

const tmp = tempDir('skip-guard');
after(tmp.cleanup);

function runWithGuard(body: string): { code: number | null; err: string } {
  const file = join(tmp.dir, `t${Math.random().toString(36).slice(2)}.test.mjs`);
  writeFileSync(file, `import { test } from 'node:test';\n${body}\n`);
  const r = spawnSync(process.execPath, ['--test', '--test-reporter=tap', '--test-reporter-destination=stdout',
    `--test-reporter=${join(repoRoot(), 'scripts', 'test-skip-guard.mjs')}`, '--test-reporter-destination=stderr', file],
  // without NODE_TEST_CONTEXT, or the child thinks it runs inside this test runner and runs nothing
  { encoding: 'utf8', cwd: tmp.dir, env: { ...process.env, NODE_TEST_CONTEXT: undefined } });
  return { code: r.status, err: r.stderr };
}

test('skips for no CUDA and no LIBERO interpreter pass, and are listed', () => {
  const r = runWithGuard(`test('ok', () => {});
test('gpu', { skip: 'no CUDA here' }, () => {});
test('cpu path', (t) => t.skip('CUDA is available here'));
test('sim', { skip: 'no LIBERO interpreter given (set RDT_LIBERO_PYTHON)' }, () => {});`);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /skipped for lack of hardware or simulator: 3/);
  assert.doesNotMatch(r.err, /FAILED/);
});

test('any other skip fails the run, naming the test, its file and the reason', () => {
  const r = runWithGuard(`test('ok', () => {});
test('needs fixtures', { skip: 'fixtures not found' }, () => {});
test('switched off', { skip: true }, () => {});
test('inside', (t) => t.skip('no h5py'));`);
  assert.equal(r.code, 1);
  assert.match(r.err, /FAILED: 3 test\(s\) skipped for a reason other than "no CUDA" or "no LIBERO interpreter given"/);
  assert.match(r.err, /t\w+\.test\.mjs: needs fixtures \(fixtures not found\)/);
  assert.match(r.err, /switched off \(\(no reason given\)\)/);
  assert.match(r.err, /inside \(no h5py\)/);
});

test('todo tests (targets not met yet) do not fail the run but are listed with whether they still fail', () => {
  const r = runWithGuard(`test('ok', () => {});
test('target', { todo: 'not learnt yet' }, () => { throw new Error('2/20 vs 0/20'); });
test('reached', { todo: 'was not learnt' }, () => {});`);
  assert.equal(r.code, 0, r.err);
  assert.match(r.err, /targets not met yet \(todo tests, run but not counted\): 2/);
  assert.match(r.err, /target \(not learnt yet\) - still failing/);
  assert.match(r.err, /reached \(was not learnt\) - passes now: drop the todo/);
  assert.doesNotMatch(r.err, /FAILED/);
});

// bench:gpu's failure path: where CUDA or a CUDA torch is missing, scripts/bench-gpu.sh and bench/gpu.ts stop with
// ONE line naming what is missing and what to do (exit 2), before building or loading anything. Skipped on a
// machine where CUDA works (there the bench itself runs).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { repoRoot } from './helpers/fixtures.js';

const skip = torch.cudaUnavailableReason() === null ? 'CUDA is available here' : false;

test('scripts/bench-gpu.sh without a CUDA torch: one line, exit 2', { skip }, () => {
  const r = spawnSync('bash', [join(repoRoot(), 'scripts', 'bench-gpu.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], /^bench:gpu: torch \S+ (is a CPU build: install a CUDA build|\(CUDA .*\) sees no CUDA device)/);
  assert.equal(r.stdout, '');
});

test('bench/gpu.ts on an addon without CUDA: one line, exit 2', { skip }, () => {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'bench', 'gpu.js')], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^bench:gpu: no CUDA to run on: libtorch is a CPU build/);
});

test('bench/nccl.ts (bench:gpu\'s NCCL part) on an addon without CUDA: one line, exit 2', { skip }, () => {
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'bench', 'nccl.js')], { encoding: 'utf8' });
  assert.equal(r.status, 2, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^bench:gpu nccl: no NCCL to run on: libtorch is a CPU build/);
  assert.equal(r.stdout, '');
});

// Checkpoint directories (atomic, limited, resumable) and nested state files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/engine/index.js';
import { saveState, loadState, resolveResume, writeCheckpoint } from '../src/train/checkpoint.js';
import { listCheckpoints, TRAINER_STATE } from '../src/policy/checkpoints.js';

test('state files round-trip nested objects with tensors, numbers and strings', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rdt-state-'));
  const a = torch.tensor([[1, 2], [3, 4]]);
  const b = torch.tensor(new BigInt64Array([7n, 8n, 9n]));
  saveState(join(dir, 'opt'), { state: { 0: { step: 3, exp_avg: a } }, groups: [{ lr: 1e-4, params: [0] }], rng: b, name: 'x' });
  const back = loadState(join(dir, 'opt')) as { state: Record<string, { step: number; exp_avg: torch.Tensor }>; groups: { lr: number; params: number[] }[]; rng: torch.Tensor; name: string };
  assert.equal(back.state['0'].step, 3);
  assert.deepEqual(back.state['0'].exp_avg.tolist(), [[1, 2], [3, 4]]);
  assert.equal(back.rng.dtype, 'int64');
  assert.deepEqual(back.rng.tolist(), [7, 8, 9]);
  assert.deepEqual(back.groups, [{ lr: 1e-4, params: [0] }]);
  assert.equal(back.name, 'x');
});

test('checkpoints: complete ones are listed, half-written ones ignored, the limit enforced', () => {
  const out = mkdtempSync(join(tmpdir(), 'rdt-ckpt-'));
  const fill = (step: number) => (d: string) => writeFileSync(join(d, TRAINER_STATE), JSON.stringify({ step }));
  for (const s of [10, 20, 30]) writeCheckpoint(out, s, fill(s), 2);
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [20, 30], 'oldest beyond the limit deleted');
  // A checkpoint whose writer died before finishing: a temp dir and a dir without trainer_state.json.
  mkdirSync(join(out, '.checkpoint-40.tmp-123'));
  mkdirSync(join(out, 'checkpoint-50'));
  assert.deepEqual(listCheckpoints(out).map((c) => c.step), [20, 30]);
  assert.equal(resolveResume(out, 'latest')!.step, 30);
  assert.equal(resolveResume(out, null), null);
  assert.throws(() => resolveResume(out, join(out, 'checkpoint-50')), /not a complete checkpoint \(no trainer_state\.json\)/);
  // A failing writer leaves no trace and the previous checkpoints intact.
  assert.throws(() => writeCheckpoint(out, 60, () => { throw new Error('disk full'); }, 2), /disk full/);
  assert.ok(!readdirSync(out).some((n) => n.includes('checkpoint-60')));
  assert.ok(existsSync(join(out, 'checkpoint-30', TRAINER_STATE)));
});

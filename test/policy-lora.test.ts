// LoRA and the policy folder: a LoRA run records its adapters in policy.json and loadPolicy refuses its folders
// with the lora-merge command to run; `rdt-libero lora-merge` carries the policy file into the merged folder
// (lora: null, origin.lora_merged_from), which then loads and predicts like any policy.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { POLICY_FILE, loadPolicy } from '../src/policy/index.js';
import { tempDir } from './helpers/python.js';
import { makeLoraRun } from './helpers/lora-run.js';
import { repoRoot } from './helpers/fixtures.js';

const { dir: work, cleanup } = tempDir('policy-lora');
after(cleanup);

test('LoRA folders are refused with the lora-merge command; the merged folder carries policy.json and loads', async () => {
  const { base: baseFinal, run, checkpoint: ck } = await makeLoraRun(work);
  const recorded = JSON.parse(readFileSync(join(ck, POLICY_FILE), 'utf8'));
  assert.equal(recorded.lora.rank, 4);
  assert.equal(recorded.lora.alpha, 8);
  assert.equal(recorded.origin.base_model, baseFinal);
  for (const d of [ck, join(ck, 'ema'), join(run, 'final')])
    assert.throws(() => loadPolicy(d), new RegExp(`LoRA adapters .*fold them into the weights first: rdt-libero lora-merge --checkpoint ${d === join(ck, 'ema') ? ck : d} --out ${d === join(ck, 'ema') ? ck : d}-merged, then load`), d);

  const merged = join(work, 'merged');
  const r = spawnSync(process.execPath, [join(repoRoot(), 'dist', 'src', 'cli', 'main.js'), 'lora-merge', '--checkpoint', ck, '--out', merged], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /and .*merged\/policy\.json/);
  const carried = JSON.parse(readFileSync(join(merged, POLICY_FILE), 'utf8'));
  assert.equal(carried.lora, null);
  assert.equal(carried.origin.lora_merged_from, resolve(ck));
  for (const k of ['action', 'state', 'cameras', 'statistics', 'encoders']) assert.deepEqual(carried[k], recorded[k], k);

  const policy = loadPolicy(merged);
  const frame = { robot: { eefPos: [0, 0, 1.1], eefAxisAngle: [Math.PI, 0, 0], gripperQpos: [0.03, -0.03] }, images: { agentview: new Uint8Array(32 * 32 * 3).fill(90), eyeInHand: new Uint8Array(32 * 32 * 3).fill(40) } };
  const out = policy.predict({ history: [null, frame], instruction: 'open the drawer' }, { seed: 1 });
  policy.dispose();
  assert.equal(out.actions.length, 64 * 7);
  assert.ok(out.actions.every(Number.isFinite));
});

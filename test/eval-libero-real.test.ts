// The real LIBERO simulator, when a LIBERO interpreter is given: RDT_LIBERO_PYTHON=/path/to/python (the Python with
// LIBERO, robosuite 1.4.x, MuJoCo and torch; ../shared/sim/ builds one). Without it both tests are skipped with the
// reason "no LIBERO interpreter given", visible in the test report. With it: `rdt-libero doctor --sim` on that
// interpreter passes every stage, then `rdt-libero eval` runs one short episode of task 0 in every suite with
// scripted:zero (holds still) and records each with the suite's real task, its language and the steps it ran; and
// every simulator perturbation (robustness evaluation) changes the rendered frames where it should and nowhere else,
// level 0 of all of them reproduces the standard frames and state exactly, and a perturbed run records them.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { SUITES } from '../src/eval/protocol.js';
import { readRecords } from '../src/eval/results.js';
import { SidecarWorker } from '../src/eval/sidecar.js';
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

test('real LIBERO: perturbations change the frames where they should, level 0 changes nothing, a perturbed run records them', { skip }, async () => {
  const s = await SidecarWorker.start({ backend: 'libero', python: PY!, startTimeoutS: 600, timeoutS: 600 });
  try {
    const info = await s.open({ suite: 'libero_spatial', task: 0, resolution: 128, seed: 7, horizon: 100 });
    assert.equal(info.suite_languages?.length, 10);
    assert.equal(info.suite_languages![0], info.language);
    const reset = (perturb?: Record<string, unknown>) => s.reset({ initIndex: 0, seed: 7, perturb });
    const base = await reset();
    const A = 'agentview_image', W = 'robot0_eye_in_hand_image';
    const changed = (o: Awaited<ReturnType<typeof reset>>, k: string) => {
      const a = base.obs[k] as Uint8Array, b = o.obs[k] as Uint8Array;
      let n = 0;
      for (let i = 0; i < a.length; i += 3) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++;
      return n / (a.length / 3);
    };
    const qpos = (o: Awaited<ReturnType<typeof reset>>) => o.state!.slice(1);
    const deg = Math.PI / 180;
    const cam = await reset({ camera: { pos_offset: [0, 0.05, 0], axis_angle: [0, 0, 5 * deg] } });
    assert.ok(changed(cam, A) > 0.5, `camera: agentview changes nearly everywhere (${changed(cam, A)})`);
    assert.equal(changed(cam, W), 0, 'camera: the wrist camera is left alone');
    assert.deepEqual(cam.state, base.state, 'camera: the scene is the same');
    const light = await reset({ lighting: { intensity_scale: 0.5, direction_axis_angle: [30 * deg, 0, 0], ambient_add: 0.2 } });
    assert.ok(changed(light, A) > 0.5 && changed(light, W) > 0.1, `lighting: both cameras (${changed(light, A)}, ${changed(light, W)})`);
    const table = await reset({ texture: { table: [0.3, -0.3, 0], floor: [0, 0, 0], walls: [0, 0, 0] } });
    const t = changed(table, A);
    assert.ok(t > 0.05 && t < 0.9, `texture: the table's pixels change, not the robot's or the objects' (${t})`);
    assert.deepEqual(table.state, base.state);
    const lay = await reset({ layout: { shift_m: 0.02, yaw_deg: 10, seed: 11 } });
    assert.deepEqual(qpos(lay).slice(0, 9), qpos(base).slice(0, 9), 'layout: the robot stays');
    assert.notDeepEqual(qpos(lay).slice(9), qpos(base).slice(9), 'layout: objects moved');
    assert.ok((lay.perturbation!.layout as { draws: number }).draws >= 1);
    const rob = await reset({ robot_init: { joint_noise: [0.05, -0.05, 0.05, -0.05, 0.05, -0.05, 0.05] } });
    assert.deepEqual(qpos(rob).slice(0, 7).map((q, i) => Math.round((q - qpos(base)[i]) * 1000)), [50, -50, 50, -50, 50, -50, 50]);
    assert.deepEqual(qpos(rob).slice(9), qpos(base).slice(9), 'robot_init: objects stay');
    assert.ok(changed(rob, W) > 0.1, 'robot_init: the wrist camera moved with the arm');
    const zero = await reset({ camera: { pos_offset: [0, 0, 0], axis_angle: [0, 0, 0] }, lighting: { intensity_scale: 1, direction_axis_angle: [0, 0, 0], ambient_add: 0 },
      texture: { table: [0, 0, 0], floor: [0, 0, 0], walls: [0, 0, 0] }, layout: { shift_m: 0, yaw_deg: 0, seed: 1 }, robot_init: { joint_noise: [0, 0, 0, 0, 0, 0, 0] } });
    assert.deepEqual([changed(zero, A), changed(zero, W)], [0, 0], 'level 0: the same frames');
    assert.deepEqual(zero.state, base.state, 'level 0: the same state');
    assert.deepEqual([changed(await reset(), A), changed(await reset(), W)], [0, 0], 'nothing survives into the next unperturbed episode');
    // A visual perturbation leaves the dynamics alone: the same actions give the very same states.
    const states = async (perturb?: Record<string, unknown>) => {
      await reset(perturb);
      const out: number[][] = [];
      for (let i = 0; i < 5; i++) out.push((await s.step([0.3, 0.2, -0.3, 0, 0, 0, i < 3 ? -1 : 1])).state!);
      return out;
    };
    assert.deepEqual(await states({ texture: { table: [0.3, -0.3, 0], floor: [0, 0.3, 0], walls: [0, 0, 0.3] }, camera: { pos_offset: [0, 0.05, 0], axis_angle: [0, 0, 0] } }), await states());
  } finally {
    await s.close();
  }
  const out = join(work, 'perturbed');
  const r = spawnSync(process.execPath, [MAIN, 'eval', '--policy', 'scripted:zero', '--sim-python', PY!, '--suite', 'libero_spatial', '--tasks', '0', '--episodes', '1', '--max-steps', '2',
    '--videos', 'none', '--out', out, '--perturb', 'camera:level=2', '--perturb', 'layout:level=1', '--perturb', 'robot_init:level=1', '--perturb', 'language:mode=wrong'], { encoding: 'utf8', timeout: 1_200_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  const recs = readRecords(join(out, 'episodes.jsonl'));
  assert.equal(recs.length, 5);
  for (const x of recs) assert.equal(x.error, null, `${x.perturbation?.set}: ${x.error}`);
  for (const set of ['camera:level=2', 'layout:level=1', 'robot_init:level=1']) assert.ok(recs.find((x) => x.perturbation?.set === set)!.perturbation!.sim_applied, set);
  assert.notEqual(recs.find((x) => x.perturbation?.set === 'language:mode=wrong')!.perturbation!.instruction, recs[0].language);
  assert.match(readFileSync(join(out, 'summary.md'), 'utf8'), /## Robustness: standard vs perturbed/);
});

// The sidecar protocol and its test back-end, request by request: the geometry (0.05 m per unit action, clipping,
// world-frame axis-angle rotation by 0.5 rad per unit, the gripper's 0.25-per-step command and finger joints),
// observations in robosuite's keys and units that the data layer's obsFrameFromEnv consumes, the flattened state
// every reply carries (and reset takes back), renders upside down, the task family (four coloured blocks, the
// instruction names the one to grasp), error replies that keep the sidecar serving, a killed sidecar seen as a
// crash, and one that never starts killed after its start-up timeout.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { gripperOpenFraction, obsFrameFromEnv } from '../src/data/adapter.js';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SidecarCrash, SimSetupError } from '../src/eval/errors.js';
import { SidecarWorker } from '../src/eval/sidecar.js';

const workers: SidecarWorker[] = [];
after(async () => {
  for (const w of workers) await w.close();
});
async function start(): Promise<SidecarWorker> {
  const w = await SidecarWorker.start({ backend: 'test' });
  workers.push(w);
  return w;
}
const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-12) =>
  assert.ok(Array.from(a).every((x, i) => Math.abs(x - b[i]) <= tol), `[${Array.from(a)}] vs [${Array.from(b)}]`);

/** Hamilton product of quaternions in (x, y, z, w) order. */
function qmul(a: number[], b: number[]): number[] {
  const [ax, ay, az, aw] = a;
  const [bx, by, bz, bw] = b;
  return [aw * bx + ax * bw + ay * bz - az * by, aw * by - ax * bz + ay * bw + az * bx, aw * bz + ax * by - ay * bx + az * bw, aw * bw - ax * bx - ay * by - az * bz];
}

test('geometry: moves, clipping, world-frame rotation, gripper, in robosuite units', async () => {
  const s = await start();
  const info = await s.open({ suite: 'libero_10', task: 9, resolution: 40, seed: 1, horizon: 100 });
  assert.equal(info.num_init_states, 50);
  assert.equal(info.state_dim, 21);
  // task 9 = scene 3's green block: LIBERO's SCENE prefix, which grab_language_from_filename strips
  assert.equal(info.task_name, 'TABLE_SCENE3_pick_up_the_green_block');
  assert.equal(info.language, 'pick up the green block');
  // state: time, eef xyz, eef quat xyzw, gripper command, red/green/blue/yellow block xyz
  const init = [2.5, 0.1, -0.05, 1.1, 1, 0, 0, 0, -1, -0.2, 0.15, 0.92, 0, 0.2, 0.92, 0.2, 0, 0.92, 0.2, 0.2, 0.92];
  let o = await s.reset({ state: init, seed: 3 });
  close(o.state!.slice(0, 9), init.slice(0, 9));
  // like LIBERO's reset (openvla#342), every reset moves the blocks ("fixtures") by up to 2 mm in x and y
  close(o.state!.slice(9), init.slice(9), 0.002 + 1e-12);
  close(o.obs.robot0_eef_pos as number[], [0.1, -0.05, 1.1]);
  close(o.obs.robot0_eef_quat as number[], [1, 0, 0, 0]); // pointing down
  close(o.obs.robot0_gripper_qpos as number[], [0.0387, -0.0387]);
  assert.equal((o.obs.robot0_joint_pos as number[]).length, 7);
  const f = obsFrameFromEnv(o.obs);
  assert.equal(gripperOpenFraction(f.robot.gripperQpos), 1);
  o = await s.step([1, -0.5, 3, 0, 0, 0, 0]); // z clipped to 1: +0.05 m
  close(o.obs.robot0_eef_pos as number[], [0.15, -0.075, 1.15], 1e-12);
  close(o.state!.slice(0, 4), [2.55, 0.15, -0.075, 1.15], 1e-12); // time advances 50 ms per step
  // rx = 1: 0.5 rad about world x, applied on the left: q = q(0.5 rad, x) * q_down
  o = await s.step([0, 0, 0, 1, 0, 0, 0]);
  close(o.obs.robot0_eef_quat as number[], qmul([Math.sin(0.25), 0, 0, Math.cos(0.25)], [1, 0, 0, 0]).map((x, _, q) => (q[3] < 0 ? -x : x)), 1e-12);
  // gripper: +1 for 4 steps = half closed; 0 holds; 4 more closes it
  for (let i = 0; i < 4; i++) o = await s.step([0, 0, 0, 0, 0, 0, 1]);
  close(o.obs.robot0_gripper_qpos as number[], [0.0387 * 0.5, -0.0387 * 0.5], 1e-12);
  o = await s.step([0, 0, 0, 0, 0, 0, 0]);
  close(o.obs.robot0_gripper_qpos as number[], [0.0387 * 0.5, -0.0387 * 0.5], 1e-12);
  for (let i = 0; i < 4; i++) o = await s.step([0, 0, 0, 0, 0, 0, 1]);
  close(o.obs.robot0_gripper_qpos as number[], [0, 0], 1e-12);
  assert.equal(o.t, 11);
  assert.equal(o.done, false); // closed, but far from the green block
  assert.equal(o.state![8], 1);
  // The state reply round-trips: resetting to it gives the same observation.
  const again = await s.reset({ state: o.state!, seed: 0 });
  close(again.obs.robot0_eef_quat as number[], o.obs.robot0_eef_quat as number[], 1e-12);
  close(again.obs.robot0_gripper_qpos as number[], o.obs.robot0_gripper_qpos as number[], 1e-12);
});

test('renders: upside down like robosuite, each block where the documented camera puts it; done only when closed on the named block', async () => {
  const s = await start();
  const info = await s.open({ suite: 'libero_goal', task: 2, resolution: 60, seed: 1, horizon: 100 });
  assert.equal(info.language, 'pick up the blue block');
  const blocks = { red: [-0.2, 0.2], green: [0.0, -0.2], blue: [0.12, 0.21], yellow: [0.2, -0.1] };
  const rgb = { red: [220, 30, 30], green: [40, 170, 60], blue: [40, 80, 220], yellow: [230, 200, 30] };
  const state = (eef: number[], grip = -1) => [0, ...eef, 1, 0, 0, 0, grip, ...Object.values(blocks).flatMap(([x, y]) => [x, y, 0.92])];
  // Over the red block, low: fingers either side of it.
  let o = await s.reset({ state: state([-0.2, 0.2, 0.93]), seed: 0 });
  const img = o.obs.agentview_image as Uint8Array;
  assert.equal(img.length, 60 * 60 * 3);
  // Upright row r sees y = 0.3 - (r + 0.5) 0.6 / 60; stored upside down, so stored row = 59 - r.
  const px = (im: Uint8Array, r: number, c: number) => Array.from(im.subarray((r * 60 + c) * 3, (r * 60 + c) * 3 + 3));
  for (const [name, [x, y]] of Object.entries(blocks)) {
    const col = Math.floor((x + 0.3) / 0.01);
    const uprightRow = Math.floor((0.3 - y) / 0.01);
    assert.deepEqual(px(img, 59 - uprightRow, col), rgb[name as keyof typeof rgb], name);
    if (Math.abs(y) > 0.05) assert.notDeepEqual(px(img, uprightRow, col), rgb[name as keyof typeof rgb], `${name} mirrored`);
  }
  // The wrist camera is centred on the gripper: the red block fills its middle.
  assert.deepEqual(px(o.obs.robot0_eye_in_hand_image as Uint8Array, 30, 30), rgb.red);
  for (let i = 0; i < 8; i++) o = await s.step([0, 0, 0, 0, 0, 0, 1]);
  assert.equal(o.done, false, 'closed on the red block, but the task names the blue one');
  o = await s.reset({ state: state([0.125, 0.205, 0.935]), seed: 0 });
  for (let i = 0; i < 6; i++) o = await s.step([0, 0, 0, 0, 0, 0, 1]);
  assert.equal(o.done, false); // command 0.5 < 0.75
  o = await s.step([0, 0, 0, 0, 0, 0, 1]);
  assert.equal(o.done, true);
  assert.equal(o.reward, 1);
  // Too high above it (more than 2 cm): not a grasp.
  o = await s.reset({ state: state([0.12, 0.21, 0.945], 1), seed: 0 });
  o = await s.step([0, 0, 0, 0, 0, 0, 1]);
  assert.equal(o.done, false);
});

test('initial states: four blocks in four of the nine regions, the same on every open; every task has the four colours', async () => {
  const s = await start();
  const seen = new Set<string>();
  for (const task of [0, 1, 4]) {
    await s.open({ suite: 'libero_object', task, resolution: 16, seed: 0, horizon: 10 });
    for (const init of [0, 17, 49]) {
      const st = (await s.reset({ initIndex: init, seed: 0 })).state!;
      const regions = [0, 1, 2, 3].map((b) => {
        const [x, y, z] = st.slice(9 + 3 * b, 12 + 3 * b);
        assert.equal(z, 0.92);
        // region centres: x in -0.2, 0, 0.2; y in 0.24, 0.04, -0.16 (no row mirrors another); 15 mm of offset in the
        // initial state, 2 mm more from the reset
        const rx = Math.round(x / 0.2), ry = Math.round((y - 0.04) / 0.2);
        assert.ok(Math.abs(x - 0.2 * rx) <= 0.017 + 1e-12 && Math.abs(y - 0.04 - 0.2 * ry) <= 0.017 + 1e-12 && Math.abs(rx) <= 1 && Math.abs(ry) <= 1, `block ${b} at ${x}, ${y}`);
        return `${rx},${ry}`;
      });
      assert.equal(new Set(regions).size, 4, 'one block per region');
      seen.add(regions.join(' '));
    }
  }
  assert.ok(seen.size >= 8, `the layouts vary (${seen.size} distinct of 9)`);
  const again = await s.open({ suite: 'libero_object', task: 4, resolution: 16, seed: 0, horizon: 10 });
  assert.equal(again.task_name, 'TABLE_SCENE2_pick_up_the_red_block');
});

test('bad requests get one error reply naming the field, and the sidecar keeps serving; a killed sidecar is a crash', async () => {
  const s = await start();
  await assert.rejects(s.open({ suite: 'libero_100', task: 0, resolution: 32, seed: 0, horizon: 10 }), /sidecar open failed \(request\): field 'suite': unknown suite 'libero_100'/);
  await assert.rejects(s.open({ suite: 'libero_goal', task: 10, resolution: 32, seed: 0, horizon: 10 }), /field 'task': libero_goal has tasks 0..9, got 10/);
  await s.open({ suite: 'libero_goal', task: 1, resolution: 32, seed: 0, horizon: 2 });
  await assert.rejects(s.reset({ initIndex: 50, seed: 0 }), /field 'init_index' must be 0..49, got 50/);
  await s.reset({ initIndex: 49, seed: 0 });
  await assert.rejects(s.step([0, 0, 0, 0, 0, 0, NaN]), /non-finite value at index 6/);
  await s.step([0, 0, 0, 0, 0, 0, -1]);
  await s.step([0, 0, 0, 0, 0, 0, -1]);
  await assert.rejects(s.step([0, 0, 0, 0, 0, 0, -1]), /executing action in terminated episode/);
  const o = await s.reset({ initIndex: 3, seed: 0 });
  assert.equal(o.t, 0);
  process.kill(s.pid, 'SIGKILL');
  await assert.rejects(s.step([0, 0, 0, 0, 0, 0, -1]), (e) => e instanceof SidecarCrash && /exited by signal SIGKILL|is not running/.test(e.message));
  assert.equal(s.alive, false);
});

test('a sidecar that never says ready is killed after --sim-start-timeout and reported as a setup problem with the fix', async () => {
  // An "interpreter" that hangs like a LIBERO import stuck in EGL initialisation: it never writes the ready line.
  const dir = mkdtempSync(join(tmpdir(), 'rdt-hang-'));
  const fake = join(dir, 'python');
  writeFileSync(fake, '#!/bin/sh\necho $$ > "$0.pid"\nexec sleep 120\n');
  chmodSync(fake, 0o755);
  const t0 = Date.now();
  try {
    await assert.rejects(SidecarWorker.start({ backend: 'libero', python: fake, startTimeoutS: 1 }),
      (e) => e instanceof SimSetupError && /did not start within 1 s \(--sim-start-timeout\) and was killed: the import of LIBERO, robosuite and MuJoCo or the render back-end's start hangs; fix: .*MUJOCO_GL=osmesa/.test(e.message));
    assert.ok(Date.now() - t0 < 30_000);
    const pid = Number(readFileSync(`${fake}.pid`, 'utf8'));
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the hung process is gone');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A synthetic LIBERO-format generator: files with the exact layout, attribute types and dtypes of the release
// ('original': 128x128, data/demo attributes, observation stored after its action) or of the OpenVLA no-noops
// replay ('regenerated': 256x256, no attributes, observation before its action, demo numbering with gaps).
// Motion is a simple kinematic OSC: the pose follows 90% of each commanded delta (robosuite's scaling and
// world-frame rotation rule), the fingers move toward the gripper command over ~8 steps, joints are a smooth
// function of the pose, and the procedural images move with the end effector and gripper. Used by tests, the
// bench and the embedded demo. Images are drawn upright, then stored vertically flipped like robosuite's.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FULL_OPEN_GAP_M } from './adapter.js';
import type { SuiteName } from './discover.js';
import { POS_SCALE_M, ROT_SCALE_RAD } from './encodings/types.js';
import type { Layout } from './hdf5/libero_file.js';
import { LiberoFileWriter } from './hdf5/libero_writer.js';
import { Rng, hash32 } from './rng.js';
import { axisAngleToMat, matMul, matToAxisAngle, matToQuat } from './rotation.js';

export interface SyntheticOptions {
  root: string;
  suite: SuiteName;
  tasks: number;
  demos: number;
  meanLength: number;
  layout?: Layout;
  /** Image side; default 128 (original) or 256 (regenerated). */
  size?: number;
  seed?: number;
  /** Idle (no-op) steps at the start of each demo (original layout only; the regenerated replay removes them). */
  leadingIdle?: number;
}

export interface SyntheticDemo {
  name: string;
  T: number;
  actions: Float64Array; // (T,7)
  eePos: Float64Array; // (T,3)
  eeOri: Float64Array; // (T,3)
  gripper: Float64Array; // (T,2)
  joints: Float64Array; // (T,7)
  states: Float64Array; // (T,S)
  robotStates: Float64Array; // (T,9)
  agentview: Uint8Array; // (T,H,W,3) stored (flipped)
  eyeInHand: Uint8Array;
  /** The stored observation index t shows the pose after action t ('original') or before it ('regenerated'). */
}

/** Pose tracking fraction of the synthetic controller. */
const TRACK = 0.9;
export const SYNTH_STATE_DIM: Record<SuiteName, number> = { libero_spatial: 92, libero_object: 110, libero_goal: 79, libero_10: 47, libero_90: 47 };

const TASK_PHRASES = [
  'pick_up_the_black_bowl_and_place_it_on_the_plate',
  'open_the_middle_drawer_of_the_cabinet',
  'put_the_bowl_on_the_stove',
  'push_the_plate_to_the_front_of_the_stove',
  'put_the_cream_cheese_in_the_bowl',
  'turn_on_the_stove',
  'put_the_wine_bottle_on_top_of_the_cabinet',
  'pick_up_the_alphabet_soup_and_place_it_in_the_basket',
  'put_the_bowl_on_the_plate',
  'open_the_top_drawer_and_put_the_bowl_inside',
];

export function syntheticTaskName(suite: SuiteName, k: number): string {
  const phrase = TASK_PHRASES[k % TASK_PHRASES.length] + (k >= TASK_PHRASES.length ? `_${Math.floor(k / TASK_PHRASES.length)}` : '');
  return suite === 'libero_10' || suite === 'libero_90' ? `KITCHEN_SCENE${(k % 10) + 1}_${phrase}` : phrase;
}

/** The BDDL-style instruction stored in problem_info, deliberately worded unlike the file name (as in the release). */
export function syntheticBddlInstruction(suite: SuiteName, k: number): string {
  const s = syntheticTaskName(suite, k).replace(/^KITCHEN_SCENE\d+_/, '').replace(/_/g, ' ');
  return s.charAt(0).toUpperCase() + s.slice(1).replace(/^Pick up/, 'Pick');
}

function draw(
  av: Uint8Array, eh: Uint8Array, off: number, S: number,
  pos: ArrayLike<number>, aa: ArrayLike<number>, gap: number, task: number,
): void {
  // Upright picture; stored flipped: row y is written at S-1-y.
  const cx = Math.round((0.5 + (pos[1] as number) * 2.5) * S);
  const cy = Math.round((0.5 + ((pos[0] as number) + 0.2) * 2.5) * S);
  const r = Math.max(2, Math.round((0.1 + (1.3 - (pos[2] as number)) * 0.3) * S));
  const open = gap / FULL_OPEN_GAP_M;
  const yaw = Math.atan2(aa[1] as number, aa[0] as number);
  const ca = Math.cos(yaw) * 0.35, sa = Math.sin(yaw) * 0.35;
  const shift = Math.round(pos[0] * 200 + pos[1] * 150);
  for (let y = 0; y < S; y++) {
    const row = off + (S - 1 - y) * S * 3;
    for (let x = 0; x < S; x++) {
      const i = row + x * 3;
      // agentview: a task-tinted gradient table, a red bar on the top rows (orientation marker), the eef as a disc.
      const dx = x - cx, dy = y - cy;
      if (y < 3) {
        av[i] = 220; av[i + 1] = 20; av[i + 2] = 20;
      } else if (dx * dx + dy * dy < r * r) {
        av[i] = 40; av[i + 1] = Math.round(60 + 180 * open); av[i + 2] = 200;
      } else {
        av[i] = (x + task * 37) & 255; av[i + 1] = (y * 2) & 255; av[i + 2] = 90 + task * 10;
      }
      // eye-in-hand: stripes turning with the gripper's rotation, moving with position, darker when closed.
      const v = (((x * ca + y * sa) | 0) + shift) & 15;
      const b = Math.round((v < 8 ? 200 : 60) * (0.5 + 0.5 * open));
      eh[i] = b; eh[i + 1] = y < 3 ? 0 : b; eh[i + 2] = (task * 25) & 255;
    }
  }
}

/** One demo, deterministically from (seed, suite, task, demo). */
export function synthesizeDemo(opts: SyntheticOptions, task: number, demo: number): SyntheticDemo {
  const layout = opts.layout ?? 'original';
  const S = opts.size ?? (layout === 'original' ? 128 : 256);
  const rng = new Rng(hash32(opts.seed ?? 0, task, demo, opts.suite.length));
  const T = Math.max(8, Math.round(opts.meanLength * rng.uniform(0.8, 1.2)));
  const idle = layout === 'original' ? (opts.leadingIdle ?? 3) : 0;
  const SD = SYNTH_STATE_DIM[opts.suite];
  // Commands: smooth sinusoids, a short pause mid-way (no-ops), gripper open -> close -> open.
  const actions = new Float64Array(T * 7);
  const ph = Array.from({ length: 6 }, () => rng.uniform(0, 2 * Math.PI));
  const fr = Array.from({ length: 6 }, () => rng.uniform(1, 3));
  const pause = Math.floor(T * 0.55);
  const closeAt = Math.floor(T * rng.uniform(0.3, 0.45));
  const openAt = Math.floor(T * rng.uniform(0.75, 0.85));
  for (let t = 0; t < T; t++) {
    const u = t / T;
    const still = t < idle || (t >= pause && t < pause + 2);
    for (let i = 0; i < 6; i++) {
      const amp = i < 3 ? 0.6 : 0.08; // LIBERO: xyz up to ~0.94, rotation dims mostly within +-0.2
      const v = still ? 0 : amp * Math.sin(2 * Math.PI * fr[i] * u + ph[i]);
      actions[t * 7 + i] = Math.max(-0.9375, Math.min(0.9375, v));
    }
    actions[t * 7 + 6] = t >= closeAt && t < openAt ? 1 : -1;
  }
  // Kinematics.
  const pos = [-0.2 + rng.uniform(-0.05, 0.05), rng.uniform(-0.05, 0.05), 1.17];
  const down = new Float64Array([1, 0, 0, 0, -1, 0, 0, 0, -1]);
  let R = matMul(axisAngleToMat([0, 0, rng.uniform(-0.3, 0.3)]), down);
  let gap = FULL_OPEN_GAP_M;
  const longWay = demo % 2 === 1; // odd demos store the axis-angle the long way round (|v| > pi), as robosuite can
  const poses: { pos: number[]; aa: number[]; gap: number; quat: number[] }[] = [];
  const snap = () => {
    let aa = matToAxisAngle(R);
    const q = matToQuat(R);
    const th = Math.hypot(...aa);
    if (longWay && th > 1e-6) aa = aa.map((x) => (-x / th) * (2 * Math.PI - th)) as typeof aa;
    poses.push({ pos: [...pos], aa: [...aa], gap, quat: q });
  };
  snap();
  for (let t = 0; t < T; t++) {
    const a = actions.subarray(t * 7, t * 7 + 7);
    for (let i = 0; i < 3; i++) pos[i] += TRACK * POS_SCALE_M * a[i];
    R = matMul(axisAngleToMat([TRACK * ROT_SCALE_RAD * a[3], TRACK * ROT_SCALE_RAD * a[4], TRACK * ROT_SCALE_RAD * a[5]]), R);
    const target = a[6] > 0 ? 0.012 : FULL_OPEN_GAP_M; // closes on an object ~1.2 cm wide
    const stepMax = FULL_OPEN_GAP_M / 8;
    gap += Math.max(-stepMax, Math.min(stepMax, target - gap));
    snap();
  }
  // poses[k] is the pose before action k (k < T) and poses[T] the final one.
  const obsOf = (t: number) => (layout === 'original' ? poses[t + 1] : poses[t]);
  const eePos = new Float64Array(T * 3), eeOri = new Float64Array(T * 3), gripper = new Float64Array(T * 2);
  const joints = new Float64Array(T * 7), states = new Float64Array(T * SD), robotStates = new Float64Array(T * 9);
  const fb = S * S * 3;
  const agentview = new Uint8Array(T * fb), eyeInHand = new Uint8Array(T * fb);
  for (let t = 0; t < T; t++) {
    const p = obsOf(t);
    eePos.set(p.pos, t * 3);
    eeOri.set(p.aa, t * 3);
    gripper[t * 2] = p.gap / 2;
    gripper[t * 2 + 1] = -p.gap / 2;
    const j = [p.pos[0] * 1.5, 0.3 + p.pos[1], -p.pos[2] + 1.0, -2.2 + p.aa[2], p.pos[0] - p.pos[1], 1.9 + 0.2 * p.aa[0], 0.8 + p.aa[1]];
    joints.set(j, t * 7);
    const pre = poses[t]; // MuJoCo state before action t: [time, qpos..., qvel...]
    states[t * SD] = t * 0.05;
    for (let i = 0; i < 7; i++) states[t * SD + 1 + i] = j[i];
    states[t * SD + 8] = pre.gap / 2;
    states[t * SD + 9] = -pre.gap / 2;
    for (let i = 10; i < SD; i++) states[t * SD + i] = Math.sin(0.1 * i + 0.01 * t) * 0.01;
    robotStates.set([p.gap / 2, -p.gap / 2, ...p.pos, ...p.quat], t * 9);
    draw(agentview, eyeInHand, t * fb, S, p.pos, p.aa, p.gap, task);
  }
  const name = `demo_${layout === 'regenerated' ? demo * 2 : demo}`; // the replay keeps gaps in the numbering
  return { name, T, actions, eePos, eeOri, gripper, joints, states, robotStates, agentview, eyeInHand };
}

export function syntheticFolder(opts: Pick<SyntheticOptions, 'suite' | 'layout'>): string {
  return (opts.layout ?? 'original') === 'regenerated' ? `${opts.suite}_no_noops` : opts.suite;
}

/** Writes one suite folder under opts.root; returns the file paths. */
export async function writeSyntheticSuite(opts: SyntheticOptions): Promise<string[]> {
  const layout = opts.layout ?? 'original';
  const S = opts.size ?? (layout === 'original' ? 128 : 256);
  const dir = join(opts.root, syntheticFolder(opts));
  mkdirSync(dir, { recursive: true });
  const files: string[] = [];
  for (let k = 0; k < opts.tasks; k++) {
    const task = syntheticTaskName(opts.suite, k);
    const path = join(dir, `${task}_demo.hdf5`);
    const w = await LiberoFileWriter.create(path, { layout, stateDim: SYNTH_STATE_DIM[opts.suite] });
    try {
      for (let d = 0; d < opts.demos; d++) {
        const demo = synthesizeDemo(opts, k, d);
        w.addDemo({ ...demo, modelFile: `<mujoco model="synthetic ${task} ${demo.name}"/>` });
      }
    } catch (e) {
      w.abort();
      throw e;
    }
    const language = syntheticBddlInstruction(opts.suite, k);
    w.finish({
      language, cameraSize: S,
      bddlFileName: `/synthetic/bddl_files/${opts.suite}/${task}.bddl`,
      bddlFileContent: `(define (problem synthetic)\n  (:language ${language})\n)`,
    });
    files.push(path);
  }
  return files;
}

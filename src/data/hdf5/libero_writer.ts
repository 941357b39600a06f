// Writes one LIBERO demonstration file (`<task>_demo.hdf5`) in the layout of the release ('original': data/ and
// per-demo attributes, as LIBERO's scripts/create_dataset.py writes them, plus the release's `tag`) or of the
// OpenVLA no-noops replay ('regenerated': the same datasets, no attributes). Keys, dtypes and units are the
// release's (libero-facts.md 1.2): float64 low-dim arrays, uint8 (T, H, W, 3) images as rendered (upside down),
// uint8 rewards/dones that are 1 on the last step only, no compression. Used by the synthetic generator and by
// the demo's recorder, so both produce exactly what the reader (libero_file.ts) reads from the release.
import h5wasm from 'h5wasm/node';
import type { File as H5File, Group } from 'h5wasm/node';
import { DataError } from '../errors.js';
import { h5ready } from './h5.js';
import type { Layout } from './libero_file.js';

/** One demonstration's arrays, row-major; T steps. Images are (T, H, W, 3) as the simulator rendered them. */
export interface LiberoDemoData {
  /** Group name: demo_N. */
  name: string;
  actions: Float64Array; // (T, 7)
  states: Float64Array; // (T, S): the simulator state before each action
  robotStates: Float64Array; // (T, 9): gripper qpos (2), eef pos (3), eef quat (4, xyzw)
  eePos: Float64Array; // (T, 3) m
  eeOri: Float64Array; // (T, 3) axis-angle rad
  gripper: Float64Array; // (T, 2) finger qpos m
  joints: Float64Array; // (T, 7) rad
  agentview: Uint8Array; // (T, H, W, 3)
  eyeInHand: Uint8Array; // (T, H, W, 3)
  /** 'original' only: the scene description stored as `model_file` (MuJoCo's XML in the release). */
  modelFile?: string;
}

/** The file-level attributes of the 'original' layout (data.attrs). */
export interface LiberoFileInfo {
  /** problem_info.language_instruction and the BDDL (:language ...) clause. */
  language: string;
  /** The task's BDDL path as recorded (the release keeps the author's machine path) and its text. */
  bddlFileName: string;
  bddlFileContent: string;
  /** env_args.env_kwargs.camera_heights/widths. */
  cameraSize: number;
  envName?: string;
  problemName?: string;
}

/**
 * A file being written, one demo at a time (a demo's images can be tens of MB; a file's, GBs): `create`, then
 * `addDemo` for each demo in order, then `finish` (which writes the file attributes and closes it).
 */
export class LiberoFileWriter {
  private data: Group;
  private total = 0;
  private count = 0;
  private side = 0;

  private constructor(readonly path: string, readonly layout: Layout, readonly stateDim: number, private f: H5File) {
    this.data = f.create_group('data');
  }

  static async create(path: string, opts: { layout: Layout; stateDim: number }): Promise<LiberoFileWriter> {
    await h5ready();
    return new LiberoFileWriter(path, opts.layout, opts.stateDim, new h5wasm.File(path, 'w'));
  }

  addDemo(demo: LiberoDemoData): void {
    const S = this.stateDim;
    const T = demo.actions.length / 7;
    const frame = demo.agentview.length / T;
    const side = Math.round(Math.sqrt(frame / 3));
    if (!Number.isInteger(T) || T < 1 || side * side * 3 !== frame || demo.eyeInHand.length !== demo.agentview.length || demo.states.length !== T * S)
      throw new DataError(`inconsistent arrays (T=${demo.actions.length / 7}, ${demo.agentview.length} image bytes, ${demo.states.length} state values for state size ${S})`,
        { file: this.path, demo: demo.name });
    if (this.side && side !== this.side) throw new DataError(`images are ${side}x${side}, earlier demos' ${this.side}x${this.side}`, { file: this.path, demo: demo.name });
    this.side = side;
    this.total += T;
    this.count++;
    const g = this.data.create_group(demo.name);
    const f64 = (grp: typeof g, name: string, arr: Float64Array, w: number) => grp.create_dataset({ name, data: arr, shape: [T, w], dtype: '<d' });
    f64(g, 'actions', demo.actions, 7);
    f64(g, 'states', demo.states, S);
    f64(g, 'robot_states', demo.robotStates, 9);
    const last = new Uint8Array(T);
    last[T - 1] = 1;
    g.create_dataset({ name: 'rewards', data: last, shape: [T], dtype: '<B' });
    g.create_dataset({ name: 'dones', data: last, shape: [T], dtype: '<B' });
    const obs = g.create_group('obs');
    const eeStates = new Float64Array(T * 6);
    for (let t = 0; t < T; t++) {
      eeStates.set(demo.eePos.subarray(t * 3, t * 3 + 3), t * 6);
      eeStates.set(demo.eeOri.subarray(t * 3, t * 3 + 3), t * 6 + 3);
    }
    obs.create_dataset({ name: 'agentview_rgb', data: demo.agentview, shape: [T, side, side, 3], dtype: '<B' });
    f64(obs, 'ee_ori', demo.eeOri, 3);
    f64(obs, 'ee_pos', demo.eePos, 3);
    f64(obs, 'ee_states', eeStates, 6);
    obs.create_dataset({ name: 'eye_in_hand_rgb', data: demo.eyeInHand, shape: [T, side, side, 3], dtype: '<B' });
    f64(obs, 'gripper_states', demo.gripper, 2);
    f64(obs, 'joint_states', demo.joints, 7);
    if (this.layout === 'original') {
      g.create_attribute('num_samples', T, [], '<q');
      g.create_attribute('model_file', demo.modelFile ?? '');
      g.create_attribute('init_state', demo.states.slice(0, S), [S], '<d');
    }
  }

  /** The file attributes ('original' layout; the regenerated replay writes none) and close. */
  finish(info?: LiberoFileInfo): void {
    try {
      if (this.layout === 'original') {
        if (!info) throw new DataError("the 'original' layout needs the file attributes (problem_info, env_args, ...)", { file: this.path });
        const data = this.data;
        const envName = info.envName ?? 'Libero_Tabletop_Manipulation';
        const problemName = info.problemName ?? 'libero_tabletop_manipulation';
        data.create_attribute('env_name', envName);
        data.create_attribute('problem_info', JSON.stringify({ problem_name: problemName, domain_name: 'robosuite', language_instruction: info.language }));
        data.create_attribute('macros_image_convention', 'opengl');
        data.create_attribute('bddl_file_name', info.bddlFileName);
        data.create_attribute('bddl_file_content', info.bddlFileContent);
        data.create_attribute('env_args', JSON.stringify({
          type: 1, env_name: envName, problem_name: problemName, bddl_file: info.bddlFileName,
          env_kwargs: {
            robots: ['Panda'], controller_configs: { type: 'OSC_POSE' }, control_freq: 20, camera_heights: info.cameraSize, camera_widths: info.cameraSize,
            camera_names: ['robot0_eye_in_hand', 'agentview'], reward_shaping: true, ignore_done: true,
          },
        }));
        data.create_attribute('num_demos', this.count, [], '<q');
        data.create_attribute('total', this.total, [], '<q');
        data.create_attribute('tag', 'libero-v1');
      }
    } finally {
      this.f.close();
    }
  }

  /** Close without the attributes (the caller deletes the file). */
  abort(): void {
    this.f.close();
  }
}

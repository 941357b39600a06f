// Demonstrations recorded in the simulator: the scripted expert (expert.ts) runs in the sidecar's test back-end,
// through the same SidecarWorker the evaluation uses, and every successful episode is written in the layout of
// LIBERO's released files (src/data/hdf5/libero_writer.ts) exactly as LIBERO's scripts/create_dataset.py records
// them: `states[j]` is the simulator state before `actions[j]`, and the observation stored at j is the one after
// `actions[j]` (the release's one-step offset, which the data layer's 'auto' alignment undoes), images as rendered
// (upside down), `init_state` = `states[0]`, `problem_info` / `env_args` on `data`. One file per task, named
// `<task_name>_demo.hdf5` under `<root>/<suite>/`, so the data layer reads it as it reads the release.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { type LiberoDemoData, LiberoFileWriter } from '../data/hdf5/libero_writer.js';
import { hash32 } from '../data/rng.js';
import { quatToAxisAngle } from '../data/rotation.js';
import { SidecarWorker, type SimObs } from '../eval/sidecar.js';
import { BLOCK_STATE, BlockExpert, namedBlock } from './expert.js';
import { DemoError } from './errors.js';

export interface RecordOptions {
  /** The dataset root: files go to <root>/<suite>/. */
  root: string;
  suite: string;
  tasks: readonly number[];
  /** The fixed initial states (indices) to record one demonstration from, per task. */
  inits: readonly number[];
  /** Camera height = width, px. */
  resolution: number;
  seed: number;
  /** Steps after which an episode the expert has not finished is dropped (counted). */
  maxSteps?: number;
  /** Simulator processes recording tasks in parallel. */
  workers?: number;
  python?: string;
  log?: (line: string) => void;
}

export interface RecordResult {
  files: string[];
  demos: number;
  steps: number;
  /** Episodes the expert did not finish within maxSteps (not written). */
  dropped: number;
}

interface Episode {
  demo: LiberoDemoData;
  steps: number;
}

/** One expert episode from a fixed initial state; null when the expert did not succeed within maxSteps. */
async function recordEpisode(sim: SidecarWorker, block: number, init: number, seed: number, maxSteps: number, name: string, modelFile: string): Promise<Episode | null> {
  const expert = new BlockExpert(block, seed);
  let o: SimObs = await sim.reset({ initIndex: init, seed });
  const frames: { state: number[]; action: Float64Array; after: SimObs }[] = [];
  for (let j = 0; j < maxSteps && !o.done; j++) {
    const state = o.state;
    if (!state || state.length !== BLOCK_STATE.dim) throw new DemoError(`the test back-end sent a state of ${state?.length ?? 0} numbers, expected ${BLOCK_STATE.dim} (a sidecar/ from another checkout?)`);
    const action = expert.act(state);
    o = await sim.step(action);
    frames.push({ state, action, after: o });
  }
  if (!o.done) return null;
  const T = frames.length;
  const S = BLOCK_STATE.dim;
  const img = (o.obs.agentview_image as Uint8Array).length;
  const d: LiberoDemoData = {
    name, modelFile,
    actions: new Float64Array(T * 7), states: new Float64Array(T * S), robotStates: new Float64Array(T * 9),
    eePos: new Float64Array(T * 3), eeOri: new Float64Array(T * 3), gripper: new Float64Array(T * 2), joints: new Float64Array(T * 7),
    agentview: new Uint8Array(T * img), eyeInHand: new Uint8Array(T * img),
  };
  frames.forEach(({ state, action, after }, t) => {
    const ob = after.obs as Record<string, number[] | Uint8Array>;
    const pos = ob.robot0_eef_pos as number[], quat = ob.robot0_eef_quat as number[], q = ob.robot0_gripper_qpos as number[];
    d.actions.set(action, t * 7);
    d.states.set(state, t * S);
    d.robotStates.set([...q, ...pos, ...quat], t * 9);
    d.eePos.set(pos, t * 3);
    d.eeOri.set(quatToAxisAngle(quat), t * 3); // robosuite's quat2axisangle, as obs/ee_ori stores it
    d.gripper.set(q, t * 2);
    d.joints.set(ob.robot0_joint_pos as number[], t * 7);
    d.agentview.set(ob.agentview_image as Uint8Array, t * img);
    d.eyeInHand.set(ob.robot0_eye_in_hand_image as Uint8Array, t * img);
  });
  return { demo: d, steps: T };
}

/** The BDDL-style text the release stores in bddl_file_content; the test back-end has no BDDL file, and says so. */
function bddlText(taskName: string, language: string): string {
  return `; rdt-libero test back-end (sidecar/reach_env.py): no BDDL file; task ${taskName}\n` +
    `(define (problem LIBERO_Tabletop_Manipulation)\n  (:domain robosuite)\n  (:language ${language})\n)\n`;
}

/** Record one file per task under <root>/<suite>/, each written under a temporary name and renamed when complete. */
export async function recordDemos(o: RecordOptions): Promise<RecordResult> {
  const dir = join(o.root, o.suite);
  mkdirSync(dir, { recursive: true });
  for (const f of readdirSync(dir)) if (f.startsWith('.tmp-')) rmSync(join(dir, f), { force: true });
  const maxSteps = o.maxSteps ?? 100;
  const result: RecordResult = { files: [], demos: 0, steps: 0, dropped: 0 };
  const queue = [...o.tasks];
  const t0 = performance.now();
  const worker = async (): Promise<void> => {
    const sim = await SidecarWorker.start({ backend: 'test', python: o.python });
    try {
      while (queue.length) {
        const task = queue.shift()!;
        const info = await sim.open({ suite: o.suite, task, resolution: o.resolution, seed: o.seed, horizon: maxSteps + 10 });
        const block = namedBlock(info.language);
        if (block < 0) throw new DemoError(`test back-end task ${o.suite} ${task}: the instruction '${info.language}' names no block colour`);
        const final = join(dir, `${info.task_name}_demo.hdf5`);
        const tmp = join(dir, `.tmp-${process.pid}-${task}.hdf5`);
        const w = await LiberoFileWriter.create(tmp, { layout: 'original', stateDim: BLOCK_STATE.dim });
        let n = 0, steps = 0;
        try {
          for (const init of o.inits) {
            const ep = await recordEpisode(sim, block, init, hash32(o.seed, task, init), maxSteps, `demo_${n}`,
              `<!-- rdt-libero test back-end (sidecar/reach_env.py): no MJCF; ${o.suite} task ${task}, initial state ${init} -->`);
            if (!ep) {
              result.dropped++;
              continue;
            }
            w.addDemo(ep.demo);
            n++;
            steps += ep.steps;
          }
        } catch (e) {
          w.abort();
          rmSync(tmp, { force: true });
          throw e;
        }
        w.finish({ language: info.language, cameraSize: o.resolution, bddlFileName: `test_backend/${o.suite}/${info.task_name}.bddl`, bddlFileContent: bddlText(info.task_name, info.language) });
        renameSync(tmp, final);
        result.files.push(final);
        result.demos += n;
        result.steps += steps;
        o.log?.(`record: ${o.suite} task ${task} "${info.language}": ${n} demos, ${steps} steps -> ${final} ` +
          `(${result.files.length}/${o.tasks.length} tasks, ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
      }
    } finally {
      await sim.close();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.workers ?? 1, o.tasks.length)) }, () => worker()));
  result.files.sort();
  return result;
}

/** Whether <root>/<suite>/ holds one finished file per task name (temporary files do not count). */
export function recordedFiles(root: string, suite: string): string[] {
  const dir = join(root, suite);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('_demo.hdf5') && !f.startsWith('.')).map((f) => join(dir, f)) : [];
}

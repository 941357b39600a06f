// `rdt-libero doctor --sim`: checks a simulator install end to end through the sidecar: the import (LIBERO,
// robosuite, MuJoCo, the render back-end), one open + reset to a fixed initial state, one step, one render
// (both cameras, the right size, not blank). Each stage is a line; the first failure says what to fix. A
// robosuite/MuJoCo pair outside the known-good ones (sim_versions.ts) is named with its fix, and repeated in the
// message of any stage that fails after it.
import { EvalError } from './errors.js';
import { PROTOCOLS } from './protocol.js';
import { SidecarWorker, type SidecarOptions } from './sidecar.js';
import { simVersionAdvice } from './sim_versions.js';

export async function checkSim(opts: SidecarOptions, say: (line: string) => void, resolution = 128): Promise<void> {
  const t0 = performance.now();
  const ms = () => `${(performance.now() - t0).toFixed(0)} ms`;
  const sim = await SidecarWorker.start(opts);
  let advice: string | null = null;
  try {
    const hello = await sim.ready;
    say(`sim import     ok (${opts.backend} back-end, python ${String(hello.python)}, ${Object.entries(sim.versions).map(([k, v]) => `${k} ${v}`).join(', ')}) ${ms()}`);
    advice = simVersionAdvice(sim.versions);
    if (sim.versions.robosuite !== undefined) say(advice ? `sim versions   warning: ${advice}` : `sim versions   ok (robosuite ${sim.versions.robosuite} + mujoco ${sim.versions.mujoco}: a pair known to work)`);
    const info = await sim.open({ suite: 'libero_spatial', task: 0, resolution, seed: 7, horizon: 1000 });
    say(`sim open       ok (libero_spatial task 0: "${info.language}", ${info.num_init_states} initial states of ${info.state_dim} values) ${ms()}`);
    await sim.reset({ initIndex: 0, seed: 7 });
    say(`sim reset      ok (initial state 0) ${ms()}`);
    const o = await sim.step(PROTOCOLS.openpi.waitAction);
    const low = ['robot0_eef_pos', 'robot0_eef_quat', 'robot0_gripper_qpos', 'robot0_joint_pos'].map((k) => `${k} ${(o.obs[k] as number[] | undefined)?.length ?? 'missing'}`);
    say(`sim step       ok (${low.join(', ')}) ${ms()}`);
    for (const k of ['agentview_image', 'robot0_eye_in_hand_image']) {
      const img = o.obs[k] as Uint8Array | undefined;
      if (!img) throw new EvalError(`the step reply has no ${k}: the cameras did not render`);
      if (img.length !== resolution * resolution * 3) throw new EvalError(`${k} has ${img.length} bytes, expected ${resolution}x${resolution}x3`);
      let lo = 255, hi = 0;
      for (const v of img) (lo = Math.min(lo, v), hi = Math.max(hi, v));
      if (hi - lo < 8) throw new EvalError(`${k} is blank (all values in ${lo}..${hi}): the renderer produced no image; try another MUJOCO_GL (egl, osmesa, glfw)`);
      say(`sim render     ok (${k} ${resolution}x${resolution}, values ${lo}..${hi}) ${ms()}`);
    }
  } catch (e) {
    if (advice && e instanceof Error) e.message += `\n(${advice})`;
    throw e;
  } finally {
    await sim.close();
  }
}

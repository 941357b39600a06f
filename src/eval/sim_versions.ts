// Which robosuite/MuJoCo pairs are known to run LIBERO, for `doctor --sim` and the start of an evaluation.
// robosuite 1.4.1 asks only for mujoco>=2.3.0 (its setup.py), so `pip install robosuite==1.4.1 mujoco` takes the
// newest MuJoCo, with which it breaks: with MuJoCo 3.14, MjData.qM is gone and mj_fullM takes (m, d, dst)
// (robosuite/controllers/base_controller.py calls mj_fullM(m, dst, d.qM)), and the joint-type enum no longer
// compares equal to the numpy int robosuite/utils/binding_utils.py reads. openpi's LIBERO example pins
// robosuite==1.4.1 with mujoco==3.2.3 (examples/libero/requirements.txt at openpi 15a9616, Python 3.8, numpy
// 1.22.4): that is the pair known to work.

export const KNOWN_PAIRS: readonly { robosuite: string; mujoco: string; source: string }[] = [
  { robosuite: '1.4.1', mujoco: '3.2.3', source: "openpi's examples/libero/requirements.txt at 15a9616" },
];

export const MUJOCO_FIX = 'pip install mujoco==3.2.3 (into the --sim-python interpreter; openpi runs that pair on Python 3.8 with numpy 1.22.4)';

/**
 * null when the sidecar's versions are a known pair (or name no robosuite: the test back-end); otherwise one line
 * naming the pair, what is known about it, and the fix.
 */
export function simVersionAdvice(versions: Readonly<Record<string, string>>): string | null {
  const rs = versions.robosuite, mj = versions.mujoco;
  if (rs === undefined) return null;
  if (KNOWN_PAIRS.some((p) => p.robosuite === rs && p.mujoco === mj)) return null;
  const known = KNOWN_PAIRS.map((p) => `robosuite ${p.robosuite} + mujoco ${p.mujoco} (${p.source})`).join('; ');
  const [major, minor] = (mj ?? '').split('.').map(Number);
  const broken = /^1\.4\./.test(rs) && (major > 3 || (major === 3 && minor >= 14))
    ? ' robosuite 1.4.x fails with MuJoCo 3.14 unless patched (MjData.qM is gone, mj_fullM takes (m, d, dst), the joint-type enum is no numpy int);'
    : '';
  return `robosuite ${rs} with MuJoCo ${mj ?? 'unknown'} is not a pair known to work for LIBERO (known: ${known});${broken} ` +
    `results may differ from published runs or the simulator may fail; fix: ${MUJOCO_FIX}`;
}

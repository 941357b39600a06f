// Observations as named arrays (the input file of `rdt-libero predict --decode`) -> PolicyInput[]. Every tensor
// and shape is checked, with errors naming the file, the tensor and the expected shape.
import type { Tensor } from '../engine/index.js';
import type { ObsFrame } from '../data/adapter.js';
import type { PolicyInput } from './policy.js';
import { PolicyError } from './errors.js';

export const OBSERVATION_INPUTS = [
  { name: 'eef_pos', shape: '(B, H, 3)', what: 'end-effector position, m (robot0_eef_pos / obs/ee_pos)', required: true },
  { name: 'eef_axis_angle', shape: '(B, H, 3)', what: 'end-effector axis-angle, rad (obs/ee_ori); or eef_quat', required: false },
  { name: 'eef_quat', shape: '(B, H, 4)', what: 'end-effector quaternion x,y,z,w (robot0_eef_quat); or eef_axis_angle', required: false },
  { name: 'gripper_qpos', shape: '(B, H, 2)', what: 'finger joint positions, m', required: true },
  { name: 'joint_pos', shape: '(B, H, 7)', what: 'arm joint angles, rad (policies with use_joints)', required: false },
  { name: 'agentview', shape: '(B, H, h, w, 3) uint8', what: 'agentview frames as rendered/stored (the policy orients them)', required: false },
  { name: 'eye_in_hand', shape: '(B, H, h, w, 3) uint8', what: 'wrist frames as rendered/stored', required: false },
  { name: 'frame_valid', shape: '(B, H) uint8', what: '0 = before the episode start (that frame is ignored); default all 1', required: false },
] as const;

/**
 * Named tensors -> one PolicyInput per batch row, frames oldest first. `instructions`: one per row, or one for all.
 */
export function policyInputsFromTensors(tensors: Map<string, Tensor>, instructions: readonly string[], source: string): PolicyInput[] {
  const known = new Set<string>(OBSERVATION_INPUTS.map((i) => i.name));
  const extra = [...tensors.keys()].filter((k) => !known.has(k));
  if (extra.length) throw new PolicyError(`${source}: unexpected tensors ${extra.map((k) => `'${k}'`).join(', ')}; expected ${[...known].join(', ')}`);
  const need = (k: string) => {
    const t = tensors.get(k);
    if (!t) throw new PolicyError(`${source}: missing tensor '${k}' ${OBSERVATION_INPUTS.find((i) => i.name === k)!.shape}`);
    return t;
  };
  const pos = need('eef_pos');
  if (pos.ndim !== 3 || pos.shape[2] !== 3) throw new PolicyError(`${source}: 'eef_pos' has shape [${pos.shape}], expected (B, H, 3)`);
  const [B, H] = pos.shape;
  const check = (k: string, tail: number[] | null, uint8 = false) => {
    const t = tensors.get(k);
    if (!t) return null;
    const ok = t.shape[0] === B && t.shape[1] === H && (tail === null ? t.ndim === 5 && t.shape[4] === 3 : t.ndim === 2 + tail.length && tail.every((d, i) => t.shape[2 + i] === d));
    if (!ok) throw new PolicyError(`${source}: '${k}' has shape [${t.shape}], expected ${OBSERVATION_INPUTS.find((i) => i.name === k)!.shape} with B=${B}, H=${H}`);
    if (uint8 && t.dtype !== 'uint8') throw new PolicyError(`${source}: '${k}' is ${t.dtype}, expected uint8 pixels`);
    return t;
  };
  const aa = check('eef_axis_angle', [3]);
  const quat = check('eef_quat', [4]);
  if (!aa && !quat) throw new PolicyError(`${source}: needs 'eef_axis_angle' (B, H, 3) or 'eef_quat' (B, H, 4) for the end-effector rotation`);
  const grip = check('gripper_qpos', [2]) ?? need('gripper_qpos');
  const joints = check('joint_pos', [7]);
  const av = check('agentview', null, true);
  const eh = check('eye_in_hand', null, true);
  const valid = check('frame_valid', [], true);
  if (instructions.length !== 1 && instructions.length !== B)
    throw new PolicyError(`${source}: ${instructions.length} instructions for ${B} observations (give one per row, or one for all)`);
  const f64 = (t: Tensor | null) => (t ? t.toFloat64() : null);
  const [P, AA, Q, G, J] = [f64(pos), f64(aa), f64(quat), f64(grip), f64(joints)];
  const [AV, EH, V] = [av, eh, valid].map((t) => (t ? (t.contiguous().data() as Uint8Array) : null));
  const frameBytes = (t: Tensor | null) => (t ? t.shape[2] * t.shape[3] * 3 : 0);
  const out: PolicyInput[] = [];
  for (let b = 0; b < B; b++) {
    const history: (ObsFrame | null)[] = [];
    for (let h = 0; h < H; h++) {
      const i = b * H + h;
      if (V && V[i] === 0) {
        history.push(null);
        continue;
      }
      const img = (arr: Uint8Array | null, t: Tensor | null) => (arr ? arr.subarray(i * frameBytes(t), (i + 1) * frameBytes(t)) : null);
      history.push({
        robot: {
          eefPos: P!.subarray(i * 3, i * 3 + 3),
          ...(Q ? { eefQuat: Q.subarray(i * 4, i * 4 + 4) } : { eefAxisAngle: AA!.subarray(i * 3, i * 3 + 3) }),
          gripperQpos: G!.subarray(i * 2, i * 2 + 2),
          jointPos: J ? J.subarray(i * 7, i * 7 + 7) : null,
        },
        images: { agentview: img(AV, av), eyeInHand: img(EH, eh) },
      });
    }
    if (!history[H - 1]) throw new PolicyError(`${source}: row ${b}: the newest frame (h = ${H - 1}) is marked invalid in 'frame_valid'; it is the current observation`);
    out.push({ history, instruction: instructions.length === 1 ? instructions[0] : instructions[b] });
  }
  return out;
}

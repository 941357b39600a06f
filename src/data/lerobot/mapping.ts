// Which columns of a LeRobot dataset hold what a LIBERO sample needs, per known dataset, or given by the user.
//
// Both known copies come from OpenVLA's no-noops regeneration of LIBERO (observation recorded before its action,
// no idle steps), through RLDS, where the frames were turned 180 degrees ([::-1, ::-1]) and the 8-D state is
// [eef position (3, m), axis-angle (3, rad), gripper finger qpos (2, m)]; actions are LIBERO's 7-D OSC_POSE
// commands in [-1, 1] (gripper -1 open, +1 close), one per 20 Hz simulator step, though both say fps 10.
// - openpi, examples/libero/convert_libero_data_to_lerobot.py at 15a9616 (physical-intelligence/libero): columns
//   image, wrist_image, state, actions; fps 10.
// - LeRobot, docs/source/libero.mdx and src/lerobot/envs/configs.py at 7427f31 (HuggingFaceVLA/libero and
//   lerobot/libero): observation.images.image (agentview), observation.images.image2 (wrist), observation.state
//   (8-D, as LiberoProcessorStep builds it from eef pos, quat2axisangle(eef quat), gripper qpos), action (7-D).
import { DataError } from '../errors.js';
import { type ImageOrientation, ORIENTATIONS } from '../images.js';
import { LIBERO_CTRL_FREQ } from '../encodings/types.js';

export type Slice = readonly [number, number];

export interface LeRobotMapping {
  /** 'openpi_libero', 'lerobot_libero' or 'user'. */
  name: string;
  agentview: string;
  eyeInHand: string | null;
  state: string;
  eefPos: Slice;
  /** Axis-angle (rad) or quaternion (x, y, z, w): one of the two is needed for the state's rotation. */
  eefAxisAngle: Slice | null;
  eefQuat: Slice | null;
  gripperQpos: Slice;
  action: string;
  /** 'task' (the tasks table through task_index) or a string column of the data files. */
  instruction: string;
  /** What the stored frames already had done relative to the simulator's raw render. */
  storedOrientation: ImageOrientation;
  /** The rate the actions were executed at, Hz (not the metadata's fps). */
  ctrlFreq: number;
}

const LIBERO_STATE = { eefPos: [0, 3], eefAxisAngle: [3, 6], eefQuat: null, gripperQpos: [6, 8] } as const;

export const KNOWN_MAPPINGS: readonly LeRobotMapping[] = Object.freeze([
  {
    name: 'openpi_libero', agentview: 'image', eyeInHand: 'wrist_image', state: 'state', action: 'actions', ...LIBERO_STATE,
    instruction: 'task', storedOrientation: 'rot180', ctrlFreq: LIBERO_CTRL_FREQ,
  },
  {
    name: 'lerobot_libero', agentview: 'observation.images.image', eyeInHand: 'observation.images.image2', state: 'observation.state',
    action: 'action', ...LIBERO_STATE, instruction: 'task', storedOrientation: 'rot180', ctrlFreq: LIBERO_CTRL_FREQ,
  },
]);

/** The user's mapping as written in the config (data.lerobot_mapping); all '' = pick a known mapping by columns. */
export interface MappingConfig {
  agentview: string;
  eye_in_hand: string;
  state: string;
  eef_pos: string;
  eef_axis_angle: string;
  eef_quat: string;
  gripper_qpos: string;
  action: string;
  instruction: string;
  stored_orientation: string;
}

export const EMPTY_MAPPING: Readonly<MappingConfig> = Object.freeze({
  agentview: '', eye_in_hand: '', state: '', eef_pos: '', eef_axis_angle: '', eef_quat: '', gripper_qpos: '', action: '',
  instruction: '', stored_orientation: '',
});

export function isEmptyMapping(m: Partial<MappingConfig> | undefined): boolean {
  return !m || Object.values(m).every((v) => v === '' || v === undefined);
}

function slice(key: string, v: string, len: number): Slice | null {
  if (v === '') return null;
  const m = /^(\d+):(\d+)$/.exec(v.trim());
  if (!m || Number(m[2]) - Number(m[1]) !== len)
    throw new DataError(`data.lerobot_mapping.${key} is '${v}': give 'start:end' indices into the state column spanning ${len} values`, { key: `data.lerobot_mapping.${key}` });
  return [Number(m[1]), Number(m[2])];
}

/** The user's mapping, checked: every field that a sample needs, with a line naming what is missing. */
export function userMapping(c: Partial<MappingConfig>): LeRobotMapping {
  const m = { ...EMPTY_MAPPING, ...c };
  const need = (k: keyof MappingConfig) => {
    if (!m[k]) throw new DataError(`data.lerobot_mapping.${k} is required once any mapping key is given`, { key: `data.lerobot_mapping.${k}` },
      'give agentview, state, eef_pos, gripper_qpos, action and eef_axis_angle or eef_quat');
    return m[k];
  };
  const orient = (m.stored_orientation || 'none') as ImageOrientation;
  if (!ORIENTATIONS.includes(orient))
    throw new DataError(`data.lerobot_mapping.stored_orientation is '${m.stored_orientation}'`, { key: 'data.lerobot_mapping.stored_orientation' }, `use ${ORIENTATIONS.join(', ')}`);
  const eefAxisAngle = slice('eef_axis_angle', m.eef_axis_angle, 3);
  const eefQuat = slice('eef_quat', m.eef_quat, 4);
  if (!eefAxisAngle && !eefQuat)
    throw new DataError('data.lerobot_mapping needs eef_axis_angle or eef_quat: the state and the eef_target_pose encoding need the end-effector rotation', { key: 'data.lerobot_mapping.eef_axis_angle' });
  return {
    name: 'user', agentview: need('agentview'), eyeInHand: m.eye_in_hand || null, state: need('state'), action: need('action'),
    eefPos: slice('eef_pos', need('eef_pos'), 3)!, eefAxisAngle, eefQuat, gripperQpos: slice('gripper_qpos', need('gripper_qpos'), 2)!,
    instruction: m.instruction || 'task', storedOrientation: orient, ctrlFreq: LIBERO_CTRL_FREQ,
  };
}

/** The known mapping whose columns the dataset's features have, or an error listing what it has. */
export function knownMapping(features: Record<string, unknown>, infoPath: string): LeRobotMapping {
  const have = Object.keys(features);
  const hit = KNOWN_MAPPINGS.find((m) => [m.agentview, m.eyeInHand, m.state, m.action].every((c) => c === null || have.includes(c)));
  if (!hit)
    throw new DataError(`no known LIBERO column layout matches the features (${have.join(', ')})`, { file: infoPath, key: 'features' },
      "known: openpi's (image, wrist_image, state, actions) and LeRobot's (observation.images.image, observation.images.image2, observation.state, action); " +
      'for another dataset give its columns with data.lerobot_mapping');
  return hit;
}

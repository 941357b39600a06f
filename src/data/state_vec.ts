// RDT's unified 128-d state/action vector (official configs/state_vec.py), as a typed, named index map.
// Single-arm robots use the right-arm slots; a plain name without `right_` aliases the right arm.

export const STATE_VEC_LEN = 128;

function build(): Record<string, number> {
  const m: Record<string, number> = {};
  const both = (name: string, i: number) => {
    m[`right_${name}`] = i;
    m[name] = i;
  };
  for (let i = 0; i < 10; i++) both(`arm_joint_${i}_pos`, i);
  for (let i = 0; i < 5; i++) both(`gripper_joint_${i}_pos`, 10 + i);
  both('gripper_open', 10);
  for (let i = 0; i < 10; i++) both(`arm_joint_${i}_vel`, 15 + i);
  for (let i = 0; i < 5; i++) both(`gripper_joint_${i}_vel`, 25 + i);
  both('gripper_open_vel', 25);
  ['x', 'y', 'z'].forEach((a, i) => both(`eef_pos_${a}`, 30 + i));
  for (let i = 0; i < 6; i++) both(`eef_angle_${i}`, 33 + i);
  ['x', 'y', 'z'].forEach((a, i) => both(`eef_vel_${a}`, 39 + i));
  ['roll', 'pitch', 'yaw'].forEach((a, i) => both(`eef_angular_vel_${a}`, 42 + i));
  for (let i = 0; i < 10; i++) m[`left_arm_joint_${i}_pos`] = 50 + i;
  for (let i = 0; i < 5; i++) m[`left_gripper_joint_${i}_pos`] = 60 + i;
  m.left_gripper_open = 60;
  for (let i = 0; i < 10; i++) m[`left_arm_joint_${i}_vel`] = 65 + i;
  for (let i = 0; i < 5; i++) m[`left_gripper_joint_${i}_vel`] = 75 + i;
  m.left_gripper_open_vel = 75;
  ['x', 'y', 'z'].forEach((a, i) => (m[`left_eef_pos_${a}`] = 80 + i));
  for (let i = 0; i < 6; i++) m[`left_eef_angle_${i}`] = 83 + i;
  ['x', 'y', 'z'].forEach((a, i) => (m[`left_eef_vel_${a}`] = 89 + i));
  ['roll', 'pitch', 'yaw'].forEach((a, i) => (m[`left_eef_angular_vel_${a}`] = 92 + i));
  m.base_vel_x = 100;
  m.base_vel_y = 101;
  m.base_angular_vel = 102;
  return m;
}

/** name -> index, the official 144 names onto 93 indices. */
export const STATE_VEC_IDX: Readonly<Record<string, number>> = Object.freeze(build());

/** Index of a named slot; throws on an unknown name. */
export function slot(name: string): number {
  const i = STATE_VEC_IDX[name];
  if (i === undefined) throw new Error(`state_vec: unknown slot name '${name}'`);
  return i;
}

/** The slots LIBERO fills, by meaning. Ranges are [start, end). */
export const SLOTS = Object.freeze({
  /** 7 arm joint angles, rad. */
  joints: [0, 7] as const,
  /** gripper open fraction in [0, 1], 1 = open. */
  gripperOpen: 10,
  /** end-effector position, m, world frame. */
  eefPos: [30, 33] as const,
  /** end-effector rotation, 6-D: first two columns of R, column-major [R00,R10,R20,R01,R11,R21]. */
  eefRot6d: [33, 39] as const,
  /** end-effector linear velocity, m/s, world frame. */
  eefVel: [39, 42] as const,
  /** end-effector angular velocity (world-frame rotation-vector rate), rad/s. */
  eefAngVel: [42, 45] as const,
});

export function range(r: readonly [number, number]): number[] {
  const out: number[] = [];
  for (let i = r[0]; i < r[1]; i++) out.push(i);
  return out;
}

/** Human name of an index (the right-arm spelling), for reports. */
export function slotName(i: number): string {
  for (const [k, v] of Object.entries(STATE_VEC_IDX)) if (v === i && (k.startsWith('right_') || !STATE_VEC_IDX[`right_${k}`])) return k;
  return `reserved_${i}`;
}

/** A 128-long 0/1 mask with ones at `slots`. */
export function maskOf(slots: readonly number[]): Float32Array {
  const m = new Float32Array(STATE_VEC_LEN);
  for (const s of slots) m[s] = 1;
  return m;
}

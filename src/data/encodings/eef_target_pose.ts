// `eef_target_pose`: the goal pose the OSC controller is given, so chunks look like RDT's pre-training actions
// (future absolute eef poses at 30-38). robosuite v1.4 set_goal_position/set_goal_orientation:
//   goal_pos = measured_pos + 0.05 * a[0:3]
//   goal_R   = R(axisangle(0.5 * a[3:6])) * measured_R     (rotation about world axes)
// The decoder recomputes the delta against the pose measured at execution time:
//   a[0:3] = (goal_pos - measured_pos) / 0.05,  a[3:6] = axisangle(goal_R * measured_R^T) / 0.5,  clipped to [-1, 1].
// The delta angle is at most |0.5 * [1,1,1]| = 0.87 rad, far from pi, so its axis-angle is unique and exact.
import { axisAngleToMat, matMul, matMulT, matTo6d, matToAxisAngle, rot6dToMat } from '../rotation.js';
import { SLOTS, range } from '../state_vec.js';
import { type ActionEncoding, POS_SCALE_M, ROT_SCALE_RAD, clip1, gripperCmdToOpen, openToGripperCmd } from './types.js';

const P = SLOTS.eefPos[0];
const O = SLOTS.eefRot6d[0];
const G = SLOTS.gripperOpen;

export const eefTargetPose: ActionEncoding = {
  name: 'eef_target_pose',
  describe: 'commanded goal pose: position m at 30-32, rotation 6-D at 33-38, gripper open fraction at 10',
  slots: [G, ...range([P, P + 3]), ...range([O, O + 6])],
  encode(a7, pose, out, off) {
    for (let i = 0; i < 3; i++) out[off + P + i] = pose.pos[i] + POS_SCALE_M * clip1(a7[i]);
    const d = axisAngleToMat([ROT_SCALE_RAD * clip1(a7[3]), ROT_SCALE_RAD * clip1(a7[4]), ROT_SCALE_RAD * clip1(a7[5])]);
    matTo6d(matMul(d, pose.R), out, off + O);
    out[off + G] = gripperCmdToOpen(a7[6]);
  },
  decode(v, off, pose, out7) {
    for (let i = 0; i < 3; i++) out7[i] = clip1((v[off + P + i] - pose.pos[i]) / POS_SCALE_M);
    const goal = rot6dToMat(v, off + O);
    const aa = matToAxisAngle(matMulT(goal, pose.R));
    for (let i = 0; i < 3; i++) out7[3 + i] = clip1(aa[i] / ROT_SCALE_RAD);
    out7[6] = openToGripperCmd(v[off + G]);
  },
  pad(v, lastOff, out, off) {
    // Hold: repeat the last target pose and gripper.
    for (let i = 0; i < 128; i++) out[off + i] = v[lastOff + i];
  },
};

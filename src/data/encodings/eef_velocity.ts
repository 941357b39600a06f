// `eef_velocity`: the delta command as a commanded end-effector velocity in SI units.
// Linear m/s at 39-41 = a[0:3] * 0.05 m * 20 Hz; angular rad/s at 42-44 = a[3:6] * 0.5 rad * 20 Hz (world-frame
// rotation-vector rate, the axis-angle robosuite applies about world axes). Gripper open fraction at 10.
import { SLOTS, range } from '../state_vec.js';
import { type ActionEncoding, LIBERO_CTRL_FREQ, POS_SCALE_M, ROT_SCALE_RAD, clip1, gripperCmdToOpen, openToGripperCmd } from './types.js';

const L = SLOTS.eefVel[0];
const A = SLOTS.eefAngVel[0];
const G = SLOTS.gripperOpen;
const LIN = POS_SCALE_M * LIBERO_CTRL_FREQ; // m/s per unit command
const ANG = ROT_SCALE_RAD * LIBERO_CTRL_FREQ; // rad/s per unit command

export const eefVelocity: ActionEncoding = {
  name: 'eef_velocity',
  describe: `commanded eef velocity: linear m/s at 39-41 (${LIN} m/s per unit), angular rad/s at 42-44 (${ANG} rad/s per unit), gripper open fraction at 10`,
  slots: [G, ...range([L, L + 3]), ...range([A, A + 3])],
  encode(a7, _pose, out, off) {
    for (let i = 0; i < 3; i++) {
      out[off + L + i] = clip1(a7[i]) * LIN;
      out[off + A + i] = clip1(a7[3 + i]) * ANG;
    }
    out[off + G] = gripperCmdToOpen(a7[6]);
  },
  decode(v, off, _pose, out7) {
    for (let i = 0; i < 3; i++) {
      out7[i] = clip1(v[off + L + i] / LIN);
      out7[3 + i] = clip1(v[off + A + i] / ANG);
    }
    out7[6] = openToGripperCmd(v[off + G]);
  },
  pad(v, lastOff, out, off) {
    for (let i = 0; i < 3; i++) {
      out[off + L + i] = 0;
      out[off + A + i] = 0;
    }
    out[off + G] = v[lastOff + G];
  },
};

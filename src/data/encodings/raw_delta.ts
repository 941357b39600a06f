// `raw_delta`: LIBERO's own [-1, 1] numbers in the velocity slots (39-44), gripper open fraction at 10.
// Not SI (1.0 = 0.05 m or 0.5 rad per 50 ms step); kept as the baseline that follow-ups (OpenVLA, openpi) train on.
import { SLOTS, range } from '../state_vec.js';
import { type ActionEncoding, clip1, gripperCmdToOpen, openToGripperCmd } from './types.js';

const L = SLOTS.eefVel[0];
const G = SLOTS.gripperOpen;

export const rawDelta: ActionEncoding = {
  name: 'raw_delta',
  describe: "LIBERO's [-1,1] delta command at 39-44 (unitless), gripper open fraction at 10",
  slots: [G, ...range([L, L + 6])],
  encode(a7, _pose, out, off) {
    for (let i = 0; i < 6; i++) out[off + L + i] = clip1(a7[i]);
    out[off + G] = gripperCmdToOpen(a7[6]);
  },
  decode(v, off, _pose, out7) {
    for (let i = 0; i < 6; i++) out7[i] = clip1(v[off + L + i]);
    out7[6] = openToGripperCmd(v[off + G]);
  },
  pad(v, lastOff, out, off) {
    for (let i = 0; i < 6; i++) out[off + L + i] = 0;
    out[off + G] = v[lastOff + G];
  },
};

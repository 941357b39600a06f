// An independent numpy reference of LIBERO's action and state conventions, written from the robosuite 1.4 OSC
// rules (shared/docs/libero-facts.md 3.1-3.3) and docs/data.md, without src/: tests compare src/data with it.
//   OSC_POSE: a[0:6] clipped to [-1, 1]; 1.0 = 0.05 m and 0.5 rad; goal_pos = measured_pos + 0.05 a[0:3];
//   goal_R = R(axisangle(0.5 a[3:6])) @ measured_R (world-frame rotation); 20 Hz control.
//   gripper a[6]: -1 open, +1 close; stored as open fraction (1 - a6) / 2; finger gap 0.0774 m = fully open.
//   6-D rotation: the first two columns of R, [R00, R10, R20, R01, R11, R21]; inverse by Gram-Schmidt.
import { runPythonJson } from './python.js';

export const OSC_REF_PY = `
import numpy as np

def aa2mat(v):
    v = np.asarray(v, float); th = np.linalg.norm(v)
    if th < 1e-15: return np.eye(3)
    k = v / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * (K @ K)

def mat2aa(R):
    # only used on small deltas (|angle| <= 0.87 rad), where the log map is well conditioned
    th = np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    if th < 1e-15: return np.zeros(3)
    w = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / (2 * np.sin(th))
    return w * th

def quat2mat(q):
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array([[1 - 2*(y*y + z*z), 2*(x*y - z*w), 2*(x*z + y*w)],
                     [2*(x*y + z*w), 1 - 2*(x*x + z*z), 2*(y*z - x*w)],
                     [2*(x*z - y*w), 2*(y*z + x*w), 1 - 2*(x*x + y*y)]])

def six(R): return np.array([R[0, 0], R[1, 0], R[2, 0], R[0, 1], R[1, 1], R[2, 1]])

def from6(d):
    d = np.asarray(d, float)
    x = d[0:3] / np.linalg.norm(d[0:3]); z = np.cross(x, d[3:6]); z = z / np.linalg.norm(z); y = np.cross(z, x)
    return np.stack([x, y, z], 1)

clip = lambda x: np.clip(x, -1, 1)

def encode(name, a, pos, R):
    v = np.zeros(128); a = clip(np.asarray(a, float)); pos = np.asarray(pos, float)
    v[10] = (1 - a[6]) / 2
    if name == 'eef_target_pose':
        v[30:33] = pos + 0.05 * a[0:3]; v[33:39] = six(aa2mat(0.5 * a[3:6]) @ R)
    elif name == 'eef_velocity':
        v[39:42] = a[0:3] * 0.05 * 20; v[42:45] = a[3:6] * 0.5 * 20
    elif name == 'raw_delta':
        v[39:45] = a[0:6]
    else: raise ValueError(name)
    return v

def pad(name, last):
    v = last.copy()
    if name != 'eef_target_pose': v[39:45] = 0
    return v

def decode(name, v, pos, R):
    v = np.asarray(v, float); out = np.zeros(7)
    if name == 'eef_target_pose':
        out[0:3] = clip((v[30:33] - np.asarray(pos, float)) / 0.05); out[3:6] = clip(mat2aa(from6(v[33:39]) @ R.T) / 0.5)
    elif name == 'eef_velocity':
        out[0:3] = clip(v[39:42] / 1.0); out[3:6] = clip(v[42:45] / 10.0)
    else:
        out[0:6] = clip(v[39:45])
    out[6] = clip(1 - 2 * v[10])
    return out

def state(pos, aa, q, joints=None):
    v = np.zeros(128)
    v[30:33] = pos; v[33:39] = six(aa2mat(aa)); v[10] = np.clip((q[0] - q[1]) / 0.0774, 0, 1)
    if joints is not None: v[0:7] = joints
    return v
`;

/** Run `script` with the reference functions in scope and `inp` bound to the input; it assigns `out`. */
export function oscRef<T>(script: string, input: unknown): T {
  return runPythonJson<T>(OSC_REF_PY, script, input);
}

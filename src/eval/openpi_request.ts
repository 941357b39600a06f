// Simulator observation -> an openpi-protocol request, built the way openpi's LIBERO example client builds it
// (examples/libero/main.py, libero-facts.md 4.4), so a remote policy trained for that client sees what it expects:
//   observation/image, observation/wrist_image: the render rotated 180 degrees ([::-1, ::-1]), then
//     openpi_client.image_tools.resize_with_pad to 224 x 224 (PIL bilinear to fit, zero padding centred; a frame
//     already 224 x 224 is sent as is), uint8 (h, w, 3);
//   observation/state: float64 (8,) [robot0_eef_pos, robosuite quat2axisangle(robot0_eef_quat), robot0_gripper_qpos];
//   prompt: the task's language.
// And the 'native' format of rdt-libero's server (src/serve/formats.ts): the simulator's own keys, as rendered.
import type { ObsFrame } from '../data/adapter.js';
import { orientFrame } from '../data/images.js';
import type { NdArray } from '../serve/codec.js';
import { EvalError } from './errors.js';
import { resizePil } from '../util/pil_resize.js';

/** openpi's LIBERO example: renders at 256 (LIBERO_ENV_RESOLUTION), sends 224 (resize_size). */
export const OPENPI_RENDER = 256;
export const OPENPI_IMAGE = 224;

/** openpi_client.image_tools.resize_with_pad for one RGB uint8 image: fit inside H x W, zero padding centred. */
export function resizeWithPad(src: Uint8Array, h: number, w: number, H: number, W: number): Uint8Array {
  if (h === H && w === W) return src;
  const ratio = Math.max(w / W, h / H);
  const rh = Math.trunc(h / ratio), rw = Math.trunc(w / ratio);
  const resized = resizePil(src, h, w, rh, rw, 'bilinear');
  const out = new Uint8Array(H * W * 3);
  const y0 = Math.max(0, Math.trunc((H - rh) / 2)), x0 = Math.max(0, Math.trunc((W - rw) / 2));
  for (let y = 0; y < rh; y++) out.set(resized.subarray(y * rw * 3, (y + 1) * rw * 3), ((y0 + y) * W + x0) * 3);
  return out;
}

/**
 * robosuite's quat2axisangle (the copy in openpi's LIBERO example) for (x, y, z, w): the w term clipped to
 * [-1, 1], no sign flip of the quaternion (so the angle is in [0, 2 pi]), zeros when sqrt(1 - w^2) is exactly 0.
 * The data layer's quatToAxisAngle takes w >= 0 instead: the same rotation, but not the same 3 numbers, and a
 * remote policy trained on openpi's state wants these.
 */
export function quat2axisangle(q: ArrayLike<number>): Float64Array {
  const w = Math.min(1, Math.max(-1, q[3]));
  const den = Math.sqrt(1 - w * w);
  if (den === 0) return new Float64Array(3);
  const k = (2 * Math.acos(w)) / den;
  return Float64Array.from([q[0] * k, q[1] * k, q[2] * k]);
}

function camera(img: Uint8Array | null, side: number, which: string): Uint8Array {
  if (!img || img.length !== side * side * 3) throw new EvalError(`the simulator's ${which} frame is missing or not ${side}x${side}x3; the remote policy needs both cameras`);
  return img;
}

/** One frame as openpi's LIBERO client sends it; `side` is the render's size (square, as LIBERO renders). */
export function liberoRequest(frame: ObsFrame, side: number, prompt: string): Record<string, unknown> {
  const img = (src: Uint8Array | null, which: string) => {
    const up = new Uint8Array(side * side * 3);
    orientFrame(camera(src, side, which), 0, side, side, 'rot180', up, 0);
    return { dtype: '|u1', shape: [OPENPI_IMAGE, OPENPI_IMAGE, 3], data: resizeWithPad(up, side, side, OPENPI_IMAGE, OPENPI_IMAGE) } satisfies NdArray;
  };
  const r = frame.robot;
  if (!r.eefQuat) throw new EvalError('the simulator observation has no robot0_eef_quat; openpi\'s 8-D state needs it');
  const state = new Float64Array(8);
  state.set(Array.from(r.eefPos), 0);
  state.set(quat2axisangle(r.eefQuat), 3);
  state.set(Array.from(r.gripperQpos), 6);
  return {
    'observation/image': img(frame.images.agentview, 'agentview'),
    'observation/wrist_image': img(frame.images.eyeInHand, 'eye-in-hand'),
    'observation/state': { dtype: '<f8', shape: [8], data: state } satisfies NdArray,
    prompt,
  };
}

/** One frame in rdt-libero's native format: the simulator's keys and frames as rendered (a previous frame: no prompt). */
export function nativeRequest(frame: ObsFrame, side: number, prompt: string | null): Record<string, unknown> {
  const r = frame.robot;
  const f64 = (v: ArrayLike<number>, n: number): NdArray => ({ dtype: '<f8', shape: [n], data: Float64Array.from(Array.from(v)) });
  if (!r.eefQuat) throw new EvalError('the simulator observation has no robot0_eef_quat');
  return {
    agentview_image: { dtype: '|u1', shape: [side, side, 3], data: camera(frame.images.agentview, side, 'agentview') } satisfies NdArray,
    robot0_eye_in_hand_image: { dtype: '|u1', shape: [side, side, 3], data: camera(frame.images.eyeInHand, side, 'eye-in-hand') } satisfies NdArray,
    robot0_eef_pos: f64(r.eefPos, 3),
    robot0_eef_quat: f64(r.eefQuat, 4),
    robot0_gripper_qpos: f64(r.gripperQpos, 2),
    ...(r.jointPos ? { robot0_joint_pos: f64(r.jointPos, 7) } : {}),
    ...(prompt !== null ? { prompt } : {}),
  };
}

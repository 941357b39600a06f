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

/** openpi's LIBERO example: renders at 256 (LIBERO_ENV_RESOLUTION), sends 224 (resize_size). */
export const OPENPI_RENDER = 256;
export const OPENPI_IMAGE = 224;

const PRECISION_BITS = 22;

/**
 * Pillow's resampling coefficients (Resample.c precompute_coeffs + normalize_coeffs_8bpc) for the BILINEAR
 * (triangle) filter, stretched by the downscale factor (antialias). The encoders' resizeBicubicPil is the same
 * algorithm with the bicubic kernel; openpi's client resizes bilinearly, so this file carries that one filter.
 */
function bilinearCoefficients(inSize: number, outSize: number) {
  const scale = inSize / outSize;
  const filterscale = Math.max(scale, 1);
  const support = 1 * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const n = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    let ww = 0;
    for (let x = 0; x < n; x++) {
      const t = Math.abs((x + xmin - center + 0.5) / filterscale);
      w[x] = t < 1 ? 1 - t : 0;
      ww += w[x];
    }
    for (let x = 0; x < n; x++) {
      const v = ww !== 0 ? w[x] / ww : w[x];
      kk[xx * ksize + x] = v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS));
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = n;
  }
  return { ksize, bounds, kk };
}

const clip8 = (ss: number) => {
  const v = Math.floor(ss / (1 << PRECISION_BITS));
  return v < 0 ? 0 : v > 255 ? 255 : v;
};

/** PIL `Image.resize((outW, outH), Image.BILINEAR)` of an RGB uint8 (h, w, 3) image: horizontal pass, then vertical. */
export function resizeBilinearPil(src: Uint8Array, h: number, w: number, outH: number, outW: number): Uint8Array {
  const half = 1 << (PRECISION_BITS - 1);
  let tmp = src;
  if (outW !== w) {
    const { ksize, bounds, kk } = bilinearCoefficients(w, outW);
    tmp = new Uint8Array(h * outW * 3);
    for (let y = 0; y < h; y++)
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2], n = bounds[xx * 2 + 1], k = xx * ksize;
        for (let c = 0; c < 3; c++) {
          let ss = half;
          for (let x = 0; x < n; x++) ss += src[(y * w + x + xmin) * 3 + c] * kk[k + x];
          tmp[(y * outW + xx) * 3 + c] = clip8(ss);
        }
      }
  }
  if (outH === h) return tmp === src ? src.slice() : tmp;
  const { ksize, bounds, kk } = bilinearCoefficients(h, outH);
  const out = new Uint8Array(outH * outW * 3);
  const stride = outW * 3;
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2], n = bounds[yy * 2 + 1], k = yy * ksize;
    for (let i = 0; i < stride; i++) {
      let ss = half;
      for (let y = 0; y < n; y++) ss += tmp[(y + ymin) * stride + i] * kk[k + y];
      out[yy * stride + i] = clip8(ss);
    }
  }
  return out;
}

/** openpi_client.image_tools.resize_with_pad for one RGB uint8 image: fit inside H x W, zero padding centred. */
export function resizeWithPad(src: Uint8Array, h: number, w: number, H: number, W: number): Uint8Array {
  if (h === H && w === W) return src;
  const ratio = Math.max(w / W, h / H);
  const rh = Math.trunc(h / ratio), rw = Math.trunc(w / ratio);
  const resized = resizeBilinearPil(src, h, w, rh, rw);
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

/** One frame in rdt-libero's native format: the simulator's keys and frames as rendered. */
export function nativeRequest(frame: ObsFrame, side: number, prompt: string): Record<string, unknown> {
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
    prompt,
  };
}

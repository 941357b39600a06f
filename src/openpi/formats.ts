// The observation formats of the openpi protocol, both halves of each: what a client sends (the request builders,
// used by the evaluation's remote policy) and how the server reads it back into the data layer's ObsFrame
// (src/data/adapter.ts), so the model sees exactly what training and evaluation build: the state through RobotObs ->
// encodeState, the images through buildObservation's orientFrame with the checkpoint's cameras.orientation. Nothing
// here is a flag: sizes and conventions come from the checkpoint (policy.json).
//
//   libero: openpi's LIBERO example client as it is (examples/libero/main.py, libero-facts.md 4.4):
//     observation/image, observation/wrist_image  (h, w, 3) uint8: the render rotated 180 degrees ([::-1, ::-1])
//                                                 and openpi_client.image_tools.resize_with_pad to 224 x 224 (PIL
//                                                 bilinear to fit, zero padding centred; 224 x 224 is sent as is)
//     observation/state  (8,) float64: [eef_pos (3) m, robosuite quat2axisangle(eef_quat) (3) rad, gripper_qpos (2) m]
//     prompt             str
//   native: the LIBERO simulator's own observation keys (robosuite OffScreenRenderEnv), frames as rendered at the
//     checkpoint's resolution; converted by obsFrameFromEnv, the function evaluation uses:
//     agentview_image, robot0_eye_in_hand_image (H, W, 3) uint8; robot0_eef_pos (3,), robot0_eef_quat (4,) xyzw,
//     robot0_gripper_qpos (2,), robot0_joint_pos (7,) (required when the checkpoint's state uses joints); prompt;
//     history: for a checkpoint that looks at H > 1 frames, the H-1 previous frames, oldest first, one env step
//       apart as in training, each a map of the frame keys above (no prompt) or nil before the episode start.
//       Required then: a request carries every frame the policy sees, so the server keeps no state per client.
// Both take an optional integer `seed` (0 .. 2^31-1): the sampling noise of that request (see server.ts).
// The libero format carries one frame (openpi's client sends one per replan): a checkpoint of history H > 1 sees it
// with the H-1 older slots empty, as at an episode's first step in training (HISTORY_INPUTS says so in the metadata).
import { type AdapterConfig, type ObsFrame, obsFrameFromEnv } from '../data/adapter.js';
import { orientFrame } from '../data/images.js';
import { SEED_LIMIT } from '../policy/policy.js';
import { resizePil } from '../util/pil_resize.js';
import { type NdArray, isNdArray, ndNumbers } from './codec.js';
import { OpenpiError } from './errors.js';

export const FORMATS = ['libero', 'native'] as const;
export type FormatName = (typeof FORMATS)[number];

export interface ParsedRequest {
  frame: ObsFrame;
  /** The frames before `frame`, oldest first (null before the episode start): what the policy sees with it. */
  previous: (ObsFrame | null)[];
  prompt: string;
  /** The request's own sampling seed, when it gave one. */
  seed: number | null;
}

interface FormatSpec {
  required: readonly string[];
  optional: readonly string[];
  parse(o: Record<string, unknown>, cfg: AdapterConfig): ObsFrame;
  /** The frames before the current one (H - 1 of them, oldest first). */
  previous(o: Record<string, unknown>, cfg: AdapterConfig): (ObsFrame | null)[];
}

/** What a checkpoint of history H sees from each format, for the metadata and the evaluation's records. */
export function historyInputs(format: FormatName, H: number): string {
  if (H === 1) return 'the current frame';
  if (format === 'native') return `the current frame and the ${H - 1} previous frame(s) the request carries in 'history', one env step apart as in training`;
  return `the current frame only, with the ${H - 1} older history slot(s) empty as at an episode's first step in training: the libero format carries one frame per request ` +
    "(openpi's LIBERO client sends one per replan, so older frames would be several env steps old, unlike training); use --format native for the trained spacing";
}

// ---- the server half: a request -> the frame for the policy ----

const MAX_SIDE = 4096;
const MAX_PROMPT = 4096;

function bad(key: string, what: string): OpenpiError {
  return new OpenpiError('BadRequest', `'${key}' ${what}`);
}

/** o[key] as an image; `at` prefixes the key in errors (a history frame's 'history[0].'). */
function image(o: Record<string, unknown>, key: string, at = ''): { a: NdArray; h: number; w: number } {
  const a = o[key];
  if (!isNdArray(a)) throw bad(at + key, 'must be a numpy array (h, w, 3) uint8');
  const [h, w, c] = a.shape;
  if (a.dtype !== '|u1' || a.shape.length !== 3 || c !== 3 || h < 1 || w < 1 || h > MAX_SIDE || w > MAX_SIDE)
    throw bad(at + key, `must be (h, w, 3) uint8 with sides up to ${MAX_SIDE}, got ${a.dtype} [${a.shape.join(', ')}]`);
  return { a, h, w };
}

function floats(o: Record<string, unknown>, key: string, n: number, at = ''): Float64Array {
  const a = o[key];
  if (!isNdArray(a) || (a.dtype !== '<f4' && a.dtype !== '<f8') || a.shape.length !== 1 || a.shape[0] !== n)
    throw bad(at + key, `must be a float32 or float64 array of shape (${n},)${isNdArray(a) ? `, got ${a.dtype} [${a.shape.join(', ')}]` : ''}`);
  const v = Float64Array.from(ndNumbers(a));
  if (!v.every(Number.isFinite)) throw bad(at + key, 'holds NaN or infinity');
  return v;
}

/**
 * Undo openpi's client-side preprocessing of one camera: crop the zero padding of resize_with_pad (the render is
 * assumed to have the checkpoint's aspect ratio, as LIBERO's square renders do), rotate 180 degrees back to the
 * orientation the simulator renders in (what ObsFrame holds), and resample to the checkpoint's H x W.
 */
export function fromOpenpiImage(src: Uint8Array, h: number, w: number, H: number, W: number): Uint8Array {
  // resize_with_pad: ratio = max(W/w, H/h); content int(H/ratio) x int(W/ratio), pasted at int((h - rh) / 2), int((w - rw) / 2).
  const ratio = Math.max(W / w, H / h);
  const rh = Math.max(1, Math.trunc(H / ratio)), rw = Math.max(1, Math.trunc(W / ratio));
  const y0 = Math.max(0, Math.trunc((h - rh) / 2)), x0 = Math.max(0, Math.trunc((w - rw) / 2));
  let content = src;
  if (rh !== h || rw !== w) {
    content = new Uint8Array(rh * rw * 3);
    for (let y = 0; y < rh; y++) content.set(src.subarray(((y0 + y) * w + x0) * 3, ((y0 + y) * w + x0 + rw) * 3), y * rw * 3);
  }
  const upright = new Uint8Array(rh * rw * 3);
  orientFrame(content, 0, rh, rw, 'rot180', upright, 0); // rot180 is its own inverse
  return rh === H && rw === W ? upright : resizePil(upright, rh, rw, H, W, 'bicubic');
}

const NATIVE_FRAME = ['agentview_image', 'robot0_eye_in_hand_image', 'robot0_eef_pos', 'robot0_eef_quat', 'robot0_gripper_qpos'];

/** One native frame (the current one, or history[i] with `at` naming it in errors). */
function nativeFrame(o: Record<string, unknown>, cfg: AdapterConfig, at: string): ObsFrame {
  const missing = NATIVE_FRAME.filter((k) => o[k] === undefined);
  if (missing.length) throw new OpenpiError('BadRequest', `missing ${missing.map((k) => `'${at}${k}'`).join(', ')}`);
  const env: Record<string, Uint8Array | Float64Array> = {};
  for (const k of ['agentview_image', 'robot0_eye_in_hand_image']) {
    const { a, h, w } = image(o, k, at);
    if (h !== cfg.imageHeight || w !== cfg.imageWidth)
      throw bad(`${at}${k}`, `is ${h}x${w}; this checkpoint takes ${cfg.imageHeight}x${cfg.imageWidth} frames as the simulator renders them (policy.json cameras.height/width)`);
    env[k] = a.data as Uint8Array;
  }
  env.robot0_eef_pos = floats(o, 'robot0_eef_pos', 3, at);
  env.robot0_eef_quat = floats(o, 'robot0_eef_quat', 4, at);
  env.robot0_gripper_qpos = floats(o, 'robot0_gripper_qpos', 2, at);
  if (o.robot0_joint_pos !== undefined) env.robot0_joint_pos = floats(o, 'robot0_joint_pos', 7, at);
  else if (cfg.useJoints) throw bad(`${at}robot0_joint_pos`, 'is required: this checkpoint\'s state holds the 7 joint angles (policy.json state.use_joints)');
  return obsFrameFromEnv(env);
}

const SPECS: Record<FormatName, FormatSpec> = {
  libero: {
    required: ['observation/image', 'observation/wrist_image', 'observation/state', 'prompt'],
    optional: ['seed'],
    parse(o, cfg) {
      const imgs = ['observation/image', 'observation/wrist_image'].map((k) => {
        const { a, h, w } = image(o, k);
        return fromOpenpiImage(a.data as Uint8Array, h, w, cfg.imageHeight, cfg.imageWidth);
      });
      const s = floats(o, 'observation/state', 8);
      // The 8-D state carries no joint angles, velocities or the quaternion sign: only pose and fingers. A checkpoint
      // whose state uses joints is refused at start-up (checkFormat), never served with zeros for them.
      return {
        robot: { eefPos: s.subarray(0, 3), eefAxisAngle: s.subarray(3, 6), gripperQpos: s.subarray(6, 8), jointPos: null },
        images: { agentview: imgs[0], eyeInHand: imgs[1] },
      };
    },
    previous: (_o, cfg) => new Array<null>(cfg.historySize - 1).fill(null),
  },
  native: {
    required: [...NATIVE_FRAME, 'prompt'],
    optional: ['robot0_joint_pos', 'history', 'seed'],
    parse: (o, cfg) => nativeFrame(o, cfg, ''),
    previous(o, cfg) {
      const n = cfg.historySize - 1;
      if (n === 0) {
        if (o.history !== undefined) throw bad('history', 'is given, but this checkpoint looks at the current frame only (policy.json cameras.history 1)');
        return [];
      }
      const h = o.history;
      if (!Array.isArray(h) || h.length !== n)
        throw bad('history', `must be a list of the ${n} previous frame(s), oldest first, each a map of ${NATIVE_FRAME.join(', ')} or nil before the episode start ` +
          `(this checkpoint looks at ${cfg.historySize} frames one env step apart, policy.json cameras.history)${Array.isArray(h) ? `, got ${h.length}` : ''}`);
      return h.map((f, i) => {
        if (f === null) return null;
        if (typeof f !== 'object' || Array.isArray(f) || isNdArray(f)) throw bad(`history[${i}]`, 'must be a map of frame keys or nil');
        const fo = f as Record<string, unknown>;
        const extra = Object.keys(fo).filter((k) => !NATIVE_FRAME.includes(k) && k !== 'robot0_joint_pos');
        if (extra.length) throw bad(`history[${i}]`, `has unknown key(s) ${extra.slice(0, 5).map((k) => `'${k.slice(0, 64)}'`).join(', ')}; a frame holds ${NATIVE_FRAME.join(', ')} (and robot0_joint_pos)`);
        return nativeFrame(fo, cfg, `history[${i}].`);
      });
    },
  },
};

/** Refuse, at start-up, a format that cannot carry what the checkpoint needs. */
export function checkFormat(format: FormatName, cfg: AdapterConfig): void {
  if (format === 'libero' && cfg.useJoints)
    throw new OpenpiError('ServerConfig', "the libero format's 8-D state has no joint angles, but this checkpoint's state uses them (policy.json state.use_joints): serve it with --format native");
}

/** The keys of a format, for the metadata frame and messages. */
export function formatKeys(format: FormatName): { required: readonly string[]; optional: readonly string[] } {
  const s = SPECS[format];
  return { required: s.required, optional: s.optional };
}

/** One decoded request -> the frame for the policy, its prompt and seed; a BadRequest names the key otherwise. */
export function parseRequest(format: FormatName, value: unknown, cfg: AdapterConfig): ParsedRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || isNdArray(value))
    throw new OpenpiError('BadRequest', `a request must be a map of observation keys (format '${format}')`);
  const o = value as Record<string, unknown>;
  const spec = SPECS[format];
  const known = new Set([...spec.required, ...spec.optional]);
  const unknown = Object.keys(o).filter((k) => !known.has(k));
  const missing = spec.required.filter((k) => o[k] === undefined);
  if (unknown.length || missing.length)
    throw new OpenpiError('BadRequest', [
      unknown.length ? `unknown key${unknown.length > 1 ? 's' : ''} ${unknown.slice(0, 5).map((k) => `'${k.slice(0, 64)}'`).join(', ')}` : '',
      missing.length ? `missing ${missing.map((k) => `'${k}'`).join(', ')}` : '',
    ].filter(Boolean).join('; ') + `; the '${format}' format takes ${spec.required.join(', ')} (optional: ${spec.optional.join(', ')})`);
  const prompt = o.prompt;
  if (typeof prompt !== 'string' || prompt.length === 0 || prompt.length > MAX_PROMPT) throw bad('prompt', `must be a non-empty string of up to ${MAX_PROMPT} characters`);
  let seed: number | null = null;
  if (o.seed !== undefined) {
    if (typeof o.seed !== 'number' || !Number.isSafeInteger(o.seed) || o.seed < 0 || o.seed >= SEED_LIMIT) throw bad('seed', `must be an integer in 0..${SEED_LIMIT - 1}`);
    seed = o.seed;
  }
  return { frame: spec.parse(o, cfg), previous: spec.previous(o, cfg), prompt, seed };
}

// ---- the client half: a simulator frame -> a request ----

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
  if (!img || img.length !== side * side * 3) throw new OpenpiError('BadRequest', `the simulator's ${which} frame is missing or not ${side}x${side}x3; the remote policy needs both cameras`);
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
  if (!r.eefQuat) throw new OpenpiError('BadRequest', 'the simulator observation has no robot0_eef_quat; openpi\'s 8-D state needs it');
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
  if (!r.eefQuat) throw new OpenpiError('BadRequest', 'the simulator observation has no robot0_eef_quat');
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

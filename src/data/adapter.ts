// The one pair of functions that convert between LIBERO and the model: `buildObservation` (an observation
// history -> state vector, masks and camera slots) and `decodeAction` (a unified action vector -> LIBERO's 7-D
// command). Training samples (LiberoDataset.writeSample) and the policy (src/policy) both call buildObservation;
// training targets are made only by encodeActionRows + writeActionChunk (the dataset caches the rows per episode;
// encodeActionChunk is the two in one), and the policy and `predict --decode` turn model output back with
// decodeAction, all through the one registered encoding object, so train and eval preprocessing cannot drift apart.
import { type ActionEncoding, LIBERO_CTRL_FREQ, type Pose, getEncoding } from './encodings/index.js';
import { DataError } from './errors.js';
import { BACKGROUND, type ImageOrientation, orientFrame } from './images.js';
import { axisAngleToMat, matTo6d, quatToMat } from './rotation.js';
import { SLOTS, STATE_VEC_LEN, maskOf, range } from './state_vec.js';

/**
 * Finger gap of a fully open LIBERO Panda gripper, m: the two finger joints read about +0.0387 / -0.0387 when
 * fully open (libero-facts.md 1.2), so open fraction = (q0 - q1) / 0.0774, clamped to [0, 1]; ~0 when closed.
 */
export const FULL_OPEN_GAP_M = 0.0774;

/** Camera slots in RDT's fixed order: 0 exterior, 1 right wrist, 2 left wrist (LIBERO has none: background). */
export const NUM_CAMERA_SLOTS = 3;
export const CAMERA_SLOT = { agentview: 0, eye_in_hand: 1 } as const;

export interface RobotObs {
  /** End-effector position, m, world frame (robot0_eef_pos, stored obs/ee_pos). */
  eefPos: ArrayLike<number>;
  /** Axis-angle rotation vector, rad (stored obs/ee_ori = robosuite quat2axisangle(eef_quat)); any norm. */
  eefAxisAngle?: ArrayLike<number>;
  /** Or the quaternion (x, y, z, w) as the simulator gives it (robot0_eef_quat). */
  eefQuat?: ArrayLike<number>;
  /** Finger joint positions, m (robot0_gripper_qpos, stored obs/gripper_states). */
  gripperQpos: ArrayLike<number>;
  /** 7 arm joint angles, rad (robot0_joint_pos, stored obs/joint_states). */
  jointPos?: ArrayLike<number> | null;
}

/** Camera frames of one time step, uint8 HWC, in the orientation they were stored or rendered in. */
export interface CameraImages {
  agentview: Uint8Array | null;
  eyeInHand: Uint8Array | null;
}

export interface ObsFrame {
  robot: RobotObs;
  images: CameraImages;
}

export interface AdapterConfig {
  /** Action encoding name (src/data/encodings). */
  encoding: string;
  /** Also fill the 7 joint angles at 0-6 of the state. */
  useJoints: boolean;
  orientation: ImageOrientation;
  ctrlFreq: number;
  chunkSize: number;
  historySize: number;
  imageHeight: number;
  imageWidth: number;
}

export const DEFAULT_ADAPTER: Readonly<AdapterConfig> = Object.freeze({
  encoding: 'eef_target_pose',
  useJoints: false,
  orientation: 'flip_v',
  ctrlFreq: LIBERO_CTRL_FREQ,
  chunkSize: 64,
  historySize: 2,
  imageHeight: 128,
  imageWidth: 128,
});

export function adapterConfig(over: Partial<AdapterConfig> = {}): AdapterConfig {
  const c = { ...DEFAULT_ADAPTER, ...over };
  getEncoding(c.encoding);
  return c;
}

export function gripperOpenFraction(q: ArrayLike<number>): number {
  const f = (q[0] - q[1]) / FULL_OPEN_GAP_M;
  return f < 0 ? 0 : f > 1 ? 1 : f;
}

export function poseOf(o: RobotObs): Pose {
  if (o.eefQuat) return { pos: o.eefPos, R: quatToMat(o.eefQuat) };
  if (o.eefAxisAngle) return { pos: o.eefPos, R: axisAngleToMat(o.eefAxisAngle) };
  throw new DataError('observation has neither eefAxisAngle nor eefQuat', { key: 'eef orientation' });
}

export function stateSlots(cfg: Pick<AdapterConfig, 'useJoints'>): number[] {
  return [...(cfg.useJoints ? range(SLOTS.joints) : []), SLOTS.gripperOpen, ...range(SLOTS.eefPos), ...range(SLOTS.eefRot6d)];
}

/** The state vector of one observation, in SI units, written at out[off .. off+128). */
export function encodeState(cfg: Pick<AdapterConfig, 'useJoints'>, o: RobotObs, out: Float32Array | Float64Array, off = 0): void {
  const p = poseOf(o);
  for (let i = 0; i < 3; i++) out[off + SLOTS.eefPos[0] + i] = p.pos[i];
  matTo6d(p.R, out, off + SLOTS.eefRot6d[0]);
  out[off + SLOTS.gripperOpen] = gripperOpenFraction(o.gripperQpos);
  if (cfg.useJoints) {
    if (!o.jointPos) throw new DataError('useJoints is set but the observation has no joint positions', { key: 'obs/joint_states' }, 'set useJoints: false');
    for (let i = 0; i < 7; i++) out[off + i] = o.jointPos[i];
  }
}

/** Where buildObservation writes, batch row b: arrays sized for B rows. */
export interface ObservationBuffers {
  state: Float32Array; // (B, 128)
  stateMask: Float32Array; // (B, 128): 1 where the state is filled
  actionSlotMask: Float32Array; // (B, 128): 1 where the action encoding writes
  elemMask: Float32Array; // (B, 128): union, RDT's state_elem_mask (concatenated to state and action tokens)
  images: Uint8Array; // (B, history, 3 slots, H, W, 3), upright per cfg.orientation; background where masked
  imageMask: Uint8Array; // (B, history, 3)
  ctrlFreq: Float32Array; // (B,)
}

/** Typed arrays on ordinary or shared memory (shared: worker threads write batches in place, no transfer). */
export function f32(n: number, shared = false): Float32Array {
  return shared ? new Float32Array(new SharedArrayBuffer(n * 4)) : new Float32Array(n);
}
export function u8(n: number, shared = false): Uint8Array {
  return shared ? new Uint8Array(new SharedArrayBuffer(n)) : new Uint8Array(n);
}

export function allocObservation(cfg: AdapterConfig, B: number, shared = false): ObservationBuffers {
  const img = cfg.historySize * NUM_CAMERA_SLOTS * cfg.imageHeight * cfg.imageWidth * 3;
  return {
    state: f32(B * STATE_VEC_LEN, shared),
    stateMask: f32(B * STATE_VEC_LEN, shared),
    actionSlotMask: f32(B * STATE_VEC_LEN, shared),
    elemMask: f32(B * STATE_VEC_LEN, shared),
    images: u8(B * img, shared),
    imageMask: u8(B * cfg.historySize * NUM_CAMERA_SLOTS, shared),
    ctrlFreq: f32(B, shared),
  };
}

const maskCache = new Map<string, { state: Float32Array; action: Float32Array; elem: Float32Array }>();

/** The three 128-slot masks of a configuration (state, action encoding, their union), cached. */
export function masksOf(cfg: Pick<AdapterConfig, 'useJoints' | 'encoding'>) {
  const key = `${cfg.useJoints}|${cfg.encoding}`;
  let m = maskCache.get(key);
  if (!m) {
    const state = maskOf(stateSlots(cfg));
    const action = maskOf(getEncoding(cfg.encoding).slots);
    m = { state, action, elem: state.map((x, i) => (x || action[i] ? 1 : 0)) };
    maskCache.set(key, m);
  }
  return m;
}

/**
 * Observation history (oldest first, exactly cfg.historySize entries; null = before the episode start, invalid per
 * the official rule) -> row b of the buffers. The state is taken from the newest frame.
 */
export function buildObservation(cfg: AdapterConfig, history: readonly (ObsFrame | null)[], out: ObservationBuffers, b = 0): void {
  if (history.length !== cfg.historySize) throw new Error(`buildObservation: history of ${history.length} frames, config wants ${cfg.historySize}`);
  const now = history[history.length - 1];
  if (!now) throw new Error('buildObservation: the newest frame must be present');
  const o = b * STATE_VEC_LEN;
  out.state.fill(0, o, o + STATE_VEC_LEN);
  encodeState(cfg, now.robot, out.state, o);
  const m = masksOf(cfg);
  out.stateMask.set(m.state, o);
  out.actionSlotMask.set(m.action, o);
  out.elemMask.set(m.elem, o);
  out.ctrlFreq[b] = cfg.ctrlFreq;
  const { imageHeight: H, imageWidth: W } = cfg;
  const frame = H * W * 3;
  for (let h = 0; h < cfg.historySize; h++) {
    const f = history[h];
    const cams: (Uint8Array | null)[] = [f?.images.agentview ?? null, f?.images.eyeInHand ?? null, null];
    for (let c = 0; c < NUM_CAMERA_SLOTS; c++) {
      const slotIdx = (b * cfg.historySize + h) * NUM_CAMERA_SLOTS + c;
      const dst = slotIdx * frame;
      const src = cams[c];
      if (src) {
        if (src.length !== frame) throw new DataError(`camera image has ${src.length} bytes, expected ${H}x${W}x3 = ${frame}`, { key: c === 0 ? 'agentview' : 'eye_in_hand' }, 'set imageHeight/imageWidth to the data resolution');
        orientFrame(src, 0, H, W, cfg.orientation, out.images, dst);
        out.imageMask[slotIdx] = 1;
      } else {
        out.images.fill(BACKGROUND, dst, dst + frame);
        out.imageMask[slotIdx] = 0;
      }
    }
  }
}

/**
 * Encode n real LIBERO commands, each against the pose it was executed from, into compact rows: row k holds the
 * unified-vector values at the encoding's slots (n x slots.length; the encodings write nothing else). This and
 * writeActionChunk are the only places a training target is computed: the dataset caches these rows per episode.
 */
export function encodeActionRows(cfg: Pick<AdapterConfig, 'encoding'>, n: number, actionAt: (k: number) => ArrayLike<number>, poseAt: (k: number) => Pose): Float64Array {
  const enc: ActionEncoding = getEncoding(cfg.encoding);
  const ns = enc.slots.length;
  const rows = new Float64Array(n * ns);
  const v = new Float64Array(STATE_VEC_LEN);
  for (let k = 0; k < n; k++) {
    enc.encode(actionAt(k), poseAt(k), v, 0);
    for (let q = 0; q < ns; q++) rows[k * ns + q] = v[enc.slots[q]];
  }
  return rows;
}

/**
 * One chunk of cfg.chunkSize unified vectors at out[off ..] from `count` encoded rows starting at row `first`
 * (encodeActionRows), end-padded the way the encoding says, with validity 1 for real steps and 0 for padding.
 */
export function writeActionChunk(
  cfg: Pick<AdapterConfig, 'encoding' | 'chunkSize'>,
  rows: Float64Array,
  first: number,
  count: number,
  out: Float32Array | Float64Array,
  off: number,
  valid: Float32Array,
  validOff: number,
): void {
  const enc: ActionEncoding = getEncoding(cfg.encoding);
  const slots = enc.slots;
  const n = Math.min(count, cfg.chunkSize);
  if (n < 1) throw new DataError('an action chunk needs at least one real action', { key: 'actions' });
  out.fill(0, off, off + cfg.chunkSize * STATE_VEC_LEN);
  for (let s = 0; s < n; s++) {
    const o = off + s * STATE_VEC_LEN;
    const r = (first + s) * slots.length;
    for (let q = 0; q < slots.length; q++) out[o + slots[q]] = rows[r + q];
    valid[validOff + s] = 1;
  }
  const last = off + (n - 1) * STATE_VEC_LEN;
  for (let s = n; s < cfg.chunkSize; s++) {
    enc.pad(out, last, out, off + s * STATE_VEC_LEN);
    valid[validOff + s] = 0;
  }
}

/**
 * Training targets: n real LIBERO commands (n x 7) executed at the n measured poses -> a chunk of cfg.chunkSize
 * unified vectors at out[off ..], end-padded the way the encoding says, with validity 1 for real steps.
 */
export function encodeActionChunk(
  cfg: AdapterConfig,
  actions: ArrayLike<number>,
  actOff: number,
  poses: readonly Pose[],
  out: Float32Array | Float64Array,
  off: number,
  valid: Float32Array,
  validOff: number,
): void {
  const n = Math.min(poses.length, cfg.chunkSize);
  const a7 = new Float64Array(7);
  const rows = encodeActionRows(cfg, n, (k) => {
    for (let i = 0; i < 7; i++) a7[i] = actions[actOff + k * 7 + i];
    return a7;
  }, (k) => poses[k]);
  writeActionChunk(cfg, rows, 0, n, out, off, valid, validOff);
}

/** A unified action vector (at vec[off..]) -> LIBERO's 7-D command, against the pose measured at execution time. */
export function decodeAction(cfg: Pick<AdapterConfig, 'encoding'>, vec: ArrayLike<number>, off: number, measured: RobotObs | Pose): Float64Array {
  const pose = 'R' in measured ? measured : poseOf(measured);
  const out = new Float64Array(7);
  getEncoding(cfg.encoding).decode(vec, off, pose, out);
  return out;
}

// ---- evaluation side: the same builder fed from the simulator ----

/**
 * A LIBERO simulator observation (robosuite 1.4 OffScreenRenderEnv keys) as an ObsFrame. Images are taken as
 * rendered (the same upside-down convention as the stored frames), so buildObservation orients both alike.
 */
export function obsFrameFromEnv(o: Record<string, ArrayLike<number> | Uint8Array | undefined>): ObsFrame {
  const need = (k: string) => {
    const v = o[k];
    if (!v) throw new DataError('simulator observation lacks a key', { key: k }, 'pass the raw observation dict of the LIBERO env');
    return v;
  };
  return {
    robot: {
      eefPos: need('robot0_eef_pos'),
      eefQuat: need('robot0_eef_quat'),
      gripperQpos: need('robot0_gripper_qpos'),
      jointPos: o.robot0_joint_pos ?? null,
    },
    images: {
      agentview: (o.agentview_image as Uint8Array | undefined) ?? null,
      eyeInHand: (o.robot0_eye_in_hand_image as Uint8Array | undefined) ?? null,
    },
  };
}

/** The last cfg.historySize frames of one episode, oldest first, null before the episode start (official rule). */
export class ObservationHistory {
  private frames: (ObsFrame | null)[];
  constructor(size: number) {
    this.frames = new Array<ObsFrame | null>(size).fill(null);
  }
  /** Start a new episode. */
  reset(): void {
    this.frames.fill(null);
  }
  push(f: ObsFrame): readonly (ObsFrame | null)[] {
    this.frames.shift();
    this.frames.push(f);
    return this.frames;
  }
  get current(): readonly (ObsFrame | null)[] {
    return this.frames;
  }
}

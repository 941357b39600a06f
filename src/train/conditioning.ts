// What training adds on top of the policy's observation -> model inputs (src/policy/inputs.ts modelInputs): the
// official training-time condition dropout, state noise (rdt-spec.md 2.4 and 5.5) and image augmentation, applied
// to a copy of the batch. Sample-MSE calls it with augmentation off, so it sees exactly what the policy sees.
import * as torch from '../engine/index.js';
import type { Batch } from '../data/dataset.js';
import { type Encoders, type ModelInputs, modelInputs } from '../policy/inputs.js';
import { SEED_LIMIT } from '../policy/policy.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';
import { BACKGROUND } from '../data/images.js';
import { augmentImages } from './image_aug.js';
import { Rng } from '../data/rng.js';
import type { SampleRng } from './sample_rng.js';

export type { Encoders, ModelInputs } from '../policy/inputs.js';

export interface Augment {
  /** cond_mask_prob: each condition is dropped independently per sample with this probability. */
  condMaskProb: number;
  /** cam_ext_mask_prob for the exterior camera; < 0 means use condMaskProb. */
  camExtMaskProb: number;
  /** state_noise_snr in dB (null = off): state += N(0, std / sqrt(10^(snr/10))). */
  stateNoiseSnr: number | null;
  /** Per-slot state mean/std of the dataset (dataset_stat.json), for mean-state dropout and noise. */
  stateMean: Float32Array;
  stateStd: Float32Array;
  /** image_aug: colour jitter / noise / blur on valid frames (src/train/image_aug.ts). */
  imageAug: boolean;
  /** This batch's per-sample random draws (sample_rng.ts), the same whichever process holds a sample. */
  rng: SampleRng;
}

/** Per-sample draws for the five droppable conditions (seven uniforms per sample). */
function dropDraws(B: number, a: Augment): { freq: boolean[]; state: boolean[]; mask: boolean[]; cams: boolean[][]; lang: boolean[] } {
  const u = a.rng.uniform('dropout', B, 7);
  const p = a.condMaskProb;
  const pExt = a.camExtMaskProb >= 0 ? a.camExtMaskProb : p;
  const row = (b: number, k: number, q: number) => u[b * 7 + k] < q;
  return {
    freq: Array.from({ length: B }, (_, b) => row(b, 0, p)),
    state: Array.from({ length: B }, (_, b) => row(b, 1, p)),
    mask: Array.from({ length: B }, (_, b) => row(b, 2, p)),
    cams: Array.from({ length: B }, (_, b) => [row(b, 3, pExt), row(b, 4, p), row(b, 5, p)]),
    lang: Array.from({ length: B }, (_, b) => row(b, 6, p)),
  };
}

/**
 * Build the model inputs for a batch. With `augment` (training), conditions are dropped and state noise added
 * exactly as the official dataset does; without it (sample evaluation), the batch is used as is.
 */
export function prepareInputs(batch: Batch, enc: Encoders, augment: Augment | null, device = 'cpu'): ModelInputs {
  if (!augment) return modelInputs(batch, enc, device);
  const B = batch.size;
  const A = STATE_VEC_LEN;
  const state = Float32Array.from(batch.state);
  const elemMask = Float32Array.from(batch.elemMask);
  const ctrl = Float32Array.from(batch.ctrlFreq);
  const instructions = batch.instruction.slice(0, B);
  let images = batch.images;
  const cams = 3;
  const frame = batch.height * batch.width * 3;
  const d = dropDraws(B, augment);
  if (augment.stateNoiseSnr !== null) {
    const scale = 1 / Math.sqrt(10 ** (augment.stateNoiseSnr / 10));
    const n = augment.rng.normal('stateNoise', B, A);
    for (let i = 0; i < B * A; i++) if (batch.stateMask[i]) state[i] += n[i] * augment.stateStd[i % A] * scale;
  }
  // Copy the images only when some frame will change (the batch's arrays belong to the loader).
  const anyCamDrop = d.cams.some((row) => row.some(Boolean));
  if (augment.imageAug || anyCamDrop) images = Uint8Array.from(batch.images);
  if (augment.imageAug) {
    // One seed per sample: its frames augment the same way in any batch and on any rank.
    const perSample = batch.historySize * cams;
    for (let b = 0; b < B; b++) {
      const seed = torch.scope(() => torch.randint(0, SEED_LIMIT - 1, [1], { generator: augment.rng.gen('imageAug', b) }).item());
      const rng = new Rng(seed);
      augmentImages(images.subarray(b * perSample * frame, (b + 1) * perSample * frame), batch.imageMask.subarray(b * perSample, (b + 1) * perSample),
        perSample, batch.height, batch.width, () => rng.next());
    }
  }
  for (let b = 0; b < B; b++) {
    if (d.freq[b]) ctrl[b] = 0;
    if (d.state[b]) for (let k = 0; k < A; k++) state[b * A + k] = augment.stateMean[k];
    if (d.mask[b]) elemMask.fill(0, b * A, (b + 1) * A);
    if (d.lang[b]) instructions[b] = '';
    for (let c = 0; c < cams; c++)
      if (d.cams[b][c])
        for (let h = 0; h < batch.historySize; h++) {
          const off = ((b * batch.historySize + h) * cams + c) * frame;
          images.fill(BACKGROUND, off, off + frame);
        }
  }
  return modelInputs({ ...batch, state, elemMask, ctrlFreq: ctrl, instruction: instructions, images }, enc, device);
}

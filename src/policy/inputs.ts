// Observations -> the runner's conditions: the one function that turns a data batch (typed arrays, built by the data
// layer's buildObservation or the training sampler) into model inputs (tensors). Inference calls it as is; training
// (src/train/conditioning.ts) first applies its condition dropout, state noise and image augmentation to a copy of
// the batch, then calls it too, so the policy cannot preprocess differently from what the model was trained on.
import * as torch from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import type { TextEncoder, VisionEncoder } from '../encoders/types.js';
import type { Batch } from '../data/dataset.js';
import { STATE_VEC_LEN } from '../data/state_vec.js';

export interface ModelInputs {
  langTokens: Tensor; // (B, L, lang_token_dim)
  langMask: Tensor; // (B, L) bool
  imgTokens: Tensor; // (B, history*3*tokensPerImage, img_token_dim)
  stateTokens: Tensor; // (B, 1, 128)
  actionMask: Tensor; // (B, 1, 128): RDT's state_elem_mask, fed with every action token
  ctrlFreqs: Tensor; // (B,)
  actionGt: Tensor; // (B, chunk, 128)
}

export interface Encoders {
  text: TextEncoder;
  vision: VisionEncoder;
}

/** The model inputs of a batch, used as it is (no augmentation: that is training's, on top). */
export function modelInputs(batch: Batch, enc: Encoders, device = 'cpu'): ModelInputs {
  const B = batch.size;
  const A = STATE_VEC_LEN;
  const cams = 3;
  return torch.scope(() => {
    const n = B * batch.historySize * cams;
    // Token order: [ext_{t-1}, right_{t-1}, left_{t-1}, ext_t, right_t, left_t] (history-major), as official.
    // The encoders are frozen: no autograd graph through them.
    const imgTokens = torch.noGrad(() => enc.vision.encode(batch.images, n, batch.height, batch.width))
      .reshape([B, batch.historySize * cams * enc.vision.tokensPerImage, enc.vision.tokenDim]);
    const { tokens: langTokens, mask: langMask } = torch.noGrad(() => enc.text.encode(batch.instruction.slice(0, B)));
    // Official behaviour: a dropped mask zeroes only the mask; the state values stay (noise and the mean state only
    // ever touch filled slots, so unfilled slots are 0 either way).
    const out: ModelInputs = {
      langTokens, langMask, imgTokens,
      stateTokens: torch.tensor(Float32Array.from(batch.state), { shape: [B, 1, A] }),
      actionMask: torch.tensor(Float32Array.from(batch.elemMask), { shape: [B, 1, A] }),
      ctrlFreqs: torch.tensor(Float32Array.from(batch.ctrlFreq)),
      actionGt: torch.tensor(batch.actions.subarray(0, B * batch.chunkSize * A), { shape: [B, batch.chunkSize, A] }),
    };
    if (device !== 'cpu') for (const k of Object.keys(out) as (keyof ModelInputs)[]) out[k] = out[k].to({ device });
    return out;
  });
}

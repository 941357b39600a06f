// Which frozen condition encoders a run trains with: the config's `encoders:` name picks a factory
// here, or a `hooks.encoders` factory given to train() replaces the choice (how the official T5 and
// SigLIP encoders, or any other, plug in without editing the trainer).
import type { RdtConfig } from '../model/config.js';
import { createEncoders, demoEncoderIdentity } from '../encoders/demo.js';
import type { TrainConfig } from './config.js';
import type { Encoders } from './conditioning.js';
import type { EncoderFactory } from './hooks.js';
import { TrainError } from './errors.js';

/** Cameras per history step the image tokens hold (agentview, eye-in-hand, and one empty slot), and history steps. */
const CAMERA_SLOTS = 3;
const HISTORY = 2;

function demoEncoders(c: RdtConfig): Encoders {
  // Built through the one factory that loadPolicy also uses, from the identity policy.json records.
  const { vision, text } = createEncoders(demoEncoderIdentity(c));
  const perImage = vision.tokensPerImage;
  const given = HISTORY * CAMERA_SLOTS * perImage;
  if (c.img_cond_len !== given) {
    vision.dispose();
    text.dispose();
    throw new TrainError(`model expects img_cond_len ${c.img_cond_len} image tokens, the demo vision encoder gives ${HISTORY} history x ${CAMERA_SLOTS} cameras x ${perImage} = ${given}; use a config with img_cond_len ${given}`);
  }
  return { vision, text };
}

/** Why a built-in encoder choice cannot run yet (checked before any data is read), or null. */
export function encodersUnavailable(name: TrainConfig['encoders']): string | null {
  if (name === 'official')
    return "encoders: 'official' needs the T5-v1.1-XXL and SigLIP encoders, which this version of rdt-libero does not ship yet; " +
      'set encoders: demo to train with the deterministic demo encoders (results are only meaningful for testing)';
  return null;
}

export const ENCODER_FACTORIES: Readonly<Record<TrainConfig['encoders'], EncoderFactory>> = {
  demo: (c) => demoEncoders(c),
  official: (_c, cfg) => {
    throw new TrainError(encodersUnavailable(cfg.encoders)!);
  },
};

/** The encoders for `model`: the hook's factory if one is registered, else the one `cfg.encoders` names. */
export function buildEncoders(model: RdtConfig, cfg: TrainConfig, hook: EncoderFactory | null): Encoders {
  return (hook ?? ENCODER_FACTORIES[cfg.encoders])(model, cfg);
}

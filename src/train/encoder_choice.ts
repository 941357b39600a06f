// Which frozen condition encoders a run trains with: the config's `encoders:` name picks a factory
// here, or a `hooks.encoders` factory given to train() replaces the choice (how any other encoders
// plug in without editing the trainer). Either way the encoders must give the token sizes the model
// was built for; a mismatch stops the run before any data is read through them.
import type { RdtConfig } from '../model/config.js';
import { demoEncoderIdentity } from '../encoders/demo.js';
import { createEncoders, loadOfficialEncoders } from '../encoders/factory.js';
import { SiglipVisionEncoder } from '../encoders/official.js';
import { CachedTextEncoder, TextCache, textCacheIdentityOf } from '../encoders/text_cache.js';
import { T5_MAX_LENGTH } from '../encoders/tokenizer.js';
import { encoderDtype, type TrainConfig } from './config.js';
import type { Encoders } from './conditioning.js';
import { TrainError } from './errors.js';

/** Cameras per history step the image tokens hold (agentview, eye-in-hand, and one empty slot), and history steps. */
const CAMERA_SLOTS = 3;
const HISTORY = 2;

/** Refuse encoders whose token sizes the model was not built for (one line naming both numbers); frees them first. */
function checkSizes(c: RdtConfig, enc: Encoders, label: string, fix: string): Encoders {
  const perImage = enc.vision.tokensPerImage;
  const given = HISTORY * CAMERA_SLOTS * perImage;
  const problems: string[] = [];
  if (c.lang_token_dim !== enc.text.tokenDim) problems.push(`lang_token_dim ${c.lang_token_dim} but the text encoder gives ${enc.text.tokenDim}-d tokens`);
  if (c.img_token_dim !== enc.vision.tokenDim) problems.push(`img_token_dim ${c.img_token_dim} but the vision encoder gives ${enc.vision.tokenDim}-d tokens`);
  if (c.img_cond_len !== given)
    problems.push(`img_cond_len ${c.img_cond_len} image tokens but the vision encoder gives ${HISTORY} history x ${CAMERA_SLOTS} cameras x ${perImage} = ${given}`);
  if (!problems.length) return enc;
  enc.vision.dispose();
  enc.text.dispose();
  throw new TrainError(`the model has ${problems.join('; ')} (${label}); ${fix}`);
}

function demoEncoders(c: RdtConfig, vision: 'patches' | 'palette'): Encoders {
  // Built through the one factory that loadPolicy also uses, from the identity policy.json records.
  const enc = createEncoders(demoEncoderIdentity(c, vision));
  return checkSizes(c, enc, 'demo encoders', `use a config with img_cond_len ${HISTORY * CAMERA_SLOTS * enc.vision.tokensPerImage}`);
}

/**
 * T5 + SigLIP from the configured folders: frozen (their weights never require grad and the trainer encodes
 * under noGrad), on the run's device, in encoder_dtype. Instructions longer than the model's
 * max_lang_cond_len (or 1024) tokens are refused by the tokenizer, quoted.
 */
function officialEncoders(c: RdtConfig, cfg: TrainConfig): Encoders {
  if (cfg.text_cache !== null) return cachedEncoders(c, cfg);
  const enc = loadOfficialEncoders({ text: cfg.text_encoder!, vision: cfg.vision_encoder!, tokenizer: cfg.tokenizer },
    { device: cfg.device, dtype: encoderDtype(cfg), maxLength: Math.min(T5_MAX_LENGTH, c.max_lang_cond_len) });
  return checkSizes(c, enc, `encoders from ${cfg.text_encoder} and ${cfg.vision_encoder}`,
    'use a model whose config takes these encoders\' sizes (rdt-1b: 4096, 1152, 2 x 3 x 729 = 4374 for T5-v1.1-XXL + SigLIP so400m/14-384)');
}

/**
 * text_cache: T5's tokens read from the cache (`rdt-libero encode --cache`), T5 itself never loaded; its folders
 * are only hashed, and a cache made with other T5 files or another encoder_dtype is refused. The trainer
 * checks, once the data is open, that every instruction is cached.
 */
function cachedEncoders(c: RdtConfig, cfg: TrainConfig): Encoders {
  const dtype = encoderDtype(cfg);
  const textDir = cfg.text_encoder!;
  const tokDir = cfg.tokenizer ?? textDir;
  const fix = `make it with rdt-libero encode --text-encoder ${textDir}${cfg.tokenizer ? ` --tokenizer ${cfg.tokenizer}` : ''} --dtype ${dtype} ` +
    `--dataset-root ${cfg.data.dataset_root ?? 'ROOT'} --cache ${cfg.text_cache}, or set text_cache: null`;
  const cache = TextCache.read(cfg.text_cache!, textCacheIdentityOf({ text: textDir, tokenizer: tokDir }, dtype), fix);
  const text = new CachedTextEncoder(cache, textDir, tokDir, Math.min(T5_MAX_LENGTH, c.max_lang_cond_len), cfg.device);
  let vision: SiglipVisionEncoder;
  try {
    vision = SiglipVisionEncoder.load(cfg.vision_encoder!, { dtype, device: cfg.device });
  } catch (e) {
    text.dispose();
    throw e;
  }
  return checkSizes(c, { text, vision }, `T5 tokens from ${cfg.text_cache} and the vision encoder ${cfg.vision_encoder}`,
    'use a model whose config takes these encoders\' sizes (rdt-1b: 4096, 1152, 2 x 3 x 729 = 4374 for T5-v1.1-XXL + SigLIP so400m/14-384)');
}

/** Builds the frozen condition encoders for a model config (a `hooks.encoders` factory replaces the built-in choice). */
export type EncoderFactory = (model: RdtConfig, cfg: TrainConfig) => Encoders;

export const ENCODER_FACTORIES: Readonly<Record<TrainConfig['encoders'], EncoderFactory>> = {
  demo: (c) => demoEncoders(c, 'patches'),
  demo_palette: (c) => demoEncoders(c, 'palette'),
  official: (c, cfg) => officialEncoders(c, cfg),
};

/** The encoders for `model`: the hook's factory if one is registered, else the one `cfg.encoders` names. */
export function buildEncoders(model: RdtConfig, cfg: TrainConfig, hook: EncoderFactory | null): Encoders {
  return (hook ?? ENCODER_FACTORIES[cfg.encoders])(model, cfg);
}

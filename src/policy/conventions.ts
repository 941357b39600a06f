// From a run's pieces to the recorded conventions (what training writes), from the conventions to the data
// adapter (what the policy reads), and the check that a policy file, config.json and the encoders agree on every
// size: chunk = pred_horizon, history and cameras from img_cond_len / the encoder's tokens per image.
import { type AdapterConfig, NUM_CAMERA_SLOTS, CAMERA_SLOT, adapterConfig, stateSlots } from '../data/adapter.js';
import type { DatasetStat } from '../data/stats.js';
import { encoderIdentity } from '../encoders/factory.js';
import type { TextEncoder, VisionEncoder } from '../encoders/types.js';
import type { RdtConfig } from '../model/config.js';
import type { ValueNormalization } from '../model/runner.js';
import type { PolicyConventions, PolicyStatistics, ValueNormalizationName } from './file.js';
import { PolicyError } from './errors.js';

/** The sizes the model's config implies for the data adapter. */
export interface ModelSizes {
  chunkSize: number;
  historySize: number;
  cameras: number;
  tokensPerImage: number;
}

/**
 * chunk = pred_horizon; the image tokens are history x cameras x tokens-per-image, in that order (the official
 * img_pos_embed_config [['image', [history, cameras, -tokens]]]); without that grid, cameras = 3 RDT slots and
 * history = img_cond_len / (3 x the encoder's tokens per image).
 */
export function modelSizes(rdt: RdtConfig, tokensPerImage: number, source: string): ModelSizes {
  const img = rdt.img_pos_embed_config;
  if (img.length === 1 && Array.isArray(img[0][1]) && img[0][1].length === 3) {
    const [h, c, t] = img[0][1].map(Math.abs);
    if (t !== tokensPerImage)
      throw new PolicyError(`${source}: img_pos_embed_config says ${t} tokens per image, the vision encoder gives ${tokensPerImage}: the encoder is not the one the model was trained with`);
    return { chunkSize: rdt.pred_horizon, historySize: h, cameras: c, tokensPerImage: t };
  }
  const per = NUM_CAMERA_SLOTS * tokensPerImage;
  if (rdt.img_cond_len % per !== 0)
    throw new PolicyError(`${source}: img_cond_len ${rdt.img_cond_len} is not a multiple of 3 cameras x ${tokensPerImage} tokens per image (the vision encoder's)`);
  return { chunkSize: rdt.pred_horizon, historySize: rdt.img_cond_len / per, cameras: NUM_CAMERA_SLOTS, tokensPerImage };
}

/**
 * Refuse, at load, any disagreement between the policy file, config.json and the encoders, so a mismatch is one
 * message here and never a shape error at the first step.
 */
export function checkAgainstModel(c: PolicyConventions, rdt: RdtConfig, enc: { text: TextEncoder; vision: VisionEncoder }, files: { policy: string; config: string }): ModelSizes {
  const sizes = modelSizes(rdt, enc.vision.tokensPerImage, files.config);
  const bad = (field: string, have: number, key: string, want: number) => {
    throw new PolicyError(`${files.policy}: field '${field}' is ${have} but ${files.config} has ${key} ${want}; the file and the weights do not belong together`);
  };
  if (c.action.chunk_size !== sizes.chunkSize) bad('action.chunk_size', c.action.chunk_size, 'pred_horizon', sizes.chunkSize);
  if (c.cameras.history !== sizes.historySize) bad('cameras.history', c.cameras.history, 'img_cond_len/img_pos_embed_config history', sizes.historySize);
  if (sizes.cameras !== NUM_CAMERA_SLOTS) bad('cameras.slots', NUM_CAMERA_SLOTS, 'img_pos_embed_config cameras', sizes.cameras);
  if (c.encoders.text.token_dim !== rdt.lang_token_dim) bad('encoders.text.token_dim', c.encoders.text.token_dim, 'lang_token_dim', rdt.lang_token_dim);
  if (c.encoders.vision.token_dim !== rdt.img_token_dim) bad('encoders.vision.token_dim', c.encoders.vision.token_dim, 'img_token_dim', rdt.img_token_dim);
  if (c.encoders.text.max_length > rdt.max_lang_cond_len) bad('encoders.text.max_length', c.encoders.text.max_length, 'max_lang_cond_len', rdt.max_lang_cond_len);
  if (rdt.action_dim !== 128) throw new PolicyError(`${files.config}: action_dim is ${rdt.action_dim}; LIBERO policies use RDT's unified 128-d vector`);
  return sizes;
}

/** The data adapter the conventions describe. */
export function adapterFromConventions(c: PolicyConventions): AdapterConfig {
  return adapterConfig({
    encoding: c.action.encoding,
    useJoints: c.state.use_joints,
    orientation: c.cameras.orientation,
    ctrlFreq: c.action.ctrl_freq,
    chunkSize: c.action.chunk_size,
    historySize: c.cameras.history,
    imageHeight: c.cameras.height,
    imageWidth: c.cameras.width,
  });
}

/** What a training run knows, gathered where the trainer builds its model. */
export interface RunFacts {
  /** The dataset's adapter (LiberoDataset.cfg): encoding, state slots, orientation, sizes, ctrl_freq. */
  adapter: AdapterConfig;
  /** The statistics entry the run used (loadOrComputeStats(...).stats.libero). */
  stats: DatasetStat;
  encoders: { text: TextEncoder; vision: VisionEncoder };
  rdt: RdtConfig;
  /** The run's output folder name, and the model it started from (pretrained path or preset). */
  run: string;
  baseModel: string;
  lora: { enabled: boolean; rank: number; alpha: number; targets: string[] };
  /** The run's exec_horizon: what an evaluation executes of each chunk by default. */
  execHorizon: number;
  /** The training data's format (LiberoDataset.format). */
  dataFormat?: string;
  /** The run's value_normalization. */
  normalization: ValueNormalizationName;
}

/** The statistics a runner normalizes its values with (RDTRunner.setValueNormalization). */
export function valueNormalizationOf(s: Pick<DatasetStat, 'state_mean' | 'state_std' | 'action_mean' | 'action_std'>): ValueNormalization {
  return { stateMean: s.state_mean, stateStd: s.state_std, actionMean: s.action_mean, actionStd: s.action_std };
}

/** The conventions of a run (origin filled per saved folder by withOrigin). Refuses inconsistent runs up front. */
export function policyConventions(f: RunFacts): PolicyConventions {
  const s = f.stats;
  const statistics: PolicyStatistics = {
    dataset_name: s.dataset_name,
    state_mean: s.state_mean, state_std: s.state_std, state_min: s.state_min, state_max: s.state_max,
    action_mean: s.action_mean, action_std: s.action_std, action_min: s.action_min, action_max: s.action_max,
    action_encoding: s.action_encoding, num_steps: s.num_steps, num_episodes: s.num_episodes,
  };
  if (f.execHorizon > f.adapter.chunkSize)
    throw new PolicyError(`exec_horizon ${f.execHorizon} is longer than the model's chunk of ${f.adapter.chunkSize} steps (pred_horizon): an evaluation cannot execute more steps than a chunk plans`);
  const c: PolicyConventions = {
    action: { encoding: f.adapter.encoding, chunk_size: f.adapter.chunkSize, ctrl_freq: f.adapter.ctrlFreq, exec_horizon: f.execHorizon },
    state: { use_joints: f.adapter.useJoints, slots: stateSlots(f.adapter) },
    cameras: { slots: { ...CAMERA_SLOT }, orientation: f.adapter.orientation, height: f.adapter.imageHeight, width: f.adapter.imageWidth, history: f.adapter.historySize },
    statistics,
    normalization: f.normalization,
    encoders: encoderIdentity(f.encoders),
    lora: f.lora.enabled ? { rank: f.lora.rank, alpha: f.lora.alpha, targets: [...f.lora.targets] } : null,
    origin: { run: f.run, step: 0, ema: false, base_model: f.baseModel, ...(f.dataFormat ? { data_format: f.dataFormat } : {}) },
  };
  checkAgainstModel(c, f.rdt, f.encoders, { policy: 'the run\'s policy conventions', config: 'the model config' });
  return c;
}

// SiglipVisionConfig fields the tower needs. A full SigLIP config (model_type 'siglip', what
// google/siglip-so400m-patch14-384 ships) nests them under vision_config and lists only the fields
// that differ from the defaults, so transformers' SiglipVisionConfig defaults are applied here.
import { EncoderError } from './errors.js';

export interface SiglipVisionConfig {
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numChannels: number;
  imageSize: number;
  patchSize: number;
  /**
   * Patches per image side: floor(image_size / patch_size), as the stride-patch_size convolution gives (the
   * remainder pixels are dropped). so400m-patch14-384: 384 / 14 -> 27, so 27 x 27 = 729 patches.
   */
  gridSize: number;
  eps: number;
}

export function parseSiglipConfig(c: Record<string, unknown>, where: string): SiglipVisionConfig {
  let v = c;
  if (c.model_type === 'siglip') {
    if (!c.vision_config || typeof c.vision_config !== 'object')
      throw new EncoderError(`${where}: a SigLIP config (model_type 'siglip') needs a vision_config object`);
    v = c.vision_config as Record<string, unknown>;
  } else if (c.model_type !== undefined && c.model_type !== 'siglip_vision_model')
    throw new EncoderError(`${where}: model_type is '${String(c.model_type)}', not 'siglip' or 'siglip_vision_model'`);
  const num = (k: string, def: number): number => {
    const x = v[k] ?? def;
    if (typeof x !== 'number' || !(x > 0)) throw new EncoderError(`${where}: ${k} must be a positive number, got ${JSON.stringify(x)}`);
    return x;
  };
  const act = v.hidden_act ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh')
    throw new EncoderError(`${where}: hidden_act '${String(act)}' is not supported (SigLIP uses gelu_pytorch_tanh)`);
  const cfg = {
    hiddenSize: num('hidden_size', 768),
    intermediateSize: num('intermediate_size', 3072),
    numLayers: num('num_hidden_layers', 12),
    numHeads: num('num_attention_heads', 12),
    numChannels: num('num_channels', 3),
    imageSize: num('image_size', 224),
    patchSize: num('patch_size', 16),
    eps: num('layer_norm_eps', 1e-6),
  };
  if (cfg.hiddenSize % cfg.numHeads)
    throw new EncoderError(`${where}: hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numHeads}`);
  if (cfg.patchSize > cfg.imageSize)
    throw new EncoderError(`${where}: patch_size ${cfg.patchSize} is larger than image_size ${cfg.imageSize}`);
  return { ...cfg, gridSize: Math.floor(cfg.imageSize / cfg.patchSize) };
}

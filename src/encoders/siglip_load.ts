// Load the SigLIP vision tower from a hub folder: a vision-only checkpoint (SiglipVisionModel) or the
// full SigLIP one (google/siglip-so400m-patch14-384: text tower, logit_scale/bias and the pooling head
// are skipped, never read).
import { readHubConfig, loadHubWeights } from './hub_weights.js';
import { parseSiglipConfig } from './siglip_config.js';
import { SiglipVisionModel, type SiglipAttention } from './siglip.js';
import { checkDtype, type EncoderLoadOptions } from './t5_load.js';
import { WeightSource } from './weight_source.js';

export function loadSiglipVision(dir: string, opts: EncoderLoadOptions & { attention?: SiglipAttention } = {}): SiglipVisionModel {
  const dtype = opts.dtype ?? 'float32';
  const device = opts.device ?? 'cpu';
  checkDtype(dtype, 'the SigLIP vision tower');
  const config = parseSiglipConfig(readHubConfig(dir), `${dir}/config.json`);
  const select = (k: string): string | null =>
    k.startsWith('vision_model.') && !k.startsWith('vision_model.head.') && k !== 'vision_model.embeddings.position_ids' ? k : null;
  const source = new WeightSource(dir, loadHubWeights(dir, select, { dtype, device }), dtype, device);
  return source.finishFor(new SiglipVisionModel(source, config, dtype, device, opts.attention ?? 'eager'));
}

// Load the T5 encoder from a hub folder (config.json + any weight layout). Only `shared.weight` and
// `encoder.*` are read, so the full encoder-decoder checkpoint of google/t5-v1_1-xxl works and its
// decoder never reaches memory. `encoder.embed_tokens.weight` is the tied copy of `shared.weight`
// (torch.save writes both): it stands in for shared only when shared is absent.
import type { DType, Device } from '../engine/index.js';
import { EncoderError } from './errors.js';
import { listHubWeights, loadHubWeights, readHubConfig } from './hub_weights.js';
import { T5EncoderModel } from './t5.js';
import { parseT5Config } from './t5_config.js';
import { WeightSource } from './weight_source.js';

export interface EncoderLoadOptions {
  /** Weight and compute dtype: float32 or bfloat16 (default float32). */
  dtype?: DType;
  device?: Device;
}

function checkDtype(dtype: DType, what: string): void {
  if (dtype !== 'float32' && dtype !== 'bfloat16')
    throw new EncoderError(`${what} runs in float32 or bfloat16, not ${dtype} (float16 overflows in T5); pass --dtype float32|bfloat16`);
}

export function loadT5Encoder(dir: string, opts: EncoderLoadOptions = {}): T5EncoderModel {
  const dtype = opts.dtype ?? 'float32';
  const device = opts.device ?? 'cpu';
  checkDtype(dtype, 'the T5 encoder');
  const config = parseT5Config(readHubConfig(dir), `${dir}/config.json`);
  const keys = listHubWeights(dir);
  const hasShared = keys.has('shared.weight');
  const select = (k: string): string | null => {
    if (k === 'shared.weight') return k;
    if (k === 'encoder.embed_tokens.weight') return hasShared ? null : 'shared.weight';
    return k.startsWith('encoder.') ? k : null;
  };
  const weights = loadHubWeights(dir, select, { dtype, device });
  const source = new WeightSource(dir, weights, dtype, device);
  return source.finishFor(new T5EncoderModel(source, config, dtype, device));
}

export { checkDtype };

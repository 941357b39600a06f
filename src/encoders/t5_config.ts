// T5Config fields the encoder needs, with transformers' defaults for the ones a hub config omits.
import { EncoderError } from './errors.js';

export interface T5EncoderConfig {
  vocabSize: number;
  dModel: number;
  dKv: number;
  dFf: number;
  numLayers: number;
  numHeads: number;
  numBuckets: number;
  maxDistance: number;
  eps: number;
  /** 'gated-gelu' (T5 v1.1: gelu_new(wi_0 x) * wi_1 x), 'gated-relu', or 'relu'/'gelu' (one wi). */
  gated: boolean;
  act: 'gelu_new' | 'relu';
}

export function parseT5Config(c: Record<string, unknown>, where: string): T5EncoderConfig {
  if (c.model_type !== undefined && c.model_type !== 't5')
    throw new EncoderError(`${where}: model_type is '${String(c.model_type)}', not 't5'; pass a T5 (google/t5-v1_1-xxl) folder`);
  const num = (k: string, def: number): number => {
    const v = c[k] ?? def;
    if (typeof v !== 'number' || !(v > 0)) throw new EncoderError(`${where}: ${k} must be a positive number, got ${JSON.stringify(v)}`);
    return v;
  };
  const ffp = String(c.feed_forward_proj ?? 'relu');
  const m = /^(gated-)?(gelu|relu)$/.exec(ffp);
  if (!m) throw new EncoderError(`${where}: feed_forward_proj '${ffp}' is not supported (use gated-gelu, gated-relu, gelu or relu)`);
  return {
    vocabSize: num('vocab_size', 32128),
    dModel: num('d_model', 512),
    dKv: num('d_kv', 64),
    dFf: num('d_ff', 2048),
    numLayers: num('num_layers', 6),
    numHeads: num('num_heads', 8),
    numBuckets: num('relative_attention_num_buckets', 32),
    maxDistance: num('relative_attention_max_distance', 128),
    eps: num('layer_norm_epsilon', 1e-6),
    gated: m[1] !== undefined,
    // transformers maps 'gated-gelu' to gelu_new (the tanh approximation), for T5 v1.1 compatibility.
    act: m[2] === 'gelu' ? 'gelu_new' : 'relu',
  };
}

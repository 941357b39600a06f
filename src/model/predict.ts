// predictAction from a bag of named tensors (the `predict` CLI's input file): checks every tensor
// and its shape against the model, with errors naming the key and the expected shape.
import * as torch from '../engine/index.js';
import type { Tensor } from '../engine/index.js';
import { ModelError } from './errors.js';
import type { RDTRunner, SampleOptions } from './runner.js';

export const PREDICT_INPUTS = [
  { name: 'lang_tokens', shape: '(B, L, lang_token_dim)', what: 'T5 encoder output', required: true },
  { name: 'lang_mask', shape: '(B, L)', what: 'nonzero = real token', required: true },
  { name: 'img_tokens', shape: '(B, img_cond_len, img_token_dim)', what: 'SigLIP tokens: ext, right, left cameras at t-1, then at t', required: true },
  { name: 'state', shape: '(B, 1, state_token_dim)', what: 'current state in the unified vector', required: true },
  { name: 'state_mask', shape: '(B, action_dim)', what: '1 where the robot fills the unified vector', required: true },
  { name: 'ctrl_freq', shape: '(B,)', what: 'control frequency in Hz', required: true },
  { name: 'noise', shape: '(B, horizon, action_dim)', what: 'initial noise x_T (optional: else drawn, see --seed)', required: false },
] as const;

export function predictFromTensors(runner: RDTRunner, inputs: Map<string, Tensor>, opts: Omit<SampleOptions, 'noise'> & { source?: string } = {}): Tensor {
  const cfg = runner.config;
  const where = opts.source ?? 'inputs';
  const missing = PREDICT_INPUTS.filter((i) => i.required && !inputs.has(i.name)).map((i) => `'${i.name}' ${i.shape}`);
  if (missing.length) throw new ModelError(`${where}: missing tensors ${missing.join(', ')}`);
  const known = new Set<string>(PREDICT_INPUTS.map((i) => i.name));
  const extra = [...inputs.keys()].filter((k) => !known.has(k));
  if (extra.length) throw new ModelError(`${where}: unexpected tensors ${extra.map((k) => `'${k}'`).join(', ')}; expected ${[...known].join(', ')}`);
  const get = (k: string) => inputs.get(k)!;
  const B = get('lang_tokens').shape[0];
  const L = get('lang_tokens').shape[1];
  const expected: Record<string, number[]> = {
    lang_tokens: [B, L, cfg.lang_token_dim],
    lang_mask: [B, L],
    img_tokens: [B, cfg.img_cond_len, cfg.img_token_dim],
    state: [B, 1, cfg.state_token_dim],
    state_mask: [B, cfg.action_dim],
    ctrl_freq: [B],
    noise: [B, cfg.pred_horizon, cfg.action_dim],
  };
  for (const [k, shape] of Object.entries(expected)) {
    const t = inputs.get(k);
    if (!t) continue;
    if (t.ndim !== shape.length || t.shape.some((d, i) => d !== shape[i]))
      throw new ModelError(`${where}: '${k}' has shape [${t.shape}], expected [${shape}] (${PREDICT_INPUTS.find((i) => i.name === k)!.shape})`);
  }
  if (L > cfg.max_lang_cond_len) throw new ModelError(`${where}: 'lang_tokens' has ${L} tokens, more than max_lang_cond_len ${cfg.max_lang_cond_len}`);
  return torch.scope(() => runner.predictAction({
    langTokens: get('lang_tokens'),
    langMask: get('lang_mask'),
    imgTokens: get('img_tokens'),
    stateTokens: get('state'),
    actionMask: get('state_mask').unsqueeze(1), // (B, A) -> (B, 1, A)
    ctrlFreqs: get('ctrl_freq').to({ dtype: 'float32' }),
  }, { ...opts, noise: inputs.get('noise') }));
}

// torch.nn.utils.clip_grad_norm_: one native call over all gradients.
import { N } from '../native.js';
import type { Tensor } from '../tensor.js';

/**
 * Scale all gradients so their joint norm is at most maxNorm; returns the total norm before
 * clipping (PyTorch's formula: coef = min(1, maxNorm / (norm + 1e-6))). normType may be Infinity.
 */
export function clipGradNorm_(params: Tensor[], maxNorm: number, normType: number | 'inf' = 2, opts: { errorIfNonfinite?: boolean } = {}): number {
  const p = normType === 'inf' ? Infinity : normType;
  return N.clipGradNorm(params.map((t) => t.h), maxNorm, p, opts.errorIfNonfinite ?? false);
}

// torch.nn.utils.clip_grad_norm_: one native call over all gradients.
import { N } from '../native.js';
import { Tensor } from '../tensor.js';

/**
 * Scale all gradients so their joint norm is at most maxNorm; returns the total norm before
 * clipping (PyTorch's formula: coef = min(1, maxNorm / (norm + 1e-6))). normType may be Infinity.
 */
export function clipGradNorm_(params: Tensor[], maxNorm: number, normType: number | 'inf' = 2, opts: { errorIfNonfinite?: boolean } = {}): number {
  const p = normType === 'inf' ? Infinity : normType;
  return N.clipGradNorm(params.map((t) => t.h), maxNorm, p, opts.errorIfNonfinite ?? false);
}

/** clipGradNorm_'s first half: the per-tensor norms of the gradients that exist, in order (1-D; empty when none). */
export function gradNorms(params: readonly Tensor[], normType: number | 'inf' = 2): Tensor {
  return new Tensor(N.gradNorms(params.map((t) => t.h), normType === 'inf' ? Infinity : normType));
}

/**
 * clipGradNorm_'s second half, given the per-tensor norms of the whole model (`norms`, e.g. assembled from the ranks
 * of a sharded run): the same total norm and scaling as clipGradNorm_ over all of them, applied to `params`' gradients.
 */
export function clipGradsWithNorms(params: readonly Tensor[], norms: Tensor, maxNorm: number, normType: number | 'inf' = 2, opts: { errorIfNonfinite?: boolean } = {}): number {
  return N.clipGradsWithNorms(params.map((t) => t.h), norms.h, maxNorm, normType === 'inf' ? Infinity : normType, opts.errorIfNonfinite ?? false);
}

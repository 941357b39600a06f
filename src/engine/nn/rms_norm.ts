// nn.RMSNorm in the two forms RDT checkpoints may have been trained with (shared/docs/rdt-spec.md 1.4):
// 'timm103-unbiased-var' (default; timm 1.0.3 without apex): x * rsqrt(var(x, unbiased) + eps) * w;
// 'mean-square' (apex / torch.nn.RMSNorm):                   x * rsqrt(mean(x^2) + eps) * w.
import { Tensor, type Device } from '../tensor.js';
import { ones } from '../create.js';
import type { DType } from '../dtype.js';
import { Module, Parameter } from './module.js';
import { rmsNorm, rmsNormTimmVar } from './functional.js';

export { rmsNorm, rmsNormTimmVar };

export type RmsNormVariant = 'timm103-unbiased-var' | 'mean-square';

export interface RMSNormOptions {
  eps?: number;
  variant?: RmsNormVariant;
  elementwiseAffine?: boolean;
  dtype?: DType;
  device?: Device;
}

export class RMSNorm extends Module {
  weight: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly variant: RmsNormVariant;
  constructor(dim: number | number[], opts: RMSNormOptions = {}) {
    super();
    this.normalizedShape = typeof dim === 'number' ? [dim] : [...dim];
    this.eps = opts.eps ?? 1e-6;
    this.variant = opts.variant ?? 'timm103-unbiased-var';
    this.weight = opts.elementwiseAffine ?? true
      ? new Parameter(ones(this.normalizedShape, { dtype: opts.dtype, device: opts.device })) : null;
  }
  override forward(x: Tensor): Tensor {
    return this.variant === 'mean-square'
      ? rmsNorm(x, this.normalizedShape, this.weight, this.eps)
      : rmsNormTimmVar(x, this.normalizedShape, this.weight, this.eps);
  }
}

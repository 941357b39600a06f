// nn.LayerNorm over the trailing normalizedShape dims.
import { Tensor, type Device } from '../tensor.js';
import { ones, zeros } from '../create.js';
import type { DType } from '../dtype.js';
import { Module, Parameter } from './module.js';
import { layerNorm } from './functional.js';

export { layerNorm };

export interface LayerNormOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  bias?: boolean;
  dtype?: DType;
  device?: Device;
}

export class LayerNorm extends Module {
  weight: Parameter | null;
  bias: Parameter | null;
  readonly normalizedShape: number[];
  readonly eps: number;
  constructor(normalizedShape: number | number[], opts: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = opts.eps ?? 1e-5;
    const o = { dtype: opts.dtype, device: opts.device };
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? new Parameter(ones(this.normalizedShape, o)) : null;
    this.bias = affine && (opts.bias ?? true) ? new Parameter(zeros(this.normalizedShape, o)) : null;
  }
  override forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

// Parameter-free activation modules (they appear as numbered gaps in Sequential state dicts).
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';
import { gelu, relu, silu } from './functional.js';

export { gelu, relu, silu };

export class GELU extends Module {
  readonly approximate: 'none' | 'tanh';
  constructor(opts: { approximate?: 'none' | 'tanh' } = {}) {
    super();
    this.approximate = opts.approximate ?? 'none';
  }
  override forward(x: Tensor): Tensor {
    return gelu(x, { approximate: this.approximate });
  }
}
export class SiLU extends Module {
  override forward(x: Tensor): Tensor {
    return silu(x);
  }
}
export class ReLU extends Module {
  override forward(x: Tensor): Tensor {
    return relu(x);
  }
}
/** Returns its input (the same tensor, as PyTorch). */
export class Identity extends Module {
  override forward(x: Tensor): Tensor {
    return x;
  }
}

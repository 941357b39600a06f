// nn.Linear: y = x W^T + b, W (out, in); PyTorch's default initialisation.
import { Tensor, EngineError, type Device } from '../tensor.js';
import { empty } from '../create.js';
import type { DType } from '../dtype.js';
import type { Generator } from '../system.js';
import { Module, Parameter } from './module.js';
import { linear } from './functional.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from './init.js';

export { linear };

export interface LinearOptions {
  bias?: boolean;
  dtype?: DType;
  device?: Device;
  /** Random stream for the initialisation (default: the global one). */
  generator?: Generator;
}

export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  constructor(readonly inFeatures: number, readonly outFeatures: number, opts: LinearOptions = {}) {
    super();
    const o = { dtype: opts.dtype, device: opts.device };
    this.weight = new Parameter(empty([outFeatures, inFeatures], o));
    this.bias = opts.bias ?? true ? new Parameter(empty([outFeatures], o)) : null;
    this.resetParameters(opts.generator);
  }

  /** kaiming_uniform(a=sqrt(5)) for W, U(+-1/sqrt(fan_in)) for b, as torch.nn.Linear. */
  resetParameters(generator?: Generator): void {
    kaimingUniform_(this.weight, Math.sqrt(5), generator);
    if (this.bias) {
      const [fanIn] = calculateFanInAndFanOut(this.weight);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      uniform_(this.bias, -bound, bound, generator);
    }
  }

  override forward(x: Tensor): Tensor {
    const s = x.shape;
    if (s[s.length - 1] !== this.inFeatures)
      throw new EngineError(`Linear(${this.inFeatures} -> ${this.outFeatures}): input has last dim ${s[s.length - 1]} (shape [${s}]); expected ${this.inFeatures}`);
    return linear(x, this.weight, this.bias);
  }
}

// nn.Conv2d with PyTorch's default initialisation.
import { Tensor, type Device } from '../tensor.js';
import { empty } from '../create.js';
import type { DType } from '../dtype.js';
import type { Generator } from '../system.js';
import { Module, Parameter } from './module.js';
import { conv2d } from './functional.js';
import { calculateFanInAndFanOut, kaimingUniform_, uniform_ } from './init.js';

export { conv2d };

type Pair = number | [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dModuleOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
  dtype?: DType;
  device?: Device;
  generator?: Generator;
}

export class Conv2d extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;
  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: Pair, opts: Conv2dModuleOptions = {}) {
    super();
    this.stride = pair(opts.stride ?? 1);
    this.padding = pair(opts.padding ?? 0);
    this.dilation = pair(opts.dilation ?? 1);
    this.groups = opts.groups ?? 1;
    const [kh, kw] = pair(kernelSize);
    const o = { dtype: opts.dtype, device: opts.device };
    this.weight = new Parameter(empty([outChannels, inChannels / this.groups, kh, kw], o));
    this.bias = opts.bias ?? true ? new Parameter(empty([outChannels], o)) : null;
    this.resetParameters(opts.generator);
  }
  resetParameters(generator?: Generator): void {
    kaimingUniform_(this.weight, Math.sqrt(5), generator);
    if (this.bias) {
      const [fanIn] = calculateFanInAndFanOut(this.weight);
      if (fanIn !== 0) {
        const bound = 1 / Math.sqrt(fanIn);
        uniform_(this.bias, -bound, bound, generator);
      }
    }
  }
  override forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}

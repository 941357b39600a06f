// Random sampling. Every op takes an optional torch.Generator; without one it draws from the
// global generator (torch.manualSeed). A CPU generator seeded s gives exactly the numbers of
// PyTorch's torch.Generator().manual_seed(s) for the same call sequence.
import { N } from '../native.js';
import { Tensor, type Device } from '../tensor.js';
import { checkDevice } from '../device.js';
import { DTYPE_CODE, type DType } from '../dtype.js';
import type { Generator } from '../system.js';

export interface RandomOptions {
  generator?: Generator;
  dtype?: DType;
  device?: Device;
}

const g = (gen?: Generator) => (gen ? gen.g : null);
const dt = (o: RandomOptions, def: DType = 'float32') => DTYPE_CODE[o.dtype ?? def];
const dev = (o: RandomOptions) => {
  const d = o.device ?? 'cpu';
  checkDevice(d);
  return d;
};

declare module '../tensor.js' {
  interface Tensor {
    /** In place: fill with U(from, to). */
    uniform_(from?: number, to?: number, generator?: Generator): this;
    /** In place: fill with N(mean, std^2). */
    normal_(mean?: number, std?: number, generator?: Generator): this;
    /** In place: fill with 1 with probability p (a number or a tensor of probabilities), else 0. */
    bernoulli_(p?: number | Tensor, generator?: Generator): this;
  }
}

const P = Tensor.prototype;
P.uniform_ = function (from = 0, to = 1, generator) { N.uniform_(this.h, from, to, g(generator)); return this; };
P.normal_ = function (mean = 0, std = 1, generator) { N.normal_(this.h, mean, std, g(generator)); return this; };
P.bernoulli_ = function (p = 0.5, generator) {
  N.bernoulli_(this.h, typeof p === 'number' ? p : p.h, g(generator));
  return this;
};

/** torch.randn: standard normal samples. */
export function randn(shape: number[], opts: RandomOptions = {}): Tensor {
  return new Tensor(N.randn(shape, g(opts.generator), dt(opts), dev(opts)));
}
/** torch.rand: U[0, 1) samples. */
export function rand(shape: number[], opts: RandomOptions = {}): Tensor {
  return new Tensor(N.rand(shape, g(opts.generator), dt(opts), dev(opts)));
}
/** torch.randint: integers in [low, high), int64 by default. */
export function randint(low: number, high: number, shape: number[], opts: RandomOptions = {}): Tensor {
  return new Tensor(N.randint(low, high, shape, g(opts.generator), dt(opts, 'int64'), dev(opts)));
}
/** torch.normal(mean, std, size): N(mean, std^2) samples. */
export function normal(mean: number, std: number, shape: number[], opts: RandomOptions = {}): Tensor {
  return new Tensor(N.normal(mean, std, shape, g(opts.generator), dt(opts), dev(opts)));
}
/** torch.bernoulli: 1 with probability p[i], else 0, in p's dtype and device. */
export function bernoulli(p: Tensor, opts: { generator?: Generator } = {}): Tensor {
  return new Tensor(N.bernoulli(p.h, g(opts.generator)));
}
/** torch.randperm: a random permutation of 0..n-1 (int64 by default). */
export function randperm(n: number, opts: RandomOptions = {}): Tensor {
  return new Tensor(N.randperm(n, g(opts.generator), dt(opts, 'int64'), dev(opts)));
}

// nn.init: in-place initialisers, with PyTorch's bound formulas computed the same way in double
// precision, so that with the same generator state they draw exactly PyTorch's numbers.
import { Tensor, EngineError } from '../tensor.js';
import { noGrad } from '../autograd.js';
import type { Generator } from '../system.js';

/** (fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out. */
export function calculateFanInAndFanOut(t: Tensor): [number, number] {
  const s = t.shape;
  if (s.length < 2) throw new EngineError(`init: fan in and fan out need a tensor with at least 2 dims, got [${s}]`);
  const receptive = s.slice(2).reduce((a, b) => a * b, 1);
  return [s[1] * receptive, s[0] * receptive];
}

/** torch.nn.init.calculate_gain for the nonlinearities the model uses. */
export function calculateGain(nonlinearity: 'linear' | 'conv2d' | 'sigmoid' | 'tanh' | 'relu' | 'leaky_relu', param?: number): number {
  switch (nonlinearity) {
    case 'linear': case 'conv2d': case 'sigmoid': return 1;
    case 'tanh': return 5.0 / 3;
    case 'relu': return Math.sqrt(2.0);
    case 'leaky_relu': {
      const slope = param ?? 0.01;
      return Math.sqrt(2.0 / (1 + slope ** 2));
    }
  }
}

export function uniform_(t: Tensor, a = 0, b = 1, generator?: Generator): Tensor {
  return noGrad(() => t.uniform_(a, b, generator));
}
export function normal_(t: Tensor, mean = 0, std = 1, generator?: Generator): Tensor {
  return noGrad(() => t.normal_(mean, std, generator));
}
export function constant_(t: Tensor, value: number): Tensor {
  return noGrad(() => t.fill_(value));
}
export function zeros_(t: Tensor): Tensor {
  return noGrad(() => t.zero_());
}
export function ones_(t: Tensor): Tensor {
  return noGrad(() => t.fill_(1));
}

/** U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)). */
export function xavierUniform_(t: Tensor, gain = 1, generator?: Generator): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const std = gain * Math.sqrt(2.0 / (fanIn + fanOut));
  const a = Math.sqrt(3.0) * std;
  return uniform_(t, -a, a, generator);
}

/** U(-b, b) with b = gain(leaky_relu, a) * sqrt(3 / fan). */
export function kaimingUniform_(t: Tensor, a = 0, generator?: Generator, opts: { mode?: 'fan_in' | 'fan_out'; nonlinearity?: 'leaky_relu' | 'relu' } = {}): Tensor {
  const [fanIn, fanOut] = calculateFanInAndFanOut(t);
  const fan = (opts.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const gain = calculateGain(opts.nonlinearity ?? 'leaky_relu', a);
  const std = gain / Math.sqrt(fan);
  const bound = Math.sqrt(3.0) * std;
  return uniform_(t, -bound, bound, generator);
}

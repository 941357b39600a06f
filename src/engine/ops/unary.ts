// Elementwise functions, clamping, maximum/minimum, remainder/floorDivide, the in-place updates
// (sub_ div_ clamp_ addcmul_ addcdiv_ lerp_ sqrt_ neg_), and torch.addmm/bmm/baddbmm/outer.
import { N } from '../native.js';
import { Tensor, operandHandle } from '../tensor.js';

const h = operandHandle;

declare module '../tensor.js' {
  interface Tensor {
    abs(): Tensor;
    sqrt(): Tensor;
    rsqrt(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    log1p(): Tensor;
    sin(): Tensor;
    cos(): Tensor;
    tanh(): Tensor;
    sigmoid(): Tensor;
    square(): Tensor;
    reciprocal(): Tensor;
    sign(): Tensor;
    floor(): Tensor;
    ceil(): Tensor;
    /** Round half to even, as torch.round (optionally to `decimals` places). */
    round(opts?: { decimals?: number }): Tensor;
    trunc(): Tensor;
    relu(): Tensor;
    /** Limit to [min, max]; either bound may be null/omitted (not both). An integer tensor stays integer for integral bounds. */
    clamp(min?: number | null, max?: number | null): Tensor;
    maximum(other: Tensor): Tensor;
    minimum(other: Tensor): Tensor;
    /** Python-style modulo: the result has the sign of the divisor. */
    remainder(other: Operand): Tensor;
    floorDivide(other: Operand): Tensor;
    /** In place: this -= alpha * other. */
    sub_(other: Operand, alpha?: number): this;
    /** In place: this /= other. */
    div_(other: Operand): this;
    clamp_(min?: number | null, max?: number | null): this;
    /** In place: this += value * t1 * t2. */
    addcmul_(t1: Tensor, t2: Tensor, value?: number): this;
    /** In place: this += value * t1 / t2. */
    addcdiv_(t1: Tensor, t2: Tensor, value?: number): this;
    /** In place: this += weight * (end - this). */
    lerp_(end: Tensor, weight: Operand): this;
    sqrt_(): this;
    neg_(): this;
  }
}

const P = Tensor.prototype;
const unary = ['abs', 'sqrt', 'rsqrt', 'exp', 'log', 'log1p', 'sin', 'cos', 'tanh', 'sigmoid', 'square',
  'reciprocal', 'sign', 'floor', 'ceil', 'trunc', 'relu'] as const;
for (const name of unary) {
  const fn = N[name];
  P[name] = function (this: Tensor) { return new Tensor(fn(this.h)); };
}
P.round = function (opts = {}) { return new Tensor(N.round(this.h, opts.decimals ?? 0)); };
P.clamp = function (min = null, max = null) { return new Tensor(N.clamp(this.h, min, max)); };
P.maximum = function (o) { return new Tensor(N.maximum(this.h, o.h)); };
P.minimum = function (o) { return new Tensor(N.minimum(this.h, o.h)); };
P.remainder = function (o) { return new Tensor(N.remainder(this.h, h(o))); };
P.floorDivide = function (o) { return new Tensor(N.floorDivide(this.h, h(o))); };
P.sub_ = function (o, alpha = 1) { N.sub_(this.h, h(o), alpha); return this; };
P.div_ = function (o) { N.div_(this.h, h(o)); return this; };
P.clamp_ = function (min = null, max = null) { N.clamp_(this.h, min, max); return this; };
P.addcmul_ = function (t1, t2, value = 1) { N.addcmul_(this.h, t1.h, t2.h, value); return this; };
P.addcdiv_ = function (t1, t2, value = 1) { N.addcdiv_(this.h, t1.h, t2.h, value); return this; };
P.lerp_ = function (end, weight) { N.lerp_(this.h, end.h, h(weight)); return this; };
P.sqrt_ = function () { N.sqrt_(this.h); return this; };
P.neg_ = function () { N.neg_(this.h); return this; };

/** torch.addmm: beta * bias + alpha * (a @ b) for 2-D a, b. */
export function addmm(bias: Tensor, a: Tensor, b: Tensor, opts: { beta?: number; alpha?: number } = {}): Tensor {
  return new Tensor(N.addmm(bias.h, a.h, b.h, opts.beta ?? 1, opts.alpha ?? 1));
}
/** torch.bmm: batched matrix product of [B, n, m] and [B, m, p]. */
export function bmm(a: Tensor, b: Tensor): Tensor {
  return new Tensor(N.bmm(a.h, b.h));
}
/** torch.baddbmm: beta * input + alpha * bmm(b1, b2). */
export function baddbmm(input: Tensor, b1: Tensor, b2: Tensor, opts: { beta?: number; alpha?: number } = {}): Tensor {
  return new Tensor(N.baddbmm(input.h, b1.h, b2.h, opts.beta ?? 1, opts.alpha ?? 1));
}
/** torch.outer: the outer product of two 1-D tensors. */
export function outer(a: Tensor, b: Tensor): Tensor {
  return new Tensor(N.outer(a.h, b.h));
}

// Comparisons (bool results), logical ops, isnan/isfinite/isinf, any/all, torch.where, allclose.
import { N } from '../native.js';
import { Tensor, operandHandle, type Operand } from '../tensor.js';

const h = operandHandle;

declare module '../tensor.js' {
  interface Tensor {
    eq(other: Operand): Tensor;
    ne(other: Operand): Tensor;
    lt(other: Operand): Tensor;
    le(other: Operand): Tensor;
    gt(other: Operand): Tensor;
    ge(other: Operand): Tensor;
    logicalNot(): Tensor;
    logicalAnd(other: Tensor): Tensor;
    logicalOr(other: Tensor): Tensor;
    isnan(): Tensor;
    isfinite(): Tensor;
    isinf(): Tensor;
    /** Whether any element is nonzero (0-dim bool), or along dim. */
    any(dim?: number | null, keepdim?: boolean): Tensor;
    all(dim?: number | null, keepdim?: boolean): Tensor;
    /** |this - other| <= atol + rtol * |other| everywhere (shapes broadcast). */
    allclose(other: Tensor, rtol?: number, atol?: number, opts?: { equalNan?: boolean }): boolean;
  }
}

const P = Tensor.prototype;
for (const name of ['eq', 'ne', 'lt', 'le', 'gt', 'ge'] as const) {
  const fn = N[name];
  P[name] = function (this: Tensor, o: Operand) { return new Tensor(fn(this.h, h(o))); };
}
P.logicalNot = function () { return new Tensor(N.logicalNot(this.h)); };
P.logicalAnd = function (o) { return new Tensor(N.logicalAnd(this.h, o.h)); };
P.logicalOr = function (o) { return new Tensor(N.logicalOr(this.h, o.h)); };
P.isnan = function () { return new Tensor(N.isnan(this.h)); };
P.isfinite = function () { return new Tensor(N.isfinite(this.h)); };
P.isinf = function () { return new Tensor(N.isinf(this.h)); };
P.any = function (dim = null, keepdim = false) { return new Tensor(N.any(this.h, dim, keepdim)); };
P.all = function (dim = null, keepdim = false) { return new Tensor(N.all(this.h, dim, keepdim)); };
P.allclose = function (o, rtol = 1e-5, atol = 1e-8, opts = {}) {
  return N.allclose(this.h, o.h, rtol, atol, opts.equalNan ?? false);
};

/**
 * torch.where: elements of a where cond is true, else of b (each a tensor or a number; shapes broadcast).
 * A number next to an integer tensor keeps its dtype when integral; two numbers give float32.
 */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  return new Tensor(N.where(cond.h, h(a), h(b)));
}

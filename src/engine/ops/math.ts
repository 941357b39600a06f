// Elementwise arithmetic (broadcasting, tensor or scalar operand), matmul, sum and mean.
// Template for every op family: declare the methods on Tensor, then attach them to its prototype.
import { N } from '../native.js';
import { Tensor, operandHandle } from '../tensor.js';

const h = operandHandle;

declare module '../tensor.js' {
  interface Tensor {
    add(other: Operand): Tensor;
    sub(other: Operand): Tensor;
    mul(other: Operand): Tensor;
    div(other: Operand): Tensor;
    pow(exponent: Operand): Tensor;
    neg(): Tensor;
    /** In place: this += alpha * other. */
    add_(other: Operand, alpha?: number): this;
    /** In place: this *= other. */
    mul_(other: Operand): this;
    matmul(other: Tensor): Tensor;
    /** Sum over dims (all when omitted). */
    sum(dim?: number | number[], keepdim?: boolean): Tensor;
    mean(dim?: number | number[], keepdim?: boolean): Tensor;
  }
}

const P = Tensor.prototype;
P.add = function (o) { return new Tensor(N.add(this.h, h(o))); };
P.sub = function (o) { return new Tensor(N.sub(this.h, h(o))); };
P.mul = function (o) { return new Tensor(N.mul(this.h, h(o))); };
P.div = function (o) { return new Tensor(N.div(this.h, h(o))); };
P.pow = function (o) { return new Tensor(N.pow(this.h, h(o))); };
P.neg = function () { return new Tensor(N.neg(this.h)); };
P.add_ = function (o, alpha = 1) { N.add_(this.h, h(o), alpha); return this; };
P.mul_ = function (o) { N.mul_(this.h, h(o)); return this; };
P.matmul = function (o) { return new Tensor(N.matmul(this.h, o.h)); };
P.sum = function (dim, keepdim = false) { return new Tensor(N.sum(this.h, dim ?? null, keepdim)); };
P.mean = function (dim, keepdim = false) { return new Tensor(N.mean(this.h, dim ?? null, keepdim)); };

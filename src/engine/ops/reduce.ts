// Reductions: var/std with a correction, max/min (whole, or along a dim with indices), amax/amin,
// argmax/argmin, norm, prod, cumsum/cumprod, logsumexp.
import { N, type Handle } from '../native.js';
import { Tensor } from '../tensor.js';
import { DTYPE_CODE, type DType } from '../dtype.js';

/** What max/min/sort/topk along a dim return. */
export interface ValuesIndices {
  values: Tensor;
  indices: Tensor;
}
/** Options of var and std: `correction` 1 (default) is the unbiased estimate, 0 the population one. */
export interface VarOptions {
  correction?: number;
  keepdim?: boolean;
}

declare module '../tensor.js' {
  interface Tensor {
    /** Variance over dims (all when omitted or null), dividing by N - correction. */
    var(dim?: number | number[] | null, opts?: VarOptions): Tensor;
    std(dim?: number | number[] | null, opts?: VarOptions): Tensor;
    /** The largest element (0-dim), or along dim the largest values and their indices. */
    max(): Tensor;
    max(dim: number, keepdim?: boolean): ValuesIndices;
    min(): Tensor;
    min(dim: number, keepdim?: boolean): ValuesIndices;
    /** Largest value over dims (all when omitted); gradient split evenly between ties. */
    amax(dim?: number | number[], keepdim?: boolean): Tensor;
    amin(dim?: number | number[], keepdim?: boolean): Tensor;
    /** Index of the largest value along dim, or in the flattened tensor when dim is omitted (int64). */
    argmax(dim?: number | null, keepdim?: boolean): Tensor;
    argmin(dim?: number | null, keepdim?: boolean): Tensor;
    /** Vector p-norm over dims (all when omitted); p may be Infinity. */
    norm(p?: number, dim?: number | number[] | null, keepdim?: boolean): Tensor;
    prod(dim?: number | null, keepdim?: boolean): Tensor;
    cumsum(dim: number, opts?: { dtype?: DType }): Tensor;
    /** Running product along dim (e.g. a diffusion schedule's alphas_cumprod). */
    cumprod(dim: number, opts?: { dtype?: DType }): Tensor;
    logsumexp(dim: number | number[], keepdim?: boolean): Tensor;
  }
}

const pair = ([values, indices]: [Handle, Handle]): ValuesIndices => ({ values: new Tensor(values), indices: new Tensor(indices) });

const P = Tensor.prototype;
P.var = function (dim = null, opts = {}) {
  return new Tensor(N.var(this.h, dim, opts.correction ?? 1, opts.keepdim ?? false));
};
P.std = function (dim = null, opts = {}) {
  return new Tensor(N.std(this.h, dim, opts.correction ?? 1, opts.keepdim ?? false));
};
P.max = function (this: Tensor, dim?: number, keepdim: boolean = false) {
  return dim === undefined ? new Tensor(N.max(this.h)) : pair(N.maxDim(this.h, dim, keepdim));
} as Tensor['max'];
P.min = function (this: Tensor, dim?: number, keepdim: boolean = false) {
  return dim === undefined ? new Tensor(N.min(this.h)) : pair(N.minDim(this.h, dim, keepdim));
} as Tensor['min'];
P.amax = function (dim, keepdim = false) { return new Tensor(N.amax(this.h, dim ?? null, keepdim)); };
P.amin = function (dim, keepdim = false) { return new Tensor(N.amin(this.h, dim ?? null, keepdim)); };
P.argmax = function (dim = null, keepdim = false) { return new Tensor(N.argmax(this.h, dim, keepdim)); };
P.argmin = function (dim = null, keepdim = false) { return new Tensor(N.argmin(this.h, dim, keepdim)); };
P.norm = function (p = 2, dim = null, keepdim = false) { return new Tensor(N.norm(this.h, p, dim, keepdim)); };
P.prod = function (dim = null, keepdim = false) { return new Tensor(N.prod(this.h, dim, keepdim)); };
P.cumsum = function (dim, opts = {}) {
  return new Tensor(N.cumsum(this.h, dim, opts.dtype ? DTYPE_CODE[opts.dtype] : null));
};
P.cumprod = function (dim, opts = {}) {
  return new Tensor(N.cumprod(this.h, dim, opts.dtype ? DTYPE_CODE[opts.dtype] : null));
};
P.logsumexp = function (dim, keepdim = false) { return new Tensor(N.logsumexp(this.h, dim, keepdim)); };

// Indexing: indexSelect, gather/scatter/scatterAdd, maskedFill/maskedSelect, indexPut_, take,
// nonzero, sort/argsort/topk, torch.quantile.
import { N, type Handle } from '../native.js';
import { Tensor, operandHandle } from '../tensor.js';
import type { ValuesIndices } from './reduce.js';

const h = operandHandle;
const pair = ([values, indices]: [Handle, Handle]): ValuesIndices => ({ values: new Tensor(values), indices: new Tensor(indices) });

declare module '../tensor.js' {
  interface Tensor {
    /** Entries at `index` (1-D int64) along dim. */
    indexSelect(dim: number, index: Tensor): Tensor;
    /** out[i][j] = this[index[i][j]][j] for dim 0, and so on (index is int64, same ndim). */
    gather(dim: number, index: Tensor): Tensor;
    /** A copy with src (tensor or number) written at index along dim. */
    scatter(dim: number, index: Tensor, src: Operand): Tensor;
    /** A copy with src added at index along dim (repeated indices accumulate). */
    scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    /** A copy with value where mask (bool, broadcastable) is true. */
    maskedFill(mask: Tensor, value: number | Tensor): Tensor;
    maskedFill_(mask: Tensor, value: number | Tensor): this;
    /** The elements where mask is true, as a 1-D tensor. */
    maskedSelect(mask: Tensor): Tensor;
    /** In place: this[indices] = values (or += with accumulate); a null index takes the whole dim. */
    indexPut_(indices: (Tensor | null)[], values: Operand, accumulate?: boolean): this;
    /** Elements at flat indices of the row-major tensor. */
    take(index: Tensor): Tensor;
    /** [n, ndim] int64 coordinates of the nonzero elements. */
    nonzero(): Tensor;
    sort(dim?: number, descending?: boolean, opts?: { stable?: boolean }): ValuesIndices;
    /** The indices that sort along dim (int64). */
    argsort(dim?: number, descending?: boolean, opts?: { stable?: boolean }): Tensor;
    /** The k largest (or smallest) values along dim and their indices. */
    topk(k: number, dim?: number, opts?: { largest?: boolean; sorted?: boolean }): ValuesIndices;
  }
}

const P = Tensor.prototype;
P.indexSelect = function (dim, index) { return new Tensor(N.indexSelect(this.h, dim, index.h)); };
P.gather = function (dim, index) { return new Tensor(N.gather(this.h, dim, index.h)); };
P.scatter = function (dim, index, src) { return new Tensor(N.scatter(this.h, dim, index.h, h(src))); };
P.scatterAdd = function (dim, index, src) { return new Tensor(N.scatterAdd(this.h, dim, index.h, src.h)); };
P.maskedFill = function (mask, value) { return new Tensor(N.maskedFill(this.h, mask.h, h(value))); };
P.maskedFill_ = function (mask, value) { N.maskedFill_(this.h, mask.h, h(value)); return this; };
P.maskedSelect = function (mask) { return new Tensor(N.maskedSelect(this.h, mask.h)); };
P.indexPut_ = function (indices, values, accumulate = false) {
  N.indexPut_(this.h, indices.map((i) => (i === null ? null : i.h)), h(values), accumulate);
  return this;
};
P.take = function (index) { return new Tensor(N.take(this.h, index.h)); };
P.nonzero = function () { return new Tensor(N.nonzero(this.h)); };
P.sort = function (dim = -1, descending = false, opts = {}) {
  return pair(N.sort(this.h, dim, descending, opts.stable ?? false));
};
P.argsort = function (dim = -1, descending = false, opts = {}) {
  return new Tensor(N.argsort(this.h, dim, descending, opts.stable ?? false));
};
P.topk = function (k, dim = -1, opts = {}) {
  return pair(N.topk(this.h, k, dim, opts.largest ?? true, opts.sorted ?? true));
};

export type QuantileInterpolation = 'linear' | 'lower' | 'higher' | 'midpoint' | 'nearest';

/** torch.quantile: the q-th quantiles (q a number or 1-D tensor in [0, 1]) over dim, or the flattened tensor. */
export function quantile(
  t: Tensor, q: number | Tensor, dim?: number | null,
  opts: { keepdim?: boolean; interpolation?: QuantileInterpolation } = {},
): Tensor {
  return new Tensor(N.quantile(t.h, h(q), dim ?? null, opts.keepdim ?? false, opts.interpolation ?? 'linear'));
}

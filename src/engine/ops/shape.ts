// Views and shape changes: reshape/view/permute/transpose, squeeze/unsqueeze, expand/repeat,
// narrow/slice/select, split/chunk/unbind, torch.cat/torch.stack, roll, tril/triu.
// Dims may be negative (counted from the end), as in PyTorch.
import { N } from '../native.js';
import { Tensor, wrapAll } from '../tensor.js';

declare module '../tensor.js' {
  interface Tensor {
    /** A tensor with the given shape (one entry may be -1); a view when possible, else a copy. */
    reshape(shape: number[]): Tensor;
    /** A view with the given shape (one entry may be -1); fails when the strides do not allow it. */
    view(shape: number[]): Tensor;
    permute(dims: number[]): Tensor;
    transpose(dim0: number, dim1: number): Tensor;
    /** Transpose of a tensor with at most 2 dims. */
    t(): Tensor;
    flatten(startDim?: number, endDim?: number): Tensor;
    unsqueeze(dim: number): Tensor;
    /** Drop size-1 dims: the given one(s), or all when omitted. */
    squeeze(dim?: number | number[]): Tensor;
    /** Broadcast view to shape (-1 keeps a dim's size). */
    expand(shape: number[]): Tensor;
    expandAs(other: Tensor): Tensor;
    /** Tile the tensor reps[i] times along each dim (a copy). */
    repeat(reps: number[]): Tensor;
    flip(dims: number | number[]): Tensor;
    narrow(dim: number, start: number, length: number): Tensor;
    /** Python slicing t[start:end:step] along dim; negative start/end count from the end, out-of-range ones clamp. */
    slice(dim: number, start?: number | null, end?: number | null, step?: number): Tensor;
    /** Index `index` along dim, removing that dim. */
    select(dim: number, index: number): Tensor;
    /** Pieces of `size` along dim (the last may be smaller), or pieces of the given sizes. */
    split(sizeOrSizes: number | number[], dim?: number): Tensor[];
    chunk(chunks: number, dim?: number): Tensor[];
    unbind(dim?: number): Tensor[];
    /** Shift elements along dims, wrapping around (the flattened tensor when dims is omitted). */
    roll(shifts: number | number[], dims?: number | number[]): Tensor;
    tril(diagonal?: number): Tensor;
    triu(diagonal?: number): Tensor;
  }
}

const P = Tensor.prototype;
P.reshape = function (shape) { return new Tensor(N.reshape(this.h, shape)); };
P.view = function (shape) { return new Tensor(N.view(this.h, shape)); };
P.permute = function (dims) { return new Tensor(N.permute(this.h, dims)); };
P.transpose = function (d0, d1) { return new Tensor(N.transpose(this.h, d0, d1)); };
P.t = function () { return new Tensor(N.t(this.h)); };
P.flatten = function (startDim = 0, endDim = -1) { return new Tensor(N.flatten(this.h, startDim, endDim)); };
P.unsqueeze = function (dim) { return new Tensor(N.unsqueeze(this.h, dim)); };
P.squeeze = function (dim) { return new Tensor(N.squeeze(this.h, dim ?? null)); };
P.expand = function (shape) { return new Tensor(N.expand(this.h, shape)); };
P.expandAs = function (other) { return new Tensor(N.expand(this.h, other.shape)); };
P.repeat = function (reps) { return new Tensor(N.repeat(this.h, reps)); };
P.flip = function (dims) { return new Tensor(N.flip(this.h, dims)); };
P.narrow = function (dim, start, length) { return new Tensor(N.narrow(this.h, dim, start, length)); };
P.slice = function (dim, start = null, end = null, step = 1) {
  return new Tensor(N.slice(this.h, dim, start, end, step));
};
P.select = function (dim, index) { return new Tensor(N.select(this.h, dim, index)); };
P.split = function (sizeOrSizes, dim = 0) { return wrapAll(N.split(this.h, sizeOrSizes, dim)); };
P.chunk = function (chunks, dim = 0) { return wrapAll(N.chunk(this.h, chunks, dim)); };
P.unbind = function (dim = 0) { return wrapAll(N.unbind(this.h, dim)); };
P.roll = function (shifts, dims) { return new Tensor(N.roll(this.h, shifts, dims ?? null)); };
P.tril = function (diagonal = 0) { return new Tensor(N.tril(this.h, diagonal)); };
P.triu = function (diagonal = 0) { return new Tensor(N.triu(this.h, diagonal)); };

/** torch.cat: join tensors along an existing dim. */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  return new Tensor(N.cat(tensors.map((t) => t.h), dim));
}
/** torch.stack: join tensors of equal shape along a new dim. */
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return new Tensor(N.stack(tensors.map((t) => t.h), dim));
}

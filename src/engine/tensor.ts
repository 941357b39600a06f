// The Tensor handle: a libtorch tensor owned from JS. Ops live in src/engine/ops/*.ts, one family
// per file; each adds its methods to Tensor.prototype and declares them in the interface below
// through module augmentation, so `x.matmul(w).add(b)` reads like PyTorch.
import { N, type Handle } from './native.js';
import { DTYPE_CODE, dtypeFromCode, typedArrayOf, type AnyTypedArray, type DType } from './dtype.js';
import { track, keep as keepTensor } from './scope.js';
import { EngineError } from './errors.js';
import { checkDevice, type Device } from './device.js';

export { EngineError };

export type { Device };

export class Tensor {
  readonly __isTensor = true;
  #h: Handle | null;
  #shape: number[] | undefined;

  /** Wraps a native handle. Only the engine calls this; users get tensors from ops and factories. */
  constructor(h: Handle) {
    this.#h = h;
    track(this);
  }

  /** The native handle, for op implementations. Throws on a disposed tensor. */
  get h(): Handle {
    if (this.#h === null) throw new EngineError('this tensor was disposed; it cannot be used any more');
    return this.#h;
  }

  get shape(): number[] {
    return (this.#shape ??= N.shape(this.h));
  }
  get ndim(): number {
    return this.shape.length;
  }
  get dtype(): DType {
    return dtypeFromCode(N.dtype(this.h));
  }
  get device(): Device {
    return N.device(this.h);
  }
  numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  size(dim?: number): number {
    return dim === undefined ? this.numel() : this.shape[dim < 0 ? dim + this.ndim : dim];
  }
  stride(): number[] {
    return N.stride(this.h);
  }
  isContiguous(): boolean {
    return N.isContiguous(this.h);
  }
  get isDisposed(): boolean {
    return this.#h === null;
  }

  /** Free the libtorch memory now. Idempotent. */
  dispose(): void {
    if (this.#h !== null) {
      N.dispose(this.#h);
      this.#h = null;
    }
  }
  /** Remove from every open scope: the caller owns it until dispose(). */
  keep(): this {
    keepTensor(this);
    return this;
  }

  /** Elements in row-major order as a typed array (copied to the CPU). bf16/f16 come as raw Uint16. */
  data(): AnyTypedArray {
    return typedArrayOf(this.dtype, N.toBytes(this.h));
  }
  /** Elements as plain numbers (bf16/f16 decoded, int64 converted). */
  toFloat64(): Float64Array {
    if (this.dtype === 'float64') return this.data() as Float64Array;
    const t = this.to({ dtype: 'float64' });
    try {
      return t.data() as Float64Array;
    } finally {
      t.dispose();
    }
  }
  /** Nested JS arrays of numbers, like torch's tolist(). */
  tolist(): unknown {
    const flat = Array.from(this.toFloat64());
    const build = (dims: number[], off: number): unknown => {
      if (dims.length === 0) return flat[off];
      const [n, ...rest] = dims;
      const step = rest.reduce((a, b) => a * b, 1);
      return Array.from({ length: n }, (_, i) => build(rest, off + i * step));
    };
    return build(this.shape, 0);
  }
  item(): number {
    return N.item(this.h);
  }

  to(opts: { dtype?: DType; device?: Device; copy?: boolean } | DType): Tensor {
    const o = typeof opts === 'string' ? { dtype: opts } : opts;
    if (o.device !== undefined) checkDevice(o.device);
    return new Tensor(N.to(this.h, o.dtype ? DTYPE_CODE[o.dtype] : null, o.device ?? null, o.copy ?? false));
  }
  float(): Tensor {
    return this.to({ dtype: 'float32' });
  }
  clone(): Tensor {
    return new Tensor(N.clone(this.h));
  }
  contiguous(): Tensor {
    return new Tensor(N.contiguous(this.h));
  }
  /** In place: copy src into this tensor (broadcasting, converting dtype/device). */
  copy_(src: Tensor): this {
    N.copy_(this.h, src.h);
    return this;
  }
  fill_(v: number | boolean): this {
    N.fill_(this.h, v);
    return this;
  }
  zero_(): this {
    N.zero_(this.h);
    return this;
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return N.requiresGrad(this.h);
  }
  requiresGrad_(v = true): this {
    N.setRequiresGrad(this.h, v);
    return this;
  }
  /** The accumulated gradient as a new handle (caller disposes, or a scope does), or null. */
  get grad(): Tensor | null {
    const g = N.grad(this.h);
    return g ? new Tensor(g) : null;
  }
  set grad(g: Tensor | null) {
    N.setGrad(this.h, g ? g.h : null);
  }
  backward(gradient?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    N.backward(this.h, gradient?.h ?? null, opts.retainGraph ?? false);
  }
  detach(): Tensor {
    return new Tensor(N.detach(this.h));
  }
  get isLeaf(): boolean {
    return N.isLeaf(this.h);
  }

  toString(): string {
    if (this.isDisposed) return 'Tensor(<disposed>)';
    return `Tensor(shape=[${this.shape}], dtype=${this.dtype}, device=${this.device})`;
  }
}

/** A tensor or a number, as PyTorch's binary ops accept. */
export type Operand = Tensor | number;
/** What native ops take for an Operand: the tensor's handle, or the number itself. */
export function operandHandle(x: Operand): Handle | number {
  return typeof x === 'number' ? x : x.h;
}

/** Wrap a native result (a handle, an array of handles, or null). */
export function wrap(h: Handle): Tensor {
  return new Tensor(h);
}
export function wrapAll(hs: Handle[]): Tensor[] {
  return hs.map((h) => new Tensor(h));
}

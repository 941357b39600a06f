// Factories: tensors from JS data, and torch's zeros/ones/full/arange/linspace/eye.
import { N } from './native.js';
import { DTYPE_CODE, dtypeOfArray, type AnyTypedArray, type DType } from './dtype.js';
import { Tensor, type Device, EngineError } from './tensor.js';
import { checkDevice } from './device.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

function finish(t: Tensor, o: TensorOptions): Tensor {
  if (o.requiresGrad) t.requiresGrad_(true);
  return t;
}

type Nested = number | boolean | Nested[];

function flatten(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length)
      throw new EngineError(`tensor(): ragged nested array at depth ${depth} (${data.length} vs ${shape[depth]})`);
    for (const x of data) flatten(x, shape, out, depth + 1);
  } else {
    if (depth !== shape.length) throw new EngineError('tensor(): ragged nested array');
    out.push(typeof data === 'boolean' ? (data ? 1 : 0) : data);
  }
}

function typedFor(dtype: DType, values: number[]): AnyTypedArray {
  switch (dtype) {
    case 'float32': return Float32Array.from(values);
    case 'float64': return Float64Array.from(values);
    case 'int64': return BigInt64Array.from(values, (v) => BigInt(Math.trunc(v)));
    case 'int32': return Int32Array.from(values);
    case 'int16': return Int16Array.from(values);
    case 'int8': return Int8Array.from(values);
    case 'uint8': case 'bool': return Uint8Array.from(values);
    case 'bfloat16': case 'float16': throw new EngineError('tensor(): build bf16/f16 from float32 and call .to()');
  }
}

/**
 * torch.tensor: from a number, nested arrays, or a typed array (with `shape`). The data are copied.
 * Default dtype is float32 for numbers, and the array's own type for typed arrays
 * (pass dtype 'bfloat16' or 'float16' with a Uint16Array of raw bits).
 */
export function tensor(data: Nested | AnyTypedArray, opts: TensorOptions & { shape?: number[] } = {}): Tensor {
  // Before the CPU copy is made, so a refused device leaves nothing behind.
  if (opts.device) checkDevice(opts.device);
  if (ArrayBuffer.isView(data)) {
    const arr = data as AnyTypedArray;
    const dtype = opts.dtype ?? dtypeOfArray(arr);
    const shape = opts.shape ?? [arr.length];
    let t = new Tensor(N.fromBytes(arr, DTYPE_CODE[dtype], shape));
    if (opts.device && opts.device !== 'cpu') {
      const moved = t.to({ device: opts.device });
      t.dispose();
      t = moved;
    }
    return finish(t, opts);
  }
  const shape: number[] = [];
  const flat: number[] = [];
  flatten(data as Nested, shape, flat);
  const isBool = typeof (Array.isArray(data) ? flat.length && firstLeaf(data) : data) === 'boolean';
  const want = opts.dtype ?? (isBool ? 'bool' : 'float32');
  const carrier: DType = want === 'bfloat16' || want === 'float16' ? 'float32' : want;
  let t = new Tensor(N.fromBytes(typedFor(carrier, flat), DTYPE_CODE[carrier], shape));
  if (carrier !== want || (opts.device && opts.device !== 'cpu')) {
    const moved = t.to({ dtype: want, device: opts.device });
    t.dispose();
    t = moved;
  }
  return finish(t, opts);
}

function firstLeaf(x: Nested): Nested {
  while (Array.isArray(x)) x = x[0];
  return x;
}

const dt = (o: TensorOptions) => DTYPE_CODE[o.dtype ?? 'float32'];
const dev = (o: TensorOptions) => {
  const d = o.device ?? 'cpu';
  checkDevice(d);
  return d;
};

export function zeros(shape: number[], o: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.zeros(shape, dt(o), dev(o))), o);
}
export function ones(shape: number[], o: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.ones(shape, dt(o), dev(o))), o);
}
export function empty(shape: number[], o: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.empty(shape, dt(o), dev(o))), o);
}
export function full(shape: number[], value: number | boolean, o: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.full(shape, value, dt(o), dev(o))), o);
}
export function scalarTensor(value: number, o: TensorOptions = {}): Tensor {
  return finish(new Tensor(N.scalarTensor(value, dt(o), dev(o))), o);
}
/** torch.arange(end) or torch.arange(start, end, step). Default dtype int64, as in torch for integer args. */
export function arange(startOrEnd: number, end?: number, step = 1, o: TensorOptions = {}): Tensor {
  const [s, e] = end === undefined ? [0, startOrEnd] : [startOrEnd, end];
  return new Tensor(N.arange(s, e, step, DTYPE_CODE[o.dtype ?? 'int64'], dev(o)));
}
export function linspace(start: number, end: number, steps: number, o: TensorOptions = {}): Tensor {
  return new Tensor(N.linspace(start, end, steps, dt(o), dev(o)));
}
export function eye(n: number, m = n, o: TensorOptions = {}): Tensor {
  return new Tensor(N.eye(n, m, dt(o), dev(o)));
}
export function zerosLike(t: Tensor): Tensor {
  return new Tensor(N.zerosLike(t.h));
}
export function onesLike(t: Tensor): Tensor {
  return new Tensor(N.onesLike(t.h));
}
export function fullLike(t: Tensor, v: number): Tensor {
  return new Tensor(N.fullLike(t.h, v));
}

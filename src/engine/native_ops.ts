// The native op table, declared once on the TS side: one line per `OP(name)` in native/*.cc, grouped by
// native file, each with its JS signature. `N` (src/engine/native.ts) is typed from this table, and the
// loader refuses an addon whose exported names differ from it, so a new op is its C++ body plus one line
// here. Argument conventions (see native/common.h): tensors travel as opaque handles, dtypes as
// c10::ScalarType codes (DTYPE_CODE), devices as strings; a trailing `?` argument may be null or left out
// (the C++ reads it with isNullish), `| null` means "none" in PyTorch's sense.
import type { AnyTypedArray } from './dtype.js';

/** An opaque reference to a libtorch tensor, owned by exactly one Tensor. */
export type Handle = { readonly __handle: unique symbol };
/** An opaque reference to a libtorch Generator. */
export type GenHandle = { readonly __gen: unique symbol };

type H = Handle;
/** An opaque reference to a c10d process group (store + backend). */
export type GroupHandle = { readonly __group: unique symbol };
/** An opaque reference to a gradient reducer (native/grad_reducer.cc). */
export type ReducerHandle = { readonly __reducer: unique symbol };
/** What one step of a gradient reducer did (reducerFinalize). */
export type ReducerStep = { defined: boolean[]; fingerprint: number; buckets: number; launchedInBackward: number; waitMs: number };
/** A Generator, or null for libtorch's default one. */
type Gen = GenHandle | null;
/** A c10::ScalarType code (DTYPE_CODE in dtype.ts). */
type Code = number;
/** 'cpu', 'cuda', 'cuda:N'. */
type Dev = string;
/** A tensor or a number (typed as ops_scalar.h says: an integral number next to an integer tensor acts as an int). */
type Operand = Handle | number;
type Scalar = number | boolean;
/** A list of integers; a bare number is a one-element list (Ctx::ints). */
type Ints = number | readonly number[];
type Reduction = 'mean' | 'sum' | 'none';
type Counters = { live: number; created: number; gcFinalized: number };
type CudaMemory = { allocated: number; reserved: number; peakAllocated: number };
/** Large CPU blocks (native/cpu_allocator.cc), in bytes. */
export type CpuAllocatorStats = { enabled: boolean; inUse: number; peakInUse: number; cached: number; limit: number; hits: number; misses: number };

/** A declaration: carries an op's signature as a type only; at run time it is just a marker. */
interface Decl<F> {
  readonly __signature?: F;
}
const op = <F extends (...args: never[]) => unknown>(): Decl<F> => ({});

/** Every native op, by native file. */
export const NATIVE_FILES = {
  'addon.cc': {
    dispose: op<(t: H) => void>(),
    isDisposed: op<(t: H) => boolean>(),
    counters: op<() => Counters>(),
    fromBytes: op<(data: AnyTypedArray, dtype: Code, shape: Ints) => H>(),
    toBytes: op<(t: H) => ArrayBuffer>(),
    shape: op<(t: H) => number[]>(),
    stride: op<(t: H) => number[]>(),
    dtype: op<(t: H) => Code>(),
    device: op<(t: H) => Dev>(),
    isContiguous: op<(t: H) => boolean>(),
    numel: op<(t: H) => number>(),
    item: op<(t: H) => number>(),
    itemInt: op<(t: H) => bigint>(),
    dataPtr: op<(t: H) => number>(),
    generatorNew: op<(seed: number, device: Dev) => GenHandle>(),
    generatorManualSeed: op<(g: GenHandle, seed: number) => void>(),
    generatorGetState: op<(g: GenHandle) => H>(),
    generatorSetState: op<(g: GenHandle, state: H) => void>(),
    defaultGeneratorGetState: op<() => H>(),
    defaultGeneratorSetState: op<(state: H) => void>(),
  },
  'cpu_allocator.cc': {
    cpuAllocatorStats: op<() => CpuAllocatorStats>(),
    cpuAllocatorEmptyCache: op<() => void>(),
    cpuAllocatorResetPeak: op<() => void>(),
  },
  'ops_autograd.cc': {
    requiresGrad: op<(t: H) => boolean>(),
    setRequiresGrad: op<(t: H, on: boolean) => void>(),
    backward: op<(t: H, gradient: H | null, retainGraph?: boolean) => void>(),
    autogradGrad: op<(outputs: H[], inputs: H[], gradOutputs: H[] | null, retainGraph?: boolean, createGraph?: boolean) => (H | null)[]>(),
    grad: op<(t: H) => H | null>(),
    setGrad: op<(t: H, g: H | null) => void>(),
    detach: op<(t: H) => H>(),
    detach_: op<(t: H) => void>(),
    isGradEnabled: op<() => boolean>(),
    setGradEnabled: op<(on: boolean) => boolean>(),
    isLeaf: op<(t: H) => boolean>(),
  },
  'ops_compare.cc': {
    eq: op<(a: H, b: Operand) => H>(),
    ne: op<(a: H, b: Operand) => H>(),
    lt: op<(a: H, b: Operand) => H>(),
    le: op<(a: H, b: Operand) => H>(),
    gt: op<(a: H, b: Operand) => H>(),
    ge: op<(a: H, b: Operand) => H>(),
    logicalNot: op<(t: H) => H>(),
    logicalAnd: op<(a: H, b: H) => H>(),
    logicalOr: op<(a: H, b: H) => H>(),
    isnan: op<(t: H) => H>(),
    isfinite: op<(t: H) => H>(),
    isinf: op<(t: H) => H>(),
    any: op<(t: H, dim?: number | null, keepdim?: boolean) => H>(),
    all: op<(t: H, dim?: number | null, keepdim?: boolean) => H>(),
    where: op<(cond: H, a: Operand, b: Operand) => H>(),
    allclose: op<(a: H, b: H, rtol: number, atol: number, equalNan?: boolean) => boolean>(),
  },
  'ops_create.cc': {
    zeros: op<(shape: Ints, dtype: Code, device: Dev) => H>(),
    ones: op<(shape: Ints, dtype: Code, device: Dev) => H>(),
    empty: op<(shape: Ints, dtype: Code, device: Dev) => H>(),
    full: op<(shape: Ints, value: Scalar, dtype: Code, device: Dev) => H>(),
    arange: op<(start: number, end: number, step: number, dtype: Code, device: Dev) => H>(),
    linspace: op<(start: number, end: number, steps: number, dtype: Code, device: Dev) => H>(),
    eye: op<(n: number, m: number, dtype: Code, device: Dev) => H>(),
    zerosLike: op<(t: H) => H>(),
    onesLike: op<(t: H) => H>(),
    fullLike: op<(t: H, value: Scalar) => H>(),
    scalarTensor: op<(value: Scalar, dtype: Code, device: Dev) => H>(),
    to: op<(t: H, dtype: Code | null, device: Dev | null, copy?: boolean) => H>(),
    clone: op<(t: H) => H>(),
    contiguous: op<(t: H) => H>(),
    copy_: op<(dst: H, src: H) => void>(),
    fill_: op<(t: H, value: Scalar) => void>(),
    zero_: op<(t: H) => void>(),
  },
  'ops_distributed.cc': {
    // c10d process groups (src/engine/distributed.ts): blocking collectives, in place, bounded by the timeout.
    distBackends: op<() => string[]>(),
    distInit: op<(backend: string, host: string, port: number, rank: number, worldSize: number, timeoutMs: number, hostStore: boolean) => GroupHandle>(),
    distAllReduce: op<(g: GroupHandle, tensors: H[], op: string) => void>(),
    distBroadcast: op<(g: GroupHandle, tensors: H[], root: number) => void>(),
    distAllGather: op<(g: GroupHandle, output: H, input: H) => void>(),
    distReduceScatter: op<(g: GroupHandle, output: H, input: H, op: string) => void>(),
    distBarrier: op<(g: GroupHandle) => void>(),
    distDestroy: op<(g: GroupHandle) => void>(),
  },
  'grad_reducer.cc': {
    // Gradient buckets reduced during backward (src/engine/distributed.ts GradReducer).
    reducerNew: op<(g: GroupHandle, params: H[], owners: readonly number[] | null, bucketBytes: number, overlap: boolean, maxInFlight: number) => ReducerHandle>(),
    reducerPrepare: op<(r: ReducerHandle, sync: boolean) => void>(),
    reducerFinalize: op<(r: ReducerHandle) => ReducerStep>(),
    reducerLayout: op<(r: ReducerHandle) => number[][]>(),
    reducerDestroy: op<(r: ReducerHandle) => void>(),
  },
  'ops_encoders.cc': {
    // Reads a tensor stored as `srcDtype` in a file straight into `dstDtype` on `device`, 4 MB at a time
    // (loading a float32 T5 checkpoint into bf16 holds only the bf16 copy).
    fromFileConvert: op<(path: string, byteOffset: number, srcDtype: Code, shape: Ints, dstDtype: Code, device: string) => H>(),
  },
  'ops_index.cc': {
    indexSelect: op<(t: H, dim: number, index: H) => H>(),
    gather: op<(t: H, dim: number, index: H) => H>(),
    scatter: op<(t: H, dim: number, index: H, src: Operand) => H>(),
    scatterAdd: op<(t: H, dim: number, index: H, src: H) => H>(),
    maskedFill: op<(t: H, mask: H, value: Operand) => H>(),
    maskedFill_: op<(t: H, mask: H, value: Operand) => void>(),
    maskedSelect: op<(t: H, mask: H) => H>(),
    indexPut_: op<(t: H, indices: (H | null)[], values: Operand, accumulate?: boolean) => void>(),
    take: op<(t: H, index: H) => H>(),
    nonzero: op<(t: H) => H>(),
    sort: op<(t: H, dim: number, descending: boolean, stable?: boolean) => [H, H]>(),
    topk: op<(t: H, k: number, dim: number, largest: boolean, sorted: boolean) => [H, H]>(),
    quantile: op<(t: H, q: Operand, dim: number | null, keepdim?: boolean, interpolation?: string) => H>(),
    argsort: op<(t: H, dim: number, descending: boolean, stable?: boolean) => H>(),
  },
  'ops_io.cc': {
    fromFile: op<(path: string, byteOffset: number, dtype: Code, shape: Ints) => H>(),
    writeToFd: op<(fd: number, byteOffset: number, t: H) => number>(),
    storageView: op<(storage: H, size: Ints, stride: Ints, storageOffset: number) => H>(),
  },
  'ops_math.cc': {
    add: op<(a: H, b: Operand) => H>(),
    sub: op<(a: H, b: Operand) => H>(),
    mul: op<(a: H, b: Operand) => H>(),
    div: op<(a: H, b: Operand) => H>(),
    pow: op<(a: H, exponent: Operand) => H>(),
    add_: op<(a: H, b: Operand, alpha?: number) => void>(),
    mul_: op<(a: H, b: Operand) => void>(),
    neg: op<(t: H) => H>(),
    matmul: op<(a: H, b: H) => H>(),
    sum: op<(t: H, dims?: Ints | null, keepdim?: boolean) => H>(),
    mean: op<(t: H, dims?: Ints | null, keepdim?: boolean) => H>(),
    remainder: op<(a: H, b: Operand) => H>(),
    floorDivide: op<(a: H, b: Operand) => H>(),
    maximum: op<(a: H, b: H) => H>(),
    minimum: op<(a: H, b: H) => H>(),
    sub_: op<(a: H, b: Operand, alpha?: number) => void>(),
    div_: op<(a: H, b: Operand) => void>(),
    addmm: op<(bias: H, a: H, b: H, beta: Scalar, alpha: Scalar) => H>(),
    bmm: op<(a: H, b: H) => H>(),
    baddbmm: op<(input: H, b1: H, b2: H, beta: Scalar, alpha: Scalar) => H>(),
    outer: op<(a: H, b: H) => H>(),
  },
  'ops_nn.cc': {
    linear: op<(x: H, weight: H, bias: H | null) => H>(),
    layerNorm: op<(x: H, normalizedShape: Ints, weight: H | null, bias: H | null, eps: number) => H>(),
    rmsNorm: op<(x: H, normalizedShape: Ints, weight: H | null, eps: number | null) => H>(),
    rmsNormVar: op<(x: H, normalizedShape: Ints, weight: H | null, eps: number) => H>(),
    gelu: op<(x: H, approximate?: 'none' | 'tanh') => H>(),
    silu: op<(x: H) => H>(),
    softmax: op<(x: H, dim: number, dtype: Code | null) => H>(),
    logSoftmax: op<(x: H, dim: number, dtype: Code | null) => H>(),
    sdpa: op<(q: H, k: H, v: H, mask: H | null, dropoutP: number, isCausal: boolean, scale: number | null) => H>(),
    conv2d: op<(x: H, weight: H, bias: H | null, stride: Ints, padding: Ints, dilation: Ints, groups: number) => H>(),
    embedding: op<(indices: H, weight: H, paddingIdx: number | null) => H>(),
    dropout: op<(x: H, p: number, training: boolean, generator: Gen) => H>(),
    interpolate: op<(x: H, mode: string, size: Ints | null, scaleFactors: number | readonly number[] | null, alignCorners?: boolean, antialias?: boolean) => H>(),
    mseLoss: op<(input: H, target: H, reduction?: Reduction) => H>(),
    crossEntropy: op<(logits: H, target: H, weight: H | null, reduction?: Reduction, ignoreIndex?: number | null, labelSmoothing?: number | null) => H>(),
    pad: op<(x: H, pads: Ints, mode?: string, value?: number | null) => H>(),
  },
  'ops_optim.cc': {
    gradsDefined: op<(params: H[]) => boolean[]>(),
    zeroGrads: op<(params: H[], setToNone?: boolean) => void>(),
    setData: op<(t: H, src: H) => void>(),
    adamwStep: op<(params: H[], expAvgs: H[], expAvgSqs: H[], steps: readonly number[], lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, fused?: boolean) => void>(),
    clipGradNorm: op<(params: H[], maxNorm: number, normType: number, errorIfNonfinite?: boolean) => number>(),
    gradNorms: op<(params: H[], normType: number) => H>(),
    clipGradsWithNorms: op<(params: H[], norms: H, maxNorm: number, normType: number, errorIfNonfinite?: boolean) => number>(),
  },
  'ops_random.cc': {
    randn: op<(shape: Ints, generator: Gen, dtype: Code, device: Dev) => H>(),
    rand: op<(shape: Ints, generator: Gen, dtype: Code, device: Dev) => H>(),
    randint: op<(low: number, high: number, shape: Ints, generator: Gen, dtype: Code, device: Dev) => H>(),
    normal: op<(mean: number, std: number, shape: Ints, generator: Gen, dtype: Code, device: Dev) => H>(),
    bernoulli: op<(p: H, generator: Gen) => H>(),
    randperm: op<(n: number, generator: Gen, dtype: Code, device: Dev) => H>(),
    uniform_: op<(t: H, from: number, to: number, generator: Gen) => void>(),
    normal_: op<(t: H, mean: number, std: number, generator: Gen) => void>(),
    bernoulli_: op<(t: H, p: Operand, generator: Gen) => void>(),
  },
  'ops_reduce.cc': {
    var: op<(t: H, dims: Ints | null, correction?: Scalar | null, keepdim?: boolean) => H>(),
    std: op<(t: H, dims: Ints | null, correction?: Scalar | null, keepdim?: boolean) => H>(),
    max: op<(t: H) => H>(),
    min: op<(t: H) => H>(),
    maxDim: op<(t: H, dim: number, keepdim?: boolean) => [H, H]>(),
    minDim: op<(t: H, dim: number, keepdim?: boolean) => [H, H]>(),
    amax: op<(t: H, dims: Ints | null, keepdim?: boolean) => H>(),
    amin: op<(t: H, dims: Ints | null, keepdim?: boolean) => H>(),
    argmax: op<(t: H, dim: number | null, keepdim?: boolean) => H>(),
    argmin: op<(t: H, dim: number | null, keepdim?: boolean) => H>(),
    norm: op<(t: H, p: Scalar, dims: Ints | null, keepdim?: boolean) => H>(),
    prod: op<(t: H, dim: number | null, keepdim?: boolean) => H>(),
    cumsum: op<(t: H, dim: number, dtype: Code | null) => H>(),
    logsumexp: op<(t: H, dims: Ints, keepdim?: boolean) => H>(),
    cumprod: op<(t: H, dim: number, dtype: Code | null) => H>(),
  },
  'ops_shape.cc': {
    reshape: op<(t: H, shape: Ints) => H>(),
    view: op<(t: H, shape: Ints) => H>(),
    permute: op<(t: H, dims: Ints) => H>(),
    transpose: op<(t: H, dim0: number, dim1: number) => H>(),
    t: op<(t: H) => H>(),
    flatten: op<(t: H, startDim: number, endDim: number) => H>(),
    unsqueeze: op<(t: H, dim: number) => H>(),
    squeeze: op<(t: H, dims: Ints | null) => H>(),
    expand: op<(t: H, shape: Ints) => H>(),
    repeat: op<(t: H, repeats: Ints) => H>(),
    flip: op<(t: H, dims: Ints) => H>(),
    narrow: op<(t: H, dim: number, start: number, length: number) => H>(),
    slice: op<(t: H, dim: number, start: number | null, end: number | null, step: number) => H>(),
    select: op<(t: H, dim: number, index: number) => H>(),
    split: op<(t: H, sizeOrSizes: number | readonly number[], dim: number) => H[]>(),
    chunk: op<(t: H, chunks: number, dim: number) => H[]>(),
    unbind: op<(t: H, dim: number) => H[]>(),
    cat: op<(tensors: H[], dim: number) => H>(),
    stack: op<(tensors: H[], dim: number) => H>(),
    roll: op<(t: H, shifts: Ints, dims: Ints | null) => H>(),
    tril: op<(t: H, diagonal: number) => H>(),
    triu: op<(t: H, diagonal: number) => H>(),
  },
  'ops_system.cc': {
    setNumThreads: op<(n: number) => void>(),
    getNumThreads: op<() => number>(),
    manualSeed: op<(seed: number) => void>(),
    libtorchVersion: op<() => string>(),
    parallelInfo: op<() => string>(),
    buildConfig: op<() => string>(),
    cudaIsAvailable: op<() => boolean>(),
    cudaDeviceCount: op<() => number>(),
    cudaSynchronize: op<() => void>(),
    cudaDeviceName: op<(device: number) => string>(),
    cudaMemoryStats: op<(device: number) => CudaMemory>(),
    cudaResetPeakMemoryStats: op<(device: number) => void>(),
  },
  'ops_unary.cc': {
    abs: op<(t: H) => H>(),
    sqrt: op<(t: H) => H>(),
    rsqrt: op<(t: H) => H>(),
    exp: op<(t: H) => H>(),
    log: op<(t: H) => H>(),
    log1p: op<(t: H) => H>(),
    sin: op<(t: H) => H>(),
    cos: op<(t: H) => H>(),
    tanh: op<(t: H) => H>(),
    sigmoid: op<(t: H) => H>(),
    square: op<(t: H) => H>(),
    reciprocal: op<(t: H) => H>(),
    sign: op<(t: H) => H>(),
    floor: op<(t: H) => H>(),
    ceil: op<(t: H) => H>(),
    trunc: op<(t: H) => H>(),
    relu: op<(t: H) => H>(),
    round: op<(t: H, decimals?: number) => H>(),
    clamp: op<(t: H, min: number | null, max: number | null) => H>(),
    clamp_: op<(t: H, min: number | null, max: number | null) => void>(),
    addcmul_: op<(t: H, t1: H, t2: H, value?: Scalar) => void>(),
    addcdiv_: op<(t: H, t1: H, t2: H, value?: Scalar) => void>(),
    lerp_: op<(t: H, end: H, weight: Operand) => void>(),
    sqrt_: op<(t: H) => void>(),
    neg_: op<(t: H) => void>(),
  },
  'video_decode.cc': {
    // LeRobot video frames through libav (src/data/lerobot/video.ts); without libav at build time the reads fail
    // with what to install and videoBackend() is null.
    videoBackend: op<() => string | null>(),
    videoReadFrames: op<(path: string, times: readonly number[], toleranceS: number, height: number, width: number, dst: Uint8Array, byteOffset: number) =>
      { index: number; nearest: number | null } | null>(),
    videoPacketTimes: op<(path: string) => Float64Array>(),
    videoCloseAll: op<() => void>(),
  },
};

type Files = typeof NATIVE_FILES;
type AllDecls = { [F in keyof Files]: Files[F] }[keyof Files];
type UnionToIntersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;
type Flat = UnionToIntersection<AllDecls>;

/** The addon's exports, typed: `N.add(a, b)` is checked against the declaration above. */
export type NativeOps = { readonly [K in keyof Flat]: Flat[K] extends Decl<infer F> ? F : never };

const declared = Object.entries(NATIVE_FILES).flatMap(([file, ops]) => Object.keys(ops).map((name) => [name, file] as const));
/** op name -> the native file that defines it. */
export const NATIVE_OP_FILE: ReadonlyMap<string, string> = new Map(declared);
/** Names declared under two files (the addon exports one function per name, so one of them would be lost). */
const duplicates = [...new Set(declared.filter(([name], i) => declared.findIndex(([n]) => n === name) !== i).map(([name]) => name))];

/**
 * Compare an addon's exported names with the declared table. Returns null when they agree, else one message
 * naming every missing and extra op and what to do.
 */
export function opTableMismatch(exported: readonly string[], addonPath: string): string | null {
  const have = new Set(exported);
  const missing = [...NATIVE_OP_FILE].filter(([name]) => !have.has(name)).map(([name, file]) => `${name} (native/${file})`);
  const extra = exported.filter((name) => !NATIVE_OP_FILE.has(name));
  if (!missing.length && !extra.length && !duplicates.length) return null;
  const parts: string[] = [];
  if (duplicates.length) parts.push(`declared more than once: ${duplicates.map((n) => `${n} (last in native/${NATIVE_OP_FILE.get(n)})`).join(', ')}`);
  if (missing.length)
    parts.push(`${missing.length} declared op(s) missing from the addon: ${missing.join(', ')}; rebuild it with \`npm run build:native\``);
  if (extra.length)
    parts.push(`${extra.length} op(s) exported by the addon but not declared in src/engine/native_ops.ts: ${extra.join(', ')}; ` +
      'add one declaration line per op there (or rebuild a stale addon)');
  return `${addonPath}: the native op table does not match its declaration: ${parts.join('; ')}`;
}

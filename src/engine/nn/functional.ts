// torch.nn.functional: each function is one native call into ATen (native/ops_nn.cc), so autograd,
// kernels and numerics are libtorch's own. Exported as `F`.
import { N } from '../native.js';
import { Tensor, EngineError } from '../tensor.js';
import { DTYPE_CODE, type DType } from '../dtype.js';
import type { Generator } from '../system.js';

export type Reduction = 'mean' | 'sum' | 'none';

/** y = x w^T + b. w is (out, in), as in PyTorch. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(N.linear(x.h, weight.h, bias?.h ?? null));
}

export function layerNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return new Tensor(N.layerNorm(x.h, normalizedShape, weight?.h ?? null, bias?.h ?? null, eps));
}

/**
 * torch.nn.functional.rms_norm: x * rsqrt(mean(x^2 over the normalised dims) + eps) * w.
 * eps defaults to the machine epsilon of x's dtype, as in PyTorch.
 */
export function rmsNorm(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, eps?: number | null): Tensor {
  return new Tensor(N.rmsNorm(x.h, normalizedShape, weight?.h ?? null, eps ?? null));
}

/**
 * timm 1.0.3's fallback RmsNorm (not PyTorch's): x * rsqrt(var(x, unbiased) + eps) * w, the variance
 * taken over the normalised dims (mean-centred, N-1). This is what the official RDT code runs without
 * NVIDIA apex; see shared/docs/rdt-spec.md 1.4.
 */
export function rmsNormTimmVar(x: Tensor, normalizedShape: number | number[], weight?: Tensor | null, eps = 1e-6): Tensor {
  return new Tensor(N.rmsNormVar(x.h, normalizedShape, weight?.h ?? null, eps));
}

export function gelu(x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  return new Tensor(N.gelu(x.h, opts.approximate ?? 'none'));
}
export function silu(x: Tensor): Tensor {
  return new Tensor(N.silu(x.h));
}
export function relu(x: Tensor): Tensor {
  return x.relu();
}
export function sigmoid(x: Tensor): Tensor {
  return x.sigmoid();
}
export function tanh(x: Tensor): Tensor {
  return x.tanh();
}

export function softmax(x: Tensor, dim: number, opts: { dtype?: DType } = {}): Tensor {
  return new Tensor(N.softmax(x.h, dim, opts.dtype ? DTYPE_CODE[opts.dtype] : null));
}
export function logSoftmax(x: Tensor, dim: number, opts: { dtype?: DType } = {}): Tensor {
  return new Tensor(N.logSoftmax(x.h, dim, opts.dtype ? DTYPE_CODE[opts.dtype] : null));
}

export interface SdpaOptions {
  /** bool: true = may attend; float: added to the scores. Broadcasts to (..., L, S). */
  attnMask?: Tensor | null;
  dropoutP?: number;
  isCausal?: boolean;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number | null;
}
/** softmax(q k^T * scale + mask) v over (..., L, E) x (..., S, E), libtorch's fused kernel. */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: SdpaOptions = {}): Tensor {
  return new Tensor(N.sdpa(q.h, k.h, v.h, opts.attnMask?.h ?? null, opts.dropoutP ?? 0, opts.isCausal ?? false, opts.scale ?? null));
}

type Pair = number | [number, number];
const pair = (v: Pair): number[] => (typeof v === 'number' ? [v, v] : v);

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  return new Tensor(N.conv2d(x.h, weight.h, bias?.h ?? null, pair(opts.stride ?? 1), pair(opts.padding ?? 0),
    pair(opts.dilation ?? 1), opts.groups ?? 1));
}

/** Rows of weight picked by the integer indices idx (any shape). */
export function embedding(idx: Tensor, weight: Tensor, opts: { paddingIdx?: number | null } = {}): Tensor {
  return new Tensor(N.embedding(idx.h, weight.h, opts.paddingIdx ?? null));
}

/**
 * Zeroes elements with probability p and scales the rest by 1/(1-p) when training; identity otherwise.
 * With a generator, the keep-mask comes from it (the same draws at::dropout makes from the global one).
 * When not training (or p = 0) the result is a new handle on the input's own tensor, as at::dropout returns
 * its input: disposing it leaves x alone.
 */
export function dropout(x: Tensor, p = 0.5, training = true, generator?: Generator | null): Tensor {
  if (p < 0 || p > 1) throw new EngineError(`dropout: p must be in [0, 1], got ${p}`);
  return new Tensor(N.dropout(x.h, p, training, generator?.g ?? null));
}

export interface InterpolateOptions {
  size?: number | [number, number];
  scaleFactor?: number | [number, number];
  mode?: 'nearest' | 'nearest-exact' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
  antialias?: boolean;
}
/** torch.nn.functional.interpolate for 4-D (N, C, H, W) input; antialias uses ATen's _upsample_*_aa. */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  const mode = opts.mode ?? 'nearest';
  if ((opts.size === undefined) === (opts.scaleFactor === undefined))
    throw new EngineError('interpolate: give exactly one of size and scaleFactor');
  if (opts.alignCorners !== undefined && (mode === 'nearest' || mode === 'nearest-exact'))
    throw new EngineError(`interpolate: alignCorners only applies to 'bilinear' and 'bicubic', not '${mode}'`);
  if (opts.antialias && !(mode === 'bilinear' || mode === 'bicubic'))
    throw new EngineError(`interpolate: antialias only applies to 'bilinear' and 'bicubic', not '${mode}'`);
  const size = opts.size === undefined ? null : pair(opts.size);
  const scales = opts.scaleFactor === undefined ? null
    : typeof opts.scaleFactor === 'number' ? [opts.scaleFactor, opts.scaleFactor] : opts.scaleFactor;
  return new Tensor(N.interpolate(x.h, mode, size, scales, opts.alignCorners ?? false, opts.antialias ?? false));
}

export function mseLoss(input: Tensor, target: Tensor, opts: { reduction?: Reduction } = {}): Tensor {
  return new Tensor(N.mseLoss(input.h, target.h, opts.reduction ?? 'mean'));
}

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}
/** logits (N, C, ...) with int64 class targets (N, ...) or class probabilities shaped like logits. */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  return new Tensor(N.crossEntropy(logits.h, target.h, opts.weight?.h ?? null, opts.reduction ?? 'mean',
    opts.ignoreIndex ?? -100, opts.labelSmoothing ?? 0));
}

/** torch.nn.functional.pad: pads = [left, right, top, bottom, ...] from the last dim backwards. */
export function pad(x: Tensor, pads: number[], value?: number, mode: 'constant' | 'reflect' | 'replicate' | 'circular' = 'constant'): Tensor {
  return new Tensor(N.pad(x.h, pads, mode, value ?? null));
}

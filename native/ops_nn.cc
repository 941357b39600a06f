// Neural-network functional ops (torch.nn.functional): linear, norms, activations, softmax,
// attention, convolution, embedding, dropout, resampling, losses, padding. Each body is one ATen
// call (the timm RmsNorm and a generator-driven dropout are the two small composites, written
// with the same ATen calls their PyTorch originals make, so autograd and numerics match).
#include "common.h"
#include <ATen/core/Reduction.h>
#include <limits>
#include <torch/version.h>
using rdt::Ctx;

static int64_t reduction(Ctx& c, size_t i) {
  if (c.isNullish(i)) return at::Reduction::Mean;
  auto r = c.s(i);
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  c.fail("reduction must be 'mean', 'sum' or 'none', got '" + r + "'", true);
}


// linear(x, w, b|null)
OP(linear) { return c.wrap(at::linear(c.t(0), c.t(1), c.ot(2))); }

// layerNorm(x, normalizedShape, w|null, b|null, eps)
OP(layerNorm) { return c.wrap(at::layer_norm(c.t(0), c.ints(1), c.ot(2), c.ot(3), c.d(4))); }

// rmsNorm(x, normalizedShape, w|null, eps|null): x * rsqrt(mean(x^2) + eps) * w (torch.nn.functional.rms_norm;
// eps null = machine epsilon of x's dtype).
OP(rmsNorm) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return c.wrap(at::rms_norm(c.t(0), c.ints(1), c.ot(2), c.od(3)));
#else
  auto x = c.t(0);
  auto shape = c.ints(1);
  std::vector<int64_t> dims;
  for (int64_t k = 1; k <= static_cast<int64_t>(shape.size()); k++) dims.push_back(-k);
  double eps = c.od(3).value_or(std::numeric_limits<float>::epsilon());
  auto y = x * at::rsqrt(at::mean(x.pow(2), dims, true) + eps);
  auto w = c.ot(2);
  return c.wrap(w ? y * *w : y);
#endif
}

// rmsNormVar(x, normalizedShape, w|null, eps): timm 1.0.3's fallback RmsNorm,
// x * rsqrt(var(x, unbiased, over the normalised dims) + eps) * w. Same ATen calls as timm's rms_norm().
OP(rmsNormVar) {
  auto x = c.t(0);
  auto shape = c.ints(1);
  std::vector<int64_t> dims;
  for (int64_t k = 1; k <= static_cast<int64_t>(shape.size()); k++) dims.push_back(-k);
  auto v = at::var(x, dims, /*unbiased=*/true, /*keepdim=*/true);
  auto y = x * at::rsqrt(v + c.d(3));
  auto w = c.ot(2);
  return c.wrap(w ? y * *w : y);
}

// gelu(x, approximate: 'none' | 'tanh')
OP(gelu) { return c.wrap(at::gelu(c.t(0), c.isNullish(1) ? "none" : c.s(1))); }
OP(silu) { return c.wrap(at::silu(c.t(0))); }

// softmax(x, dim, dtype|null), logSoftmax(x, dim, dtype|null)
OP(softmax) {
  auto dt = c.isNullish(2) ? std::optional<at::ScalarType>() : c.dtype(2);
  return c.wrap(at::softmax(c.t(0), c.i64(1), dt));
}
OP(logSoftmax) {
  auto dt = c.isNullish(2) ? std::optional<at::ScalarType>() : c.dtype(2);
  return c.wrap(at::log_softmax(c.t(0), c.i64(1), dt));
}

// sdpa(q, k, v, mask|null, dropoutP, isCausal, scale|null): libtorch's fused attention.
// A bool mask is true where attention is allowed; a float mask is added to the scores.
OP(sdpa) {
  return c.wrap(at::scaled_dot_product_attention(c.t(0), c.t(1), c.t(2), c.ot(3), c.d(4), c.b(5), c.od(6)));
}

// conv2d(x, w, b|null, stride, padding, dilation, groups)
OP(conv2d) { return c.wrap(at::conv2d(c.t(0), c.t(1), c.ot(2), c.ints(3), c.ints(4), c.ints(5), c.i64(6))); }

// embedding(idx, w, paddingIdx)
OP(embedding) { return c.wrap(at::embedding(c.t(1), c.t(0), c.isNullish(2) ? -1 : c.i64(2))); }

// dropout(x, p, training, generator|null). Without a generator this is at::dropout; with one it
// draws the same keep-mask at::dropout draws (bernoulli(1-p), scaled by 1/(1-p)) from that generator.
OP(dropout) {
  auto x = c.t(0);
  double p = c.d(1);
  bool train = c.b(2);
  auto g = c.gen(3);
  if (!g || !train || p == 0) return c.wrap(at::dropout(x, p, train));
  if (p == 1) return c.wrap(x * at::zeros_like(x));
  auto noise = at::empty_like(x).bernoulli_(1 - p, *g).div_(1 - p);
  return c.wrap(x * noise);
}

// interpolate(x, mode, size|null, scaleFactors|null, alignCorners, antialias) for 4-D input.
OP(interpolate) {
  auto x = c.t(0);
  auto mode = c.s(1);
  auto size = c.oints(2);
  std::optional<std::vector<double>> scales;
  if (!c.isNullish(3)) scales = c.doubles(3);
  bool align = !c.isNullish(4) && c.b(4);
  bool aa = !c.isNullish(5) && c.b(5);
  at::OptionalIntArrayRef os = size ? at::OptionalIntArrayRef(*size) : at::OptionalIntArrayRef();
  std::optional<at::ArrayRef<double>> sf;
  if (scales) sf = at::ArrayRef<double>(*scales);
  if (x.dim() != 4) c.fail("only 4-D input (N, C, H, W) is supported, got " + std::to_string(x.dim()) + "-D");
  if (mode == "nearest") return c.wrap(at::upsample_nearest2d(x, os, sf));
  if (mode == "nearest-exact") return c.wrap(at::_upsample_nearest_exact2d(x, os, sf));
  if (mode == "bilinear")
    return c.wrap(aa ? at::_upsample_bilinear2d_aa(x, os, align, sf) : at::upsample_bilinear2d(x, os, align, sf));
  if (mode == "bicubic")
    return c.wrap(aa ? at::_upsample_bicubic2d_aa(x, os, align, sf) : at::upsample_bicubic2d(x, os, align, sf));
  c.fail("unknown mode '" + mode + "' (use 'nearest', 'nearest-exact', 'bilinear' or 'bicubic')", true);
}

// mseLoss(a, b, reduction)
OP(mseLoss) { return c.wrap(at::mse_loss(c.t(0), c.t(1), reduction(c, 2))); }

// crossEntropy(logits, target, weight|null, reduction, ignoreIndex, labelSmoothing)
OP(crossEntropy) {
  return c.wrap(at::cross_entropy_loss(c.t(0), c.t(1), c.ot(2), reduction(c, 3), c.isNullish(4) ? -100 : c.i64(4),
                                       c.isNullish(5) ? 0.0 : c.d(5)));
}

// pad(x, pads, mode, value|null): torch.nn.functional.pad.
OP(pad) { return c.wrap(at::pad(c.t(0), c.ints(1), c.isNullish(2) ? "constant" : c.s(2), c.od(3))); }

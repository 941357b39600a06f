// Reductions: var/std with a correction, max/min (whole or along a dim, with indices), amax/amin,
// argmax/argmin, norm, prod, cumsum, logsumexp.
#include "common.h"
using rdt::Ctx;

static bool keepdim(Ctx& c, size_t i) { return !c.isNullish(i) && c.b(i); }

// var(t, dims|null, correction, keepdim); std likewise.
OP(var) {
  auto dims = c.oints(1);
  std::optional<at::Scalar> corr = c.isNullish(2) ? at::Scalar(1) : c.scalar(2);
  return c.wrap(at::var(c.t(0), dims ? at::OptionalIntArrayRef(*dims) : std::nullopt, corr, keepdim(c, 3)));
}
OP(std) {
  auto dims = c.oints(1);
  std::optional<at::Scalar> corr = c.isNullish(2) ? at::Scalar(1) : c.scalar(2);
  return c.wrap(at::std(c.t(0), dims ? at::OptionalIntArrayRef(*dims) : std::nullopt, corr, keepdim(c, 3)));
}
// max(t) -> tensor; maxDim(t, dim, keepdim) -> [values, indices]
OP(max) { return c.wrap(at::max(c.t(0))); }
OP(min) { return c.wrap(at::min(c.t(0))); }
OP(maxDim) {
  auto r = at::max(c.t(0), c.i64(1), keepdim(c, 2));
  return c.wrap(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r)});
}
OP(minDim) {
  auto r = at::min(c.t(0), c.i64(1), keepdim(c, 2));
  return c.wrap(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r)});
}
// amax(t, dims|null, keepdim): all dims when null.
OP(amax) {
  auto dims = c.oints(1);
  return c.wrap(at::amax(c.t(0), dims ? *dims : std::vector<int64_t>{}, keepdim(c, 2)));
}
OP(amin) {
  auto dims = c.oints(1);
  return c.wrap(at::amin(c.t(0), dims ? *dims : std::vector<int64_t>{}, keepdim(c, 2)));
}
// argmax(t, dim|null, keepdim): index into the flattened tensor when dim is null.
OP(argmax) { return c.wrap(at::argmax(c.t(0), c.oi64(1), keepdim(c, 2))); }
OP(argmin) { return c.wrap(at::argmin(c.t(0), c.oi64(1), keepdim(c, 2))); }
// norm(t, p, dims|null, keepdim)
OP(norm) {
  auto t = c.t(0);
  auto p = c.scalar(1);
  auto dims = c.oints(2);
  return c.wrap(dims ? at::norm(t, p, *dims, keepdim(c, 3)) : at::norm(t, p));
}
// prod(t, dim|null, keepdim)
OP(prod) {
  auto t = c.t(0);
  auto dim = c.oi64(1);
  return c.wrap(dim ? at::prod(t, *dim, keepdim(c, 2)) : at::prod(t));
}
// cumsum(t, dim, dtype|null)
OP(cumsum) {
  auto t = c.t(0);
  return c.wrap(c.isNullish(2) ? at::cumsum(t, c.i64(1)) : at::cumsum(t, c.i64(1), c.dtype(2)));
}
// logsumexp(t, dims, keepdim)
OP(logsumexp) { return c.wrap(at::logsumexp(c.t(0), c.ints(1), keepdim(c, 2))); }
// cumprod(t, dim, dtype|null): e.g. a diffusion schedule's alphas_cumprod.
OP(cumprod) {
  auto t = c.t(0);
  return c.wrap(c.isNullish(2) ? at::cumprod(t, c.i64(1)) : at::cumprod(t, c.i64(1), c.dtype(2)));
}

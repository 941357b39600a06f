// Elementwise functions of one tensor, clamping, and the in-place updates optimizers and
// samplers use (clamp_, addcmul_, addcdiv_, lerp_, sqrt_, neg_).
#include "ops_scalar.h"
using rdt::Ctx;
using rdt::isTensorArg;
using rdt::optScalarFor;

#define UNARY(name, fn) \
  OP(name) { return c.wrap(fn(c.t(0))); }

UNARY(abs, at::abs)
UNARY(sqrt, at::sqrt)
UNARY(rsqrt, at::rsqrt)
UNARY(exp, at::exp)
UNARY(log, at::log)
UNARY(log1p, at::log1p)
UNARY(sin, at::sin)
UNARY(cos, at::cos)
UNARY(tanh, at::tanh)
UNARY(sigmoid, at::sigmoid)
UNARY(square, at::square)
UNARY(reciprocal, at::reciprocal)
UNARY(sign, at::sign)
UNARY(floor, at::floor)
UNARY(ceil, at::ceil)
UNARY(trunc, at::trunc)
UNARY(relu, at::relu)

// round(t, decimals)
OP(round) {
  auto t = c.t(0);
  auto decimals = c.isNullish(1) ? 0 : c.i64(1);
  return c.wrap(decimals == 0 ? at::round(t) : at::round(t, decimals));
}
// clamp(t, min|null, max|null)
OP(clamp) {
  auto t = c.t(0);
  auto lo = optScalarFor(c, 1, t), hi = optScalarFor(c, 2, t);
  if (!lo && !hi) c.fail("at least one of min and max must be given");
  return c.wrap(at::clamp(t, lo, hi));
}
OP(clamp_) {
  auto t = c.t(0);
  auto lo = optScalarFor(c, 1, t), hi = optScalarFor(c, 2, t);
  if (!lo && !hi) c.fail("at least one of min and max must be given");
  t.clamp_(lo, hi);
  return c.undef();
}
// addcmul_(t, t1, t2, value): t += value * t1 * t2
OP(addcmul_) {
  c.t(0).addcmul_(c.t(1), c.t(2), c.isNullish(3) ? at::Scalar(1.0) : c.scalar(3));
  return c.undef();
}
// addcdiv_(t, t1, t2, value): t += value * t1 / t2
OP(addcdiv_) {
  c.t(0).addcdiv_(c.t(1), c.t(2), c.isNullish(3) ? at::Scalar(1.0) : c.scalar(3));
  return c.undef();
}
// lerp_(t, end, weight: tensor|number): t += weight * (end - t)
OP(lerp_) {
  auto t = c.t(0);
  if (isTensorArg(c, 2)) t.lerp_(c.t(1), c.t(2)); else t.lerp_(c.t(1), c.scalar(2));
  return c.undef();
}
OP(sqrt_) {
  c.t(0).sqrt_();
  return c.undef();
}
OP(neg_) {
  c.t(0).neg_();
  return c.undef();
}

// Elementwise arithmetic with broadcasting, and matmul. Binary ops take (tensor, tensor|scalar).
#include "common.h"
using rdt::Ctx;

// The second operand may be a tensor or a number; torch promotes types the same way in both.
static bool isTensorArg(Ctx& c, size_t i) { return rdt::holderOf(c.env, c.argv[i]) != nullptr; }

#define BINARY(name, fn)                                              \
  OP(name) {                                                          \
    auto a = c.t(0);                                                  \
    return c.wrap(isTensorArg(c, 1) ? fn(a, c.t(1)) : fn(a, c.scalar(1))); \
  }

BINARY(add, at::add)
BINARY(sub, at::sub)
BINARY(mul, at::mul)
BINARY(div, at::div)
BINARY(pow, at::pow)

// In place, for optimizers and EMA: a.add_(b, alpha), a.mul_(b).
OP(add_) {
  auto a = c.t(0);
  double alpha = c.isNullish(2) ? 1.0 : c.d(2);
  if (isTensorArg(c, 1)) a.add_(c.t(1), alpha); else a.add_(c.scalar(1), alpha);
  return c.undef();
}
OP(mul_) {
  auto a = c.t(0);
  if (isTensorArg(c, 1)) a.mul_(c.t(1)); else a.mul_(c.scalar(1));
  return c.undef();
}
OP(neg) { return c.wrap(at::neg(c.t(0))); }
OP(matmul) { return c.wrap(at::matmul(c.t(0), c.t(1))); }
// sum(t, dims|null, keepdim)
OP(sum) {
  auto t = c.t(0);
  auto dims = c.oints(1);
  return c.wrap(dims ? at::sum(t, *dims, !c.isNullish(2) && c.b(2)) : at::sum(t));
}
OP(mean) {
  auto t = c.t(0);
  auto dims = c.oints(1);
  return c.wrap(dims ? at::mean(t, *dims, !c.isNullish(2) && c.b(2)) : at::mean(t));
}

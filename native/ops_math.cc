// Elementwise arithmetic with broadcasting (add sub mul div pow remainder floorDivide maximum minimum),
// the in-place forms optimizers use, and matrix products (matmul addmm bmm baddbmm outer), sum, mean.
#include "ops_scalar.h"
using rdt::Ctx;

// The second operand may be a tensor or a number (see ops_scalar.h for how numbers are typed).
using rdt::isTensorArg;
using rdt::scalarFor;

#define BINARY(name, fn)                                                          \
  OP(name) {                                                                      \
    auto a = c.t(0);                                                              \
    return c.wrap(isTensorArg(c, 1) ? fn(a, c.t(1)) : fn(a, scalarFor(c, 1, a))); \
  }

BINARY(add, at::add)
BINARY(sub, at::sub)
BINARY(mul, at::mul)
BINARY(div, at::div)
BINARY(pow, at::pow)

// In place, for optimizers and EMA: a.add_(b, alpha), a.mul_(b).
OP(add_) {
  auto a = c.t(0);
  at::Scalar alpha = c.isNullish(2) ? at::Scalar(int64_t(1)) : scalarFor(c, 2, a);
  if (isTensorArg(c, 1)) a.add_(c.t(1), alpha); else a.add_(scalarFor(c, 1, a), alpha);
  return c.undef();
}
OP(mul_) {
  auto a = c.t(0);
  if (isTensorArg(c, 1)) a.mul_(c.t(1)); else a.mul_(scalarFor(c, 1, a));
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

// More binary elementwise ops (tensor, tensor|scalar).
BINARY(remainder, at::remainder)
BINARY(floorDivide, at::floor_divide)
OP(maximum) { return c.wrap(at::maximum(c.t(0), c.t(1))); }
OP(minimum) { return c.wrap(at::minimum(c.t(0), c.t(1))); }
// In place: a.sub_(b, alpha), a.div_(b).
OP(sub_) {
  auto a = c.t(0);
  at::Scalar alpha = c.isNullish(2) ? at::Scalar(int64_t(1)) : scalarFor(c, 2, a);
  if (isTensorArg(c, 1)) a.sub_(c.t(1), alpha); else a.sub_(scalarFor(c, 1, a), alpha);
  return c.undef();
}
OP(div_) {
  auto a = c.t(0);
  if (isTensorArg(c, 1)) a.div_(c.t(1)); else a.div_(c.scalar(1));
  return c.undef();
}

// Matrix products. addmm(bias, a, b, beta, alpha) = beta * bias + alpha * a @ b.
OP(addmm) { return c.wrap(at::addmm(c.t(0), c.t(1), c.t(2), c.scalar(3), c.scalar(4))); }
OP(bmm) { return c.wrap(at::bmm(c.t(0), c.t(1))); }
// baddbmm(input, b1, b2, beta, alpha) = beta * input + alpha * b1 @ b2 (batched)
OP(baddbmm) { return c.wrap(at::baddbmm(c.t(0), c.t(1), c.t(2), c.scalar(3), c.scalar(4))); }
OP(outer) { return c.wrap(at::outer(c.t(0), c.t(1))); }

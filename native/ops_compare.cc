// Comparisons (bool results), logical ops, nan/finite tests, any/all, where, allclose.
#include "ops_scalar.h"
using rdt::Ctx;
using rdt::isTensorArg;
using rdt::scalarFor;

#define COMPARE(name, fn)                                                  \
  OP(name) {                                                               \
    auto a = c.t(0);                                                       \
    return c.wrap(isTensorArg(c, 1) ? fn(a, c.t(1)) : fn(a, c.scalar(1))); \
  }
COMPARE(eq, at::eq)
COMPARE(ne, at::ne)
COMPARE(lt, at::lt)
COMPARE(le, at::le)
COMPARE(gt, at::gt)
COMPARE(ge, at::ge)

OP(logicalNot) { return c.wrap(at::logical_not(c.t(0))); }
OP(logicalAnd) { return c.wrap(at::logical_and(c.t(0), c.t(1))); }
OP(logicalOr) { return c.wrap(at::logical_or(c.t(0), c.t(1))); }
OP(isnan) { return c.wrap(at::isnan(c.t(0))); }
OP(isfinite) { return c.wrap(at::isfinite(c.t(0))); }
OP(isinf) { return c.wrap(at::isinf(c.t(0))); }
// any(t, dim|null, keepdim); all likewise.
OP(any) {
  auto t = c.t(0);
  auto dim = c.oi64(1);
  return c.wrap(dim ? at::any(t, *dim, !c.isNullish(2) && c.b(2)) : at::any(t));
}
OP(all) {
  auto t = c.t(0);
  auto dim = c.oi64(1);
  return c.wrap(dim ? at::all(t, *dim, !c.isNullish(2) && c.b(2)) : at::all(t));
}
// where(cond, a, b): a and b each a tensor or a number (two numbers give the default float dtype).
OP(where) {
  auto cond = c.t(0);
  bool ta = isTensorArg(c, 1), tb = isTensorArg(c, 2);
  if (ta && tb) return c.wrap(at::where(cond, c.t(1), c.t(2)));
  if (ta) {
    auto a = c.t(1);
    return c.wrap(at::where(cond, a, scalarFor(c, 2, a)));
  }
  if (tb) {
    auto b = c.t(2);
    return c.wrap(at::where(cond, scalarFor(c, 1, b), b));
  }
  return c.wrap(at::where(cond, c.scalar(1), c.scalar(2)));
}
// allclose(a, b, rtol, atol, equalNan) -> boolean
OP(allclose) {
  return c.boolean(at::allclose(c.t(0), c.t(1), c.d(2), c.d(3), !c.isNullish(4) && c.b(4)));
}

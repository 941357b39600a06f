// Views and shape changes: reshape/view/permute/transpose, squeeze/unsqueeze, expand/repeat,
// slicing (narrow/slice/select), splitting (split/chunk/unbind), joining (cat/stack), roll, tril/triu.
// ATen wraps negative dims and reports out-of-range ones itself.
#include "common.h"
using rdt::Ctx;

OP(reshape) { return c.wrap(at::reshape(c.t(0), c.ints(1))); }
OP(view) { return c.wrap(c.t(0).view(c.ints(1))); }
OP(permute) { return c.wrap(at::permute(c.t(0), c.ints(1))); }
OP(transpose) { return c.wrap(at::transpose(c.t(0), c.i64(1), c.i64(2))); }
OP(t) { return c.wrap(at::t(c.t(0))); }
// flatten(t, startDim, endDim)
OP(flatten) { return c.wrap(at::flatten(c.t(0), c.i64(1), c.i64(2))); }
OP(unsqueeze) { return c.wrap(at::unsqueeze(c.t(0), c.i64(1))); }
// squeeze(t, dims|null): every size-1 dim when null.
OP(squeeze) {
  auto t = c.t(0);
  auto dims = c.oints(1);
  return c.wrap(dims ? at::squeeze(t, *dims) : at::squeeze(t));
}
OP(expand) { return c.wrap(c.t(0).expand(c.ints(1))); }
OP(repeat) { return c.wrap(c.t(0).repeat(c.ints(1))); }
OP(flip) { return c.wrap(at::flip(c.t(0), c.ints(1))); }
// narrow(t, dim, start, length)
OP(narrow) { return c.wrap(at::narrow(c.t(0), c.i64(1), c.i64(2), c.i64(3))); }
// slice(t, dim, start|null, end|null, step): Python slicing, negative start/end count from the end.
OP(slice) {
  auto step = c.i64(4);
  if (step <= 0) c.fail("step must be positive, got " + std::to_string(step));
  return c.wrap(at::slice(c.t(0), c.i64(1), c.oi64(2), c.oi64(3), step));
}
OP(select) { return c.wrap(at::select(c.t(0), c.i64(1), c.i64(2))); }
// split(t, size | sizes[], dim)
OP(split) {
  auto t = c.t(0);
  bool isArr = false;
  napi_is_array(c.env, c.argv[1], &isArr);
  auto dim = c.i64(2);
  return c.wrap(isArr ? at::split_with_sizes(t, c.ints(1), dim) : at::split(t, c.i64(1), dim));
}
OP(chunk) { return c.wrap(at::chunk(c.t(0), c.i64(1), c.i64(2))); }
OP(unbind) { return c.wrap(at::unbind(c.t(0), c.i64(1))); }
OP(cat) { return c.wrap(at::cat(c.ts(0), c.i64(1))); }
OP(stack) { return c.wrap(at::stack(c.ts(0), c.i64(1))); }
// roll(t, shifts, dims): dims empty rolls the flattened tensor.
OP(roll) { return c.wrap(at::roll(c.t(0), c.ints(1), c.isNullish(2) ? std::vector<int64_t>{} : c.ints(2))); }
OP(tril) { return c.wrap(at::tril(c.t(0), c.i64(1))); }
OP(triu) { return c.wrap(at::triu(c.t(0), c.i64(1))); }

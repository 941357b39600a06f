// Factories and conversions: zeros/ones/full/arange/linspace/eye/empty, to(dtype/device), clone.
#include "common.h"
using rdt::Ctx;

static at::TensorOptions opts(Ctx& c, size_t dtypeArg, size_t deviceArg) {
  return at::TensorOptions().dtype(c.dtype(dtypeArg)).device(c.device(deviceArg));
}

OP(zeros) { return c.wrap(at::zeros(c.ints(0), opts(c, 1, 2))); }
OP(ones) { return c.wrap(at::ones(c.ints(0), opts(c, 1, 2))); }
OP(empty) { return c.wrap(at::empty(c.ints(0), opts(c, 1, 2))); }
OP(full) { return c.wrap(at::full(c.ints(0), c.scalar(1), opts(c, 2, 3))); }
// arange(start, end, step, dtype, device)
OP(arange) { return c.wrap(at::arange(c.scalar(0), c.scalar(1), c.scalar(2), opts(c, 3, 4))); }
// linspace(start, end, steps, dtype, device)
OP(linspace) { return c.wrap(at::linspace(c.scalar(0), c.scalar(1), c.i64(2), opts(c, 3, 4))); }
OP(eye) { return c.wrap(at::eye(c.i64(0), c.i64(1), opts(c, 2, 3))); }
OP(zerosLike) { return c.wrap(at::zeros_like(c.t(0))); }
OP(onesLike) { return c.wrap(at::ones_like(c.t(0))); }
OP(fullLike) { return c.wrap(at::full_like(c.t(0), c.scalar(1))); }
OP(scalarTensor) { return c.wrap(at::scalar_tensor(c.scalar(0), opts(c, 1, 2))); }

// to(t, dtype|null, device|null, copy)
OP(to) {
  auto t = c.t(0);
  auto dtype = c.isNullish(1) ? t.scalar_type() : c.dtype(1);
  auto device = c.isNullish(2) ? t.device() : c.device(2);
  return c.wrap(t.to(device, dtype, /*non_blocking=*/false, /*copy=*/!c.isNullish(3) && c.b(3)));
}
OP(clone) { return c.wrap(c.t(0).clone()); }
OP(contiguous) { return c.wrap(c.t(0).contiguous()); }
// copy_(dst, src): in-place copy with broadcasting and dtype/device conversion.
OP(copy_) {
  c.t(0).copy_(c.t(1));
  return c.undef();
}
OP(fill_) {
  c.t(0).fill_(c.scalar(1));
  return c.undef();
}
OP(zero_) {
  c.t(0).zero_();
  return c.undef();
}

// Random sampling from a torch.Generator (or the global one when null). Same generator state,
// same numbers as PyTorch on the same device.
#include "common.h"
using rdt::Ctx;

static at::TensorOptions opts(Ctx& c, size_t dtypeArg, size_t deviceArg) {
  return at::TensorOptions().dtype(c.dtype(dtypeArg)).device(c.device(deviceArg));
}

// randn(shape, gen|null, dtype, device); rand likewise.
OP(randn) { return c.wrap(at::randn(c.ints(0), c.gen(1), opts(c, 2, 3))); }
OP(rand) { return c.wrap(at::rand(c.ints(0), c.gen(1), opts(c, 2, 3))); }
// randint(low, high, shape, gen|null, dtype, device)
OP(randint) { return c.wrap(at::randint(c.i64(0), c.i64(1), c.ints(2), c.gen(3), opts(c, 4, 5))); }
// normal(mean, std, shape, gen|null, dtype, device)
OP(normal) { return c.wrap(at::normal(c.d(0), c.d(1), c.ints(2), c.gen(3), opts(c, 4, 5))); }
// bernoulli(p, gen|null): 0/1 with probability p elementwise, p's dtype.
OP(bernoulli) { return c.wrap(at::bernoulli(c.t(0), c.gen(1))); }
// randperm(n, gen|null, dtype, device)
OP(randperm) { return c.wrap(at::randperm(c.i64(0), c.gen(1), opts(c, 2, 3))); }
// In place: uniform_(t, from, to, gen), normal_(t, mean, std, gen), bernoulli_(t, p: number|tensor, gen)
OP(uniform_) {
  c.t(0).uniform_(c.d(1), c.d(2), c.gen(3));
  return c.undef();
}
OP(normal_) {
  c.t(0).normal_(c.d(1), c.d(2), c.gen(3));
  return c.undef();
}
OP(bernoulli_) {
  auto t = c.t(0);
  if (c.argc > 1 && rdt::holderOf(c.env, c.argv[1])) t.bernoulli_(c.t(1), c.gen(2));
  else t.bernoulli_(c.d(1), c.gen(2));
  return c.undef();
}

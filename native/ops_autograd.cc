// Autograd: requires_grad, backward, grad access, grad mode, detach.
#include "common.h"
#include <ATen/core/grad_mode.h>
#include <torch/csrc/autograd/autograd.h>

OP(requiresGrad) { return c.boolean(c.t(0).requires_grad()); }
OP(setRequiresGrad) {
  c.t(0).requires_grad_(c.b(1));
  return c.undef();
}
// backward(loss, gradient|null, retainGraph)
OP(backward) {
  auto t = c.t(0);
  auto g = c.ot(1);
  bool retain = !c.isNullish(2) && c.b(2);
  t.backward(g ? *g : at::Tensor(), retain);
  return c.undef();
}
// autogradGrad(outputs, inputs, gradOutputs|null, retainGraph, createGraph): torch.autograd.grad
OP(autogradGrad) {
  auto outs = c.ts(0);
  auto ins = c.ts(1);
  std::vector<at::Tensor> gouts;
  if (!c.isNullish(2)) gouts = c.ts(2);
  bool retain = !c.isNullish(3) && c.b(3);
  bool create = !c.isNullish(4) && c.b(4);
  auto grads = torch::autograd::grad(outs, ins, gouts, retain, create, /*allow_unused=*/true);
  return c.wrap(std::vector<at::Tensor>(grads.begin(), grads.end()));
}
OP(grad) { return c.wrap(c.t(0).grad()); }  // null when there is no grad
OP(setGrad) {
  auto t = c.t(0);
  auto g = c.ot(1);
  t.mutable_grad() = g ? *g : at::Tensor();
  return c.undef();
}
OP(detach) { return c.wrap(c.t(0).detach()); }
OP(detach_) {
  c.t(0).detach_();
  return c.undef();
}
OP(isGradEnabled) { return c.boolean(at::GradMode::is_enabled()); }
OP(setGradEnabled) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(c.b(0));
  return c.boolean(prev);
}
OP(isLeaf) { return c.boolean(c.t(0).is_leaf()); }

// Optimizer kernels and gradient utilities: one native call per parameter group, looping in C++
// over the same ATen in-place ops torch.optim uses, so a step costs what PyTorch's costs.
#include "common.h"
#include <ATen/core/grad_mode.h>
#include <cmath>
using rdt::Ctx;


// gradsDefined(params) -> boolean[]: which parameters hold a gradient (one call for a whole model).
OP(gradsDefined) {
  auto ps = c.ts(0);
  napi_value arr;
  napi_create_array_with_length(c.env, ps.size(), &arr);
  for (size_t k = 0; k < ps.size(); k++) napi_set_element(c.env, arr, k, c.boolean(ps[k].grad().defined()));
  return arr;
}

// zeroGrads(params, setToNone): Optimizer.zero_grad / Module.zero_grad.
OP(zeroGrads) {
  bool toNone = c.isNullish(1) || c.b(1);
  for (auto& p : c.ts(0)) {
    auto& g = p.mutable_grad();
    if (!g.defined()) continue;
    if (toNone) {
      g.reset();
    } else {
      if (g.grad_fn()) g = g.detach(); else g.requires_grad_(false);
      g.zero_();
    }
  }
  return c.undef();
}

// setData(t, src): t.data = src (keeps t's autograd identity; used by Module.to and Parameter.setData).
OP(setData) {
  c.t(0).set_data(c.t(1));
  return c.undef();
}

// adamwStep(params, expAvgs, expAvgSqs, steps, lr, beta1, beta2, eps, weightDecay): one AdamW step
// for a parameter group, exactly torch.optim.AdamW's single-tensor algorithm (foreach=False), with
// steps[k] the already-incremented step count of params[k]. Every param must have a grad.
OP(adamwStep) {
  auto ps = c.ts(0);
  auto ms = c.ts(1);
  auto vs = c.ts(2);
  auto steps = c.doubles(3);
  double lr = c.d(4), beta1 = c.d(5), beta2 = c.d(6), eps = c.d(7), wd = c.d(8);
  if (ms.size() != ps.size() || vs.size() != ps.size() || steps.size() != ps.size())
    c.fail("params, expAvgs, expAvgSqs and steps must have the same length");
  at::NoGradGuard noGrad;
  for (size_t k = 0; k < ps.size(); k++) {
    auto& param = ps[k];
    const auto& grad = param.grad();
    if (!grad.defined()) c.fail("parameter " + std::to_string(k) + " has no gradient");
    auto& exp_avg = ms[k];
    auto& exp_avg_sq = vs[k];
    if (wd != 0) param.mul_(1 - lr * wd);
    exp_avg.lerp_(grad, 1 - beta1);
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
    double step = steps[k];
    double bias_correction1 = 1 - std::pow(beta1, step);
    double bias_correction2 = 1 - std::pow(beta2, step);
    double step_size = lr / bias_correction1;
    double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
    auto denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps);
    param.addcdiv_(exp_avg, denom, -step_size);
  }
  return c.undef();
}

// clipGradNorm(params, maxNorm, normType, errorIfNonfinite) -> total norm before clipping
// (torch.nn.utils.clip_grad_norm_: per-tensor norms, the norm of those, then grads *= min(1, max/(norm+1e-6))).
OP(clipGradNorm) {
  auto ps = c.ts(0);
  double maxNorm = c.d(1);
  double normType = c.d(2);
  bool errorIfNonfinite = !c.isNullish(3) && c.b(3);
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> grads;
  for (auto& p : ps)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return c.num(0);
  auto norms = at::_foreach_norm(grads, normType);
  auto dev = grads[0].device();
  for (auto& n : norms) n = n.to(dev);
  auto total = at::linalg_vector_norm(at::stack(norms), normType);
  double totalD = total.item<double>();
  if (errorIfNonfinite && !std::isfinite(totalD))
    c.fail("the total norm of order " + std::to_string(normType) +
           " of the gradients is non-finite, so it cannot be clipped (pass errorIfNonfinite: false to scale anyway)");
  auto coef = at::clamp_max(at::reciprocal(total + 1e-6) * maxNorm, 1.0);
  at::_foreach_mul_(grads, coef);
  return c.num(totalD);
}

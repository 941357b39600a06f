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

// One AdamW update of one parameter, exactly torch.optim.AdamW's single-tensor algorithm (foreach=False).
static void adamwSingle(at::Tensor& param, const at::Tensor& grad, at::Tensor& exp_avg, at::Tensor& exp_avg_sq, double step,
                        double lr, double beta1, double beta2, double eps, double wd) {
  if (wd != 0) param.mul_(1 - lr * wd);
  exp_avg.lerp_(grad, 1 - beta1);
  exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
  double bias_correction1 = 1 - std::pow(beta1, step);
  double bias_correction2 = 1 - std::pow(beta2, step);
  double step_size = lr / bias_correction1;
  double bias_correction2_sqrt = std::pow(bias_correction2, 0.5);
  auto denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps);
  param.addcdiv_(exp_avg, denom, -step_size);
}

// adamwStep(params, expAvgs, expAvgSqs, steps, lr, beta1, beta2, eps, weightDecay, fused): one AdamW step for a
// parameter group, with steps[k] the already-incremented step count of params[k]. Every param must have a grad.
// fused = false: torch.optim.AdamW's single-tensor algorithm (its CPU default), op for op.
// fused = true: float32 parameters with contiguous float32 grads go through ATen's fused AdamW kernel
// (torch.optim.AdamW(fused=True)): one pass over each parameter's memory instead of ~8 (decay, lerp, mul,
// addcmul, sqrt, div, add, addcdiv, two temporaries); equal to the single-tensor update within float32
// rounding. Other parameters (bf16: the fused kernel computes in float32, torch's default in bf16) stay single-tensor.
OP(adamwStep) {
  auto ps = c.ts(0);
  auto ms = c.ts(1);
  auto vs = c.ts(2);
  auto steps = c.doubles(3);
  double lr = c.d(4), beta1 = c.d(5), beta2 = c.d(6), eps = c.d(7), wd = c.d(8);
  bool fused = !c.isNullish(9) && c.b(9);
  if (ms.size() != ps.size() || vs.size() != ps.size() || steps.size() != ps.size())
    c.fail("params, expAvgs, expAvgSqs and steps must have the same length");
  at::NoGradGuard noGrad;
  std::vector<at::Tensor> fp, fg, fm, fv, fs;
  for (size_t k = 0; k < ps.size(); k++) {
    const auto& grad = ps[k].grad();
    if (!grad.defined()) c.fail("parameter " + std::to_string(k) + " has no gradient");
    bool ok = fused && ps[k].scalar_type() == at::kFloat && grad.scalar_type() == at::kFloat && ps[k].is_contiguous() &&
              grad.is_contiguous() && ms[k].is_contiguous() && vs[k].is_contiguous() && !grad.is_sparse();
    if (!ok) {
      adamwSingle(ps[k], grad, ms[k], vs[k], steps[k], lr, beta1, beta2, eps, wd);
      continue;
    }
    fp.push_back(ps[k]);
    fg.push_back(grad);
    fm.push_back(ms[k]);
    fv.push_back(vs[k]);
    // the kernel reads the (already incremented) step from a float32 scalar tensor, as torch.optim keeps it
    fs.push_back(at::scalar_tensor(steps[k], at::TensorOptions().dtype(at::kFloat).device(ps[k].device())));
  }
  if (!fp.empty()) {
    // one call per device (the kernel takes one device's tensors)
    std::vector<at::Tensor> dp, dg, dm, dv, ds;
    auto flush = [&]() {
      if (dp.empty()) return;
      at::_fused_adamw_(dp, dg, dm, dv, {}, ds, lr, beta1, beta2, wd, eps, /*amsgrad=*/false, /*maximize=*/false);
      dp.clear(); dg.clear(); dm.clear(); dv.clear(); ds.clear();
    };
    for (size_t k = 0; k < fp.size(); k++) {
      if (!dp.empty() && fp[k].device() != dp[0].device()) flush();
      dp.push_back(fp[k]); dg.push_back(fg[k]); dm.push_back(fm[k]); dv.push_back(fv[k]); ds.push_back(fs[k]);
    }
    flush();
  }
  return c.undef();
}

// torch.nn.utils.clip_grad_norm_ in two halves, so a sharded run (ZeRO-2: each rank holds some gradients) can
// assemble the per-tensor norms of every rank in between and still compute the very bits one process does.
static std::vector<at::Tensor> definedGrads(const std::vector<at::Tensor>& ps) {
  std::vector<at::Tensor> grads;
  for (auto& p : ps)
    if (p.grad().defined()) grads.push_back(p.grad());
  return grads;
}

// The per-tensor norms, stacked (one element per parameter that has a gradient, in order).
static at::Tensor gradNormsOf(const std::vector<at::Tensor>& grads, double normType) {
  auto norms = at::_foreach_norm(grads, normType);
  auto dev = grads[0].device();
  for (auto& n : norms) n = n.to(dev);
  return at::stack(norms);
}

// The norm of `norms`, then grads *= min(1, max/(norm+1e-6)); returns the total norm.
static double clipWithNorms(Ctx& c, std::vector<at::Tensor>& grads, const at::Tensor& norms, double maxNorm, double normType, bool errorIfNonfinite) {
  auto total = at::linalg_vector_norm(norms, normType);
  double totalD = total.item<double>();
  if (errorIfNonfinite && !std::isfinite(totalD))
    c.fail("the total norm of order " + std::to_string(normType) +
           " of the gradients is non-finite, so it cannot be clipped (pass errorIfNonfinite: false to scale anyway)");
  auto coef = at::clamp_max(at::reciprocal(total + 1e-6) * maxNorm, 1.0);
  if (!grads.empty()) at::_foreach_mul_(grads, coef.to(grads[0].device()));
  return totalD;
}

// clipGradNorm(params, maxNorm, normType, errorIfNonfinite) -> total norm before clipping
// (torch.nn.utils.clip_grad_norm_: per-tensor norms, the norm of those, then grads *= min(1, max/(norm+1e-6))).
OP(clipGradNorm) {
  auto ps = c.ts(0);
  double maxNorm = c.d(1);
  double normType = c.d(2);
  bool errorIfNonfinite = !c.isNullish(3) && c.b(3);
  at::NoGradGuard noGrad;
  auto grads = definedGrads(ps);
  if (grads.empty()) return c.num(0);
  return c.num(clipWithNorms(c, grads, gradNormsOf(grads, normType), maxNorm, normType, errorIfNonfinite));
}

// gradNorms(params, normType) -> the per-tensor norms of the parameters that have a gradient (1-D, in order;
// empty when none has one): clipGradNorm's first half.
OP(gradNorms) {
  auto ps = c.ts(0);
  double normType = c.d(1);
  at::NoGradGuard noGrad;
  auto grads = definedGrads(ps);
  if (grads.empty()) return c.wrap(at::empty({0}, at::kFloat));
  return c.wrap(gradNormsOf(grads, normType));
}

// clipGradsWithNorms(params, norms, maxNorm, normType, errorIfNonfinite) -> total norm: clipGradNorm's second
// half, with the per-tensor norms of the whole model given (e.g. gathered from every rank).
OP(clipGradsWithNorms) {
  auto ps = c.ts(0);
  auto norms = c.t(1);
  double maxNorm = c.d(2);
  double normType = c.d(3);
  bool errorIfNonfinite = !c.isNullish(4) && c.b(4);
  at::NoGradGuard noGrad;
  if (norms.numel() == 0) return c.num(0);
  auto grads = definedGrads(ps);
  return c.num(clipWithNorms(c, grads, norms, maxNorm, normType, errorIfNonfinite));
}

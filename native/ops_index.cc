// Indexing: index_select, gather/scatter, masked fill/select, index_put_, take, nonzero,
// sort/topk, quantile.
#include "ops_scalar.h"
#include <ATen/core/List.h>
using rdt::Ctx;
using rdt::isTensorArg;
static napi_value pair(Ctx& c, const std::tuple<at::Tensor, at::Tensor>& r) {
  return c.wrap(std::vector<at::Tensor>{std::get<0>(r), std::get<1>(r)});
}

// indexSelect(t, dim, index)
OP(indexSelect) { return c.wrap(at::index_select(c.t(0), c.i64(1), c.t(2))); }
OP(gather) { return c.wrap(at::gather(c.t(0), c.i64(1), c.t(2))); }
// scatter(t, dim, index, src: tensor|number)
OP(scatter) {
  auto t = c.t(0);
  auto dim = c.i64(1);
  auto index = c.t(2);
  return c.wrap(isTensorArg(c, 3) ? at::scatter(t, dim, index, c.t(3)) : at::scatter(t, dim, index, c.scalar(3)));
}
OP(scatterAdd) { return c.wrap(at::scatter_add(c.t(0), c.i64(1), c.t(2), c.t(3))); }
// maskedFill(t, mask, value: number|0-dim tensor)
OP(maskedFill) {
  auto t = c.t(0);
  auto mask = c.t(1);
  return c.wrap(isTensorArg(c, 2) ? at::masked_fill(t, mask, c.t(2)) : at::masked_fill(t, mask, c.scalar(2)));
}
OP(maskedFill_) {
  auto t = c.t(0);
  auto mask = c.t(1);
  if (isTensorArg(c, 2)) t.masked_fill_(mask, c.t(2)); else t.masked_fill_(mask, c.scalar(2));
  return c.undef();
}
OP(maskedSelect) { return c.wrap(at::masked_select(c.t(0), c.t(1))); }
// indexPut_(t, indices[] (null entries = whole dim), values: tensor|number, accumulate)
OP(indexPut_) {
  auto t = c.t(0);
  bool isArr = false;
  if (c.argc < 2 || napi_is_array(c.env, c.argv[1], &isArr) != napi_ok || !isArr)
    c.argFail(1, "an array of index tensors (null for a whole dim)");
  uint32_t n;
  napi_get_array_length(c.env, c.argv[1], &n);
  c10::List<std::optional<at::Tensor>> idx;
  for (uint32_t k = 0; k < n; k++) {
    napi_value el;
    napi_get_element(c.env, c.argv[1], k, &el);
    napi_valuetype vt;
    napi_typeof(c.env, el, &vt);
    if (vt == napi_null || vt == napi_undefined) {
      idx.push_back(std::nullopt);
      continue;
    }
    auto* h = rdt::holderOf(c.env, el);
    if (!h) c.argFail(1, "an array of index tensors (null for a whole dim)");
    if (!h->t.defined()) c.fail("argument 1[" + std::to_string(k) + "] is a disposed tensor");
    idx.push_back(h->t);
  }
  auto values = isTensorArg(c, 2) ? c.t(2) : at::scalar_tensor(c.scalar(2), t.options());
  t.index_put_(idx, values, !c.isNullish(3) && c.b(3));
  return c.undef();
}
OP(take) { return c.wrap(at::take(c.t(0), c.t(1))); }
OP(nonzero) { return c.wrap(at::nonzero(c.t(0))); }
// sort(t, dim, descending, stable) -> [values, indices]
OP(sort) {
  return pair(c, at::sort(c.t(0), std::optional<bool>(!c.isNullish(3) && c.b(3)), c.i64(1), c.b(2)));
}
// topk(t, k, dim, largest, sorted) -> [values, indices]
OP(topk) { return pair(c, at::topk(c.t(0), c.i64(1), c.i64(2), c.b(3), c.b(4))); }
// quantile(t, q: number|tensor, dim|null, keepdim, interpolation)
OP(quantile) {
  auto t = c.t(0);
  auto dim = c.oi64(2);
  bool keep = !c.isNullish(3) && c.b(3);
  std::string interp = c.isNullish(4) ? "linear" : c.s(4);
  return c.wrap(isTensorArg(c, 1) ? at::quantile(t, c.t(1), dim, keep, interp)
                                  : at::quantile(t, c.d(1), dim, keep, interp));
}
// argsort(t, dim, descending, stable)
OP(argsort) { return c.wrap(at::argsort(c.t(0), !c.isNullish(3) && c.b(3), c.i64(1), c.b(2))); }

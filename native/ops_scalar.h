// How a JS number becomes an ATen Scalar next to a tensor operand. JS has one number type, so an
// integral number used with an integer or bool tensor acts as a Python int literal (an int64 index
// plus 1 stays int64, clamp(0, 3) keeps int dtype); every other number acts as a Python float.
#pragma once
#include <cmath>
#include "common.h"

namespace rdt {
inline at::Scalar scalarFor(const Ctx& c, size_t i, const at::Tensor& like) {
  auto s = c.scalar(i);
  if (s.isFloatingPoint() && !at::isFloatingType(like.scalar_type()) && !at::isComplexType(like.scalar_type())) {
    double v = s.toDouble();
    if (std::isfinite(v) && v == std::trunc(v) && std::abs(v) < 9007199254740992.0)
      return at::Scalar(static_cast<int64_t>(v));
  }
  return s;
}
inline std::optional<at::Scalar> optScalarFor(const Ctx& c, size_t i, const at::Tensor& like) {
  if (c.isNullish(i)) return std::nullopt;
  return scalarFor(c, i, like);
}
inline bool isTensorArg(const Ctx& c, size_t i) { return i < c.argc && holderOf(c.env, c.argv[i]) != nullptr; }
}  // namespace rdt

// See README.md: names c10d's ProcessGroupGloo.hpp mentions; nothing here is defined or called.
#pragma once
#include <chrono>

namespace gloo {
class Context {
 public:
  // Named by ProcessGroupGloo::setTimeout (an inline body we never call).
  void setTimeout(std::chrono::milliseconds timeout);
};
}  // namespace gloo

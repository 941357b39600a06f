// See README.md: names c10d's ProcessGroupGloo.hpp mentions; nothing here is defined or called.
#pragma once
#include <chrono>
#include <string>
#include <vector>

namespace gloo::rendezvous {
// The base of c10d's GlooStore adapter; its overrides name these four members.
class Store {
 public:
  virtual ~Store() = default;
  virtual void set(const std::string& key, const std::vector<char>& value) = 0;
  virtual std::vector<char> get(const std::string& key) = 0;
  virtual void wait(const std::vector<std::string>& keys) = 0;
  virtual void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) = 0;
};
}  // namespace gloo::rendezvous

// See README.md: names c10d's ProcessGroupGloo.hpp mentions; nothing here is defined or called.
#pragma once

namespace gloo::transport {
class Device;
class UnboundBuffer;
}  // namespace gloo::transport

// What the c10d files share (ops_distributed.cc: the group and its collectives; grad_reducer.cc: gradient
// buckets reduced during backward): the process group handle, and the one way this addon waits for a c10d
// Work so that the group's timeout is honoured on every backend.
#pragma once
#include "common.h"

#include <chrono>
#include <string>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>

namespace rdt {

using Ms = std::chrono::milliseconds;

struct GroupHolder {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  Ms timeout{0};
  // A wait failed or timed out: collectives may still be in flight, so destroy aborts instead of shutting down.
  bool failed = false;
};

// The process group passed as argument i (a JS error when it is not one, or was destroyed).
GroupHolder* groupOf(Ctx& c, size_t i);

// Wait for a collective, bounded by the group's timeout. On the CPU (Gloo) c10d's Work::wait(timeout) blocks
// the host until the work completes and throws when the timeout passes first. A CUDA (NCCL) work's wait()
// makes the current stream wait for it; whether it also blocks the host and honours a timeout depends on the
// release (ProcessGroupNCCL.cpp's WorkNCCL::synchronizeInternal blocked only under TORCH_NCCL_BLOCKING_WAIT=1
// in the 2.x releases that have the heartbeat monitor; torch 2.13's ProcessGroupNCCL.hpp says a passed
// timeout blocks too). So on CUDA this polls isCompleted() against a deadline, the pattern Work.hpp documents
// for callers that poll, and then calls wait() to order the current stream after the work. `hostBlocking` false (CUDA only): the stream wait alone, for waits
// inside backward, where blocking the host would stall the launch of the remaining backward kernels; a later
// host-blocking wait on the same group (the step's control all-reduce) then bounds the whole step.
// Throws std::runtime_error mentioning "timed out" on timeout; marks the group failed on any error.
void waitWork(GroupHolder& g, const c10::intrusive_ptr<c10d::Work>& work, bool onCuda, bool hostBlocking, const std::string& what);

}  // namespace rdt

// Process-wide settings and device queries: threads, seeds, CUDA, build information.
#include "common.h"
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/version.h>
#if RDT_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

OP(setNumThreads) {
  at::set_num_threads(static_cast<int>(c.i64(0)));
  return c.undef();
}
OP(getNumThreads) { return c.num(at::get_num_threads()); }
OP(manualSeed) {
  at::manual_seed(static_cast<uint64_t>(c.i64(0)));
  return c.undef();
}
OP(libtorchVersion) { return c.str(TORCH_VERSION); }
OP(parallelInfo) { return c.str(at::get_parallel_info()); }
OP(buildConfig) { return c.str(at::show_config()); }
OP(cudaIsAvailable) { return c.boolean(at::hasCUDA() && at::globalContext().hasCUDA()); }
OP(cudaDeviceCount) {
#if RDT_WITH_CUDA
  return c.num(at::hasCUDA() ? at::cuda::device_count() : 0);
#else
  return c.num(0);
#endif
}
OP(cudaSynchronize) {
#if RDT_WITH_CUDA
  if (at::hasCUDA()) at::cuda::device_synchronize();
#endif
  return c.undef();
}
OP(cudaDeviceName) {
#if RDT_WITH_CUDA
  auto* p = at::cuda::getDeviceProperties(c.i64(0));
  return c.str(p->name);
#else
  c.fail("this build of rdt-libero has no CUDA support (libtorch is a CPU build)");
#endif
}
// cudaMemoryStats(device) -> {allocated, reserved, peakAllocated} in bytes.
OP(cudaMemoryStats) {
#if RDT_WITH_CUDA
  auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<int>(c.i64(0)));
  napi_value o;
  napi_create_object(c.env, &o);
  auto agg = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
  napi_set_named_property(c.env, o, "allocated", c.num(s.allocated_bytes[agg].current));
  napi_set_named_property(c.env, o, "reserved", c.num(s.reserved_bytes[agg].current));
  napi_set_named_property(c.env, o, "peakAllocated", c.num(s.allocated_bytes[agg].peak));
  return o;
#else
  c.fail("this build of rdt-libero has no CUDA support (libtorch is a CPU build)");
#endif
}
OP(cudaResetPeakMemoryStats) {
#if RDT_WITH_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<int>(c.i64(0)));
#endif
  return c.undef();
}

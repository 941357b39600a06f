// A caching allocator for CPU tensors, installed in place of libtorch's default when the addon loads.
//
// Why: libtorch's default CPU allocator is plain malloc. In this process glibc's heap fragments: large tensor
// blocks (MBs) interleave with small long-lived allocations (tensor handles that live until the JS GC, V8's
// own), so freed blocks are not reused and RSS grows without bound: measured on the SigLIP so400m tower, about
// 250 MB per layer per forward, until the 24 GB machine killed the process; PyTorch running the same model
// stays flat. Forcing glibc to mmap every large block (MALLOC_MMAP_THRESHOLD_) stops the growth but pays page
// faults on every allocation (rdt-170m CPU training 4.6 -> 5.7 s/step). Like PyTorch's CUDA caching
// allocator, this one maps large blocks once and reuses them: no growth, no repeated page faults.
//
// Blocks of at least kCachedMin bytes are mmapped, rounded up, and kept in a best-fit free list when freed;
// the free list never holds more than the peak of large bytes in use at once (so RSS stays within about twice
// the real peak in the worst case) or RDT_CPU_CACHE_MB when set. Smaller blocks go to malloc as before.
// RDT_CPU_ALLOCATOR=system keeps libtorch's default allocator.
#include "common.h"
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <cstdlib>
#include <map>
#include <mutex>

namespace {

constexpr size_t kHeader = 64;                 // keeps the data 64-byte aligned, as libtorch's allocator does
constexpr size_t kCachedMin = 256 << 10;       // below this, malloc is fast and fragments nothing that matters
constexpr uint32_t kMagic = 0x52445443;        // "RDTC": catches a pointer that is not ours
enum Kind : uint32_t { kSmall = 1, kCached = 2 };

struct Header {
  size_t bytes;  // whole block, header included
  uint32_t magic;
  uint32_t kind;
};

size_t roundUp(size_t n) {
  // 64 KiB steps below 4 MiB, 1 MiB steps above: near-equal requests share a block, little is wasted.
  size_t step = n < (4u << 20) ? (64u << 10) : (1u << 20);
  return (n + step - 1) / step * step;
}

void deleteBlock(void* data);

class CachingCpuAllocator final : public c10::Allocator {
 public:
  CachingCpuAllocator() {
    if (const char* mb = std::getenv("RDT_CPU_CACHE_MB")) limit_ = static_cast<size_t>(std::atof(mb) * (1 << 20));
  }

  c10::DataPtr allocate(size_t n) override {
    void* data = n + kHeader < kCachedMin ? allocSmall(n) : allocCached(n);
    return {data, data, &deleteBlock, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &deleteBlock; }
  void copy_data(void* dest, const void* src, std::size_t count) const override { default_copy_data(dest, src, count); }

  void release(Header* h) {
    if (h->kind == kSmall) {
      std::free(h);
      return;
    }
    std::lock_guard<std::mutex> lock(mu_);
    inUse_ -= h->bytes;
    size_t cap = limit_ ? limit_ : peakInUse_;
    if (cached_ + h->bytes > cap) {
      munmap(h, h->bytes);
      return;
    }
    free_.emplace(h->bytes, h);
    cached_ += h->bytes;
  }

  // The peak starts again from what is in use now (torch.cuda.reset_peak_memory_stats for this allocator).
  void resetPeak() {
    std::lock_guard<std::mutex> lock(mu_);
    peakInUse_ = inUse_;
  }

  void emptyCache() {
    std::lock_guard<std::mutex> lock(mu_);
    dropCache();
  }

  struct Stats {
    size_t inUse, peakInUse, cached, limit;
    uint64_t hits, misses;
  };
  Stats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return {inUse_, peakInUse_, cached_, limit_, hits_, misses_};
  }

 private:
  void* allocSmall(size_t n) {
    void* p = nullptr;
    if (posix_memalign(&p, kHeader, n + kHeader) != 0 || !p)
      TORCH_CHECK_WITH(OutOfMemoryError, false, "CPU out of memory: could not allocate ", n, " bytes");
    auto* h = static_cast<Header*>(p);
    *h = {n + kHeader, kMagic, kSmall};
    return static_cast<char*>(p) + kHeader;
  }

  void* allocCached(size_t n) {
    size_t bytes = roundUp(n + kHeader);
    std::lock_guard<std::mutex> lock(mu_);
    Header* h = nullptr;
    // Best fit, but not a block much larger than asked: that would strand memory a later large request needs.
    auto it = free_.lower_bound(bytes);
    if (it != free_.end() && it->first - bytes <= bytes / 8) {
      h = it->second;
      cached_ -= it->first;
      free_.erase(it);
      hits_++;
    } else {
      void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {  // give the cache back and try once more before reporting out of memory
        dropCache();
        p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      }
      TORCH_CHECK_WITH(OutOfMemoryError, p != MAP_FAILED, "CPU out of memory: could not map ", bytes, " bytes");
      h = static_cast<Header*>(p);
      *h = {bytes, kMagic, kCached};
      misses_++;
    }
    inUse_ += h->bytes;
    if (inUse_ > peakInUse_) peakInUse_ = inUse_;
    return reinterpret_cast<char*>(h) + kHeader;
  }

  void dropCache() {  // mu_ held
    for (auto& [bytes, h] : free_) munmap(h, bytes);
    free_.clear();
    cached_ = 0;
  }

  std::mutex mu_;
  std::multimap<size_t, Header*> free_;
  size_t inUse_ = 0, peakInUse_ = 0, cached_ = 0, limit_ = 0;
  uint64_t hits_ = 0, misses_ = 0;
};

// Never destroyed: tensors may still be freed while the process exits.
CachingCpuAllocator* allocator() {
  static auto* a = new CachingCpuAllocator();
  return a;
}

void deleteBlock(void* data) {
  if (!data) return;
  auto* h = reinterpret_cast<Header*>(static_cast<char*>(data) - kHeader);
  TORCH_INTERNAL_ASSERT(h->magic == kMagic, "rdt CPU allocator: freeing a block it did not allocate");
  allocator()->release(h);
}

bool installed = [] {
  const char* which = std::getenv("RDT_CPU_ALLOCATOR");
  if (which && std::string(which) == "system") return false;
  // Priority 1 beats libtorch's default (0). Blocks allocated before keep their own deleter, so mixing is safe.
  c10::SetCPUAllocator(allocator(), 1);
  return true;
}();

}  // namespace

// cpuAllocatorStats() -> {enabled, inUse, peakInUse, cached, limit, hits, misses}: bytes of large blocks.
OP(cpuAllocatorStats) {
  auto s = allocator()->stats();
  napi_value o;
  napi_create_object(c.env, &o);
  napi_set_named_property(c.env, o, "enabled", c.boolean(installed));
  napi_set_named_property(c.env, o, "inUse", c.num(static_cast<double>(s.inUse)));
  napi_set_named_property(c.env, o, "peakInUse", c.num(static_cast<double>(s.peakInUse)));
  napi_set_named_property(c.env, o, "cached", c.num(static_cast<double>(s.cached)));
  napi_set_named_property(c.env, o, "limit", c.num(static_cast<double>(s.limit)));
  napi_set_named_property(c.env, o, "hits", c.num(static_cast<double>(s.hits)));
  napi_set_named_property(c.env, o, "misses", c.num(static_cast<double>(s.misses)));
  return o;
}
// Unmaps every cached free block, as torch.cuda.empty_cache() does for CUDA (e.g. between two phases of a job).
OP(cpuAllocatorEmptyCache) {
  allocator()->emptyCache();
  return c.undef();
}
// Restarts peakInUse from the bytes in use now, so a peak can be measured over one phase of a job.
OP(cpuAllocatorResetPeak) {
  allocator()->resetPeak();
  return c.undef();
}

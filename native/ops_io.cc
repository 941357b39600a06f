// Checkpoint IO: file bytes straight into tensor storage and back, so a multi-GB checkpoint
// passes through memory once (never as one JS buffer), and views over loaded storages.
#include "common.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

using rdt::Ctx;

static_assert(sizeof(off_t) == 8, "64-bit file offsets are needed for checkpoints beyond 4 GB");

namespace {

// Checkpoint files are little-endian; so is every platform libtorch ships for.
bool hostIsLittleEndian() {
  const uint16_t probe = 1;
  return *reinterpret_cast<const uint8_t*>(&probe) == 1;
}

std::string errnoText(int e) { return std::string(std::strerror(e)); }

// pread until n bytes arrived; a short file is an error naming what was asked for.
void preadAll(Ctx& c, int fd, const std::string& path, char* dst, size_t n, int64_t off) {
  size_t done = 0;
  while (done < n) {
    size_t chunk = std::min<size_t>(n - done, size_t(1) << 30);
    ssize_t r = ::pread(fd, dst + done, chunk, static_cast<off_t>(off + static_cast<int64_t>(done)));
    if (r < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      c.fail(path + ": read error at byte offset " + std::to_string(off + done) + " (" + errnoText(e) + ")");
    }
    if (r == 0) {
      ::close(fd);
      c.fail(path + ": short read: wanted " + std::to_string(n) + " bytes at byte offset " + std::to_string(off) +
             " but the file ends after " + std::to_string(done) + " of them (truncated file?)");
    }
    done += static_cast<size_t>(r);
  }
}

}  // namespace

// fromFile(path, byteOffset, dtype, shape): a new contiguous CPU tensor whose storage is filled by
// pread from the file at byteOffset (numel * element size bytes). One copy: disk -> tensor storage.
OP(fromFile) {
  if (!hostIsLittleEndian()) c.fail("checkpoint files are little-endian and this host is not");
  std::string path = c.s(0);
  int64_t off = c.i64(1);
  if (off < 0) c.argFail(1, "a non-negative byte offset");
  auto dtype = c.dtype(2);
  auto shape = c.ints(3);
  for (auto d : shape)
    if (d < 0) c.fail(path + ": negative dimension in shape " + c10::str(at::IntArrayRef(shape)));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    c.fail(path + ": cannot open (" + errnoText(e) + ")");
  }
  at::Tensor t;
  try {
    t = at::empty(shape, at::TensorOptions().dtype(dtype));
  } catch (...) {
    ::close(fd);
    throw;
  }
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  preadAll(c, fd, path, static_cast<char*>(t.data_ptr()), n, off);
  ::close(fd);
  return c.wrap(t);
}

// writeToFd(fd, byteOffset, t): pwrite the tensor's elements (row-major, copied to a contiguous CPU
// tensor first when needed) at byteOffset. Returns the byte count. The fd comes from fs.openSync.
OP(writeToFd) {
  if (!hostIsLittleEndian()) c.fail("checkpoint files are little-endian and this host is not");
  int fd = static_cast<int>(c.i64(0));
  int64_t off = c.i64(1);
  if (off < 0) c.argFail(1, "a non-negative byte offset");
  auto t = c.t(2).detach().to(at::kCPU).contiguous();
  size_t n = static_cast<size_t>(t.numel()) * t.element_size();
  const char* src = static_cast<const char*>(t.data_ptr());
  size_t done = 0;
  while (done < n) {
    size_t chunk = std::min<size_t>(n - done, size_t(1) << 30);
    ssize_t w = ::pwrite(fd, src + done, chunk, static_cast<off_t>(off + static_cast<int64_t>(done)));
    if (w < 0) {
      int e = errno;
      if (e == EINTR) continue;
      c.fail("write error at byte offset " + std::to_string(off + done) + " (" + errnoText(e) + ")");
    }
    if (w == 0) c.fail("write returned 0 bytes at byte offset " + std::to_string(off + done) + " (disk full?)");
    done += static_cast<size_t>(w);
  }
  return c.num(static_cast<double>(n));
}

// storageView(storage, size, stride, storageOffset): a view of a flat (1-D, contiguous) storage tensor
// with PyTorch's (size, stride, offset) layout; it shares memory with the storage, as torch.load does.
OP(storageView) {
  auto s = c.t(0);
  auto size = c.ints(1);
  auto stride = c.ints(2);
  int64_t off = c.i64(3);
  if (s.dim() != 1 || !s.is_contiguous()) c.fail("the storage must be a flat contiguous tensor");
  if (size.size() != stride.size())
    c.fail("size " + c10::str(at::IntArrayRef(size)) + " and stride " + c10::str(at::IntArrayRef(stride)) +
           " have different lengths");
  int64_t last = off;
  bool empty = false;
  for (size_t k = 0; k < size.size(); k++) {
    if (size[k] < 0 || stride[k] < 0) c.fail("negative size or stride");
    if (size[k] == 0) empty = true;
    last += (size[k] - 1) * stride[k];
  }
  if (off < 0 || (!empty && last >= s.numel()))
    c.fail("size " + c10::str(at::IntArrayRef(size)) + ", stride " + c10::str(at::IntArrayRef(stride)) +
           " and offset " + std::to_string(off) + " reach element " + std::to_string(last) +
           " of a storage holding " + std::to_string(s.numel()));
  return c.wrap(s.as_strided(size, stride, off));
}

// Encoder weight loading: read a tensor stored in one dtype from a file and convert it into a new tensor
// of another dtype (and device) piece by piece, so that a checkpoint much larger than memory (T5-XXL's
// 45 GB float32 pytorch_model.bin) can be loaded into bf16 with only the bf16 tensors resident. One call
// per tensor with one reused read buffer: per-piece calls from JS left the C heap fragmented by up to
// 0.15 x the file in RSS.
#include "common.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>
#include <vector>

using rdt::Ctx;

// fromFileConvert(path, byteOffset, srcDtype, shape, dstDtype, device): a contiguous tensor of `shape` in
// dstDtype on device, filled from numel * sizeof(srcDtype) little-endian bytes at byteOffset, converted
// as Tensor.to() converts. Reads 4 MB (whole rows of the first dim) at a time into one buffer.
OP(fromFileConvert) {
  const uint16_t probe = 1;
  if (*reinterpret_cast<const uint8_t*>(&probe) != 1) c.fail("checkpoint files are little-endian and this host is not");
  std::string path = c.s(0);
  int64_t off = c.i64(1);
  if (off < 0) c.argFail(1, "a non-negative byte offset");
  auto src = c.dtype(2);
  auto shape = c.ints(3);
  auto dst = c.dtype(4);
  auto dev = c.device(5);
  for (auto d : shape)
    if (d < 0) c.fail(path + ": negative dimension in shape " + c10::str(at::IntArrayRef(shape)));
  auto out = at::empty(shape, at::TensorOptions().dtype(dst).device(dev));
  if (out.numel() == 0) return c.wrap(out);
  auto flat = out.dim() == 0 ? out.view({1}) : out;
  const int64_t rows = flat.size(0);
  const int64_t rowNumel = flat.numel() / rows;
  const int64_t elem = static_cast<int64_t>(c10::elementSize(src));
  const int64_t step = std::max<int64_t>(1, (int64_t(4) << 20) / std::max<int64_t>(1, rowNumel * elem));
  std::vector<char> buf(static_cast<size_t>(std::min(rows, step) * rowNumel * elem));
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    c.fail(path + ": cannot open (" + std::string(std::strerror(e)) + ")");
  }
  std::vector<int64_t> pieceShape(flat.sizes().begin(), flat.sizes().end());
  for (int64_t r = 0; r < rows; r += step) {
    const int64_t n = std::min(step, rows - r);
    const size_t bytes = static_cast<size_t>(n * rowNumel * elem);
    const int64_t at = off + r * rowNumel * elem;
    size_t done = 0;
    while (done < bytes) {
      ssize_t got = ::pread(fd, buf.data() + done, bytes - done, static_cast<off_t>(at + static_cast<int64_t>(done)));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        int e = errno;
        ::close(fd);
        c.fail(path + ": " + (got == 0 ? std::string("short read (truncated file?)") : std::string(std::strerror(e))) +
               " at byte offset " + std::to_string(at + static_cast<int64_t>(done)));
      }
      done += static_cast<size_t>(got);
    }
    pieceShape[0] = n;
    flat.narrow(0, r, n).copy_(at::from_blob(buf.data(), pieceShape, at::TensorOptions().dtype(src)));
  }
  ::close(fd);
  return c.wrap(out);
}

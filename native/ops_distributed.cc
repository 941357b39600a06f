// c10d process groups, as torch.distributed uses them: a TCPStore rendezvous, then a Gloo (CPU) or NCCL
// (CUDA builds) backend, and the blocking collectives the trainer needs. Each collective waits for its
// Work with the group's timeout (waitWork), so a dead or stuck peer ends in an error (mapped to a named
// DistributedError in src/engine/distributed.ts), never a hang.
//
// The store keys are laid out as torch.distributed.init_process_group lays out its default group
// ("default_pg" / "0/" / "<device>/"), so a Python process can join the same group.
#include "process_group.h"

#include <thread>
#include <type_traits>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if RDT_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#if RDT_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

using rdt::Ctx;
using rdt::GroupHolder;
using rdt::Ms;

namespace {
napi_type_tag kGroupTag = {0x7264746c69626572ULL, 0x63313064677270ULL};

void finalizeGroup(napi_env, void* data, void*) { delete static_cast<GroupHolder*>(data); }

c10d::ReduceOp reduceOp(Ctx& c, size_t i) {
  std::string op = c.s(i);
  if (op == "sum") return c10d::ReduceOp::SUM;
  if (op == "max") return c10d::ReduceOp::MAX;
  if (op == "min") return c10d::ReduceOp::MIN;
  if (op == "product") return c10d::ReduceOp::PRODUCT;
  c.fail("unknown reduce op '" + op + "' (use 'sum', 'max', 'min' or 'product')");
}

// Waits for every Work (all were started before the first is waited for); the first failure is rethrown.
void waitAll(GroupHolder& g, const std::vector<c10::intrusive_ptr<c10d::Work>>& works, bool onCuda, const char* what) {
  for (auto& w : works) rdt::waitWork(g, w, onCuda, true, what);
}

// Backend::shutdown() and abort() are virtual on c10d::Backend in recent torch (2.13's Backend.hpp); older
// releases lack them and leave the cleanup to the backend's destructor. Detected, not version-checked.
template <typename B, typename = void>
struct HasShutdown : std::false_type {};
template <typename B>
struct HasShutdown<B, std::void_t<decltype(std::declval<B&>().shutdown())>> : std::true_type {};
template <typename B, typename = void>
struct HasAbort : std::false_type {};
template <typename B>
struct HasAbort<B, std::void_t<decltype(std::declval<B&>().abort())>> : std::true_type {};

template <typename B>
void closeBackend(B& b, bool abort) {
  if constexpr (HasAbort<B>::value) {
    if (abort) {  // collectives may be stuck (a dead or stalled peer): abort them rather than wait for them
      b.abort();
      return;
    }
  }
  if constexpr (HasShutdown<B>::value) b.shutdown();
}
}  // namespace

namespace rdt {
GroupHolder* groupOf(Ctx& c, size_t i) {
  bool ok = false;
  napi_valuetype vt;
  if (i >= c.argc || napi_typeof(c.env, c.argv[i], &vt) != napi_ok || vt != napi_external ||
      napi_check_object_type_tag(c.env, c.argv[i], &kGroupTag, &ok) != napi_ok || !ok)
    c.argFail(i, "a process group");
  void* p;
  napi_get_value_external(c.env, c.argv[i], &p);
  auto* g = static_cast<GroupHolder*>(p);
  if (!g->backend) c.fail("the process group was already destroyed");
  return g;
}

void waitWork(GroupHolder& g, const c10::intrusive_ptr<c10d::Work>& work, bool onCuda, bool hostBlocking, const std::string& what) {
  try {
    if (!onCuda) {
      work->wait(g.timeout);
      return;
    }
    if (hostBlocking) {
      auto deadline = std::chrono::steady_clock::now() + g.timeout;
      while (!work->isCompleted()) {
        if (std::chrono::steady_clock::now() >= deadline)
          throw std::runtime_error(what + " timed out after " + std::to_string(g.timeout.count()) + " ms (the NCCL work did not complete)");
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (!work->isSuccess()) std::rethrow_exception(work->exception());
    }
    work->wait();  // the current stream waits for the collective
  } catch (...) {
    g.failed = true;
    throw;
  }
}
}  // namespace rdt

// distBackends() -> the backends this build can create, e.g. ['gloo'] or ['gloo', 'nccl'].
OP(distBackends) {
  std::vector<std::string> names;
#if RDT_WITH_GLOO
  names.push_back("gloo");
#endif
#if RDT_WITH_NCCL
  names.push_back("nccl");
#endif
  napi_value arr;
  napi_create_array_with_length(c.env, names.size(), &arr);
  for (size_t k = 0; k < names.size(); k++) napi_set_element(c.env, arr, k, c.str(names[k]));
  return arr;
}

// distInit(backend, host, port, rank, worldSize, timeoutMs, hostStore) -> group. hostStore: this process
// runs the TCPStore server (rank 0, unless torchrun's agent already hosts it). Blocks until every rank
// has joined or the timeout passes.
OP(distInit) {
  std::string backend = c.s(0);
  std::string host = c.s(1);
  int64_t port = c.i64(2), rank = c.i64(3), size = c.i64(4), timeoutMs = c.i64(5);
  bool hostStore = c.b(6);
  if (port <= 0 || port > 65535) c.argFail(2, "a TCP port in 1..65535");
  if (size < 1 || rank < 0 || rank >= size) c.fail("rank " + std::to_string(rank) + " is outside world size " + std::to_string(size));
  if (timeoutMs <= 0) c.argFail(5, "a positive timeout in milliseconds");
  Ms timeout(timeoutMs);

  c10d::TCPStoreOptions opts;
  opts.port = static_cast<uint16_t>(port);
  opts.isServer = hostStore;
  opts.numWorkers = static_cast<size_t>(size);
  opts.waitWorkers = false;  // the backend's own rendezvous below waits for every rank
  opts.timeout = timeout;
  opts.multiTenant = true;
  auto tcp = c10::make_intrusive<c10d::TCPStore>(host, opts);
  c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::PrefixStore>("default_pg", tcp);
  store = c10::make_intrusive<c10d::PrefixStore>("0/", store);

  auto* h = new GroupHolder();
  h->timeout = timeout;
  try {
    if (backend == "gloo") {
#if RDT_WITH_GLOO
      h->store = c10::make_intrusive<c10d::PrefixStore>("cpu/", store);
      auto o = c10d::ProcessGroupGloo::Options::create_default(timeout);
      h->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(h->store, static_cast<int>(rank), static_cast<int>(size), o);
#else
      c.fail("this libtorch was built without Gloo");
#endif
    } else if (backend == "nccl") {
#if RDT_WITH_NCCL
      h->store = c10::make_intrusive<c10d::PrefixStore>("cuda/", store);
      auto o = c10d::ProcessGroupNCCL::Options::create();
      // Our own waits (waitWork) name a timeout after `timeout`. NCCL's watchdog, which tears the process down
      // on a timed-out collective (TORCH_NCCL_ASYNC_ERROR_HANDLING, left at torch's default), is the backstop:
      // it gets twice as long, since a bucket all-reduce started during backward is older than the wait that
      // notices it.
      o->timeout = 2 * timeout;
      h->backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(h->store, static_cast<int>(rank), static_cast<int>(size), o);
#else
      c.fail("this build of rdt-libero has no NCCL (it needs a CUDA libtorch with NCCL); use backend 'gloo'");
#endif
    } else {
      c.fail("unknown backend '" + backend + "' (use 'gloo' or 'nccl')");
    }
  } catch (...) {
    delete h;
    throw;
  }
  napi_value v;
  napi_create_external(c.env, h, finalizeGroup, nullptr, &v);
  napi_type_tag_object(c.env, v, &kGroupTag);
  return v;
}

// distAllReduce(group, tensors, op): reduces each tensor in place across ranks. All are started before
// any is waited for, so several buckets are in flight at once.
OP(distAllReduce) {
  auto* g = rdt::groupOf(c, 0);
  auto ts = c.ts(1);
  c10d::AllreduceOptions o;
  o.reduceOp = reduceOp(c, 2);
  o.timeout = g->timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& t : ts) {
    std::vector<at::Tensor> one{t};
    works.push_back(g->backend->allreduce(one, o));
  }
  waitAll(*g, works, !ts.empty() && ts[0].is_cuda(), "all_reduce");
  return c.undef();
}

// distBroadcast(group, tensors, root): overwrites each tensor with root's, in place.
OP(distBroadcast) {
  auto* g = rdt::groupOf(c, 0);
  auto ts = c.ts(1);
  c10d::BroadcastOptions o;
  o.rootRank = c.i64(2);
  o.timeout = g->timeout;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& t : ts) {
    std::vector<at::Tensor> one{t};
    works.push_back(g->backend->broadcast(one, o));
  }
  waitAll(*g, works, !ts.empty() && ts[0].is_cuda(), "broadcast");
  return c.undef();
}

// distAllGather(group, output, input): output (worldSize * input.numel() elements) = every rank's input,
// in rank order (all_gather_into_tensor).
OP(distAllGather) {
  auto* g = rdt::groupOf(c, 0);
  auto out = c.t(1), in = c.t(2);
  c10d::AllgatherOptions o;
  o.timeout = g->timeout;
  waitAll(*g, {g->backend->_allgather_base(out, in, o)}, out.is_cuda(), "all_gather");
  return c.undef();
}

// distReduceScatter(group, output, input, op): output = rank's slice of the reduction of every rank's
// input (reduce_scatter_tensor); input holds worldSize * output.numel() elements.
OP(distReduceScatter) {
  auto* g = rdt::groupOf(c, 0);
  auto out = c.t(1), in = c.t(2);
  c10d::ReduceScatterOptions o;
  o.reduceOp = reduceOp(c, 3);
  o.timeout = g->timeout;
  waitAll(*g, {g->backend->_reduce_scatter_base(out, in, o)}, out.is_cuda(), "reduce_scatter");
  return c.undef();
}

OP(distBarrier) {
  auto* g = rdt::groupOf(c, 0);
  c10d::BarrierOptions o;
  o.timeout = g->timeout;
  bool nccl = g->backend->getBackendName() == "nccl";
  waitAll(*g, {g->backend->barrier(o)}, nccl, "barrier");
  return c.undef();
}

// distDestroy(group): closes the backend's connections and the store (destroy_process_group): shut down, or
// aborted when a collective failed or timed out (it may still be in flight).
OP(distDestroy) {
  auto* g = rdt::groupOf(c, 0);
  try {
    closeBackend(*g->backend, g->failed);
  } catch (...) {
    // a backend that cannot close cleanly after a failure is dropped all the same
  }
  g->backend.reset();
  g->store.reset();
  return c.undef();
}

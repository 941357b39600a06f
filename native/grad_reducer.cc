// Gradient buckets reduced across the ranks while backward is still running: what PyTorch DDP's Reducer
// (torch/csrc/distributed/c10d/reducer.cpp) does, reduced to what rdt-libero trains with.
//
// - A post hook on each parameter's gradient accumulator (the AccumulateGrad node, as reducer.cpp registers
//   them) marks the parameter ready once backward has accumulated its gradient. Hooks run on the thread that
//   runs the backward (the caller's on CPU, the device's autograd thread on CUDA), never on the JS thread
//   concurrently with JS: the JS thread is blocked in backward() meanwhile.
// - Buckets of about `bucketBytes` of gradient each are launched in bucket order (as reducer.cpp's
//   next_bucket_), so every rank issues the same collectives in the same order whatever the timing.
// - The bucket layout is the order in which gradients became ready in the first synchronised backward of the
//   process (DDP rebuilds its buckets from that order after its first iteration; here the first step already
//   forms its buckets in that order as the gradients arrive), then frozen. Parameters that got no gradient
//   then follow in registration order. Ranks compare a fingerprint of the layout (DataParallel's control
//   all-reduce), so a rank whose backward ran in another order fails by name instead of summing other ranks'
//   gradients into the wrong parameters.
// - overlap false: the same layout and arithmetic, every bucket launched after backward (bit-identical).
// - owners empty: each bucket is all-reduced, then multiplied by 1/W and copied back into .grad (ZeRO-0).
//   owners given (ZeRO-2): a bucket is laid out by owner rank and each owner's segment is reduced to that
//   owner (one c10d reduce per owner present: the uneven reduce-scatter DeepSpeed's stage-2 average_tensor
//   issues); the gradients are dropped from every rank as soon as they are copied into the bucket, and only
//   the owner gets its parameters' averaged gradients back. At most `maxInFlight` buckets are in flight
//   (0: no bound): bounded, the local gradient memory stays near a few buckets instead of a full copy.
// - sync false (no_sync): hooks do nothing; gradients accumulate locally until a synchronised backward.
#include "process_group.h"

#include <ATen/core/grad_mode.h>
#include <deque>
#include <mutex>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>

using rdt::Ctx;
using rdt::GroupHolder;

namespace {
napi_type_tag kReducerTag = {0x7264746c69626572ULL, 0x7265647563657231ULL};

// The accumulator pointer type changed across torch releases (shared_ptr, later intrusive_ptr).
using AccPtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

struct Reducer;

struct ReadyHook final : torch::autograd::FunctionPostHook {
  Reducer* r;
  size_t index;
  ReadyHook(Reducer* r, size_t index) : r(r), index(index) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) override;
};

struct InFlight {
  size_t bucket;
  at::Tensor flat;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
};

struct Reducer {
  GroupHolder* g;  // the JS GradReducer keeps its ProcessGroup referenced, so the holder outlives this
  std::vector<at::Tensor> params;
  std::vector<AccPtr> accs;
  std::vector<uintptr_t> hookKeys;
  std::vector<int> owner;  // empty: all-reduce
  int64_t capBytes;
  bool overlap;
  size_t maxInFlight;
  int rank, world;
  bool cuda;

  // Layout: buckets[k] = parameter indices, in flat order within the bucket (grouped by owner under ZeRO-2).
  std::vector<std::vector<size_t>> buckets;
  bool frozen = false;
  bool open = false;  // while forming: the last bucket still takes parameters
  int64_t openBytes = 0;
  std::vector<size_t> bucketOf;
  std::vector<bool> placed;
  double fingerprint = 0;

  // Per step.
  bool active = false;
  std::vector<bool> ready;
  std::vector<size_t> pending;  // per bucket: parameters not yet ready (frozen layout)
  size_t nextBucket = 0;        // buckets launched so far this step
  size_t launchedInBackward = 0;
  std::vector<bool> defined;    // this rank had a gradient for the parameter when its bucket launched
  std::deque<InFlight> inflight;
  double waitMs = 0;
  std::mutex mu;

  int64_t bytes(size_t i) const { return params[i].numel() * static_cast<int64_t>(params[i].element_size()); }

  void resetStep() {
    active = false;
    std::fill(ready.begin(), ready.end(), false);
    std::fill(defined.begin(), defined.end(), false);
    nextBucket = 0;
    launchedInBackward = 0;
    waitMs = 0;
    if (frozen)
      for (size_t k = 0; k < buckets.size(); k++) pending[k] = buckets[k].size();
  }

  // The one bucketing rule, used as gradients arrive and after backward alike: parameter i joins the open
  // bucket unless that would take it past capBytes (a parameter larger than the cap gets a bucket of its own).
  void place(size_t i) {
    int64_t b = bytes(i);
    if (open && openBytes + b > capBytes) open = false;
    if (!open) {
      buckets.emplace_back();
      open = true;
      openBytes = 0;
    }
    buckets.back().push_back(i);
    openBytes += b;
    placed[i] = true;
  }

  void freeze() {
    open = false;
    bucketOf.assign(params.size(), 0);
    pending.assign(buckets.size(), 0);
    // An order-sensitive fingerprint (exact in float64): equal on every rank iff the layouts are equal.
    double h = 0;
    const double mod = 2147483647.0;
    for (size_t k = 0; k < buckets.size(); k++) {
      for (size_t i : buckets[k]) {
        bucketOf[i] = k;
        h = std::fmod(h * 131.0 + static_cast<double>(i) + 1.0, mod);
      }
      h = std::fmod(h * 131.0 + 7.0, mod);  // bucket boundary
    }
    fingerprint = h;
    frozen = true;
  }

  // Under ZeRO-2, the bucket's flat order: by owner rank, stable within an owner.
  std::vector<size_t> flatOrder(size_t k) const {
    std::vector<size_t> ps = buckets[k];
    if (!owner.empty()) std::stable_sort(ps.begin(), ps.end(), [&](size_t a, size_t b) { return owner[a] < owner[b]; });
    return ps;
  }

  void launch(size_t k) {
    at::NoGradGuard noGrad;
    if (!g->backend) throw std::runtime_error("the process group was destroyed while gradients were being reduced");
    if (maxInFlight > 0)
      while (inflight.size() >= maxInFlight) finishOldest(!cuda);
    auto ps = flatOrder(k);
    std::vector<at::Tensor> parts;
    parts.reserve(ps.size());
    for (size_t i : ps) {
      const auto& grad = params[i].grad();
      defined[i] = grad.defined();
      parts.push_back(grad.defined() ? grad.reshape({-1}) : at::zeros({params[i].numel()}, params[i].options()));
    }
    InFlight f{k, at::cat(parts), {}};
    parts.clear();
    if (!owner.empty())
      for (size_t i : ps) params[i].mutable_grad().reset();  // ZeRO-2: the bucket now holds them
    if (owner.empty()) {
      c10d::AllreduceOptions o;
      o.reduceOp = c10d::ReduceOp::SUM;
      o.timeout = g->timeout;
      std::vector<at::Tensor> one{f.flat};
      f.works.push_back(g->backend->allreduce(one, o));
    } else {
      int64_t off = 0;
      size_t j = 0;
      while (j < ps.size()) {
        int r = owner[ps[j]];
        int64_t len = 0;
        for (; j < ps.size() && owner[ps[j]] == r; j++) len += params[ps[j]].numel();
        c10d::ReduceOptions o;
        o.reduceOp = c10d::ReduceOp::SUM;
        o.rootRank = r;
        o.timeout = g->timeout;
        std::vector<at::Tensor> one{f.flat.narrow(0, off, len)};
        f.works.push_back(g->backend->reduce(one, o));
        off += len;
      }
    }
    inflight.push_back(std::move(f));
    nextBucket = k + 1;
  }

  void finishOldest(bool hostBlocking) {
    at::NoGradGuard noGrad;
    InFlight f = std::move(inflight.front());
    inflight.pop_front();
    auto t0 = std::chrono::steady_clock::now();
    for (auto& w : f.works) rdt::waitWork(*g, w, cuda, hostBlocking, "gradient bucket " + std::to_string(f.bucket));
    waitMs += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // The average: the sum times 1/W, then each parameter's slice back into its .grad.
    int64_t off = 0;
    for (size_t i : flatOrder(f.bucket)) {
      int64_t n = params[i].numel();
      bool mine = owner.empty() || owner[i] == rank;
      if (mine && defined[i]) {
        auto slice = f.flat.narrow(0, off, n);
        slice.mul_(1.0 / world);
        if (owner.empty())
          params[i].mutable_grad().copy_(slice.view(params[i].sizes()));
        else
          params[i].mutable_grad() = slice.view(params[i].sizes()).clone();
      }
      off += n;
    }
  }

  // Hook: parameter i's gradient is accumulated.
  void onReady(size_t i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!active || ready[i]) return;
    ready[i] = true;
    if (!frozen) {
      place(i);
      // A bucket that was closed by this parameter's arrival is complete: launch it now.
      if (overlap)
        while (nextBucket + 1 < buckets.size() || (nextBucket < buckets.size() && !open)) {
          launch(nextBucket);
          launchedInBackward++;
        }
      return;
    }
    if (!overlap) return;
    if (--pending[bucketOf[i]] > 0) return;
    while (nextBucket < buckets.size() && pending[nextBucket] == 0) {
      launch(nextBucket);
      launchedInBackward++;
    }
  }

  // After the step's last backward: the rest of the layout (first step), every bucket not yet launched, and
  // the wait for all of them.
  void finalize() {
    std::lock_guard<std::mutex> lock(mu);
    if (!frozen) {
      for (size_t i = 0; i < params.size(); i++)
        if (!placed[i]) place(i);
      freeze();
    }
    while (nextBucket < buckets.size()) launch(nextBucket);
    // NCCL: the current stream waits; the host is bounded by the control all-reduce that follows.
    while (!inflight.empty()) finishOldest(!cuda);
  }

  void removeHooks() {
    for (size_t i = 0; i < accs.size(); i++)
      if (accs[i]) accs[i]->del_post_hook(hookKeys[i]);
    accs.clear();
    hookKeys.clear();
  }
};

torch::autograd::variable_list ReadyHook::operator()(const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
  r->onReady(index);
  return outputs;
}

void finalizeReducer(napi_env, void* data, void*) {
  auto* r = static_cast<Reducer*>(data);
  r->removeHooks();
  delete r;
}

Reducer* reducerOf(Ctx& c, size_t i) {
  bool ok = false;
  napi_valuetype vt;
  if (i >= c.argc || napi_typeof(c.env, c.argv[i], &vt) != napi_ok || vt != napi_external ||
      napi_check_object_type_tag(c.env, c.argv[i], &kReducerTag, &ok) != napi_ok || !ok)
    c.argFail(i, "a gradient reducer");
  void* p;
  napi_get_value_external(c.env, c.argv[i], &p);
  auto* r = static_cast<Reducer*>(p);
  if (r->accs.empty()) c.fail("the gradient reducer was destroyed");
  return r;
}

napi_value numbers(Ctx& c, const std::vector<size_t>& v) {
  napi_value arr;
  napi_create_array_with_length(c.env, v.size(), &arr);
  for (size_t k = 0; k < v.size(); k++) napi_set_element(c.env, arr, k, c.num(static_cast<double>(v[k])));
  return arr;
}
}  // namespace

// reducerNew(group, params, owners|null, bucketBytes, overlap, maxInFlight) -> reducer. params: the trained
// leaf tensors, one dtype and device; owners: ZeRO-2's owner rank of each (null: all-reduce).
OP(reducerNew) {
  auto* g = rdt::groupOf(c, 0);
  auto ps = c.ts(1);
  std::vector<int> owners;
  if (!c.isNullish(2))
    for (auto o : c.ints(2)) owners.push_back(static_cast<int>(o));
  int64_t cap = c.i64(3);
  bool overlap = c.b(4);
  int64_t maxInFlight = c.i64(5);
  if (ps.empty()) c.fail("no parameters to reduce");
  if (cap <= 0) c.argFail(3, "a positive bucket size in bytes");
  if (maxInFlight < 0) c.argFail(5, "a number of buckets >= 0 (0: no bound)");
  int world = g->backend->getSize(), rank = g->backend->getRank();
  if (!owners.empty() && owners.size() != ps.size()) c.fail("owners must give one rank per parameter");
  for (int o : owners)
    if (o < 0 || o >= world) c.fail("owner rank " + std::to_string(o) + " is outside world size " + std::to_string(world));
  for (size_t i = 0; i < ps.size(); i++) {
    if (!ps[i].requires_grad() || !ps[i].is_leaf()) c.fail("parameter " + std::to_string(i) + " is not a leaf that requires grad");
    if (ps[i].scalar_type() != ps[0].scalar_type() || ps[i].device() != ps[0].device())
      c.fail("parameter " + std::to_string(i) + " is " + rdt::dtypeName(ps[i].scalar_type()) + " on " + ps[i].device().str() +
             ", parameter 0 " + rdt::dtypeName(ps[0].scalar_type()) + " on " + ps[0].device().str() + ": a reducer takes one dtype and device");
  }
  auto* r = new Reducer();
  r->g = g;
  r->params = ps;
  r->owner = owners;
  r->capBytes = cap;
  r->overlap = overlap;
  r->maxInFlight = static_cast<size_t>(maxInFlight);
  r->rank = rank;
  r->world = world;
  r->cuda = ps[0].is_cuda();
  r->placed.assign(ps.size(), false);
  r->ready.assign(ps.size(), false);
  r->defined.assign(ps.size(), false);
  for (size_t i = 0; i < ps.size(); i++) {
    // The accumulator is held only weakly by the parameter: keep it alive, or the hook goes with it.
    auto acc = torch::autograd::impl::grad_accumulator(ps[i]);
    r->hookKeys.push_back(acc->add_post_hook(std::make_unique<ReadyHook>(r, i)));
    r->accs.push_back(std::move(acc));
  }
  napi_value v;
  napi_create_external(c.env, r, finalizeReducer, nullptr, &v);
  napi_type_tag_object(c.env, v, &kReducerTag);
  return v;
}

// reducerPrepare(reducer, sync): before a backward. sync true: this backward's gradients are reduced (its
// hooks launch buckets); false: they only accumulate locally (no_sync).
OP(reducerPrepare) {
  auto* r = reducerOf(c, 0);
  std::lock_guard<std::mutex> lock(r->mu);
  r->active = c.b(1);
  return c.undef();
}

// reducerFinalize(reducer) -> {defined, fingerprint, buckets, launchedInBackward, waitMs}: launches what is
// left, waits for every bucket and writes the averaged gradients (only the owners' under ZeRO-2). defined[i]:
// this rank had a gradient for parameter i. Resets the step.
OP(reducerFinalize) {
  auto* r = reducerOf(c, 0);
  try {
    r->finalize();
  } catch (...) {
    r->inflight.clear();
    r->resetStep();
    throw;
  }
  napi_value o, defined;
  napi_create_object(c.env, &o);
  napi_create_array_with_length(c.env, r->defined.size(), &defined);
  for (size_t k = 0; k < r->defined.size(); k++) napi_set_element(c.env, defined, k, c.boolean(r->defined[k]));
  napi_set_named_property(c.env, o, "defined", defined);
  napi_set_named_property(c.env, o, "fingerprint", c.num(r->fingerprint));
  napi_set_named_property(c.env, o, "buckets", c.num(static_cast<double>(r->buckets.size())));
  napi_set_named_property(c.env, o, "launchedInBackward", c.num(static_cast<double>(r->launchedInBackward)));
  napi_set_named_property(c.env, o, "waitMs", c.num(r->waitMs));
  r->resetStep();
  return o;
}

// reducerLayout(reducer) -> number[][]: the buckets (parameter indices, in launch order; empty before the
// first finalize).
OP(reducerLayout) {
  auto* r = reducerOf(c, 0);
  napi_value arr;
  size_t n = r->frozen ? r->buckets.size() : 0;
  napi_create_array_with_length(c.env, n, &arr);
  for (size_t k = 0; k < n; k++) napi_set_element(c.env, arr, k, numbers(c, r->buckets[k]));
  return arr;
}

// reducerDestroy(reducer): removes the hooks and lets go of the parameters (their storage is not held until the
// JS handle is collected); further calls are refused.
OP(reducerDestroy) {
  auto* r = reducerOf(c, 0);
  r->inflight.clear();
  r->removeHooks();
  r->params.clear();
  return c.undef();
}

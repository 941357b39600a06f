// Module init, argument handling, and the tensor lifecycle: create from bytes, read back,
// dispose, count, inspect.
#include "common.h"

#include <c10/util/Exception.h>
#include <cstring>
#include <mutex>
#include <ATen/CPUGeneratorImpl.h>

namespace rdt {

Counters& counters() {
  static Counters c;
  return c;
}
std::vector<OpEntry>& registry() {
  static std::vector<OpEntry> r;
  return r;
}

static napi_type_tag kTensorTag = {0x7264746c69626572ULL, 0x6f74656e736f7221ULL};

static void finalizeHolder(napi_env, void* data, void*) {
  auto* h = static_cast<Holder*>(data);
  if (h->t.defined()) {
    counters().live--;
    counters().gcFinalized++;
  }
  delete h;
}

Holder* holderOf(napi_env env, napi_value v) {
  napi_valuetype vt;
  if (napi_typeof(env, v, &vt) != napi_ok || vt != napi_external) return nullptr;
  bool ok = false;
  if (napi_check_object_type_tag(env, v, &kTensorTag, &ok) != napi_ok || !ok) return nullptr;
  void* p = nullptr;
  napi_get_value_external(env, v, &p);
  return static_cast<Holder*>(p);
}

Ctx::Ctx(napi_env e, napi_callback_info info, const char* o) : env(e), op(o), argc(16) {
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
}

void Ctx::fail(const std::string& msg, bool typeError) const { throw JsError{std::string(op) + ": " + msg, typeError}; }
void Ctx::argFail(size_t i, const char* expected) const {
  fail("argument " + std::to_string(i) + " must be " + expected, true);
}

bool Ctx::isNullish(size_t i) const {
  if (i >= argc) return true;
  napi_valuetype vt;
  napi_typeof(env, argv[i], &vt);
  return vt == napi_undefined || vt == napi_null;
}

at::Tensor Ctx::t(size_t i) const {
  if (i >= argc) argFail(i, "a tensor");
  Holder* h = holderOf(env, argv[i]);
  if (!h) argFail(i, "a tensor");
  if (!h->t.defined()) fail("argument " + std::to_string(i) + " is a tensor that was already disposed");
  return h->t;
}
std::optional<at::Tensor> Ctx::ot(size_t i) const {
  if (isNullish(i)) return std::nullopt;
  return t(i);
}
std::vector<at::Tensor> Ctx::ts(size_t i) const {
  bool isArr = false;
  if (i >= argc || napi_is_array(env, argv[i], &isArr) != napi_ok || !isArr) argFail(i, "an array of tensors");
  uint32_t n;
  napi_get_array_length(env, argv[i], &n);
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (uint32_t k = 0; k < n; k++) {
    napi_value el;
    napi_get_element(env, argv[i], k, &el);
    Holder* h = holderOf(env, el);
    if (!h) argFail(i, "an array of tensors");
    if (!h->t.defined()) fail("argument " + std::to_string(i) + "[" + std::to_string(k) + "] is a disposed tensor");
    out.push_back(h->t);
  }
  return out;
}
double Ctx::d(size_t i) const {
  double v;
  if (i >= argc) argFail(i, "a number");
  if (napi_get_value_double(env, argv[i], &v) != napi_ok) {
    bool bv;
    if (napi_get_value_bool(env, argv[i], &bv) == napi_ok) return bv ? 1.0 : 0.0;
    argFail(i, "a number");
  }
  return v;
}
std::optional<double> Ctx::od(size_t i) const {
  if (isNullish(i)) return std::nullopt;
  return d(i);
}
int64_t Ctx::i64(size_t i) const {
  if (i >= argc) argFail(i, "an integer");
  napi_valuetype vt;
  napi_typeof(env, argv[i], &vt);
  if (vt == napi_bigint) {
    int64_t v;
    bool lossless;
    napi_get_value_bigint_int64(env, argv[i], &v, &lossless);
    return v;
  }
  double v;
  if (napi_get_value_double(env, argv[i], &v) != napi_ok) argFail(i, "an integer");
  return static_cast<int64_t>(v);
}
std::optional<int64_t> Ctx::oi64(size_t i) const {
  if (isNullish(i)) return std::nullopt;
  return i64(i);
}
bool Ctx::b(size_t i) const {
  bool v;
  if (i >= argc || napi_get_value_bool(env, argv[i], &v) != napi_ok) argFail(i, "a boolean");
  return v;
}
std::string Ctx::s(size_t i) const {
  size_t len;
  if (i >= argc || napi_get_value_string_utf8(env, argv[i], nullptr, 0, &len) != napi_ok) argFail(i, "a string");
  std::string out(len, '\0');
  napi_get_value_string_utf8(env, argv[i], out.data(), len + 1, &len);
  return out;
}
std::vector<int64_t> Ctx::ints(size_t i) const {
  bool isArr = false;
  if (i >= argc) argFail(i, "an array of integers");
  napi_is_array(env, argv[i], &isArr);
  if (!isArr) return {i64(i)};
  uint32_t n;
  napi_get_array_length(env, argv[i], &n);
  std::vector<int64_t> out(n);
  for (uint32_t k = 0; k < n; k++) {
    napi_value el;
    napi_get_element(env, argv[i], k, &el);
    double v;
    if (napi_get_value_double(env, el, &v) != napi_ok) argFail(i, "an array of integers");
    out[k] = static_cast<int64_t>(v);
  }
  return out;
}
std::vector<double> Ctx::doubles(size_t i) const {
  bool isArr = false;
  if (i >= argc) argFail(i, "an array of numbers");
  napi_is_array(env, argv[i], &isArr);
  if (!isArr) return {d(i)};
  uint32_t n;
  napi_get_array_length(env, argv[i], &n);
  std::vector<double> out(n);
  for (uint32_t k = 0; k < n; k++) {
    napi_value el;
    napi_get_element(env, argv[i], k, &el);
    if (napi_get_value_double(env, el, &out[k]) != napi_ok) argFail(i, "an array of numbers");
  }
  return out;
}
std::optional<std::vector<int64_t>> Ctx::oints(size_t i) const {
  if (isNullish(i)) return std::nullopt;
  return ints(i);
}
at::Scalar Ctx::scalar(size_t i) const {
  if (i >= argc) argFail(i, "a number");
  napi_valuetype vt;
  napi_typeof(env, argv[i], &vt);
  if (vt == napi_boolean) return at::Scalar(b(i));
  if (vt == napi_bigint) return at::Scalar(i64(i));
  return at::Scalar(d(i));
}
at::ScalarType Ctx::dtype(size_t i) const {
  int64_t code = i64(i);
  if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) argFail(i, "a dtype code");
  return static_cast<at::ScalarType>(code);
}
at::Device Ctx::device(size_t i) const {
  std::string s = this->s(i);
  try {
    return at::Device(s);
  } catch (const std::exception&) {
    fail("unknown device '" + s + "' (use 'cpu', 'cuda' or 'cuda:N')");
  }
}

napi_value Ctx::wrap(const at::Tensor& t) const {
  if (!t.defined()) return null();
  auto* h = new Holder{t};
  napi_value v;
  napi_create_external(env, h, finalizeHolder, nullptr, &v);
  napi_type_tag_object(env, v, &kTensorTag);
  counters().live++;
  counters().created++;
  return v;
}
napi_value Ctx::wrap(const std::vector<at::Tensor>& ts) const {
  napi_value arr;
  napi_create_array_with_length(env, ts.size(), &arr);
  for (size_t k = 0; k < ts.size(); k++) napi_set_element(env, arr, k, wrap(ts[k]));
  return arr;
}
napi_value Ctx::num(double v) const {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}
napi_value Ctx::big(int64_t v) const {
  napi_value r;
  napi_create_bigint_int64(env, v, &r);
  return r;
}
napi_value Ctx::boolean(bool v) const {
  napi_value r;
  napi_get_boolean(env, v, &r);
  return r;
}
napi_value Ctx::str(const std::string& v) const {
  napi_value r;
  napi_create_string_utf8(env, v.data(), v.size(), &r);
  return r;
}
napi_value Ctx::undef() const {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}
napi_value Ctx::null() const {
  napi_value r;
  napi_get_null(env, &r);
  return r;
}

std::string dtypeName(at::ScalarType t) { return c10::toString(t); }

// First line of a c10 error, without the C++ backtrace PyTorch appends.
static std::string shortMessage(const c10::Error& e) {
  std::string m = e.what_without_backtrace();
  return m;
}

static napi_value dispatch(napi_env env, napi_callback_info info) {
  void* data;
  size_t argc = 0;
  napi_get_cb_info(env, info, &argc, nullptr, nullptr, &data);
  auto* entry = static_cast<OpEntry*>(data);
  try {
    Ctx c(env, info, entry->name);
    return entry->body(c);
  } catch (const JsError& e) {
    if (e.type)
      napi_throw_type_error(env, "ERR_RDT_NATIVE", e.msg.c_str());
    else
      napi_throw_error(env, "ERR_RDT_NATIVE", e.msg.c_str());
  } catch (const c10::Error& e) {
    napi_throw_error(env, "ERR_RDT_TORCH", (std::string(entry->name) + ": " + shortMessage(e)).c_str());
  } catch (const std::exception& e) {
    napi_throw_error(env, "ERR_RDT_TORCH", (std::string(entry->name) + ": " + e.what()).c_str());
  }
  return nullptr;
}

}  // namespace rdt

using namespace rdt;

// ---- lifecycle ----

OP(dispose) {
  Holder* h = holderOf(c.env, c.argv[0]);
  if (!h) c.argFail(0, "a tensor");
  if (h->t.defined()) {
    h->t.reset();
    counters().live--;
  }
  return c.undef();
}
OP(isDisposed) {
  Holder* h = holderOf(c.env, c.argv[0]);
  if (!h) c.argFail(0, "a tensor");
  return c.boolean(!h->t.defined());
}
OP(counters) {
  napi_value o;
  napi_create_object(c.env, &o);
  napi_set_named_property(c.env, o, "live", c.num(counters().live));
  napi_set_named_property(c.env, o, "created", c.num(counters().created));
  napi_set_named_property(c.env, o, "gcFinalized", c.num(counters().gcFinalized));
  return o;
}

// fromBytes(typedArrayOrBuffer, dtype, shape): copies the bytes into a new CPU tensor.
OP(fromBytes) {
  void* data = nullptr;
  size_t nbytes = 0;
  bool isTyped = false, isBuf = false;
  napi_is_typedarray(c.env, c.argv[0], &isTyped);
  napi_is_buffer(c.env, c.argv[0], &isBuf);
  if (isTyped) {
    napi_typedarray_type tt;
    size_t len, off;
    napi_value ab;
    napi_get_typedarray_info(c.env, c.argv[0], &tt, &len, &data, &ab, &off);
    size_t el = 1;
    switch (tt) {
      case napi_int16_array: case napi_uint16_array: el = 2; break;
      case napi_int32_array: case napi_uint32_array: case napi_float32_array: el = 4; break;
      case napi_float64_array: case napi_bigint64_array: case napi_biguint64_array: el = 8; break;
      default: el = 1;
    }
    nbytes = len * el;
  } else if (isBuf) {
    napi_get_buffer_info(c.env, c.argv[0], &data, &nbytes);
  } else {
    c.argFail(0, "a typed array or Buffer");
  }
  auto dtype = c.dtype(1);
  auto shape = c.ints(2);
  auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
  size_t want = t.numel() * t.element_size();
  if (want != nbytes)
    c.fail("shape " + c10::str(at::IntArrayRef(shape)) + " of " + dtypeName(dtype) + " needs " + std::to_string(want) +
           " bytes but the array holds " + std::to_string(nbytes));
  if (nbytes) std::memcpy(t.data_ptr(), data, nbytes);
  return c.wrap(t);
}

// toBytes(t): a fresh ArrayBuffer with the tensor's elements in row-major order (copied to CPU).
OP(toBytes) {
  auto t = c.t(0).detach().to(at::kCPU).contiguous();
  size_t nbytes = t.numel() * t.element_size();
  void* out;
  napi_value ab;
  napi_create_arraybuffer(c.env, nbytes, &out, &ab);
  if (nbytes) std::memcpy(out, t.data_ptr(), nbytes);
  return ab;
}

OP(shape) {
  auto sizes = c.t(0).sizes();
  napi_value arr;
  napi_create_array_with_length(c.env, sizes.size(), &arr);
  for (size_t k = 0; k < sizes.size(); k++) napi_set_element(c.env, arr, k, c.num(static_cast<double>(sizes[k])));
  return arr;
}
OP(stride) {
  auto st = c.t(0).strides();
  napi_value arr;
  napi_create_array_with_length(c.env, st.size(), &arr);
  for (size_t k = 0; k < st.size(); k++) napi_set_element(c.env, arr, k, c.num(static_cast<double>(st[k])));
  return arr;
}
OP(dtype) { return c.num(static_cast<double>(c.t(0).scalar_type())); }
OP(device) { return c.str(c.t(0).device().str()); }
OP(isContiguous) { return c.boolean(c.t(0).is_contiguous()); }
OP(numel) { return c.num(static_cast<double>(c.t(0).numel())); }
OP(item) { return c.num(c.t(0).item<double>()); }
OP(itemInt) { return c.big(c.t(0).item<int64_t>()); }
OP(dataPtr) { return c.num(static_cast<double>(reinterpret_cast<uintptr_t>(c.t(0).data_ptr()))); }

// ---- module init ----

static napi_value Init(napi_env env, napi_value exports) {
  for (auto& e : registry()) {
    napi_value fn;
    napi_create_function(env, e.name, NAPI_AUTO_LENGTH, dispatch, &e, &fn);
    napi_set_named_property(env, exports, e.name, fn);
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)

// ---- generators: explicit, seeded random streams (torch.Generator) ----

namespace rdt {
static napi_type_tag kGenTag = {0x7264746c69626572ULL, 0x67656e657261746fULL};
struct GenHolder {
  at::Generator g;
};
static void finalizeGen(napi_env, void* data, void*) { delete static_cast<GenHolder*>(data); }

std::optional<at::Generator> Ctx::gen(size_t i) const {
  if (isNullish(i)) return std::nullopt;
  bool ok = false;
  napi_valuetype vt;
  napi_typeof(env, argv[i], &vt);
  if (vt != napi_external || napi_check_object_type_tag(env, argv[i], &kGenTag, &ok) != napi_ok || !ok)
    argFail(i, "a Generator");
  void* p;
  napi_get_value_external(env, argv[i], &p);
  return static_cast<GenHolder*>(p)->g;
}
}  // namespace rdt

// generatorNew(seed, device)
OP(generatorNew) {
  auto dev = c.device(1);
  at::Generator g;
  if (dev.is_cpu()) {
    g = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(c.i64(0)));
  } else {
    g = at::globalContext().defaultGenerator(dev).clone();
    g.set_current_seed(static_cast<uint64_t>(c.i64(0)));
  }
  auto* h = new rdt::GenHolder{g};
  napi_value v;
  napi_create_external(c.env, h, rdt::finalizeGen, nullptr, &v);
  napi_type_tag_object(c.env, v, &rdt::kGenTag);
  return v;
}
OP(generatorManualSeed) {
  auto g = *c.gen(0);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(static_cast<uint64_t>(c.i64(1)));
  return c.undef();
}
// The full RNG state as a uint8 tensor (torch.Generator.get_state), for exact resume.
OP(generatorGetState) {
  auto g = *c.gen(0);
  std::lock_guard<std::mutex> lock(g.mutex());
  return c.wrap(g.get_state());
}
OP(generatorSetState) {
  auto g = *c.gen(0);
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(c.t(1));
  return c.undef();
}
OP(defaultGeneratorGetState) { return c.wrap(at::globalContext().defaultGenerator(at::kCPU).get_state()); }
OP(defaultGeneratorSetState) {
  auto g = at::globalContext().defaultGenerator(at::kCPU);
  g.set_state(c.t(0));
  return c.undef();
}

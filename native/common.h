// The glue every native op file shares: argument readers, return wrappers, one error-catching
// entry point, and the op registry. An op is declared once with OP(name) { ... } in the file of
// its family; module init exports every registered op under that name.
#pragma once
#include <ATen/ATen.h>
#include <node_api.h>
#include <optional>
#include <string>
#include <vector>

namespace rdt {

// A JS tensor handle is an napi_external pointing at a Holder. dispose() resets the tensor at once;
// the GC finaliser only frees what was never disposed (counted, since it means a leak).
struct Holder {
  at::Tensor t;
};

struct Counters {
  int64_t live = 0;         // handles created and not yet disposed or finalised
  int64_t created = 0;      // every handle ever created
  int64_t gcFinalized = 0;  // handles the GC had to free because nobody disposed them
};
Counters& counters();

struct JsError {
  std::string msg;
  bool type = false;  // TypeError instead of Error
};

class Ctx {
 public:
  Ctx(napi_env env, napi_callback_info info, const char* op);
  napi_env env;
  const char* op;
  size_t argc;
  napi_value argv[16];

  bool isNullish(size_t i) const;
  at::Tensor t(size_t i) const;                       // tensor argument
  std::optional<at::Tensor> ot(size_t i) const;      // tensor or null/undefined
  std::vector<at::Tensor> ts(size_t i) const;         // array of tensors
  double d(size_t i) const;
  std::optional<double> od(size_t i) const;
  int64_t i64(size_t i) const;
  std::optional<int64_t> oi64(size_t i) const;
  bool b(size_t i) const;
  std::string s(size_t i) const;
  std::vector<int64_t> ints(size_t i) const;          // number array (a bare number = one-element list)
  std::vector<double> doubles(size_t i) const;        // number array (a bare number = one-element list)
  std::optional<std::vector<int64_t>> oints(size_t i) const;
  at::Scalar scalar(size_t i) const;                  // number or boolean
  at::ScalarType dtype(size_t i) const;               // ScalarType code as a number
  at::Device device(size_t i) const;                  // "cpu", "cuda", "cuda:1"
  std::optional<at::Generator> gen(size_t i) const;   // generator handle or null

  // Return wrappers.
  napi_value wrap(const at::Tensor& t) const;
  napi_value wrap(const std::vector<at::Tensor>& ts) const;
  napi_value num(double v) const;
  napi_value big(int64_t v) const;
  napi_value boolean(bool v) const;
  napi_value str(const std::string& v) const;
  napi_value undef() const;
  napi_value null() const;

  [[noreturn]] void fail(const std::string& msg, bool typeError = false) const;
  [[noreturn]] void argFail(size_t i, const char* expected) const;
};

Holder* holderOf(napi_env env, napi_value v);  // nullptr when v is not a tensor handle

using OpBody = napi_value (*)(Ctx&);
struct OpEntry {
  const char* name;
  OpBody body;
};
std::vector<OpEntry>& registry();
struct OpReg {
  OpReg(const char* name, OpBody body) { registry().push_back({name, body}); }
};

std::string dtypeName(at::ScalarType t);

}  // namespace rdt

#define OP(name)                                          \
  static napi_value op_##name(rdt::Ctx& c);               \
  static rdt::OpReg reg_##name(#name, op_##name);         \
  static napi_value op_##name(rdt::Ctx& c)

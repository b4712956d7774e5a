// Generic ATen op calls through the c10 dispatcher.
//
// TypeScript looks an op up once by (name, overload) and gets an integer id; calls pass a positional
// argument array that is converted to IValues by walking the op's schema. `undefined` means "use the
// schema default". This keeps the C++ independent of which ops the TS layer uses: any ATen op with a
// schema made of tensors, numbers, bools, strings, devices and lists of those is reachable.
#include "handle.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/version.h>
#include <mutex>
#include <optional>

namespace misfm {

// LibTorch 2.x made c10::optional an alias of std::optional (and may drop the alias); 1.x has its own.
#if TORCH_VERSION_MAJOR >= 2
template <class T> using Optional = std::optional<T>;
#define MISFM_NONE std::nullopt
#else
template <class T> using Optional = c10::optional<T>;
#define MISFM_NONE c10::nullopt
#endif

static std::mutex g_ops_mutex;
static std::vector<c10::OperatorHandle> g_ops;

static std::string OpName(const c10::OperatorHandle& op) {
  const auto& n = op.operator_name();
  return n.overload_name.empty() ? n.name : n.name + "." + n.overload_name;
}

static Napi::Value OpId(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>();
  std::string overload = info[1].As<Napi::String>();
  auto handle = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!handle.has_value()) {
    throw Napi::Error::New(env, "unknown ATen op " + name + (overload.empty() ? "" : "." + overload));
  }
  std::lock_guard<std::mutex> lock(g_ops_mutex);
  g_ops.push_back(*handle);
  return Napi::Number::New(env, static_cast<double>(g_ops.size() - 1));
}

static const c10::OperatorHandle& GetOp(Napi::Env env, const Napi::Value& v) {
  std::lock_guard<std::mutex> lock(g_ops_mutex);
  auto id = v.As<Napi::Number>().Uint32Value();
  if (id >= g_ops.size()) throw Napi::RangeError::New(env, "bad op id");
  return g_ops[id];
}

static Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Napi::String::New(env, c10::toString(GetOp(env, info[0]).schema()));
}

static int64_t ToInt(Napi::Env env, const Napi::Value& v, const std::string& where) {
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d != static_cast<double>(static_cast<int64_t>(d))) throw Napi::TypeError::New(env, where + ": expected an integer, got " + std::to_string(d));
    return static_cast<int64_t>(d);
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1 : 0;
  if (v.IsBigInt()) {
    bool lossless = true;
    return v.As<Napi::BigInt>().Int64Value(&lossless);
  }
  throw Napi::TypeError::New(env, where + ": expected an integer");
}

static c10::IValue ToIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type, const c10::Argument& arg, const std::string& where);

static c10::IValue ToList(Napi::Env env, const Napi::Value& v, const c10::TypePtr& elem, const c10::Argument& arg, const std::string& where) {
  auto kind = elem->kind();
  // A single number for an int[N] argument is repeated N times, as PyTorch does for e.g. stride=2.
  if (!v.IsArray()) {
    if ((kind == c10::TypeKind::IntType || kind == c10::TypeKind::SymIntType) && v.IsNumber()) {
      int64_t n = arg.N().has_value() ? *arg.N() : 1;
      return c10::IValue(std::vector<int64_t>(n, ToInt(env, v, where)));
    }
    throw Napi::TypeError::New(env, where + ": expected an array");
  }
  auto arr = v.As<Napi::Array>();
  uint32_t n = arr.Length();
  switch (kind) {
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType: {
      std::vector<int64_t> out(n);
      for (uint32_t i = 0; i < n; i++) out[i] = ToInt(env, arr.Get(i), where);
      return c10::IValue(out);
    }
    case c10::TypeKind::FloatType: {
      std::vector<double> out(n);
      for (uint32_t i = 0; i < n; i++) out[i] = arr.Get(i).As<Napi::Number>().DoubleValue();
      return c10::IValue(out);
    }
    case c10::TypeKind::BoolType: {
      c10::List<bool> out;
      for (uint32_t i = 0; i < n; i++) out.push_back(arr.Get(i).ToBoolean().Value());
      return c10::IValue(out);
    }
    case c10::TypeKind::TensorType: {
      c10::List<at::Tensor> out;
      out.reserve(n);
      for (uint32_t i = 0; i < n; i++) out.push_back(Unwrap(env, arr.Get(i), where.c_str()));
      return c10::IValue(out);
    }
    case c10::TypeKind::OptionalType: {
      c10::List<Optional<at::Tensor>> out;
      for (uint32_t i = 0; i < n; i++) {
        Napi::Value e = arr.Get(i);
        if (e.IsNull() || e.IsUndefined()) out.push_back(MISFM_NONE);
        else out.push_back(Unwrap(env, e, where.c_str()));
      }
      return c10::IValue(out);
    }
    default:
      throw Napi::TypeError::New(env, where + ": unsupported list element type " + elem->str());
  }
}

static c10::IValue ToIValue(Napi::Env env, const Napi::Value& v, const c10::TypePtr& type, const c10::Argument& arg, const std::string& where) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return Unwrap(env, v, where.c_str());
    case c10::TypeKind::OptionalType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      return ToIValue(env, v, type->expectRef<c10::OptionalType>().getElementType(), arg, where);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
    case c10::TypeKind::ScalarTypeType:
    case c10::TypeKind::LayoutType:
    case c10::TypeKind::MemoryFormatType:
      return c10::IValue(ToInt(env, v, where));
    case c10::TypeKind::FloatType:
      return c10::IValue(v.As<Napi::Number>().DoubleValue());
    case c10::TypeKind::BoolType:
      return c10::IValue(v.ToBoolean().Value());
    case c10::TypeKind::NumberType: {
      if (v.IsBoolean()) return c10::IValue(v.As<Napi::Boolean>().Value());
      if (v.IsObject() && !v.IsArray()) {
        // {float: x} forces a floating-point Scalar where x happens to be integral.
        return c10::IValue(v.As<Napi::Object>().Get("float").As<Napi::Number>().DoubleValue());
      }
      double d = v.As<Napi::Number>().DoubleValue();
      if (d == static_cast<double>(static_cast<int64_t>(d)) && std::abs(d) < 9.007199254740992e15) return c10::IValue(static_cast<int64_t>(d));
      return c10::IValue(d);
    }
    case c10::TypeKind::StringType:
      return c10::IValue(v.As<Napi::String>().Utf8Value());
    case c10::TypeKind::DeviceObjType:
      return c10::IValue(c10::Device(v.As<Napi::String>().Utf8Value()));
    case c10::TypeKind::ListType:
      return ToList(env, v, type->expectRef<c10::ListType>().getElementType(), arg, where);
    case c10::TypeKind::GeneratorType:
      if (v.IsNull() || v.IsUndefined()) return c10::IValue();
      throw Napi::TypeError::New(env, where + ": explicit generators are not supported; seed the global one");
    default:
      throw Napi::TypeError::New(env, where + ": unsupported argument type " + type->str());
  }
}

static Napi::Value FromIValue(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return Wrap(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isInt()) return Napi::Number::New(env, static_cast<double>(v.toInt()));
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isDevice()) return Napi::String::New(env, v.toDevice().str());
  if (v.isTensorList()) {
    auto list = v.toTensorList();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), Wrap(env, list.get(i)));
    return arr;
  }
  if (v.isIntList()) {
    auto list = v.toIntVector();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(list[i])));
    return arr;
  }
  if (v.isDoubleList()) {
    auto list = v.toDoubleVector();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, list[i]));
    return arr;
  }
  if (v.isTuple()) {
    const auto& elems = v.toTupleRef().elements();
    auto arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); i++) arr.Set(static_cast<uint32_t>(i), FromIValue(env, elems[i]));
    return arr;
  }
  if (v.isList()) {
    auto list = v.toListRef();
    auto arr = Napi::Array::New(env, list.size());
    for (size_t i = 0; i < list.size(); i++) arr.Set(static_cast<uint32_t>(i), FromIValue(env, list[i]));
    return arr;
  }
  throw Napi::TypeError::New(env, "unsupported return type " + v.tagKind());
}

// call(opId, args[]) -> result (a handle, a number, or an array for multiple returns)
static Napi::Value Call(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const c10::OperatorHandle& op = GetOp(env, info[0]);
  const auto& schema = op.schema();
  const auto& args = schema.arguments();
  std::string name = OpName(op);
  Napi::Array jsArgs = info[1].As<Napi::Array>();
  uint32_t given = jsArgs.Length();
  if (given > args.size()) {
    throw Napi::TypeError::New(env, name + ": takes " + std::to_string(args.size()) + " arguments, got " + std::to_string(given));
  }
  MISFM_TRY(env, name, {
    torch::jit::Stack stack;
    stack.reserve(args.size());
    for (size_t i = 0; i < args.size(); i++) {
      const auto& a = args[i];
      Napi::Value v = i < given ? jsArgs.Get(static_cast<uint32_t>(i)) : env.Undefined();
      if (v.IsUndefined()) {
        if (a.default_value().has_value()) { stack.push_back(*a.default_value()); continue; }
        if (a.type()->kind() == c10::TypeKind::OptionalType) { stack.emplace_back(); continue; }
        throw Napi::TypeError::New(env, name + ": missing argument '" + a.name() + "'");
      }
      stack.push_back(ToIValue(env, v, a.type(), a, name + " argument '" + a.name() + "'"));
    }
    op.callBoxed(&stack);
    if (stack.size() == 1) return FromIValue(env, stack[0]);
    auto arr = Napi::Array::New(env, stack.size());
    for (size_t i = 0; i < stack.size(); i++) arr.Set(static_cast<uint32_t>(i), FromIValue(env, stack[i]));
    return arr;
  })
  return env.Undefined();
}

void InitOps(Napi::Env env, Napi::Object exports) {
  exports.Set("opId", Napi::Function::New(env, OpId));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
  exports.Set("call", Napi::Function::New(env, Call));
}

}  // namespace misfm

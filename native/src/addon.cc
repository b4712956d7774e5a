// Module init, tensor handles, data transfer, autograd, RNG, threads and build info.
// Op calls live in ops.cc. No model logic belongs in C++.
#include "handle.h"

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/version.h>
#include <torch/cuda.h>
#include <cstring>

namespace misfm {

std::atomic<int64_t> g_live{0};

static void Finalize(Napi::Env env, TensorBox* box) {
  Release(env, box);
  delete box;
}

void Release(Napi::Env env, TensorBox* box) {
  if (box->t.defined()) {
    box->t.reset();
    g_live--;
  }
  if (box->reported != 0) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -box->reported);
    box->reported = 0;
  }
}

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  if (!t.defined()) return env.Null();
  auto* box = new TensorBox{std::move(t), 0};
  if (!box->t.is_view() && box->t.device().is_cpu()) {
    box->reported = static_cast<int64_t>(box->t.nbytes());
    if (box->reported > 0) Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  }
  g_live++;
  return Napi::External<TensorBox>::New(env, box, Finalize);
}

at::Tensor& Unwrap(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsExternal()) {
    throw Napi::TypeError::New(env, std::string(what) + ": expected a tensor handle");
  }
  auto* box = v.As<Napi::External<TensorBox>>().Data();
  if (!box->t.defined()) throw Napi::Error::New(env, std::string(what) + ": tensor is disposed");
  return box->t;
}

void ThrowNative(Napi::Env env, const std::string& op, const std::exception& e) {
  std::string msg;
  if (auto* ce = dynamic_cast<const c10::Error*>(&e)) msg = ce->what_without_backtrace();
  else msg = e.what();
  // Keep the first meaningful lines: libtorch appends C++ frames we do not want users to see.
  auto pos = msg.find("\nException raised from");
  if (pos != std::string::npos) msg = msg.substr(0, pos);
  Napi::Error err = Napi::Error::New(env, op + ": " + msg);
  err.Set("native", Napi::Boolean::New(env, true));
  throw err;
}

static std::vector<int64_t> ToShape(Napi::Env env, const Napi::Value& v) {
  if (!v.IsArray()) throw Napi::TypeError::New(env, "shape must be an array of integers");
  auto arr = v.As<Napi::Array>();
  std::vector<int64_t> out(arr.Length());
  for (uint32_t i = 0; i < arr.Length(); i++) out[i] = arr.Get(i).As<Napi::Number>().Int64Value();
  return out;
}

static Napi::Value ShapeOf(Napi::Env env, const at::Tensor& t) {
  auto sizes = t.sizes();
  auto arr = Napi::Array::New(env, sizes.size());
  for (size_t i = 0; i < sizes.size(); i++) arr.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(sizes[i])));
  return arr;
}

// fromBytes(view: ArrayBufferView, dtypeCode, shape) -> handle (copies the bytes)
static Napi::Value FromBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "fromTypedArray", {
    auto view = info[0].As<Napi::TypedArray>();
    auto dtype = static_cast<c10::ScalarType>(info[1].As<Napi::Number>().Int32Value());
    auto shape = ToShape(env, info[2]);
    auto t = at::empty(shape, at::TensorOptions().dtype(dtype));
    size_t nbytes = t.nbytes();
    if (view.ByteLength() != nbytes) {
      throw Napi::RangeError::New(env, "fromTypedArray: " + std::to_string(view.ByteLength()) + " bytes given, shape needs " + std::to_string(nbytes));
    }
    auto* base = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    if (nbytes > 0) std::memcpy(t.data_ptr(), base, nbytes);
    return Wrap(env, std::move(t));
  })
  return env.Undefined();
}

// toBytes(handle) -> ArrayBuffer with contiguous little-endian CPU bytes
static Napi::Value ToBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "toTypedArray", {
    at::Tensor t = Unwrap(env, info[0], "toTypedArray").detach().to(at::kCPU).contiguous();
    auto buf = Napi::ArrayBuffer::New(env, t.nbytes());
    if (t.nbytes() > 0) std::memcpy(buf.Data(), t.data_ptr(), t.nbytes());
    return buf;
  })
  return env.Undefined();
}

// copyInto(handle, view): copy a tensor's bytes into an existing typed array (no new buffer)
static Napi::Value CopyInto(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "copyInto", {
    at::Tensor t = Unwrap(env, info[0], "copyInto").detach().to(at::kCPU).contiguous();
    auto view = info[1].As<Napi::TypedArray>();
    if (view.ByteLength() != t.nbytes()) throw Napi::RangeError::New(env, "copyInto: byte length mismatch");
    auto* base = static_cast<uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    if (t.nbytes() > 0) std::memcpy(base, t.data_ptr(), t.nbytes());
    return env.Undefined();
  })
  return env.Undefined();
}

// meta(handle) -> [shape, dtypeCode, deviceString, requiresGrad, isView]
static Napi::Value Meta(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "meta", {
    at::Tensor& t = Unwrap(env, info[0], "meta");
    auto arr = Napi::Array::New(env, 5);
    arr.Set(0u, ShapeOf(env, t));
    arr.Set(1u, Napi::Number::New(env, static_cast<int>(t.scalar_type())));
    arr.Set(2u, Napi::String::New(env, t.device().str()));
    arr.Set(3u, Napi::Boolean::New(env, t.requires_grad()));
    arr.Set(4u, Napi::Boolean::New(env, t.is_view()));
    return arr;
  })
  return env.Undefined();
}

static Napi::Value Shape(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return ShapeOf(env, Unwrap(env, info[0], "shape"));
}

static Napi::Value Dispose(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "dispose: expected a tensor handle");
  Release(env, info[0].As<Napi::External<TensorBox>>().Data());
  return env.Undefined();
}

static Napi::Value IsDisposed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal()) return Napi::Boolean::New(env, true);
  return Napi::Boolean::New(env, !info[0].As<Napi::External<TensorBox>>().Data()->t.defined());
}

static Napi::Value LiveCount(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(g_live.load()));
}

static Napi::Value SetRequiresGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "requiresGrad", {
    Unwrap(env, info[0], "requiresGrad").set_requires_grad(info[1].As<Napi::Boolean>().Value());
    return env.Undefined();
  })
  return env.Undefined();
}

static Napi::Value Grad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "grad", {
    return Wrap(env, Unwrap(env, info[0], "grad").grad());
  })
  return env.Undefined();
}

// setData(handle, source): the tensor takes source's data, dtype and device in place, keeping its
// identity and autograd flags (PyTorch's `param.data = ...`, as Module.to(dtype) does).
static Napi::Value SetData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "setData", {
    at::Tensor& t = Unwrap(env, info[0], "setData");
    t.set_data(Unwrap(env, info[1], "setData"));
    return env.Undefined();
  })
  return env.Undefined();
}

static Napi::Value SetGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "setGrad", {
    at::Tensor& t = Unwrap(env, info[0], "setGrad");
    if (info[1].IsNull() || info[1].IsUndefined()) t.mutable_grad() = at::Tensor();
    else t.mutable_grad() = Unwrap(env, info[1], "setGrad");
    return env.Undefined();
  })
  return env.Undefined();
}

// backward(outputs[], grads[] (null entries allowed), retainGraph)
static Napi::Value Backward(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "backward", {
    auto outs = info[0].As<Napi::Array>();
    auto grads = info[1].As<Napi::Array>();
    std::vector<at::Tensor> o, g;
    for (uint32_t i = 0; i < outs.Length(); i++) {
      o.push_back(Unwrap(env, outs.Get(i), "backward"));
      Napi::Value gv = grads.Get(i);
      g.push_back(gv.IsNull() || gv.IsUndefined() ? at::Tensor() : Unwrap(env, gv, "backward"));
    }
    bool retain = info[2].ToBoolean().Value();
    torch::autograd::backward(o, g, retain, false);
    return env.Undefined();
  })
  return env.Undefined();
}

static Napi::Value SetGradEnabled(const Napi::CallbackInfo& info) {
  bool prev = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(info[0].As<Napi::Boolean>().Value());
  return Napi::Boolean::New(info.Env(), prev);
}

static Napi::Value IsGradEnabled(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), c10::GradMode::is_enabled());
}

static Napi::Value ManualSeed(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "manualSeed", {
    at::manual_seed(static_cast<uint64_t>(info[0].As<Napi::Number>().Int64Value()));
    return env.Undefined();
  })
  return env.Undefined();
}

// The CPU generator state as a uint8 tensor (exact resume).
static Napi::Value GetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "getRngState", {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return Wrap(env, at::Tensor(gen.get_state()));
  })
  return env.Undefined();
}

static Napi::Value SetRngState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "setRngState", {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(Unwrap(env, info[0], "setRngState"));
    return env.Undefined();
  })
  return env.Undefined();
}

static Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "setNumThreads", {
    at::set_num_threads(info[0].As<Napi::Number>().Int32Value());
    return env.Undefined();
  })
  return env.Undefined();
}

static Napi::Value GetNumThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), at::get_num_threads());
}

// Op-level profiling for development (src/engine/profile.ts): PyTorch's own legacy profiler, which writes a
// chrome trace of every ATen op and autograd node, so misfm's op sequence can be compared with a
// PyTorch script's op for op. One recording at a time.
static std::unique_ptr<torch::autograd::profiler::RecordProfile> g_profile;

static Napi::Value ProfileStart(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  if (g_profile) {
    Napi::Error::New(env, "a profile is already being recorded").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  try {
    g_profile = std::make_unique<torch::autograd::profiler::RecordProfile>(info[0].As<Napi::String>().Utf8Value());
  } catch (const std::exception& e) {
    Napi::Error::New(env, e.what()).ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

static Napi::Value ProfileStop(const Napi::CallbackInfo& info) {
  g_profile.reset();  // the destructor writes the trace
  return info.Env().Undefined();
}

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
  o.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  o.Set("config", Napi::String::New(env, at::show_config()));
  o.Set("parallel", Napi::String::New(env, at::get_parallel_info()));
  o.Set("cudaAvailable", Napi::Boolean::New(env, at::hasCUDA()));
  o.Set("cudaDeviceCount", Napi::Number::New(env, at::hasCUDA() ? static_cast<double>(torch::cuda::device_count()) : 0));
  o.Set("mkldnnAvailable", Napi::Boolean::New(env, at::hasMKLDNN()));
  o.Set("numThreads", Napi::Number::New(env, at::get_num_threads()));
  return o;
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("fromBytes", Napi::Function::New(env, FromBytes));
  exports.Set("toBytes", Napi::Function::New(env, ToBytes));
  exports.Set("copyInto", Napi::Function::New(env, CopyInto));
  exports.Set("meta", Napi::Function::New(env, Meta));
  exports.Set("shape", Napi::Function::New(env, Shape));
  exports.Set("dispose", Napi::Function::New(env, Dispose));
  exports.Set("isDisposed", Napi::Function::New(env, IsDisposed));
  exports.Set("liveCount", Napi::Function::New(env, LiveCount));
  exports.Set("setRequiresGrad", Napi::Function::New(env, SetRequiresGrad));
  exports.Set("grad", Napi::Function::New(env, Grad));
  exports.Set("setGrad", Napi::Function::New(env, SetGrad));
  exports.Set("setData", Napi::Function::New(env, SetData));
  exports.Set("backward", Napi::Function::New(env, Backward));
  exports.Set("setGradEnabled", Napi::Function::New(env, SetGradEnabled));
  exports.Set("isGradEnabled", Napi::Function::New(env, IsGradEnabled));
  exports.Set("manualSeed", Napi::Function::New(env, ManualSeed));
  exports.Set("getRngState", Napi::Function::New(env, GetRngState));
  exports.Set("setRngState", Napi::Function::New(env, SetRngState));
  exports.Set("setNumThreads", Napi::Function::New(env, SetNumThreads));
  exports.Set("getNumThreads", Napi::Function::New(env, GetNumThreads));
  exports.Set("info", Napi::Function::New(env, Info));
  exports.Set("profileStart", Napi::Function::New(env, ProfileStart));
  exports.Set("profileStop", Napi::Function::New(env, ProfileStop));
  InitOps(env, exports);
  InitCheckpoint(env, exports);
  InitDist(env, exports);
  return exports;
}

}  // namespace misfm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return misfm::Init(env, exports); }
NODE_API_MODULE(misfm_native, InitModule)

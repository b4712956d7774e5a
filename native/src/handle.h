// Tensor handles shared by the addon's translation units.
//
// A JS tensor holds a napi External pointing at a TensorBox. The box owns one reference to an
// at::Tensor. dispose() drops that reference at once (deterministic release); the External's
// finalizer frees the box when V8 collects the JS object (GC fallback). V8 is told the true byte
// size of non-view tensors so that GC pressure reflects native memory.
#pragma once
#include <napi.h>
#include <ATen/ATen.h>
#include <atomic>
#include <string>

namespace misfm {

struct TensorBox {
  at::Tensor t;
  int64_t reported = 0;  // bytes reported to V8 via AdjustExternalMemory
};

extern std::atomic<int64_t> g_live;  // number of live (undisposed) handles

Napi::Value Wrap(Napi::Env env, at::Tensor t);
// Returns the tensor of a handle; throws a JS error if it is not a handle or was disposed.
at::Tensor& Unwrap(Napi::Env env, const Napi::Value& v, const char* what);
void Release(Napi::Env env, TensorBox* box);

// Converts a C++ exception from libtorch into a JS exception carrying `op` in its message.
[[noreturn]] void ThrowNative(Napi::Env env, const std::string& op, const std::exception& e);

#define MISFM_TRY(env, op, ...)                                       \
  try {                                                               \
    __VA_ARGS__                                                       \
  } catch (const Napi::Error&) {                                      \
    throw;                                                            \
  } catch (const c10::Error& e) {                                     \
    ::misfm::ThrowNative(env, op, e);                                 \
  } catch (const std::exception& e) {                                 \
    ::misfm::ThrowNative(env, op, e);                                 \
  }

void InitOps(Napi::Env env, Napi::Object exports);
void InitCheckpoint(Napi::Env env, Napi::Object exports);
void InitDist(Napi::Env env, Napi::Object exports);

}  // namespace misfm

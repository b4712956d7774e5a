// Activation checkpointing support: an autograd node whose backward calls back into TypeScript.
//
// TS runs a segment under no-grad, then calls attachRecompute(inputs, outputs, id): the returned
// outputs are connected to `inputs` through a RecomputeFn node. When autograd reaches that node,
// it calls the registered JS function (id, savedInputs, gradOutputs), which re-runs the segment with
// grad enabled, backpropagates through it (a reentrant backward, as torch.utils.checkpoint does)
// and returns the input gradients. No model logic lives here: the segment is any TS function.
#include "handle.h"

#include <torch/csrc/autograd/custom_function.h>
#include <thread>

namespace misfm {

static Napi::FunctionReference g_recompute;
static napi_env g_env = nullptr;
static std::thread::id g_js_thread;

struct RecomputeFn : public torch::autograd::Function<RecomputeFn> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, at::TensorList inputs,
                                                at::TensorList outputs, int64_t id) {
    ctx->saved_data["id"] = id;
    ctx->saved_data["n_outputs"] = static_cast<int64_t>(outputs.size());
    ctx->save_for_backward(inputs.vec());
    torch::autograd::variable_list outs;
    for (const auto& o : outputs) outs.push_back(o.view_as(o));
    return outs;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    if (std::this_thread::get_id() != g_js_thread || g_env == nullptr) {
      throw std::runtime_error("activation checkpointing: backward ran on a libtorch worker thread; it is only supported for CPU tensors");
    }
    auto saved = ctx->get_saved_variables();
    int64_t id = ctx->saved_data["id"].toInt();
    int64_t nOut = ctx->saved_data["n_outputs"].toInt();
    Napi::Env env(g_env);
    Napi::HandleScope scope(env);
    auto jsIn = Napi::Array::New(env, saved.size());
    for (size_t i = 0; i < saved.size(); i++) jsIn.Set(static_cast<uint32_t>(i), Wrap(env, saved[i]));
    auto jsGrad = Napi::Array::New(env, grads.size());
    for (size_t i = 0; i < grads.size(); i++) jsGrad.Set(static_cast<uint32_t>(i), Wrap(env, grads[i]));
    Napi::Value r = g_recompute.Call({Napi::Number::New(env, static_cast<double>(id)), jsIn, jsGrad});
    if (!r.IsArray() || r.As<Napi::Array>().Length() != saved.size()) {
      throw std::runtime_error("activation checkpointing: the recompute callback must return one gradient (or null) per input");
    }
    auto arr = r.As<Napi::Array>();
    torch::autograd::variable_list out;
    for (uint32_t i = 0; i < arr.Length(); i++) {
      Napi::Value v = arr.Get(i);
      if (v.IsNull() || v.IsUndefined()) { out.emplace_back(); continue; }
      out.push_back(Unwrap(env, v, "recompute"));
      Release(env, v.As<Napi::External<TensorBox>>().Data());  // C++ now owns the only reference
    }
    for (int64_t i = 0; i < nOut; i++) out.emplace_back();  // the detached outputs get no gradient
    out.emplace_back();                                        // id
    return out;
  }
};

static Napi::Value SetRecomputeCallback(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  g_recompute = Napi::Persistent(info[0].As<Napi::Function>());
  g_recompute.SuppressDestruct();
  g_env = env;
  g_js_thread = std::this_thread::get_id();
  return env.Undefined();
}

// attachRecompute(inputs[], outputs[], id) -> outputs[] connected to inputs through RecomputeFn
static Napi::Value AttachRecompute(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "checkpoint", {
    auto ins = info[0].As<Napi::Array>();
    auto outs = info[1].As<Napi::Array>();
    std::vector<at::Tensor> i, o;
    for (uint32_t k = 0; k < ins.Length(); k++) i.push_back(Unwrap(env, ins.Get(k), "checkpoint"));
    for (uint32_t k = 0; k < outs.Length(); k++) o.push_back(Unwrap(env, outs.Get(k), "checkpoint"));
    auto res = RecomputeFn::apply(at::TensorList(i), at::TensorList(o), info[2].As<Napi::Number>().Int64Value());
    auto arr = Napi::Array::New(env, res.size());
    for (size_t k = 0; k < res.size(); k++) arr.Set(static_cast<uint32_t>(k), Wrap(env, res[k]));
    return arr;
  })
  return env.Undefined();
}

void InitCheckpoint(Napi::Env env, Napi::Object exports) {
  exports.Set("setRecomputeCallback", Napi::Function::New(env, SetRecomputeCallback));
  exports.Set("attachRecompute", Napi::Function::New(env, AttachRecompute));
}

}  // namespace misfm

// c10d process groups for data-parallel training: a TCPStore rendezvous, ProcessGroupGloo (CPU) or
// ProcessGroupNCCL (CUDA builds), and the four collectives misfm needs, each returning a promise.
//
// Nothing here knows about training: TS decides what to reduce and when. The rendezvous follows
// torch.distributed's default group exactly (TCPStore -> PrefixStore("default_pg") -> PrefixStore("0"),
// then the store-based barrier and the group's sequence number), so a misfm rank and a
// `torch.distributed.init_process_group("gloo", ...)` rank can form one group.
#include "handle.h"

// The Gloo headers are guarded by the macro PyTorch builds with; Debian's libtorch has Gloo (with
// libgloo-dev). A LibTorch whose include folder lacks gloo/ builds without the Gloo backend.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#if __has_include(<gloo/algorithm.h>)
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#define MISFM_HAS_GLOO 1
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef MISFM_WITH_CUDA
#if __has_include(<torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>)
#ifndef USE_C10D_NCCL
#define USE_C10D_NCCL 1
#endif
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define MISFM_HAS_NCCL 1
#endif
#endif

#include <torch/version.h>
#include <chrono>
#include <thread>

namespace misfm {

// LibTorch 2.x split the process group into a dispatching ProcessGroup and per-device Backends;
// ProcessGroupGloo/NCCL are Backends there (ProcessGroups in 1.x) with the same collective calls.
#if TORCH_VERSION_MAJOR >= 2
using PgBase = c10d::Backend;
#else
using PgBase = c10d::ProcessGroup;
#endif

struct GroupBox {
  c10::intrusive_ptr<c10d::Store> store;       // the TCPStore (kept for the server's lifetime)
  c10::intrusive_ptr<PgBase> pg;               // null once destroyed
  int rank = 0;
  int size = 1;
  std::string backend;
};

static GroupBox* UnwrapGroup(Napi::Env env, const Napi::Value& v, const char* what) {
  if (!v.IsExternal()) throw Napi::TypeError::New(env, std::string(what) + ": expected a process group handle");
  auto* g = v.As<Napi::External<GroupBox>>().Data();
  if (!g->pg) throw Napi::Error::New(env, std::string(what) + ": the process group was destroyed");
  return g;
}

// ---- rendezvous (blocking work on a libuv pool thread) ---------------------------------------

class InitWorker : public Napi::AsyncWorker {
 public:
  InitWorker(Napi::Env env, std::string host, int port, int rank, int size, int64_t timeoutMs, std::string backend)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), host_(std::move(host)), port_(port),
        rank_(rank), size_(size), timeoutMs_(timeoutMs), backend_(std::move(backend)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    try {
      auto timeout = std::chrono::milliseconds(timeoutMs_);
      c10d::TCPStoreOptions so;
      so.port = static_cast<std::uint16_t>(port_);
      so.isServer = rank_ == 0;
      so.numWorkers = static_cast<std::size_t>(size_);
      so.waitWorkers = true;
      so.timeout = timeout;
      so.multiTenant = true;
      auto tcp = c10::make_intrusive<c10d::TCPStore>(host_, so);
      tcp->setTimeout(timeout);
      c10::intrusive_ptr<c10d::Store> defaultPg = c10::make_intrusive<c10d::PrefixStore>("default_pg", tcp);
      c10::intrusive_ptr<c10d::Store> groupStore = c10::make_intrusive<c10d::PrefixStore>("0", defaultPg);
      c10::intrusive_ptr<PgBase> pg;
      if (backend_ == "gloo") {
#ifdef MISFM_HAS_GLOO
        auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
        const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
        if (ifname != nullptr && *ifname != '\0') opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
        else opts->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
        opts->threads = 2;
        pg = c10::make_intrusive<c10d::ProcessGroupGloo>(groupStore, rank_, size_, opts);
#else
        throw std::runtime_error("this build of the addon has no Gloo (its LibTorch ships no gloo headers)");
#endif
      } else if (backend_ == "nccl") {
#ifdef MISFM_HAS_NCCL
        auto opts = c10d::ProcessGroupNCCL::Options::create();
        opts->timeout = timeout;
        pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(groupStore, rank_, size_, opts);
#else
        throw std::runtime_error("this build of the addon has no NCCL (build against a CUDA LibTorch, see the README's GPU section)");
#endif
      } else {
        throw std::runtime_error("unknown backend '" + backend_ + "' (gloo or nccl)");
      }
      // torch.distributed's store-based barrier after init_process_group (group counter 1).
      const std::string key = "store_based_barrier_key:1";
      defaultPg->add(key, 1);
      auto start = std::chrono::steady_clock::now();
      while (defaultPg->add(key, 0) != size_) {
        if (std::chrono::steady_clock::now() - start > timeout) {
          throw std::runtime_error("timed out after " + std::to_string(timeoutMs_) + " ms waiting for all " + std::to_string(size_) + " ranks to join");
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      pg->setSequenceNumberForGroup();
      box_ = new GroupBox{tcp, pg, rank_, size_, backend_};
    } catch (const c10::Error& e) {
      SetError(e.what_without_backtrace());
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override {
    deferred_.Resolve(Napi::External<GroupBox>::New(Env(), box_, [](Napi::Env, GroupBox* g) { delete g; }));
  }
  void OnError(const Napi::Error& e) override {
    std::string msg = e.Message();
    auto pos = msg.find("\nException raised from");
    if (pos != std::string::npos) msg = msg.substr(0, pos);
    deferred_.Reject(Napi::Error::New(Env(), "process group rendezvous: " + msg).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string host_;
  int port_, rank_, size_;
  int64_t timeoutMs_;
  std::string backend_;
  GroupBox* box_ = nullptr;
};

// distInit({host, port, rank, worldSize, timeoutMs, backend}) -> Promise<group>
static Napi::Value DistInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = info[0].As<Napi::Object>();
  auto* w = new InitWorker(env, o.Get("host").As<Napi::String>().Utf8Value(), o.Get("port").As<Napi::Number>().Int32Value(),
                           o.Get("rank").As<Napi::Number>().Int32Value(), o.Get("worldSize").As<Napi::Number>().Int32Value(),
                           o.Get("timeoutMs").As<Napi::Number>().Int64Value(), o.Get("backend").As<Napi::String>().Utf8Value());
  auto p = w->Promise();
  w->Queue();
  return p;
}

// ---- collectives: enqueued on the JS thread, completed by the backend's threads --------------

// Completion of one collective: the backend's future calls back on its own thread; a thread-safe
// function brings the result to the JS thread, where the promise settles.
struct Pending {
  Napi::Promise::Deferred deferred;
  c10::intrusive_ptr<c10d::Work> work;       // keeps the tensors alive until completion
  std::vector<at::Tensor> results;           // tensors handed to JS on success (all-gather)
  std::string error;
  std::string what;
};

static Napi::Value Complete(Napi::Env env, c10::intrusive_ptr<c10d::Work> work, std::vector<at::Tensor> results, const char* what) {
  auto* p = new Pending{Napi::Promise::Deferred::New(env), work, std::move(results), "", what};
  auto promise = p->deferred.Promise();
  auto tsfn = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), what, 0, 1);
  auto fut = work->getFuture();
  fut->addCallback([p, tsfn](c10::ivalue::Future& f) mutable {
    if (f.hasError()) {
      try { std::rethrow_exception(f.exception_ptr()); }
      catch (const c10::Error& e) { p->error = e.what_without_backtrace(); }
      catch (const std::exception& e) { p->error = e.what(); }
      catch (...) { p->error = "unknown error"; }
    }
    tsfn.BlockingCall(p, [](Napi::Env env, Napi::Function, Pending* p) {
      if (!p->error.empty()) {
        std::string msg = p->error;
        auto pos = msg.find("\nException raised from");
        if (pos != std::string::npos) msg = msg.substr(0, pos);
        p->deferred.Reject(Napi::Error::New(env, p->what + ": " + msg).Value());
      } else if (!p->results.empty()) {
        auto arr = Napi::Array::New(env, p->results.size());
        for (size_t i = 0; i < p->results.size(); i++) arr.Set(static_cast<uint32_t>(i), Wrap(env, p->results[i]));
        p->deferred.Resolve(arr);
      } else {
        p->deferred.Resolve(env.Undefined());
      }
      delete p;
    });
    tsfn.Release();
  });
  return promise;
}

static c10d::ReduceOp ToReduceOp(Napi::Env env, const std::string& s) {
  if (s == "sum") return c10d::ReduceOp::SUM;
  if (s == "max") return c10d::ReduceOp::MAX;
  if (s == "min") return c10d::ReduceOp::MIN;
  if (s == "product") return c10d::ReduceOp::PRODUCT;
  throw Napi::Error::New(env, "allReduce: unknown reduce op '" + s + "' (sum, max, min, product)");
}

// allReduce(group, tensor, op), started: the promise and the blocking forms differ only in how they wait.
static c10::intrusive_ptr<c10d::Work> StartAllReduce(Napi::Env env, const Napi::CallbackInfo& info) {
  auto* g = UnwrapGroup(env, info[0], "allReduce");
  std::vector<at::Tensor> ts{Unwrap(env, info[1], "allReduce")};
  c10d::AllreduceOptions opts;
  opts.reduceOp = ToReduceOp(env, info[2].As<Napi::String>().Utf8Value());
  return g->pg->allreduce(ts, opts);
}

// distAllReduce(group, tensor, op) -> Promise<void>; in place
static Napi::Value DistAllReduce(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "allReduce", { return Complete(env, StartAllReduce(env, info), {}, "allReduce"); })
  return env.Undefined();
}

// distAllReduceBlocking(group, tensor, op): in place, waits on this thread. Only for collectives
// that must finish inside a synchronous computation (SyncBatchNorm's statistics in forward and
// backward); everything else uses the promise form.
static Napi::Value DistAllReduceBlocking(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "allReduce", { StartAllReduce(env, info)->wait(); })
  return env.Undefined();
}

// distBroadcast(group, tensor, root) -> Promise<void>; in place
static Napi::Value DistBroadcast(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "broadcast", {
    auto* g = UnwrapGroup(env, info[0], "broadcast");
    std::vector<at::Tensor> ts{Unwrap(env, info[1], "broadcast")};
    c10d::BroadcastOptions opts;
    opts.rootRank = info[2].As<Napi::Number>().Int32Value();
    auto work = g->pg->broadcast(ts, opts);
    return Complete(env, work, {}, "broadcast");
  })
  return env.Undefined();
}

// distAllGather(group, tensor) -> Promise<handle[]> (one tensor per rank, in rank order)
static Napi::Value DistAllGather(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "allGather", {
    auto* g = UnwrapGroup(env, info[0], "allGather");
    at::Tensor in = Unwrap(env, info[1], "allGather").contiguous();
    std::vector<at::Tensor> outs;
    for (int i = 0; i < g->size; i++) outs.push_back(at::empty_like(in));
    std::vector<std::vector<at::Tensor>> outputs{outs};
    std::vector<at::Tensor> inputs{in};
    auto work = g->pg->allgather(outputs, inputs);
    return Complete(env, work, outs, "allGather");
  })
  return env.Undefined();
}

// distBarrier(group) -> Promise<void>
static Napi::Value DistBarrier(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  MISFM_TRY(env, "barrier", {
    auto* g = UnwrapGroup(env, info[0], "barrier");
    auto work = g->pg->barrier();
    return Complete(env, work, {}, "barrier");
  })
  return env.Undefined();
}

// distDestroy(group): drop the process group (closes its connections) and the store.
static Napi::Value DistDestroy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsExternal()) throw Napi::TypeError::New(env, "destroy: expected a process group handle");
  auto* g = info[0].As<Napi::External<GroupBox>>().Data();
  g->pg.reset();
  g->store.reset();
  return env.Undefined();
}

// distBackends() -> { gloo: boolean, nccl: boolean }
static Napi::Value DistBackends(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto o = Napi::Object::New(env);
#ifdef MISFM_HAS_GLOO
  o.Set("gloo", Napi::Boolean::New(env, true));
#else
  o.Set("gloo", Napi::Boolean::New(env, false));
#endif
#ifdef MISFM_HAS_NCCL
  o.Set("nccl", Napi::Boolean::New(env, true));
#else
  o.Set("nccl", Napi::Boolean::New(env, false));
#endif
  return o;
}

void InitDist(Napi::Env env, Napi::Object exports) {
  exports.Set("distInit", Napi::Function::New(env, DistInit));
  exports.Set("distAllReduce", Napi::Function::New(env, DistAllReduce));
  exports.Set("distAllReduceBlocking", Napi::Function::New(env, DistAllReduceBlocking));
  exports.Set("distBroadcast", Napi::Function::New(env, DistBroadcast));
  exports.Set("distAllGather", Napi::Function::New(env, DistAllGather));
  exports.Set("distBarrier", Napi::Function::New(env, DistBarrier));
  exports.Set("distDestroy", Napi::Function::New(env, DistDestroy));
  exports.Set("distBackends", Napi::Function::New(env, DistBackends));
}

}  // namespace misfm

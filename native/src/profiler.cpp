// An op-level profiler over libtorch's RecordFunction callbacks, for `ldm bench … --profile`.
//
// Only the top-level operators of the thread that starts the profiler are timed: an operator that another
// one calls (at::linear → addmm, at::group_norm → native_group_norm, the matmuls inside the blocked
// attention) runs inside its caller's time and is not counted again, and the intra-op worker threads run
// inside the calling operator too. So the entries never overlap, and their sum is at most the wall time of
// what ran meanwhile; the difference is the time spent outside libtorch's operators (C#, the binding).
#include "common.h"
#include <ATen/record_function.h>
#include <algorithm>
#include <chrono>
#include <mutex>
#include <sstream>
#include <unordered_map>

namespace {

struct Entry {
  int64_t calls = 0;
  int64_t ns = 0;
  double flops = 0;  // summed over the calls whose FLOPs are known
  int64_t flop_calls = 0;
};

struct Profile {
  std::mutex mutex;
  std::unordered_map<std::string, Entry> entries;
  std::vector<std::pair<std::string, Entry>> snapshot;  // sorted by time, longest first
  at::CallbackHandle handle = 0;
  uint64_t thread = 0;
  bool by_shape = false;
};
Profile& profile() {
  static Profile p;
  return p;
}

thread_local int depth = 0;

struct Context : at::ObserverContext {
  std::chrono::steady_clock::time_point start;
  std::string key;
  int64_t reduction = 0;  // multiply-accumulates per output element (0: unknown)
  double fixed_flops = -1;  // FLOPs known from the inputs alone
  bool top = false;
};

std::string shapes(const at::RecordFunction& fn) {
  std::ostringstream s;
  bool first = true;
  for (const auto& v : fn.inputs()) {
    if (!v.isTensor()) continue;
    const auto& t = v.toTensor();
    s << (first ? " " : ", ");
    first = false;
    if (!t.defined()) { s << "-"; continue; }
    s << "[";
    for (int64_t d = 0; d < t.dim(); d++) s << (d ? "x" : "") << t.size(d);
    s << "]";
  }
  return s.str();
}

const at::Tensor* input(const at::RecordFunction& fn, size_t i) {
  auto in = fn.inputs();
  if (i >= in.size() || !in[i].isTensor() || !in[i].toTensor().defined()) return nullptr;
  return &in[i].toTensor();
}

// Multiply-accumulates per output element of the operators whose work is a product: convolutions
// (Cin/groups · kh · kw, from the weight, dense or oneDNN-packed), linear layers and matrix products (the
// inner dimension). 0 for everything else.
int64_t reduction_size(const std::string& name, const at::RecordFunction& fn) {
  auto is = [&](const char* n) { return name == n; };
  if (name.find("convolution") != std::string::npos || is("aten::conv2d") || is("aten::conv1d")) {
    auto w = input(fn, 1);
    if (!w || w->dim() < 3) return 0;
    int64_t r = 1;
    for (int64_t d = w->dim() - 3; d < w->dim(); d++) r *= w->size(d);  // Cin/groups · kh · kw
    return r;
  }
  if (is("aten::mm") || is("aten::matmul") || is("aten::bmm")) {
    auto a = input(fn, 0);
    return a && a->dim() >= 1 ? a->size(-1) : 0;
  }
  if (is("aten::addmm") || is("aten::baddbmm") || is("aten::addbmm")) {
    auto a = input(fn, 1);
    return a && a->dim() >= 1 ? a->size(-1) : 0;
  }
  return 0;
}

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction& fn) {
  auto& p = profile();
  if (at::RecordFunction::currentThreadId() != p.thread) return nullptr;
  if (depth++ > 0) return nullptr;
  auto ctx = std::make_unique<Context>();
  ctx->top = true;
  ctx->key = fn.name();
  ctx->reduction = reduction_size(ctx->key, fn);
  if (ctx->key == "aten::linear" || ctx->key == "ld::linear_onednn" || ctx->key == "ld::linear_prepacked") {
    // x [..., K] · wᵀ, w [N, K] (prepacked: a [N, K, 1, 1] kernel): 2·(rows·K)·N.
    auto x = input(fn, 0), w = input(fn, 1);
    if (x && w && (w->dim() == 2 || w->dim() == 4)) ctx->fixed_flops = 2.0 * static_cast<double>(x->numel()) * static_cast<double>(w->size(0));
  }
  if (ctx->key == "ld::convolution_matmul") {
    // onednn.cpp records the output's shape as a third input (a C++ function has no recorded outputs).
    auto out = input(fn, 2);
    if (out && ctx->reduction > 0) ctx->fixed_flops = 2.0 * static_cast<double>(ctx->reduction) * static_cast<double>(out->numel());
  }
  if (ctx->key == "ld::attention") {
    // softmax(q kᵀ) v over [B, L, E] queries, [B, S, E] keys and [B, S, Ev] values: 2·B·L·S·(E + Ev).
    auto q = input(fn, 0), k = input(fn, 1), v = input(fn, 2);
    if (q && k && v) {
      double b = static_cast<double>(q->numel() / (q->size(-1) * q->size(-2)));
      ctx->fixed_flops = 2.0 * b * q->size(-2) * k->size(-2) * (q->size(-1) + v->size(-1));
    }
  }
  if (p.by_shape) ctx->key += shapes(fn);
  ctx->start = std::chrono::steady_clock::now();
  return ctx;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* raw) {
  auto& p = profile();
  if (at::RecordFunction::currentThreadId() != p.thread) return;
  depth = std::max(0, depth - 1);
  auto* ctx = static_cast<Context*>(raw);
  if (!ctx || !ctx->top) return;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - ctx->start).count();
  double flops = ctx->fixed_flops;
  if (flops < 0 && ctx->reduction > 0 && !fn.outputs().empty() && fn.outputs()[0].isTensor())
    flops = 2.0 * static_cast<double>(ctx->reduction) * static_cast<double>(fn.outputs()[0].toTensor().numel());
  std::lock_guard<std::mutex> lock(p.mutex);
  auto& e = p.entries[ctx->key];
  e.calls++;
  e.ns += ns;
  if (flops >= 0) {
    e.flops += flops;
    e.flop_calls++;
  }
}

}  // namespace

extern "C" {

LD_API int ld_profiler_start(int by_shape) {
  LD_STATUS("profiler_start", {
    auto& p = profile();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (p.handle != 0) throw std::runtime_error("the profiler is already running");
    p.entries.clear();
    p.snapshot.clear();
    p.by_shape = by_shape != 0;
    p.thread = at::RecordFunction::currentThreadId();
    depth = 0;
    // Thread-local: the callbacks run on this thread only (other threads pay nothing).
    p.handle = at::addThreadLocalCallback(at::RecordFunctionCallback(on_start, on_end)
                                              .needsInputs(true)
                                              .needsOutputs(true)
                                              .scopes({at::RecordScope::FUNCTION}));
  })
}

// Stops recording (on the thread that started it) and keeps the entries for ld_profiler_entry; returns their count.
LD_API int ld_profiler_stop(void) {
  LD_GUARD("profiler_stop", -1, {
    auto& p = profile();
    if (p.handle == 0) throw std::runtime_error("the profiler is not running");
    if (at::RecordFunction::currentThreadId() != p.thread)
      throw std::runtime_error("the profiler must be stopped on the thread that started it");
    at::removeCallback(p.handle);
    std::lock_guard<std::mutex> lock(p.mutex);
    p.handle = 0;
    p.snapshot.assign(p.entries.begin(), p.entries.end());
    p.entries.clear();
    std::sort(p.snapshot.begin(), p.snapshot.end(), [](const auto& a, const auto& b) { return a.second.ns > b.second.ns; });
    return static_cast<int>(p.snapshot.size());
  })
}

LD_API int ld_profiler_entry(int index, char* name, int cap, int64_t* calls, int64_t* total_ns, double* flops) {
  LD_STATUS("profiler_entry", {
    auto& p = profile();
    std::lock_guard<std::mutex> lock(p.mutex);
    if (index < 0 || static_cast<size_t>(index) >= p.snapshot.size())
      throw std::out_of_range("no profiler entry " + std::to_string(index));
    const auto& [key, e] = p.snapshot[static_cast<size_t>(index)];
    if (cap > 0) {
      auto n = std::min<size_t>(key.size(), static_cast<size_t>(cap - 1));
      std::copy_n(key.data(), n, name);
      name[n] = '\0';
    }
    *calls = e.calls;
    *total_ns = e.ns;
    // Known only when every call's FLOPs were.
    *flops = e.flop_calls == e.calls ? e.flops : -1;
  })
}

}  // extern "C"

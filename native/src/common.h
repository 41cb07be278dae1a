// Internal helpers shared by the native sources: the handle type, error capture and argument conversion.
#pragma once
#include <ATen/ATen.h>
#include <torch/version.h>
#include <atomic>
#include <string>
#include <vector>
#include "ldtorch.h"

struct ld_tensor {
  at::Tensor t;
  explicit ld_tensor(at::Tensor tensor);
  ~ld_tensor();
};

namespace ld {

std::atomic<int64_t>& live_counter();
void set_error(const char* op, const char* message);

inline ld_tensor* wrap(at::Tensor t) { return new ld_tensor(std::move(t)); }
inline at::Tensor& T(ld_tensor* h) {
  if (!h) throw std::invalid_argument("null tensor handle");
  return h->t;
}
inline c10::optional<at::Tensor> opt(ld_tensor* h) {
  return h ? c10::optional<at::Tensor>(h->t) : c10::nullopt;
}
inline at::IntArrayRef dims(const int64_t* p, int n) { return at::IntArrayRef(p, static_cast<size_t>(n)); }
inline at::Device device(int type, int index) {
  if (type == 0) return at::Device(at::kCPU);
  if (type == 1) return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}
at::ScalarType dtype(int code);
at::TensorOptions options(int dtype_code, int device_type, int device_index);
c10::optional<at::Generator> generator(ld_generator* g);
std::vector<at::Tensor> tensors(ld_tensor** list, int n);

// GroupNorm without the fused kernel (nn.cpp: at::group_norm, in f32 for bf16 without autograd), and through the fused
// inference kernel where it applies, else nullopt (groupnorm.cpp).
at::Tensor group_norm_reference(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                                const c10::optional<at::Tensor>& b, double eps);
c10::optional<at::Tensor> group_norm_fused(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                                           const c10::optional<at::Tensor>& b, double eps);
// LayerNorm through the fused inference kernel where it applies (layernorm.cpp: CPU f32/bf16 without autograd, the
// kernel switched on and AVX-512 present), else nullopt.
c10::optional<at::Tensor> layer_norm_fused(const at::Tensor& x, at::IntArrayRef shape, const c10::optional<at::Tensor>& w,
                                           const c10::optional<at::Tensor>& b, double eps);

}  // namespace ld

// Wraps a body so that no exception escapes: on failure the error is recorded under `op`
// and `fail` is returned.
#define LD_GUARD(op, fail, ...)                                            \
  try {                                                                     \
    __VA_ARGS__                                                             \
  } catch (const c10::Error& e) {                                           \
    ld::set_error(op, e.what_without_backtrace());                          \
  } catch (const std::exception& e) {                                       \
    ld::set_error(op, e.what());                                            \
  } catch (...) {                                                           \
    ld::set_error(op, "unknown C++ exception");                             \
  }                                                                         \
  return fail;

#define LD_TENSOR(op, ...) LD_GUARD(op, nullptr, { return ld::wrap(__VA_ARGS__); })
#define LD_STATUS(op, ...) LD_GUARD(op, -1, { __VA_ARGS__; return 0; })

namespace ld {
// Pauses the cache of large CPU blocks (allocator.cpp) for a scope: prepacking a weight makes a weight-sized dense
// temporary (to_mkldnn) that the cache would otherwise keep after the packed copy is made, and the weights of a whole
// model packed one after the other left ~200 MB of such blocks cached (SD1.5 U-Net f32 peak 3,935 MB against 3,727
// with the cache off). Paused, they are unmapped when freed; the first pause empties the cache.
struct CpuCachePause {
  CpuCachePause() { ld_cpu_cache_pause(1); }
  ~CpuCachePause() { ld_cpu_cache_pause(0); }
  CpuCachePause(const CpuCachePause&) = delete;
  CpuCachePause& operator=(const CpuCachePause&) = delete;
};
}  // namespace ld

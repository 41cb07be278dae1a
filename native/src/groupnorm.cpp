// Inference GroupNorm (+ optional SiLU) over contiguous [N, C, *spatial] f32 or bf16, one pass over the output.
//
// Why: libtorch 1.13's bf16 CPU norms are 7–9× slower than its f32 ones, so nn.cpp computes a bf16 GroupNorm in f32
// (convert, at::group_norm, convert back) and the SiLU that follows is another read and write of the activation. In
// the bf16 512² VAE decode those conversions took ~272 ms and the in-place SiLU ~290 ms of a ~4.6 s decode (issue 19).
// Here bf16 is read and written directly (f32 math, round to nearest even on store, as c10::BFloat16 does) and the
// SiLU is applied to each value before it is stored.
//
// Determinism: every (n, group) is normalised by one thread, its statistics summed in one fixed order (16-lane f32
// partial sums over chunks of at most kChunk values, each chunk then added into 8 double lanes, those reduced in a
// fixed order), so results do not depend on the thread count. Statistics are two-pass (the mean, then the squared
// deviations from it) and accumulate in double across chunks, so a large offset (1e4 + small noise) keeps its
// variance. A group holding an inf or NaN normalises to NaN, as at::group_norm does.
//
// The AVX-512 kernel is chosen at run time (__builtin_cpu_supports); elsewhere, with autograd, on CUDA, or with
// LDTORCH_FUSED_NORM=0 (or ld_fused_norm_set(0)) the previous path runs: at::group_norm (in f32 for bf16) and SiLU.
#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <immintrin.h>
#include "norm_simd.h"
#include "simd_exp.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace {

using namespace ld::norm;

std::atomic<int>& fused_state() {
  static std::atomic<int> state{[] {
    const char* v = std::getenv("LDTORCH_FUSED_NORM");
    return (v && std::string(v) == "0") ? 0 : 1;
  }()};
  return state;
}

bool cpu_has_avx512() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

bool fused_enabled() { return fused_state().load(std::memory_order_relaxed) != 0 && cpu_has_avx512(); }

// silu(y) = y / (1 + e^-y), as at::silu computes it.
LD_AVX512 inline __m512 silu16(__m512 y) {
  const __m512 e = ld::exp512(_mm512_sub_ps(_mm512_setzero_ps(), y));
  return _mm512_div_ps(y, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// One (n, group): its Cg channels of S values each are the contiguous x[0 .. Cg·S).
template <typename T, typename P>
LD_AVX512 void normalize_group(const T* x, T* y, int64_t Cg, int64_t S, const P* gamma, const P* beta, double eps,
                               bool silu) {
  const Stats st = two_pass_stats(x, Cg * S, eps);
  // y = (x − m)·a + b with a = rstd·γ, b = β − dmean·a: x − m is exact near the mean, so a large offset (1e4 + small
  // noise) keeps its digits, where at::group_norm's x·a + (β − mean·a) loses them.
  const __m512 m = _mm512_set1_ps(st.mean);
  for (int64_t c = 0; c < Cg; ++c) {
    const float scale = st.finite ? st.rstd * (gamma ? static_cast<float>(gamma[c]) : 1.0f) : NAN;
    const float shift = st.finite ? (beta ? static_cast<float>(beta[c]) : 0.0f) - static_cast<float>(st.dmean) * scale : NAN;
    const __m512 a = _mm512_set1_ps(scale), b = _mm512_set1_ps(shift);
    const T* xc = x + c * S;
    T* yc = y + c * S;
    for (int64_t i = 0; i < S; i += 16) {
      const int64_t n = std::min<int64_t>(16, S - i);
      __m512 v = _mm512_fmadd_ps(_mm512_sub_ps(load16(xc + i, n), m), a, b);
      if (silu) v = silu16(v);
      store16(yc + i, v, n);
    }
  }
}

template <typename T, typename P>
void group_norm_kernel(const T* x, T* y, int64_t N, int64_t C, int64_t S, int64_t groups, const P* gamma,
                       const P* beta, double eps, bool silu) {
  const int64_t Cg = C / groups, tasks = N * groups;
  // One (sample, group) per task, as the other kernels split their rows: small inputs (under ~16 K values) stay on
  // one thread.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, Cg * S));
  at::parallel_for(0, tasks, grain, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) {
      const int64_t g = t % groups;
      normalize_group(x + t * Cg * S, y + t * Cg * S, Cg, S, gamma ? gamma + g * Cg : nullptr,
                      beta ? beta + g * Cg : nullptr, eps, silu);
    }
  });
}

bool param_ok(const c10::optional<at::Tensor>& p, int64_t C) {
  return !p || (p->device().is_cpu() && p->dim() == 1 && p->size(0) == C && at::isFloatingType(p->scalar_type()));
}

// Whether the fused kernel computes this call; otherwise the previous path does.
bool fused_applies(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                   const c10::optional<at::Tensor>& b) {
  if (!fused_enabled()) return false;
  if (!x.device().is_cpu() || x.dim() < 2 || x.numel() == 0 || groups <= 0) return false;
  if (x.scalar_type() != at::kBFloat16 && x.scalar_type() != at::kFloat) return false;
  if (x.size(1) % groups != 0 || !param_ok(w, x.size(1)) || !param_ok(b, x.size(1))) return false;
  return !(at::GradMode::is_enabled() && (x.requires_grad() || (w && w->requires_grad()) || (b && b->requires_grad())));
}

at::Tensor fused_group_norm(const at::Tensor& input, int64_t groups, const c10::optional<at::Tensor>& w,
                            const c10::optional<at::Tensor>& b, double eps, bool silu) {
  RECORD_FUNCTION(silu ? "ld::group_norm_silu" : "ld::group_norm", std::vector<c10::IValue>({input}));
  const auto x = input.contiguous();
  auto y = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  // bf16 weights are read as they are (affine_params): no f32 copy of them per call.
  const auto [W, B] = affine_params(w, b);
  with_typed_pointers(x, y, W, B, [&](const auto* xp, auto* yp, const auto* gamma, const auto* beta) {
    group_norm_kernel(xp, yp, N, C, S, groups, gamma, beta, eps, silu);
  });
  return y;
}

}  // namespace

namespace ld {
bool fused_norm_enabled() { return fused_enabled(); }

c10::optional<at::Tensor> group_norm_fused(const at::Tensor& x, int64_t groups, const c10::optional<at::Tensor>& w,
                                           const c10::optional<at::Tensor>& b, double eps) {
  if (!fused_applies(x, groups, w, b)) return c10::nullopt;
  return fused_group_norm(x, groups, w, b, eps, false);
}
}  // namespace ld

extern "C" {
LD_API ld_tensor* ld_group_norm_silu(ld_tensor* x, int64_t groups, ld_tensor* w, ld_tensor* b, double eps, int silu) {
  LD_GUARD("group_norm_silu", nullptr, {
    auto& X = ld::T(x);
    auto W = ld::opt(w), B = ld::opt(b);
    if (fused_applies(X, groups, W, B)) return ld::wrap(fused_group_norm(X, groups, W, B, eps, silu != 0));
    auto y = ld::group_norm_reference(X, groups, W, B, eps);
    if (silu == 0) return ld::wrap(std::move(y));
    // Without autograd the fresh result takes SiLU in place, as ResnetBlock2D did before.
    if (at::GradMode::is_enabled() && y.requires_grad()) return ld::wrap(at::silu(y));
    return ld::wrap(at::silu_(y));
  })
}

LD_API int ld_fused_norm_set(int mode) {
  if (mode == 0 || mode == 1) fused_state().store(mode);
  return fused_enabled() ? 1 : 0;
}
}  // extern "C"

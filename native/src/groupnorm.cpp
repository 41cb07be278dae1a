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
#include "simd_exp.h"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace {

constexpr int64_t kChunk = 1024;  // values summed in f32 lanes before they are added into double

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

#define LD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

// Loads 16 values (or the first `n` of them, the rest zero) as f32.
LD_AVX512 inline __m512 load16(const float* p, int64_t n) {
  if (n >= 16) return _mm512_loadu_ps(p);
  return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1), p);
}
LD_AVX512 inline __m512 load16(const c10::BFloat16* p, int64_t n) {
  __m256i h = n >= 16 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                      : _mm256_maskz_loadu_epi16(static_cast<__mmask16>((1u << n) - 1), p);
  // The zero-masked forms: GCC 12 warns that the plain ones' _mm512_undefined_epi32 may be used uninitialised.
  const __mmask16 all = 0xFFFF;
  return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(all, _mm512_maskz_cvtepu16_epi32(all, h), 16));
}
LD_AVX512 inline void store16(float* p, __m512 v, int64_t n) {
  if (n >= 16) _mm512_storeu_ps(p, v);
  else _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1), v);
}
// Round to nearest even, NaN → 0x7FC0: c10::BFloat16's rounding, bit for bit.
LD_AVX512 inline void store16(c10::BFloat16* p, __m512 v, int64_t n) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  const __m256i h = _mm512_cvtepi32_epi16(r);
  if (n >= 16) _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), h);
  else _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((1u << n) - 1), h);
}


// silu(y) = y / (1 + e^-y), as at::silu computes it.
LD_AVX512 inline __m512 silu16(__m512 y) {
  const __m512 e = ld::exp512(_mm512_sub_ps(_mm512_setzero_ps(), y));
  return _mm512_div_ps(y, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

// Sum of 8 double lanes in a fixed order.
LD_AVX512 inline double hsum(__m512d v) {
  alignas(64) double lanes[8];
  _mm512_store_pd(lanes, v);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}
LD_AVX512 inline __m512d widen_add(__m512d acc, __m512 v) {
  acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
  return _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
}

// Σ (x − center) and, with squares, Σ (x − center)² over len values, in the fixed order described at the top.
template <typename T>
LD_AVX512 void moments(const T* x, int64_t len, float center, bool squares, double& sum, double& sq) {
  __m512d acc = _mm512_setzero_pd(), acc2 = _mm512_setzero_pd();
  const __m512 c = _mm512_set1_ps(center);
  for (int64_t start = 0; start < len; start += kChunk) {
    const int64_t end = std::min(len, start + kChunk);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), q0 = _mm512_setzero_ps(), q1 = _mm512_setzero_ps();
    int64_t i = start;
    for (; i + 32 <= end; i += 32) {
      const __m512 a = _mm512_sub_ps(load16(x + i, 16), c), b = _mm512_sub_ps(load16(x + i + 16, 16), c);
      s0 = _mm512_add_ps(s0, a);
      s1 = _mm512_add_ps(s1, b);
      if (squares) {
        q0 = _mm512_fmadd_ps(a, a, q0);
        q1 = _mm512_fmadd_ps(b, b, q1);
      }
    }
    for (; i < end; i += 16) {
      const int64_t n = std::min<int64_t>(16, end - i);
      // Masked-off lanes load 0; subtracting the center would count them, so they are zeroed again.
      const __mmask16 m = n >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
      const __m512 a = _mm512_maskz_sub_ps(m, load16(x + i, n), c);
      s0 = _mm512_add_ps(s0, a);
      if (squares) q0 = _mm512_fmadd_ps(a, a, q0);
    }
    acc = widen_add(acc, _mm512_add_ps(s0, s1));
    if (squares) acc2 = widen_add(acc2, _mm512_add_ps(q0, q1));
  }
  sum = hsum(acc);
  sq = hsum(acc2);
}

// One (n, group): its Cg channels of S values each are the contiguous x[0 .. Cg·S).
template <typename T>
LD_AVX512 void normalize_group(const T* x, T* y, int64_t Cg, int64_t S, const float* gamma, const float* beta,
                               double eps, bool silu) {
  const int64_t len = Cg * S;
  double sum = 0, sq = 0, dsum = 0;
  moments(x, len, 0.0f, false, sum, sq);
  const float mean = static_cast<float>(sum / static_cast<double>(len));
  moments(x, len, mean, true, dsum, sq);
  const double dmean = dsum / static_cast<double>(len);
  // Biased variance about the exact mean m + dmean (m the f32 mean): E[(x − m)²] − dmean².
  const double var = std::max(0.0, sq / static_cast<double>(len) - dmean * dmean);
  const float rstd = static_cast<float>(1.0 / std::sqrt(var + eps));
  // A non-finite sum makes the whole group NaN, as in at::group_norm.
  const bool finite = std::isfinite(sum) && std::isfinite(sq);
  // y = (x − m)·a + b with a = rstd·γ, b = β − dmean·a: x − m is exact near the mean, so a large offset (1e4 + small
  // noise) keeps its digits, where at::group_norm's x·a + (β − mean·a) loses them.
  const __m512 m = _mm512_set1_ps(mean);
  for (int64_t c = 0; c < Cg; ++c) {
    const float scale = finite ? rstd * (gamma ? gamma[c] : 1.0f) : NAN;
    const float shift = finite ? (beta ? beta[c] : 0.0f) - static_cast<float>(dmean) * scale : NAN;
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

template <typename T>
void group_norm_kernel(const T* x, T* y, int64_t N, int64_t C, int64_t S, int64_t groups, const float* gamma,
                       const float* beta, double eps, bool silu) {
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

c10::optional<at::Tensor> f32(const c10::optional<at::Tensor>& t) {
  return t ? c10::optional<at::Tensor>(t->to(at::kFloat).contiguous()) : c10::nullopt;
}

at::Tensor fused_group_norm(const at::Tensor& input, int64_t groups, const c10::optional<at::Tensor>& w,
                            const c10::optional<at::Tensor>& b, double eps, bool silu) {
  RECORD_FUNCTION(silu ? "ld::group_norm_silu" : "ld::group_norm", std::vector<c10::IValue>({input}));
  const auto x = input.contiguous();
  auto y = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t N = x.size(0), C = x.size(1), S = x.numel() / (N * C);
  const auto W = f32(w), B = f32(b);
  const float* gamma = W ? W->data_ptr<float>() : nullptr;
  const float* beta = B ? B->data_ptr<float>() : nullptr;
  if (x.scalar_type() == at::kFloat)
    group_norm_kernel(x.data_ptr<float>(), y.data_ptr<float>(), N, C, S, groups, gamma, beta, eps, silu);
  else
    group_norm_kernel(x.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), N, C, S, groups, gamma, beta, eps, silu);
  return y;
}

}  // namespace

namespace ld {
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

// What the fused inference norms share (groupnorm.cpp, layernorm.cpp): their on/off switch (LDTORCH_FUSED_NORM=0 or
// ld_fused_norm_set(0) turns both off; off too where the CPU lacks AVX-512) and the AVX-512 pieces of their one-pass
// kernels: 16-value f32/bf16 loads and stores and two-pass statistics summed in a fixed order.
//
// Statistics: 16-lane f32 partial sums over chunks of at most kChunk values, each chunk then added into 8 double
// lanes, those reduced in a fixed order, so a row's (or group's) moments do not depend on the thread count. Include
// this only where the x86-64 AVX-512 code is compiled; the functions carry their own target attribute.
#pragma once
#include <ATen/ATen.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <utility>

#define LD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

namespace ld {

// Whether the fused norm kernels run: enabled (groupnorm.cpp holds the switch) and the CPU has AVX-512.
bool fused_norm_enabled();

namespace norm {

constexpr int64_t kChunk = 1024;  // values summed in f32 lanes before they are added into double

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
LD_AVX512 inline void moments(const T* x, int64_t len, float center, bool squares, double& sum, double& sq) {
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

// Two-pass statistics of len values: the f32 mean m, the small correction dmean (the exact mean is m + dmean), and
// 1/√(var + eps) with the biased variance about the exact mean, E[(x − m)²] − dmean². `finite` is false where a
// value is inf or NaN (the norms then make the whole row or group NaN, as libtorch's do).
struct Stats {
  float mean;
  double dmean;
  float rstd;
  bool finite;
};
template <typename T>
LD_AVX512 inline Stats two_pass_stats(const T* x, int64_t len, double eps) {
  double sum = 0, sq = 0, dsum = 0;
  moments(x, len, 0.0f, false, sum, sq);
  const float mean = static_cast<float>(sum / static_cast<double>(len));
  moments(x, len, mean, true, dsum, sq);
  const double dmean = dsum / static_cast<double>(len);
  const double var = std::max(0.0, sq / static_cast<double>(len) - dmean * dmean);
  const bool finite = std::isfinite(sum) && std::isfinite(sq);
  return {mean, dmean, static_cast<float>(1.0 / std::sqrt(var + eps)), finite};
}

// Weight and bias as the fused kernels read them: contiguous, both f32 or both bf16 (their own dtype, so bf16
// parameters need no f32 copy per call); any other mix is converted to f32.
inline std::pair<c10::optional<at::Tensor>, c10::optional<at::Tensor>> affine_params(const c10::optional<at::Tensor>& w,
                                                                                    const c10::optional<at::Tensor>& b) {
  auto kind = [](const c10::optional<at::Tensor>& t) { return t ? t->scalar_type() : at::ScalarType::Undefined; };
  at::ScalarType type = w ? kind(w) : kind(b);
  if ((w && b && kind(w) != kind(b)) || (type != at::kFloat && type != at::kBFloat16)) type = at::kFloat;
  auto as = [type](const c10::optional<at::Tensor>& t) {
    return t ? c10::optional<at::Tensor>(t->to(type).contiguous()) : c10::nullopt;
  };
  return {as(w), as(b)};
}

// Calls f(x, y, gamma, beta) with typed pointers: x and y f32 or bf16 (x's dtype), gamma and beta (null when absent)
// in affine_params' dtype.
template <typename F>
void with_typed_pointers(const at::Tensor& x, at::Tensor& y, const c10::optional<at::Tensor>& w,
                         const c10::optional<at::Tensor>& b, F&& f) {
  auto params = [&](auto* tag) {
    using P = std::remove_pointer_t<decltype(tag)>;
    const P* gamma = w ? w->data_ptr<P>() : nullptr;
    const P* beta = b ? b->data_ptr<P>() : nullptr;
    if (x.scalar_type() == at::kFloat) f(x.data_ptr<float>(), y.data_ptr<float>(), gamma, beta);
    else f(x.data_ptr<c10::BFloat16>(), y.data_ptr<c10::BFloat16>(), gamma, beta);
  };
  const bool bf16 = (w ? w->scalar_type() : b ? b->scalar_type() : at::kFloat) == at::kBFloat16;
  if (bf16) params(static_cast<c10::BFloat16*>(nullptr));
  else params(static_cast<float*>(nullptr));
}

}  // namespace norm
}  // namespace ld

// GEGLU's activation, hidden · gelu(gate) over the [..., 2 · inner] output of its projection, in one pass for
// inference (diffusers' GEGLU: hidden, gate = proj(x).chunk(2, -1); hidden * F.gelu(gate), the exact GELU).
// libtorch 1.13 (Debian's build dispatches its kernels to AVX2 at most) computes the GELU's erf with a scalar exp
// per element and the product as a second pass: 40 + 27 ms of the SD1.5 U-Net's forward at 256², against
// ONNX Runtime's 5.4 ms for the GELU. The fused kernel computes the same formula as libtorch's vectorised GELU
// (x · 0.5 · (1 + erf(x / √2)), erf by Abramowitz and Stegun 7.1.26, the approximation ATen's Vectorized<float>
// uses, with ATen's constants), with a vectorised exp, in AVX-512 chosen at run time; elsewhere, with autograd
// or with LDTORCH_FUSED_GEGLU=0, the at:: ops run as before.
#include "common.h"
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <cstdlib>
#include <cstring>
#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include "simd_exp.h"
#define LD_GEGLU_X86 1
#else
#define LD_GEGLU_X86 0
#endif

namespace {

at::Tensor geglu_reference(const at::Tensor& x) {
  auto parts = x.chunk(2, -1);
  return parts[0] * at::gelu(parts[1]);
}

#if LD_GEGLU_X86
// GCC 12 reports its own intrinsics' undefined-vector idiom (_mm512_undefined_*) as maybe uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#define LD_AVX512 __attribute__((target("avx512f")))

// exp(-x²) of the erf by ld::exp512 (simd_exp.h, ≈ 1 ulp).

// gelu(g) = g · 0.5 · (1 + erf(g / √2)), erf(z) = sign(z) · (1 − (((((p5 t + p4) t + p3) t + p2) t + p1) · t · exp(−z²)),
// t = 1 / (1 + p |z|): the order of ATen's Vectorized<float>::erf and GELU kernel.
LD_AVX512 inline __m512 gelu_ps(__m512 g) {
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512 z = _mm512_mul_ps(g, _mm512_set1_ps(static_cast<float>(M_SQRT1_2)));
  const __m512 sign = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  const __m512 az = _mm512_abs_ps(z);
  const __m512 t = _mm512_div_ps(one, _mm512_fmadd_ps(_mm512_set1_ps(0.3275911f), az, one));
  __m512 r = _mm512_fmadd_ps(_mm512_set1_ps(1.061405429f), t, _mm512_set1_ps(-1.453152027f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(1.421413741f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(-0.284496736f));
  r = _mm512_fmadd_ps(r, t, _mm512_set1_ps(0.254829592f));
  const __m512 e = ld::exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(z, z)));
  const __m512 negExpT = _mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), e), t);
  const __m512 erfAbs = _mm512_fmadd_ps(negExpT, r, one);
  const __m512 erf = _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(erfAbs), _mm512_castps_si512(sign)));
  return _mm512_mul_ps(_mm512_mul_ps(g, _mm512_set1_ps(0.5f)), _mm512_add_ps(one, erf));
}

// bf16 ↔ f32 with AVX-512F alone: widen the 16 bits into the high half; narrow with round-to-nearest-even and
// NaN as 0x7FC0, as c10::BFloat16's constructor rounds.
LD_AVX512 inline __m512 load_bf16(const c10::BFloat16* p) {
  const __m512i wide = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(wide, 16));
}

LD_AVX512 inline void store_bf16(c10::BFloat16* p, __m512 v) {
  const __m512i u = _mm512_castps_si512(v);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
  rounded = _mm512_mask_mov_epi32(rounded, nan, _mm512_set1_epi32(0x7FC0));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(rounded));
}

// out[r, i] = x[r, i] · gelu(x[r, inner + i]) for rows [begin, end): every element by one thread, in one order.
LD_AVX512 void geglu_rows_f32(const float* x, float* out, int64_t inner, int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; row++) {
    const float* h = x + row * 2 * inner;
    const float* g = h + inner;
    float* o = out + row * inner;
    int64_t i = 0;
    for (; i + 16 <= inner; i += 16)
      _mm512_storeu_ps(o + i, _mm512_mul_ps(_mm512_loadu_ps(h + i), gelu_ps(_mm512_loadu_ps(g + i))));
    if (i < inner) {
      const __mmask16 m = static_cast<__mmask16>((1u << (inner - i)) - 1);
      _mm512_mask_storeu_ps(o + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, h + i), gelu_ps(_mm512_maskz_loadu_ps(m, g + i))));
    }
  }
}

LD_AVX512 void geglu_rows_bf16(const c10::BFloat16* x, c10::BFloat16* out, int64_t inner, int64_t begin, int64_t end) {
  alignas(64) c10::BFloat16 hb[16], gb[16], ob[16];
  for (int64_t row = begin; row < end; row++) {
    const c10::BFloat16* h = x + row * 2 * inner;
    const c10::BFloat16* g = h + inner;
    c10::BFloat16* o = out + row * inner;
    int64_t i = 0;
    for (; i + 16 <= inner; i += 16) store_bf16(o + i, _mm512_mul_ps(load_bf16(h + i), gelu_ps(load_bf16(g + i))));
    if (i < inner) {
      const auto n = static_cast<size_t>(inner - i);
      std::memset(hb, 0, sizeof hb);
      std::memset(gb, 0, sizeof gb);
      std::memcpy(hb, h + i, n * sizeof(c10::BFloat16));
      std::memcpy(gb, g + i, n * sizeof(c10::BFloat16));
      store_bf16(ob, _mm512_mul_ps(load_bf16(hb), gelu_ps(load_bf16(gb))));
      std::memcpy(o + i, ob, n * sizeof(c10::BFloat16));
    }
  }
}

bool cpu_has_avx512() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
  }();
  return has;
}
#else
bool cpu_has_avx512() { return false; }
#endif

bool fused_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("LDTORCH_FUSED_GEGLU");
    return !(v && std::string(v) == "0");
  }();
  return enabled;
}

bool fused_applies(const at::Tensor& x) {
  if (!fused_enabled() || !cpu_has_avx512()) return false;
  if (!x.device().is_cpu() || x.is_mkldnn() || x.dim() < 1 || x.size(-1) % 2 != 0) return false;
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16) return false;
  // Inference only: with autograd the at:: ops record their backward as before.
  return !(at::GradMode::is_enabled() && x.requires_grad());
}

// Rows per task of at::parallel_for: about 32 K elements of output, so that small inputs stay on one thread.
int64_t grain_rows(int64_t inner) { return std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, inner)); }

at::Tensor geglu_fused(const at::Tensor& input) {
  RECORD_FUNCTION("ld::geglu", std::vector<c10::IValue>({input}));
  auto x = input.contiguous();
  const auto inner = x.size(-1) / 2;
  const auto rows = inner == 0 ? 0 : x.numel() / (2 * inner);
  auto sizes = x.sizes().vec();
  sizes.back() = inner;
  auto out = at::empty(sizes, x.options());
  if (rows == 0 || inner == 0) return out;
#if LD_GEGLU_X86
  if (x.scalar_type() == at::kFloat) {
    const float* xp = x.data_ptr<float>();
    float* op = out.data_ptr<float>();
    at::parallel_for(0, rows, grain_rows(inner), [&](int64_t b, int64_t e) { geglu_rows_f32(xp, op, inner, b, e); });
  } else {
    const auto* xp = x.data_ptr<c10::BFloat16>();
    auto* op = out.data_ptr<c10::BFloat16>();
    at::parallel_for(0, rows, grain_rows(inner), [&](int64_t b, int64_t e) { geglu_rows_bf16(xp, op, inner, b, e); });
  }
#endif
  return out;
}

}  // namespace

extern "C" {

// hidden · gelu(gate) of x = [hidden, gate] along the last dimension (diffusers' GEGLU after its projection).
LD_API ld_tensor* ld_geglu(ld_tensor* x) {
  LD_GUARD("geglu", nullptr, {
    auto& X = ld::T(x);
    if (X.dim() < 1 || X.size(-1) % 2 != 0)
      throw std::invalid_argument("GEGLU needs an even last dimension (hidden and gate halves), got " +
                                  std::to_string(X.dim() < 1 ? 0 : X.size(-1)));
    if (fused_applies(X)) return ld::wrap(geglu_fused(X));
    return ld::wrap(geglu_reference(X));
  })
}

// 1 where ld_geglu runs the fused kernel for an f32 CPU input without autograd (AVX-512 present and
// LDTORCH_FUSED_GEGLU not 0), 0 where it runs the at:: ops.
LD_API int ld_geglu_fused_available(void) { return fused_enabled() && cpu_has_avx512() ? 1 : 0; }

}  // extern "C"

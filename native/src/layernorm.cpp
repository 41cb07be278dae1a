// Inference LayerNorm over the last dimensions of a contiguous f32 or bf16 tensor, one pass over the output.
//
// Why: libtorch 1.13's bf16 CPU LayerNorm is several times slower than its f32 one, so nn.cpp computed a bf16
// LayerNorm in f32: the input, the weight and the bias converted to f32 and the result back to bf16, four aten::to
// per call. In the bf16 SD1.5 U-Net at 256² those were 192 of its 200 aten::to calls (~9 ms) beside the 12.3 ms of the
// 48 f32 layer_norm calls themselves (issue 19). Here bf16 (input, weight, bias) is read and written directly: f32
// math, the output rounded to nearest even on store as c10::BFloat16 does.
//
// Determinism: every row is normalised by one thread (at::parallel_for over rows), its statistics summed in one fixed
// order (norm_simd.h), so the result does not depend on the thread count. The statistics are two-pass and accumulate
// in double across chunks, so a large offset (1e4 + small noise) keeps its variance. A row holding an inf or NaN
// comes out NaN, as at::layer_norm's does.
//
// The AVX-512 kernel is chosen at run time; elsewhere, with autograd, on CUDA, or with LDTORCH_FUSED_NORM=0 (or
// ld_fused_norm_set(0)), which switch the fused GroupNorm too, nn.cpp's previous path runs.
#include "common.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include "norm_simd.h"

#include <cmath>

namespace {

using namespace ld::norm;

// One row of D values: y = ((x − m) − dmean) · (rstd · γ) + β, with m the f32 mean and m + dmean the exact one, so
// x − m is exact near the mean. γ and β are read in their own dtype (P), so bf16 weights need no f32 copy per call.
template <typename T, typename P>
LD_AVX512 void normalize_row(const T* x, T* y, int64_t D, const P* gamma, const P* beta, double eps) {
  const Stats st = two_pass_stats(x, D, eps);
  const __m512 m = _mm512_set1_ps(st.mean), dm = _mm512_set1_ps(static_cast<float>(st.dmean));
  const __m512 r = _mm512_set1_ps(st.finite ? st.rstd : NAN);
  for (int64_t i = 0; i < D; i += 16) {
    const int64_t n = std::min<int64_t>(16, D - i);
    const __m512 a = gamma ? _mm512_mul_ps(r, load16(gamma + i, n)) : r;
    const __m512 v = _mm512_sub_ps(_mm512_sub_ps(load16(x + i, n), m), dm);
    store16(y + i, beta ? _mm512_fmadd_ps(v, a, load16(beta + i, n)) : _mm512_mul_ps(v, a), n);
  }
}

template <typename T, typename P>
void layer_norm_kernel(const T* x, T* y, int64_t rows, int64_t D, const P* gamma, const P* beta, double eps) {
  // Rows of at least ~16 K values together per task, as the other kernels split theirs.
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, D));
  at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) normalize_row(x + r * D, y + r * D, D, gamma, beta, eps);
  });
}

bool param_ok(const c10::optional<at::Tensor>& p, at::IntArrayRef shape) {
  return !p || (p->device().is_cpu() && p->sizes() == shape && at::isFloatingType(p->scalar_type()));
}

}  // namespace

namespace ld {
c10::optional<at::Tensor> layer_norm_fused(const at::Tensor& input, at::IntArrayRef shape,
                                           const c10::optional<at::Tensor>& w, const c10::optional<at::Tensor>& b,
                                           double eps) {
  if (!fused_norm_enabled()) return c10::nullopt;
  const int64_t nd = static_cast<int64_t>(shape.size());
  if (!input.device().is_cpu() || nd == 0 || input.dim() < nd || input.numel() == 0) return c10::nullopt;
  if (input.scalar_type() != at::kBFloat16 && input.scalar_type() != at::kFloat) return c10::nullopt;
  if (input.sizes().slice(input.dim() - nd) != shape || !param_ok(w, shape) || !param_ok(b, shape)) return c10::nullopt;
  if (at::GradMode::is_enabled() &&
      (input.requires_grad() || (w && w->requires_grad()) || (b && b->requires_grad())))
    return c10::nullopt;
  RECORD_FUNCTION("ld::layer_norm", std::vector<c10::IValue>({input}));
  const auto x = input.contiguous();
  auto y = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t D = c10::multiply_integers(shape), rows = x.numel() / D;
  const auto [W, B] = affine_params(w, b);
  with_typed_pointers(x, y, W, B, [&](const auto* xp, auto* yp, const auto* gamma, const auto* beta) {
    layer_norm_kernel(xp, yp, rows, D, gamma, beta, eps);
  });
  return y;
}
}  // namespace ld

// Fused CPU attention for inference: softmax(q kᵀ · scale) v without materialising the score matrix.
//
// libtorch 1.13 computes attention as two batched products and a softmax (attention_blocked in nn.cpp). The
// products are skinny (the head size, 40–160, is the inner dimension of q kᵀ and the width of p · v) and
// OpenBLAS splits them badly over its threads: 55–83 GFLOP/s on the SD1.5 U-Net, where ONNX Runtime's fused
// kernel reaches ~330. This kernel does what that one does:
//  - k of each head is packed once, transposed into tiles of 64 keys ([E][64] floats each), so that a row of
//    scores is a sum over e of a broadcast q[e] times a contiguous row of the tile; v is read in place when its
//    rows are contiguous f32, otherwise packed to f32 rows as well;
//  - the work is split over (batch·head, block of query rows) with at::parallel_for; each block walks the keys
//    in blocks with an online softmax (running maximum and sum, the accumulated output rescaled when the
//    maximum grows), so memory stays bounded at any sequence length: per thread a [rows × key block] score
//    buffer and a [rows × Ev] output accumulator;
//  - register-blocked AVX-512 micro-kernels: 6 query rows × 64 keys for q kᵀ, 4–8 rows × up to 96 columns
//    for p · v, FMAs of broadcast values against vector rows;
//  - exp is vectorised here (Cody–Waite reduction, the Cephes expf polynomial, 2ⁿ by scalef: ~1 ulp).
// Every output row is computed by one thread, in an order that depends only on the shapes (never on the
// thread count or the row block it falls in), so results are bit-identical whatever the number of threads.
// bf16 inputs are widened to f32 (a shift), computed in f32, and the output rounded to nearest even.
#include "attention.h"
#include "common.h"
#include <ATen/Parallel.h>
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics (_mm512_undefined_ps).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#define LD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))

namespace {

constexpr int64_t kTile = 64;          // keys per packed k tile (4 vectors)
constexpr int64_t kMaxRows = 72;       // query rows per task, a multiple of every micro-kernel's rows (4, 6, 8)
constexpr int64_t kQkRows = 6;         // rows of the q kᵀ micro-kernel
constexpr int64_t kPackBytes = 64 << 20;  // packed k (and v) of the heads in flight at once

// -1: follow the default (the environment); 0: off; 1: on. Per thread, so a test can force either path
// without changing what other threads compute.
thread_local int override_mode = -1;

bool enabled_by_default() {
  static const bool enabled = [] {
    const char* v = std::getenv("LDTORCH_FUSED_ATTENTION");
    return !(v && std::string(v) == "0");
  }();
  return enabled;
}

bool cpu_supported() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
#else
  return false;
#endif
}

bool active() { return cpu_supported() && (override_mode >= 0 ? override_mode == 1 : enabled_by_default()); }

#if defined(__x86_64__) || defined(__i386__)

// Byte offsets of each flattened batch index's [L, E] matrix in t (t's batch dims, any strides).
std::vector<int64_t> batch_offsets(const at::Tensor& t, int64_t B) {
  std::vector<int64_t> offsets(static_cast<size_t>(B));
  const int64_t nb = t.dim() - 2, elem = static_cast<int64_t>(t.element_size());
  std::vector<int64_t> index(static_cast<size_t>(nb), 0);
  for (int64_t b = 0; b < B; b++) {
    int64_t off = 0;
    for (int64_t d = 0; d < nb; d++) off += index[d] * t.stride(d);
    offsets[b] = off * elem;
    for (int64_t d = nb - 1; d >= 0; d--) {
      if (++index[d] < t.size(d)) break;
      index[d] = 0;
    }
  }
  return offsets;
}

// One input matrix per batch index: base + offset[b], element (i, j) at i·rs + j·cs elements.
struct Matrix {
  const char* base;
  std::vector<int64_t> offsets;
  int64_t rs, cs;
  bool bf16;
  Matrix(const at::Tensor& t, int64_t B)
      : base(static_cast<const char*>(t.data_ptr())), offsets(batch_offsets(t, B)), rs(t.stride(-2)),
        cs(t.stride(-1)), bf16(t.scalar_type() == at::kBFloat16) {}
  float at(int64_t b, int64_t i, int64_t j) const {
    const int64_t e = i * rs + j * cs;
    if (bf16) return static_cast<float>(reinterpret_cast<const c10::BFloat16*>(base + offsets[b])[e]);
    return reinterpret_cast<const float*>(base + offsets[b])[e];
  }
  // Row i of batch b as rows of n f32 values into dst.
  void row(int64_t b, int64_t i, int64_t n, float* dst) const {
    if (!bf16 && cs == 1) {
      std::memcpy(dst, reinterpret_cast<const float*>(base + offsets[b]) + i * rs, static_cast<size_t>(n) * sizeof(float));
      return;
    }
    for (int64_t j = 0; j < n; j++) dst[j] = at(b, i, j);
  }
};

// ---- AVX-512 helpers ----

LD_AVX512 inline __mmask16 tail_mask(int64_t n) {  // the first n (1..16) lanes
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// e^x: x = n·ln2 + r with n = round(x / ln2) and ln2 in two parts (Cody–Waite) so that r is exact to
// |r| ≤ ln2/2; e^r = 1 + r + r²·P(r) with the Cephes expf polynomial (relative error ~1.7e-7), then 2ⁿ by scalef,
// which rounds the subnormal results correctly and gives 0 below e^-104 and +inf above e^88.8. NaN passes.
LD_AVX512 inline __m512 exp512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-104.0f), x);  // vmaxps returns its second operand when one is NaN
  x = _mm512_min_ps(_mm512_set1_ps(88.8f), x);
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

LD_AVX512 inline float exp1(float x) { return _mm512_cvtss_f32(exp512(_mm512_set1_ps(x))); }

// f32 → bf16, rounded to nearest even (NaN stays a quiet NaN), 16 lanes.
LD_AVX512 inline __m256i to_bf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
  return _mm512_cvtepi32_epi16(r);
}

// ---- micro-kernels ----

// Scores of 6 query rows (Qs, row stride E) against the NV·16 keys of a packed tile ([E][64]): rows of C (stride ldc).
template <int NV>
LD_AVX512 void qk_tile(const float* Qs, int64_t E, const float* tile, float* C, int64_t ldc) {
  __m512 acc[kQkRows][NV];
#pragma GCC unroll 8
  for (int r = 0; r < kQkRows; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_setzero_ps();
  for (int64_t e = 0; e < E; e++) {
    __m512 kv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) kv[j] = _mm512_loadu_ps(tile + e * kTile + 16 * j);
#pragma GCC unroll 8
    for (int r = 0; r < kQkRows; r++) {
      const __m512 b = _mm512_set1_ps(Qs[r * E + e]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(b, kv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < kQkRows; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) _mm512_storeu_ps(C + r * ldc + 16 * j, acc[r][j]);
}

// O[MR rows][NV·16 columns] += P[MR rows][n keys] · V[n rows][NV·16 columns], the last vector of V's rows masked.
template <int MR, int NV>
LD_AVX512 void pv_tile(const float* P, int64_t ldp, int64_t n, const float* V, int64_t ldv, __mmask16 last,
                       float* O, int64_t ldo) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_loadu_ps(O + r * ldo + 16 * j);
  for (int64_t s = 0; s < n; s++) {
    __m512 vv[NV];
#pragma GCC unroll 6
    for (int j = 0; j < NV - 1; j++) vv[j] = _mm512_loadu_ps(V + s * ldv + 16 * j);
    vv[NV - 1] = _mm512_maskz_loadu_ps(last, V + s * ldv + 16 * (NV - 1));
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m512 b = _mm512_set1_ps(P[r * ldp + s]);
#pragma GCC unroll 6
      for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(b, vv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) _mm512_storeu_ps(O + r * ldo + 16 * j, acc[r][j]);
}

// Rows of the p · v micro-kernel for NV vectors of output columns: about 24 accumulators.
constexpr int pv_rows(int nv) { return nv <= 3 ? 8 : nv == 4 ? 6 : 4; }

template <int NV>
LD_AVX512 void pv_rows_of(int64_t rows, const float* P, int64_t ldp, int64_t n, const float* V, int64_t ldv,
                          __mmask16 last, float* O, int64_t ldo) {
  constexpr int MR = pv_rows(NV);
  for (int64_t r = 0; r < rows; r += MR) pv_tile<MR, NV>(P + r * ldp, ldp, n, V, ldv, last, O + r * ldo, ldo);
}

LD_AVX512 void pv_block(int nv, int64_t rows, const float* P, int64_t ldp, int64_t n, const float* V, int64_t ldv,
                        __mmask16 last, float* O, int64_t ldo) {
  switch (nv) {
    case 1: pv_rows_of<1>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 2: pv_rows_of<2>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 3: pv_rows_of<3>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 4: pv_rows_of<4>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 5: pv_rows_of<5>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    default: pv_rows_of<6>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
  }
}

LD_AVX512 void qk_block(int nv, int64_t rows, const float* Qs, int64_t E, const float* tile, float* C, int64_t ldc) {
  for (int64_t r = 0; r < rows; r += kQkRows) {
    switch (nv) {
      case 1: qk_tile<1>(Qs + r * E, E, tile, C + r * ldc, ldc); break;
      case 2: qk_tile<2>(Qs + r * E, E, tile, C + r * ldc, ldc); break;
      case 3: qk_tile<3>(Qs + r * E, E, tile, C + r * ldc, ldc); break;
      default: qk_tile<4>(Qs + r * E, E, tile, C + r * ldc, ldc); break;
    }
  }
}

// One row of a key block: the running maximum m and sum l of e^((s − m)·scale) are updated, the scores
// replaced by their exponentials, and the factor by which the row's accumulated output must be rescaled
// (e^((m_old − m_new)·scale), 1 when the maximum did not grow) returned.
LD_AVX512 float softmax_row(float* row, int64_t n, float scale, float& m, float& l) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 mx = neg_inf;
  int64_t s = 0;
  for (; s + 16 <= n; s += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + s));
  if (s < n) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(neg_inf, tail_mask(n - s), row + s));
  const float m_new = std::max(m, _mm512_reduce_max_ps(mx));
  const float alpha = m == m_new ? 1.0f : exp1((m - m_new) * scale);
  const __m512 vm = _mm512_set1_ps(m_new), vs = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  for (s = 0; s + 16 <= n; s += 16) {
    const __m512 p = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(row + s), vm), vs));
    _mm512_storeu_ps(row + s, p);
    sum = _mm512_add_ps(sum, p);
  }
  if (s < n) {
    const __mmask16 k = tail_mask(n - s);
    const __m512 p = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + s), vm), vs));
    _mm512_mask_storeu_ps(row + s, k, p);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, p));
  }
  m = m_new;
  l = l * alpha + _mm512_reduce_add_ps(sum);
  return alpha;
}

LD_AVX512 void scale_row(float* row, int64_t n16, float f) {
  const __m512 vf = _mm512_set1_ps(f);
  for (int64_t j = 0; j < n16; j += 16) _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), vf));
}

// out row (f32 or bf16, contiguous) = O row / l.
LD_AVX512 void store_row(const float* O, int64_t Ev, float l, char* out, bool bf16) {
  const __m512 inv = _mm512_set1_ps(1.0f / l);
  for (int64_t j = 0; j < Ev; j += 16) {
    const __mmask16 k = tail_mask(Ev - j);
    const __m512 y = _mm512_mul_ps(_mm512_loadu_ps(O + j), inv);
    if (bf16)
      _mm256_mask_storeu_epi16(reinterpret_cast<uint16_t*>(out) + j, k, to_bf16(y));
    else
      _mm512_mask_storeu_ps(reinterpret_cast<float*>(out) + j, k, y);
  }
}

// ---- the kernel ----

struct Shapes {
  int64_t B, L, S, E, Ev;
  int64_t tiles;      // k tiles of 64 keys per head
  int64_t key_block;  // keys per online-softmax step, a multiple of kTile
  int64_t nvec;       // 16-float vectors per output row
};

// Packs k's head b into tiles [E][64] (keys past S zero) at dst, tiles [t0, t1).
void pack_k(const Matrix& k, const Shapes& sh, int64_t b, int64_t t0, int64_t t1, float* dst) {
  for (int64_t t = t0; t < t1; t++) {
    float* tile = dst + t * sh.E * kTile;
    const int64_t s0 = t * kTile, n = std::min(kTile, sh.S - s0);
    for (int64_t e = 0; e < sh.E; e++) {
      float* out = tile + e * kTile;
      for (int64_t j = 0; j < n; j++) out[j] = k.at(b, s0 + j, e);
      for (int64_t j = n; j < kTile; j++) out[j] = 0.0f;
    }
  }
}

struct Scratch {
  std::vector<float> q, scores, out, m, l;
  explicit Scratch(const Shapes& sh)
      : q(static_cast<size_t>(kMaxRows * sh.E), 0.0f),
        scores(static_cast<size_t>(kMaxRows * sh.key_block), 0.0f),
        out(static_cast<size_t>(kMaxRows * sh.nvec * 16), 0.0f),
        m(kMaxRows), l(kMaxRows) {}
};

// Query rows [l0, l0 + rows) of head b: out rows = softmax(q kᵀ · scale) v.
LD_AVX512 void attend_rows(const Matrix& q, const float* kp, const float* vp, int64_t ldv, const Shapes& sh,
                           int64_t b, int64_t l0, int64_t rows, float scale, Scratch& w, char* out, int64_t out_rs,
                           bool out_bf16) {
  const int64_t E = sh.E, ldo = sh.nvec * 16, ldc = sh.key_block;
  const int64_t qk_rows = (rows + kQkRows - 1) / kQkRows * kQkRows;
  for (int64_t r = 0; r < rows; r++) q.row(b, l0 + r, E, w.q.data() + r * E);
  std::fill(w.q.begin() + rows * E, w.q.begin() + qk_rows * E, 0.0f);
  std::fill(w.out.begin(), w.out.end(), 0.0f);
  std::fill(w.m.begin(), w.m.end(), -std::numeric_limits<float>::infinity());
  std::fill(w.l.begin(), w.l.end(), 0.0f);
  // Output columns in chunks of at most 6 vectors (the p · v micro-kernel's width), as even as possible.
  const int64_t chunks = (sh.nvec + 5) / 6;
  for (int64_t s0 = 0; s0 < sh.S; s0 += sh.key_block) {
    const int64_t n = std::min(sh.key_block, sh.S - s0);
    for (int64_t t = s0 / kTile; t * kTile < s0 + n; t++) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (std::min(sh.S - t * kTile, kTile) + 15) / 16));
      qk_block(nv, qk_rows, w.q.data(), E, kp + t * E * kTile, w.scores.data() + (t * kTile - s0), ldc);
    }
    for (int64_t r = 0; r < rows; r++) {
      const float alpha = softmax_row(w.scores.data() + r * ldc, n, scale, w.m[r], w.l[r]);
      if (alpha != 1.0f) scale_row(w.out.data() + r * ldo, ldo, alpha);
    }
    int64_t col = 0;
    for (int64_t c = 0; c < chunks; c++) {
      const int nv = static_cast<int>(sh.nvec / chunks + (c < sh.nvec % chunks ? 1 : 0));
      const int64_t width = std::min<int64_t>(nv * 16, sh.Ev - col);
      const int mr = pv_rows(nv);
      const int64_t pv_rows_total = (rows + mr - 1) / mr * mr;
      pv_block(nv, pv_rows_total, w.scores.data(), ldc, n, vp + s0 * ldv + col, ldv, tail_mask(width - (nv - 1) * 16),
               w.out.data() + col, ldo);
      col += nv * 16;
    }
  }
  for (int64_t r = 0; r < rows; r++)
    store_row(w.out.data() + r * ldo, sh.Ev, w.l[r], out + (l0 + r) * out_rs, out_bf16);
}

LD_AVX512 at::Tensor fused_attention_avx512(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  Shapes sh;
  sh.L = q.size(-2);
  sh.S = k.size(-2);
  sh.E = q.size(-1);
  sh.Ev = v.size(-1);
  auto batch_shape = q.sizes().slice(0, q.dim() - 2);
  sh.B = c10::multiply_integers(batch_shape);
  sh.tiles = (sh.S + kTile - 1) / kTile;
  sh.nvec = (sh.Ev + 15) / 16;
  // A key block's packed k and v (E and Ev floats per key) about 256 KB, so that they stay in L2 while every
  // row group of the block uses them; 64 to 1024 keys.
  sh.key_block = std::clamp<int64_t>((64 * 1024 / std::max<int64_t>(1, sh.E + sh.nvec * 16)) / kTile * kTile, kTile, 1024);

  // The output: [..., L, Ev]; for the head-split view of a [N, L, heads, E] tensor (diffusers' layout) the same
  // [N, L, heads, Ev] layout, so that the caller's transpose back to [N, L, heads·Ev] is a view.
  at::Tensor out;
  if (q.dim() == 4 && sh.Ev == sh.E && q.stride(3) == 1 && q.stride(1) == sh.E && q.stride(2) == q.size(1) * sh.E &&
      q.stride(0) == sh.L * q.size(1) * sh.E)
    out = at::empty({q.size(0), sh.L, q.size(1), sh.Ev}, q.options()).permute({0, 2, 1, 3});
  else {
    std::vector<int64_t> out_shape(batch_shape.begin(), batch_shape.end());
    out_shape.push_back(sh.L);
    out_shape.push_back(sh.Ev);
    out = at::empty(out_shape, q.options());
  }
  const Matrix Q(q, sh.B), K(k, sh.B), V(v, sh.B);
  const auto out_offsets = batch_offsets(out, sh.B);
  char* out_base = static_cast<char*>(out.data_ptr());
  const int64_t out_rs = out.stride(-2) * static_cast<int64_t>(out.element_size());
  const bool bf16 = q.scalar_type() == at::kBFloat16;
  const bool v_in_place = !V.bf16 && V.cs == 1;

  // Query rows per task: blocks as even as possible of at most kMaxRows.
  const int64_t row_blocks = (sh.L + kMaxRows - 1) / kMaxRows;
  const int64_t block_rows = (sh.L + row_blocks - 1) / row_blocks;
  const int64_t k_floats = sh.tiles * kTile * sh.E, v_floats = v_in_place ? 0 : sh.S * sh.Ev;
  const int64_t heads_at_once =
      std::clamp<int64_t>(kPackBytes / (static_cast<int64_t>(sizeof(float)) * (k_floats + v_floats)), 1, sh.B);
  std::vector<float> kp(static_cast<size_t>(heads_at_once * k_floats)), vp(static_cast<size_t>(heads_at_once * v_floats));
  const float fscale = static_cast<float>(scale);

  for (int64_t h0 = 0; h0 < sh.B; h0 += heads_at_once) {
    const int64_t nh = std::min(heads_at_once, sh.B - h0);
    // Pack k (and v where it is not contiguous f32 rows): 64 keys of one head per task.
    at::parallel_for(0, nh * sh.tiles, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        const int64_t h = i / sh.tiles, t = i % sh.tiles;
        pack_k(K, sh, h0 + h, t, t + 1, kp.data() + h * k_floats);
        if (!v_in_place)
          for (int64_t s = t * kTile; s < std::min(sh.S, (t + 1) * kTile); s++) V.row(h0 + h, s, sh.Ev, vp.data() + h * v_floats + s * sh.Ev);
      }
    });
    at::parallel_for(0, nh * row_blocks, 1, [&](int64_t begin, int64_t end) {
      Scratch w(sh);
      for (int64_t i = begin; i < end; i++) {
        const int64_t h = i / row_blocks, l0 = (i % row_blocks) * block_rows;
        const int64_t b = h0 + h, rows = std::min(block_rows, sh.L - l0);
        const float* vh;
        int64_t ldv;
        if (v_in_place) {
          vh = reinterpret_cast<const float*>(V.base + V.offsets[b]);
          ldv = V.rs;
        } else {
          vh = vp.data() + h * v_floats;
          ldv = sh.Ev;
        }
        attend_rows(Q, kp.data() + h * k_floats, vh, ldv, sh, b, l0, rows, fscale, w, out_base + out_offsets[b], out_rs, bf16);
      }
    });
  }
  return out;
}
#endif

}  // namespace

namespace ld {

bool fused_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  if (!active()) return false;
  const auto dt = q.scalar_type();
  if ((dt != at::kFloat && dt != at::kBFloat16) || k.scalar_type() != dt || v.scalar_type() != dt) return false;
  return q.numel() > 0 && k.numel() > 0 && v.numel() > 0;
}

at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
#if defined(__x86_64__) || defined(__i386__)
  if (cpu_supported()) return fused_attention_avx512(q, k, v, scale);
#endif
  throw std::runtime_error("the fused attention kernel needs a CPU with AVX-512 (F, BW, VL, DQ)");
}

}  // namespace ld

extern "C" {

LD_API int ld_set_fused_attention(int mode) {
  if (mode < -1 || mode > 1) {
    ld::set_error("set_fused_attention", ("mode must be -1 (default), 0 (off) or 1 (on), not " + std::to_string(mode)).c_str());
    return -2;
  }
  const int previous = override_mode;
  override_mode = mode;
  return previous;
}

LD_API int ld_fused_attention_active(void) { return active() ? 1 : 0; }

}  // extern "C"

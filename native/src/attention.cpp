// Fused CPU attention for inference: softmax(q kᵀ · scale) v without materialising the score matrix.
//
// libtorch 1.13 computes attention as two batched products and a softmax (attention_blocked in nn.cpp). The
// products are skinny (the head size, 40–160, is the inner dimension of q kᵀ and the width of p · v) and
// OpenBLAS splits them badly over its threads: 55–83 GFLOP/s on the SD1.5 U-Net, where ONNX Runtime's fused
// kernel reaches ~330. This kernel does what that one does:
//  - k of each head is packed once, transposed into tiles of 64 keys ([E][64] floats each), so that a row of
//    scores is a sum over e of a broadcast q[e] times a contiguous row of the tile; v is read in place when its
//    rows are contiguous (bf16 widened as it is loaded), otherwise packed to f32 rows;
//  - the work is split over (batch·head, block of query rows) with at::parallel_for; each block walks the keys
//    in blocks with an online softmax (running maximum and sum, the accumulated output rescaled when the
//    maximum grows), so memory stays bounded at any sequence length: per thread a [rows × key block] score
//    buffer and a [rows × Ev] output accumulator;
//  - register-blocked AVX-512 micro-kernels: 6 query rows × 64 keys for q kᵀ, 4–8 rows × up to 96 columns
//    for p · v, FMAs of broadcast values against vector rows;
//  - the exponential is vectorised here: 2^x by a degree-6 polynomial and scalef, ~1 ulp, with log₂e folded
//    into the scale.
// Every output row is computed by one thread, in an order that depends only on the shapes (never on the
// thread count or the row block it falls in), so results are bit-identical whatever the number of threads.
// bf16 inputs, on a CPU with AVX512-BF16, take the dot-product path: vdpbf16ps (32 bf16 multiply-adds with f32
// accumulation per instruction, twice the f32 FMA rate) for q kᵀ, with k packed in head-dim pairs, and for p · v,
// with v packed in key pairs and the probabilities rounded to bf16 (nearest even), as PyTorch 2's CPU flash attention
// does for reduced types; the running maximum, sum and output accumulator stay f32. Elsewhere, or with
// LDTORCH_ATTENTION_BF16_DOT=0 (ld_set_attention_bf16_dot per thread), bf16 is widened to f32 (a shift) and computed
// as f32; either way the output is rounded to nearest even once.
#include "attention.h"
#include "common.h"
#include <ATen/Parallel.h>
// GCC 12 warns about the deliberately undefined vectors inside its own AVX-512 intrinsics (_mm512_undefined_ps,
// and the self-initialised __Y of _mm512_extractf64x4_pd once _mm512_reduce_*_ps is inlined into a bf16 function).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#define LD_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define LD_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace {

constexpr int64_t kTile = 64;          // keys per packed k tile (4 vectors)
constexpr int64_t kMaxRows = 72;       // query rows per task
constexpr int64_t kBufRows = 96;       // rows of the buffers: kMaxRows rounded up to any micro-kernel's rows
constexpr int64_t kPackBytes = 64 << 20;  // packed k (and v) of the heads in flight at once

// Two switches, each -1: follow the default (the environment, read once); 0: off; 1: on. Per thread, so a test can
// force either path without changing what other threads compute.
thread_local int override_mode = -1;      // the fused kernel (LDTORCH_FUSED_ATTENTION)
thread_local int dot_override_mode = -1;  // its bf16 dot-product path (LDTORCH_ATTENTION_BF16_DOT)

bool on_unless_zero(const char* variable) {
  const char* v = std::getenv(variable);
  return !(v && std::string(v) == "0");
}

bool switched_on(int mode, bool by_default) { return mode >= 0 ? mode == 1 : by_default; }

bool enabled_by_default() {
  static const bool enabled = on_unless_zero("LDTORCH_FUSED_ATTENTION");
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

bool active() { return cpu_supported() && switched_on(override_mode, enabled_by_default()); }

bool dot_active() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool supported = cpu_supported() && __builtin_cpu_supports("avx512bf16");
  static const bool by_default = on_unless_zero("LDTORCH_ATTENTION_BF16_DOT");
  return active() && supported && switched_on(dot_override_mode, by_default);
#else
  return false;
#endif
}

// Sets a per-thread switch (C ABI below): the previous mode, or -2 for a mode other than -1, 0, 1.
int set_mode(int& slot, int mode, const char* what) {
  if (mode < -1 || mode > 1) {
    ld::set_error(what, ("mode must be -1 (default), 0 (off) or 1 (on), not " + std::to_string(mode)).c_str());
    return -2;
  }
  const int previous = slot;
  slot = mode;
  return previous;
}

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
    if (bf16 && cs == 1) {  // widened by a shift, a loop the compiler vectorises
      const uint16_t* src = reinterpret_cast<const uint16_t*>(base + offsets[b]) + i * rs;
      for (int64_t j = 0; j < n; j++) {
        const uint32_t bits = static_cast<uint32_t>(src[j]) << 16;
        std::memcpy(dst + j, &bits, sizeof(float));
      }
      return;
    }
    for (int64_t j = 0; j < n; j++) dst[j] = at(b, i, j);
  }
  // bf16 element (i, j) of batch b as its bits.
  uint16_t bits(int64_t b, int64_t i, int64_t j) const {
    return reinterpret_cast<const uint16_t*>(base + offsets[b])[i * rs + j * cs];
  }
};

// ---- AVX-512 helpers ----

LD_AVX512 inline __mmask16 tail_mask(int64_t n) {  // the first n (1..16) lanes
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << n) - 1);
}

// 2^x = 2ⁿ · 2^f with n = round(x), f = x − n exact in [−½, ½]; 2^f by a degree-6 polynomial (a relative-error
// fit, 1.9e-9 in exact arithmetic, ≤ 1.4 ulp with f32 Horner steps), then 2ⁿ by scalef, which rounds subnormal
// results correctly and overflows to +inf above 2¹²⁸. Below 2⁻¹⁵¹ the result is 0; NaN passes. The softmax's
// e^(s·scale) is computed as 2^(s·scale·log₂e), that factor folded into q.
LD_AVX512 inline __m512 exp2_512(__m512 x) {
  x = _mm512_max_ps(_mm512_set1_ps(-151.0f), x);  // vmaxps returns its second operand when one is NaN
  const __m512 n = _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 f = _mm512_sub_ps(x, n);
  __m512 p = _mm512_set1_ps(1.534581243e-4f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.339993090e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.618489072e-3f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.550328642e-2f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.402264625e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.931471825e-1f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

LD_AVX512 inline float exp2_1(float x) { return _mm512_cvtss_f32(exp2_512(_mm512_set1_ps(x))); }

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

// Rows of the q kᵀ micro-kernel for NV vectors of keys: about 24 accumulators (a short last tile takes more rows).
constexpr int qk_rows(int nv) { return nv == 1 ? 16 : nv == 2 ? 12 : nv == 3 ? 8 : 6; }

// Scores of MR query rows (Qs, row stride E) against the NV·16 keys of a packed tile ([E][64]): rows of C (stride ldc).
template <int NV>
LD_AVX512 void qk_tile(const float* Qs, int64_t E, const float* tile, float* C, int64_t ldc) {
  constexpr int MR = qk_rows(NV);
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_setzero_ps();
  for (int64_t e = 0; e < E; e++) {
    __m512 kv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) kv[j] = _mm512_loadu_ps(tile + e * kTile + 16 * j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const __m512 b = _mm512_set1_ps(Qs[r * E + e]);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[r][j] = _mm512_fmadd_ps(b, kv[j], acc[r][j]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) _mm512_storeu_ps(C + r * ldc + 16 * j, acc[r][j]);
}

// 16 values of v as f32: f32 as they are, bf16 (uint16_t) widened by a shift.
LD_AVX512 inline __m512 load_v(const float* p) { return _mm512_loadu_ps(p); }
LD_AVX512 inline __m512 load_v(__mmask16 k, const float* p) { return _mm512_maskz_loadu_ps(k, p); }
LD_AVX512 inline __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
LD_AVX512 inline __m512 load_v(const uint16_t* p) { return widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
LD_AVX512 inline __m512 load_v(__mmask16 k, const uint16_t* p) { return widen(_mm256_maskz_loadu_epi16(k, p)); }

// O[MR rows][NV·16 columns] += P[MR rows][n keys] · V[n rows][NV·16 columns], the last vector of V's rows masked.
template <int MR, int NV, typename VT>
LD_AVX512 void pv_tile(const float* P, int64_t ldp, int64_t n, const VT* V, int64_t ldv, __mmask16 last,
                       float* O, int64_t ldo) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_loadu_ps(O + r * ldo + 16 * j);
  for (int64_t s = 0; s < n; s++) {
    __m512 vv[NV];
#pragma GCC unroll 6
    for (int j = 0; j < NV - 1; j++) vv[j] = load_v(V + s * ldv + 16 * j);
    vv[NV - 1] = load_v(last, V + s * ldv + 16 * (NV - 1));
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

template <int NV, typename VT>
LD_AVX512 void pv_rows_of(int64_t rows, const float* P, int64_t ldp, int64_t n, const VT* V, int64_t ldv,
                          __mmask16 last, float* O, int64_t ldo) {
  constexpr int MR = pv_rows(NV);
  for (int64_t r = 0; r < rows; r += MR) pv_tile<MR, NV, VT>(P + r * ldp, ldp, n, V, ldv, last, O + r * ldo, ldo);
}

template <typename VT>
LD_AVX512 void pv_block(int nv, int64_t rows, const float* P, int64_t ldp, int64_t n, const VT* V, int64_t ldv,
                        __mmask16 last, float* O, int64_t ldo) {
  switch (nv) {
    case 1: pv_rows_of<1, VT>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 2: pv_rows_of<2, VT>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 3: pv_rows_of<3, VT>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 4: pv_rows_of<4, VT>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    case 5: pv_rows_of<5, VT>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
    default: pv_rows_of<6, VT>(rows, P, ldp, n, V, ldv, last, O, ldo); break;
  }
}

template <int NV>
LD_AVX512 void qk_rows_of(int64_t rows, const float* Qs, int64_t E, const float* tile, float* C, int64_t ldc) {
  constexpr int MR = qk_rows(NV);
  for (int64_t r = 0; r < rows; r += MR) qk_tile<NV>(Qs + r * E, E, tile, C + r * ldc, ldc);
}

LD_AVX512 void qk_block(int nv, int64_t rows, const float* Qs, int64_t E, const float* tile, float* C, int64_t ldc) {
  switch (nv) {
    case 1: qk_rows_of<1>(rows, Qs, E, tile, C, ldc); break;
    case 2: qk_rows_of<2>(rows, Qs, E, tile, C, ldc); break;
    case 3: qk_rows_of<3>(rows, Qs, E, tile, C, ldc); break;
    default: qk_rows_of<4>(rows, Qs, E, tile, C, ldc); break;
  }
}

// ---- AVX512-BF16 micro-kernels (the bf16 dot-product path) ----
// vdpbf16ps multiplies the two bf16 pairs of each 32-bit lane exactly and adds both products to the f32 lane
// (rounded to nearest even; bf16 subnormals count as zero). So the operands are packed in pairs along the
// summed dimension: k as tiles [E/2][64 keys][2] (head-dim pairs), v as [S/2][Ev][2] (key pairs), and the
// broadcast operand is a (q[e], q[e+1]) or (p[s], p[s+1]) pair. An odd E or S is padded with a zero.

LD_BF16 inline __m512bh bf16_pair(const uint16_t* p) {  // the pair (p[0], p[1]) in all 16 lanes
  uint32_t x;
  std::memcpy(&x, p, sizeof(x));
  return (__m512bh)_mm512_set1_epi32(static_cast<int>(x));
}

LD_BF16 inline __m512bh load_bf16(const uint16_t* p) { return (__m512bh)_mm512_loadu_si512(p); }

// Scores of MR query rows (bf16 pairs, row stride 2·E2) against the NV·16 keys of a packed tile ([E2][64][2]),
// times scale: rows of C (stride ldc). The products are exact, so the scores are the f32 path's up to the order
// of the f32 additions and the scale applied once to the sum rather than to q.
template <int NV>
LD_BF16 void qk_tile_dot(const uint16_t* Qs, int64_t E2, const uint16_t* tile, float* C, int64_t ldc, float scale) {
  constexpr int MR = qk_rows(NV);
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_setzero_ps();
  for (int64_t e = 0; e < E2; e++) {
    __m512bh kv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) kv[j] = load_bf16(tile + e * 2 * kTile + 32 * j);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      const __m512bh b = bf16_pair(Qs + r * 2 * E2 + 2 * e);
#pragma GCC unroll 4
      for (int j = 0; j < NV; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], b, kv[j]);
    }
  }
  const __m512 vs = _mm512_set1_ps(scale);
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int j = 0; j < NV; j++) _mm512_storeu_ps(C + r * ldc + 16 * j, _mm512_mul_ps(acc[r][j], vs));
}

template <int NV>
LD_BF16 void qk_rows_of_dot(int64_t rows, const uint16_t* Qs, int64_t E2, const uint16_t* tile, float* C, int64_t ldc,
                            float scale) {
  constexpr int MR = qk_rows(NV);
  for (int64_t r = 0; r < rows; r += MR) qk_tile_dot<NV>(Qs + r * 2 * E2, E2, tile, C + r * ldc, ldc, scale);
}

LD_BF16 void qk_block_dot(int nv, int64_t rows, const uint16_t* Qs, int64_t E2, const uint16_t* tile, float* C,
                          int64_t ldc, float scale) {
  switch (nv) {
    case 1: qk_rows_of_dot<1>(rows, Qs, E2, tile, C, ldc, scale); break;
    case 2: qk_rows_of_dot<2>(rows, Qs, E2, tile, C, ldc, scale); break;
    case 3: qk_rows_of_dot<3>(rows, Qs, E2, tile, C, ldc, scale); break;
    default: qk_rows_of_dot<4>(rows, Qs, E2, tile, C, ldc, scale); break;
  }
}

// O[MR rows][NV·16 columns] += P[MR rows][2·n2 keys] · V[n2 key pairs][NV·16 columns], P bf16 (row stride ldp),
// V packed in key pairs (pair-row stride ldv, both in uint16_t).
template <int MR, int NV>
LD_BF16 void pv_tile_dot(const uint16_t* P, int64_t ldp, int64_t n2, const uint16_t* V, int64_t ldv, float* O,
                         int64_t ldo) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_loadu_ps(O + r * ldo + 16 * j);
  for (int64_t s = 0; s < n2; s++) {
    __m512bh vv[NV];
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) vv[j] = load_bf16(V + s * ldv + 32 * j);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m512bh b = bf16_pair(P + r * ldp + 2 * s);
#pragma GCC unroll 6
      for (int j = 0; j < NV; j++) acc[r][j] = _mm512_dpbf16_ps(acc[r][j], b, vv[j]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) _mm512_storeu_ps(O + r * ldo + 16 * j, acc[r][j]);
}

// pv_tile_dot where the last vector's columns are at most 8 (E = 40: 16 + 16 + 8): that vector holds two pair rows
// at once, lane 2i pair row s and lane 2i + 1 pair row s + 1 of column i (pack_v_dot's half tail), against a 64-bit
// broadcast (p[2s] … p[2s + 3]); its accumulator's adjacent lanes are summed by fold_half_tail. n2 is rounded up to
// even (the pair rows and probabilities past it are zero).
template <int MR, int NV>
LD_BF16 void pv_tile_dot_half(const uint16_t* P, int64_t ldp, int64_t n2, const uint16_t* V, int64_t ldv, float* O,
                              int64_t ldo) {
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) acc[r][j] = _mm512_loadu_ps(O + r * ldo + 16 * j);
  for (int64_t s = 0; s < n2; s += 2) {
    __m512bh va[NV - 1], vb[NV - 1];
#pragma GCC unroll 6
    for (int j = 0; j < NV - 1; j++) {
      va[j] = load_bf16(V + s * ldv + 32 * j);
      vb[j] = load_bf16(V + (s + 1) * ldv + 32 * j);
    }
    const __m512bh vt = load_bf16(V + s * ldv + 32 * (NV - 1));
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const uint16_t* p = P + r * ldp + 2 * s;
      const __m512bh a = bf16_pair(p), b = bf16_pair(p + 2);
      int64_t both;
      std::memcpy(&both, p, sizeof(both));
#pragma GCC unroll 6
      for (int j = 0; j < NV - 1; j++) acc[r][j] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(acc[r][j], a, va[j]), b, vb[j]);
      acc[r][NV - 1] = _mm512_dpbf16_ps(acc[r][NV - 1], (__m512bh)_mm512_set1_epi64(both), vt);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 6
    for (int j = 0; j < NV; j++) _mm512_storeu_ps(O + r * ldo + 16 * j, acc[r][j]);
}

// The half tail's 16 lanes (8 columns, each the sum over even pair rows and over odd ones) → its 8 columns.
LD_BF16 void fold_half_tail(float* tail) {
  const __m512 x = _mm512_loadu_ps(tail);
  const __m512i even = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 15, 13, 11, 9, 7, 5, 3, 1);
  _mm512_storeu_ps(tail, _mm512_add_ps(_mm512_permutexvar_ps(even, x), _mm512_permutexvar_ps(odd, x)));
}

template <int NV>
LD_BF16 void pv_rows_of_dot(int64_t rows, const uint16_t* P, int64_t ldp, int64_t n2, const uint16_t* V, int64_t ldv,
                            float* O, int64_t ldo, bool half) {
  constexpr int MR = pv_rows(NV);
  for (int64_t r = 0; r < rows; r += MR)
    if (NV > 1 && half)
      pv_tile_dot_half<MR, (NV > 1 ? NV : 2)>(P + r * ldp, ldp, n2 + n2 % 2, V, ldv, O + r * ldo, ldo);
    else
      pv_tile_dot<MR, NV>(P + r * ldp, ldp, n2, V, ldv, O + r * ldo, ldo);
}

// half: the block's last vector is a half tail (pack_v_dot).
LD_BF16 void pv_block_dot(int nv, int64_t rows, const uint16_t* P, int64_t ldp, int64_t n2, const uint16_t* V,
                          int64_t ldv, float* O, int64_t ldo, bool half) {
  switch (nv) {
    case 1: pv_rows_of_dot<1>(rows, P, ldp, n2, V, ldv, O, ldo, half); break;
    case 2: pv_rows_of_dot<2>(rows, P, ldp, n2, V, ldv, O, ldo, half); break;
    case 3: pv_rows_of_dot<3>(rows, P, ldp, n2, V, ldv, O, ldo, half); break;
    case 4: pv_rows_of_dot<4>(rows, P, ldp, n2, V, ldv, O, ldo, half); break;
    case 5: pv_rows_of_dot<5>(rows, P, ldp, n2, V, ldv, O, ldo, half); break;
    default: pv_rows_of_dot<6>(rows, P, ldp, n2, V, ldv, O, ldo, half); break;
  }
}

// One row of a key block, its scores already in base 2 (t = s·scale·log₂e): the running maximum m and sum l of
// 2^(t − m) are updated, the scores replaced by their exponentials, and the factor by which the row's accumulated
// output must be rescaled (2^(m_old − m_new), 1 when the maximum did not grow) returned.
LD_AVX512 float softmax_row(float* row, int64_t n, float& m, float& l) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 mx = neg_inf;
  int64_t s = 0;
  for (; s + 16 <= n; s += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + s));
  if (s < n) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(neg_inf, tail_mask(n - s), row + s));
  const float m_new = std::max(m, _mm512_reduce_max_ps(mx));
  const float alpha = m == m_new ? 1.0f : exp2_1(m - m_new);
  const __m512 vm = _mm512_set1_ps(m_new);
  __m512 sum = _mm512_setzero_ps();
  for (s = 0; s + 16 <= n; s += 16) {
    const __m512 p = exp2_512(_mm512_sub_ps(_mm512_loadu_ps(row + s), vm));
    _mm512_storeu_ps(row + s, p);
    sum = _mm512_add_ps(sum, p);
  }
  if (s < n) {
    const __mmask16 k = tail_mask(n - s);
    const __m512 p = exp2_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + s), vm));
    _mm512_mask_storeu_ps(row + s, k, p);
    sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, p));
  }
  m = m_new;
  l = l * alpha + _mm512_reduce_add_ps(sum);
  return alpha;
}

// softmax_row on the dot-product path: the same running maximum and sum (of the f32 exponentials), the
// exponentials written to dst as bf16 (vcvtne2ps2bf16: nearest even), zero-padded to a multiple of 32.
LD_BF16 float softmax_row_dot(const float* row, int64_t n, float& m, float* l, uint16_t* dst) {
  const __m512 neg_inf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 mx = neg_inf, mx1 = neg_inf, mx2 = neg_inf, mx3 = neg_inf;  // four chains: vmaxps's latency, not its rate
  int64_t s = 0;
  for (; s + 64 <= n; s += 64) {
    mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + s));
    mx1 = _mm512_max_ps(mx1, _mm512_loadu_ps(row + s + 16));
    mx2 = _mm512_max_ps(mx2, _mm512_loadu_ps(row + s + 32));
    mx3 = _mm512_max_ps(mx3, _mm512_loadu_ps(row + s + 48));
  }
  mx = _mm512_max_ps(_mm512_max_ps(mx, mx1), _mm512_max_ps(mx2, mx3));
  for (; s + 16 <= n; s += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(row + s));
  if (s < n) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(neg_inf, tail_mask(n - s), row + s));
  const float m_new = std::max(m, _mm512_reduce_max_ps(mx));
  // The first key block (m = −∞) finds nothing accumulated yet (output and sum zero), so it needs no rescaling.
  const float alpha = m == m_new || m == -std::numeric_limits<float>::infinity() ? 1.0f : exp2_1(m - m_new);
  const __m512 vm = _mm512_set1_ps(m_new);
  __m512 sum = _mm512_setzero_ps();
  for (s = 0; s + 32 <= n; s += 32) {
    const __m512 lo = exp2_512(_mm512_sub_ps(_mm512_loadu_ps(row + s), vm));
    const __m512 hi = exp2_512(_mm512_sub_ps(_mm512_loadu_ps(row + s + 16), vm));
    sum = _mm512_add_ps(sum, _mm512_add_ps(lo, hi));
    _mm512_storeu_si512(dst + s, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
  if (s < n) {
    const __mmask16 klo = tail_mask(n - s), khi = n - s > 16 ? tail_mask(n - s - 16) : 0;
    const __m512 lo = _mm512_maskz_mov_ps(klo, exp2_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(klo, row + s), vm)));
    const __m512 hi = khi ? _mm512_maskz_mov_ps(khi, exp2_512(_mm512_sub_ps(_mm512_maskz_loadu_ps(khi, row + s + 16), vm)))
                          : _mm512_setzero_ps();
    sum = _mm512_add_ps(sum, _mm512_add_ps(lo, hi));
    _mm512_storeu_si512(dst + s, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
  }
  m = m_new;
  _mm512_storeu_ps(l, _mm512_fmadd_ps(_mm512_loadu_ps(l), _mm512_set1_ps(alpha), sum));  // reduced once, at the end
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

// store_row on the dot-product path: bf16 by vcvtneps2bf16 (nearest even; an f32 subnormal becomes zero).
LD_BF16 void store_row_dot(const float* O, int64_t Ev, float l, uint16_t* out) {
  const __m512 inv = _mm512_set1_ps(1.0f / l);
  for (int64_t j = 0; j < Ev; j += 16)
    _mm256_mask_storeu_epi16(out + j, tail_mask(Ev - j),
                             (__m256i)_mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_loadu_ps(O + j), inv)));
}

// ---- the kernel ----

struct Shapes {
  int64_t B, L, S, E, Ev;
  int64_t tiles;      // k tiles of 64 keys per head
  int64_t key_block;  // keys per online-softmax step, a multiple of kTile
  int64_t ldc;        // row stride of the score buffer: the key block (or S) and 16 floats, so that rows are not 4 KB apart
  int64_t nvec;       // 16-float vectors per output row
};

// Packs k's head b into tiles [E][64] (keys past S zero) at dst, tiles [t0, t1).
template <typename T>
void pack_k_tile(const T* src, int64_t rs, int64_t cs, int64_t n, int64_t E, float* tile) {
  for (int64_t j = 0; j < n; j++) {
    const T* row = src + j * rs;
    for (int64_t e = 0; e < E; e++) tile[e * kTile + j] = static_cast<float>(row[e * cs]);
  }
  for (int64_t e = 0; e < E; e++)
    for (int64_t j = n; j < kTile; j++) tile[e * kTile + j] = 0.0f;
}

// Packs k's head b into tiles [E][64] (keys past S zero) at dst, tiles [t0, t1).
void pack_k(const Matrix& k, const Shapes& sh, int64_t b, int64_t t0, int64_t t1, float* dst) {
  for (int64_t t = t0; t < t1; t++) {
    const int64_t s0 = t * kTile, n = std::min(kTile, sh.S - s0);
    const char* head = k.base + k.offsets[b];
    if (k.bf16)
      pack_k_tile(reinterpret_cast<const c10::BFloat16*>(head) + s0 * k.rs, k.rs, k.cs, n, sh.E, dst + t * sh.E * kTile);
    else
      pack_k_tile(reinterpret_cast<const float*>(head) + s0 * k.rs, k.rs, k.cs, n, sh.E, dst + t * sh.E * kTile);
  }
}

// The dot-product path's packing (bf16 bits, zero padding): k tiles [E2][64][2] (E2 = ⌈E/2⌉ head-dim pairs) and
// v in key pairs [32 per tile][nvec·16 columns][2], tiles [t0, t1) of head b.
void pack_k_dot(const Matrix& k, const Shapes& sh, int64_t b, int64_t t0, int64_t t1, uint16_t* dst) {
  const int64_t E2 = (sh.E + 1) / 2;
  for (int64_t t = t0; t < t1; t++) {
    uint16_t* tile = dst + t * E2 * 2 * kTile;
    std::fill(tile, tile + E2 * 2 * kTile, uint16_t{0});
    const int64_t s0 = t * kTile, n = std::min(kTile, sh.S - s0);
    const uint16_t* head = reinterpret_cast<const uint16_t*>(k.base + k.offsets[b]);
    for (int64_t j = 0; j < n; j++) {
      const uint16_t* row = head + (s0 + j) * k.rs;
      uint16_t* col = tile + 2 * j;
      if (k.cs == 1) {  // a pair of bf16 values copied as one 32-bit word
        for (int64_t e = 0; e + 1 < sh.E; e += 2) std::memcpy(col + e * kTile, row + e, 2 * sizeof(uint16_t));
        if (sh.E % 2) col[(sh.E - 1) * kTile] = row[sh.E - 1];
      } else {
        for (int64_t e = 0; e < sh.E; e++) col[(e / 2) * 2 * kTile + e % 2] = row[e * k.cs];
      }
    }
  }
}

// Where v's output columns fit in at most 6 vectors, the last one at most half used (Ev mod 16 in 1 … 8: E = 40),
// that last vector is a half tail: pair rows 2i and 2i + 1 share the slot of row 2i, interleaved by column.
bool half_tail(const Shapes& sh) { return sh.nvec > 1 && sh.nvec <= 6 && sh.Ev % 16 != 0 && sh.Ev % 16 <= 8; }

LD_AVX512 void pack_v_dot(const Matrix& v, const Shapes& sh, int64_t b, int64_t t0, int64_t t1, uint16_t* dst) {
  const int64_t ldv = 2 * sh.nvec * 16;  // one pair row
  const int64_t split = half_tail(sh) ? 16 * (sh.nvec - 1) : sh.Ev;  // columns from here on in the half tail
  for (int64_t t = t0; t < t1; t++) {
    uint16_t* block = dst + t * (kTile / 2) * ldv;
    std::fill(block, block + (kTile / 2) * ldv, uint16_t{0});
    const int64_t s0 = t * kTile, n = std::min(kTile, sh.S - s0);
    const uint16_t* head = reinterpret_cast<const uint16_t*>(v.base + v.offsets[b]);
    for (int64_t j = 0; j < n; j++) {
      const uint16_t* row = head + (s0 + j) * v.rs;
      uint16_t* pair = block + (j / 2) * ldv + j % 2;
      if (v.cs == 1 && j % 2 == 0) {  // contiguous rows: 16 columns of keys j and j + 1 interleaved at once
        const uint16_t* next = j + 1 < n ? row + v.rs : nullptr;
        for (int64_t c = 0; c < split; c += 16) {
          const __mmask16 k = tail_mask(split - c);
          const __m512i lo = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, row + c));
          const __m512i hi = next ? _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, next + c)) : _mm512_setzero_si512();
          _mm512_mask_storeu_epi32(pair + 2 * c, k, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
        }
      } else if (v.cs != 1) {
        for (int64_t c = 0; c < split; c++) pair[2 * c] = row[c * v.cs];
      }
      uint16_t* tail = block + (j / 4) * 2 * ldv + 2 * split + (j / 2) % 2 * 2 + j % 2;
      for (int64_t c = split; c < sh.Ev; c++) tail[4 * (c - split)] = row[c * v.cs];
    }
  }
}

// Per-thread buffers, kept between calls (grown, never shrunk: a few hundred KB for the usual shapes) so that no
// call pays for fresh pages. Padding rows hold whatever an earlier call left there: they are never stored.
struct Scratch {
  std::vector<float> q, scores, out, m, l, k, v;
  std::vector<uint16_t> qb, pb, kb, vb;  // the dot-product path's q pairs, probabilities and packed k and v
  std::vector<float> lv;                 // and its running sums, 16 partial sums per row
  // k_elems and v_elems: floats, or bf16 values on the dot-product path.
  void fit(const Shapes& sh, bool dot, int64_t k_elems, int64_t v_elems) {
    auto grow = [](auto& b, int64_t n) {
      if (static_cast<int64_t>(b.size()) < n) b.resize(static_cast<size_t>(n));
    };
    grow(scores, kBufRows * sh.ldc);
    grow(out, kBufRows * sh.nvec * 16);
    grow(m, kBufRows);
    grow(l, kBufRows);
    if (dot) {
      grow(lv, kBufRows * 16);
      grow(qb, kBufRows * 2 * ((sh.E + 1) / 2));
      grow(pb, kBufRows * sh.ldc);
      grow(kb, k_elems);
      grow(vb, v_elems);
    } else {
      grow(q, kBufRows * sh.E);
      grow(k, k_elems);
      grow(v, v_elems);
    }
  }
};
thread_local Scratch scratch;

// Query rows [l0, l0 + rows) of head b: out rows = softmax(q kᵀ · scale) v.
// v's rows of one head: f32 or bf16 (then uint16_t), row stride ld elements, contiguous within a row.
struct VRows {
  const void* base;
  int64_t ld;
  bool bf16;
};

LD_AVX512 void attend_rows(const Matrix& q, const float* kp, const VRows& v, const Shapes& sh,
                           int64_t b, int64_t l0, int64_t rows, float scale, Scratch& w, char* out, int64_t out_rs,
                           bool out_bf16) {
  const int64_t E = sh.E, ldo = sh.nvec * 16, ldc = sh.ldc;
  // Each micro-kernel computes its rows in groups of its size: the rows past the block's are zeros here, and
  // whatever they give is never stored.
  for (int64_t r = 0; r < rows; r++) {
    float* row = w.q.data() + r * E;
    q.row(b, l0 + r, E, row);
    for (int64_t e = 0; e < E; e++) row[e] *= scale;  // scale · log₂e: the scores come out in base 2
  }
  std::fill(w.q.begin() + rows * E, w.q.begin() + kBufRows * E, 0.0f);
  std::fill(w.out.begin(), w.out.begin() + kBufRows * ldo, 0.0f);
  std::fill(w.m.begin(), w.m.end(), -std::numeric_limits<float>::infinity());
  std::fill(w.l.begin(), w.l.end(), 0.0f);
  // Output columns in chunks of at most 6 vectors (the p · v micro-kernel's width), as even as possible.
  const int64_t chunks = (sh.nvec + 5) / 6;
  for (int64_t s0 = 0; s0 < sh.S; s0 += sh.key_block) {
    const int64_t n = std::min(sh.key_block, sh.S - s0);
    for (int64_t t = s0 / kTile; t * kTile < s0 + n; t++) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (std::min(sh.S - t * kTile, kTile) + 15) / 16));
      qk_block(nv, rows, w.q.data(), E, kp + t * E * kTile, w.scores.data() + (t * kTile - s0), ldc);
    }
    for (int64_t r = 0; r < rows; r++) {
      const float alpha = softmax_row(w.scores.data() + r * ldc, n, w.m[r], w.l[r]);
      if (alpha != 1.0f) scale_row(w.out.data() + r * ldo, ldo, alpha);
    }
    int64_t col = 0;
    for (int64_t c = 0; c < chunks; c++) {
      const int nv = static_cast<int>(sh.nvec / chunks + (c < sh.nvec % chunks ? 1 : 0));
      const int64_t width = std::min<int64_t>(nv * 16, sh.Ev - col);
      const __mmask16 last = tail_mask(width - (nv - 1) * 16);
      if (v.bf16)
        pv_block(nv, rows, w.scores.data(), ldc, n, static_cast<const uint16_t*>(v.base) + s0 * v.ld + col, v.ld, last,
                 w.out.data() + col, ldo);
      else
        pv_block(nv, rows, w.scores.data(), ldc, n, static_cast<const float*>(v.base) + s0 * v.ld + col, v.ld, last,
                 w.out.data() + col, ldo);
      col += nv * 16;
    }
  }
  for (int64_t r = 0; r < rows; r++)
    store_row(w.out.data() + r * ldo, sh.Ev, w.l[r], out + (l0 + r) * out_rs, out_bf16);
}

// attend_rows on the dot-product path: bf16 q (its bits), k and v packed by pack_k_dot and pack_v_dot, the
// probabilities rounded to bf16 for p · v (as PyTorch 2's CPU flash attention does for bf16); the running maximum,
// sum and output accumulator stay f32.
LD_BF16 void attend_rows_dot(const Matrix& q, const uint16_t* kp, const uint16_t* vp, const Shapes& sh, int64_t b,
                             int64_t l0, int64_t rows, float scale, Scratch& w, char* out, int64_t out_rs) {
  const int64_t E2 = (sh.E + 1) / 2, ldo = sh.nvec * 16, ldc = sh.ldc, ldv = 2 * sh.nvec * 16;
  std::fill(w.qb.begin(), w.qb.begin() + kBufRows * 2 * E2, uint16_t{0});
  const uint16_t* qhead = reinterpret_cast<const uint16_t*>(q.base + q.offsets[b]);
  for (int64_t r = 0; r < rows; r++) {
    const uint16_t* src = qhead + (l0 + r) * q.rs;
    uint16_t* dst = w.qb.data() + r * 2 * E2;
    if (q.cs == 1)
      std::memcpy(dst, src, static_cast<size_t>(sh.E) * sizeof(uint16_t));
    else
      for (int64_t e = 0; e < sh.E; e++) dst[e] = src[e * q.cs];
  }
  std::fill(w.out.begin(), w.out.begin() + kBufRows * ldo, 0.0f);
  std::fill(w.m.begin(), w.m.end(), -std::numeric_limits<float>::infinity());
  std::fill(w.lv.begin(), w.lv.end(), 0.0f);
  const int64_t chunks = (sh.nvec + 5) / 6;
  const bool half = half_tail(sh);
  for (int64_t s0 = 0; s0 < sh.S; s0 += sh.key_block) {
    const int64_t n = std::min(sh.key_block, sh.S - s0);
    for (int64_t t = s0 / kTile; t * kTile < s0 + n; t++) {
      const int nv = static_cast<int>(std::min<int64_t>(4, (std::min(sh.S - t * kTile, kTile) + 15) / 16));
      qk_block_dot(nv, rows, w.qb.data(), E2, kp + t * E2 * 2 * kTile, w.scores.data() + (t * kTile - s0), ldc, scale);
    }
    for (int64_t r = 0; r < rows; r++) {
      const float alpha = softmax_row_dot(w.scores.data() + r * ldc, n, w.m[r], w.lv.data() + 16 * r, w.pb.data() + r * ldc);
      if (alpha != 1.0f) scale_row(w.out.data() + r * ldo, ldo, alpha);
    }
    int64_t col = 0;
    for (int64_t c = 0; c < chunks; c++) {
      const int nv = static_cast<int>(sh.nvec / chunks + (c < sh.nvec % chunks ? 1 : 0));
      pv_block_dot(nv, rows, w.pb.data(), ldc, (n + 1) / 2, vp + (s0 / 2) * ldv + 2 * col, ldv, w.out.data() + col, ldo,
                   half && c == chunks - 1);
      col += nv * 16;
    }
  }
  for (int64_t r = 0; r < rows; r++) {
    if (half) fold_half_tail(w.out.data() + r * ldo + ldo - 16);
    store_row_dot(w.out.data() + r * ldo, sh.Ev, _mm512_reduce_add_ps(_mm512_loadu_ps(w.lv.data() + 16 * r)),
                  reinterpret_cast<uint16_t*>(out + (l0 + r) * out_rs));
  }
}

// dot: the bf16 dot-product path (bf16 inputs on a CPU with AVX512-BF16), decided on the calling thread.
LD_AVX512 at::Tensor fused_attention_avx512(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale,
                                            bool dot) {
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
  sh.ldc = std::min(sh.key_block, sh.tiles * kTile) + 16;

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
  const bool v_in_place = V.cs == 1;  // f32 or bf16 rows read as they are

  // Query rows per task: blocks as even as possible of at most kMaxRows.
  const int64_t row_blocks = (sh.L + kMaxRows - 1) / kMaxRows;
  const int64_t block_rows = (sh.L + row_blocks - 1) / row_blocks;
  // Packed k and v per head, in floats, or in bf16 values on the dot-product path (v always packed there).
  const int64_t elem = dot ? 2 : static_cast<int64_t>(sizeof(float));
  const int64_t k_elems = dot ? sh.tiles * kTile * 2 * ((sh.E + 1) / 2) : sh.tiles * kTile * sh.E;
  const int64_t v_elems = dot ? sh.tiles * kTile * sh.nvec * 16 : v_in_place ? 0 : sh.S * sh.Ev;
  const int64_t heads_at_once = std::clamp<int64_t>(kPackBytes / (elem * (k_elems + v_elems)), 1, sh.B);
  const float fscale = static_cast<float>(scale * 1.4426950408889634);
  auto pack_head = [&](int64_t b, int64_t t0, int64_t t1, float* kdst, float* vdst) {
    pack_k(K, sh, b, t0, t1, kdst);
    if (!v_in_place)
      for (int64_t s = t0 * kTile; s < std::min(sh.S, t1 * kTile); s++) V.row(b, s, sh.Ev, vdst + s * sh.Ev);
  };
  auto pack_head_dot = [&](int64_t b, int64_t t0, int64_t t1, uint16_t* kdst, uint16_t* vdst) {
    pack_k_dot(K, sh, b, t0, t1, kdst);
    pack_v_dot(V, sh, b, t0, t1, vdst);
  };
  auto v_rows = [&](int64_t b, const float* packed) {
    return v_in_place ? VRows{V.base + V.offsets[b], V.rs, V.bf16} : VRows{packed, sh.Ev, false};
  };

  // One block of rows per head (short queries: the U-Net's smallest levels): each task packs its own head, all in
  // one parallel region (the second one below costs more than the work at these sizes).
  if (row_blocks == 1 && (k_elems + v_elems) * elem <= (2 << 20)) {
    at::parallel_for(0, sh.B, 1, [&](int64_t begin, int64_t end) {
      Scratch& w = scratch;
      w.fit(sh, dot, k_elems, v_elems);
      for (int64_t b = begin; b < end; b++) {
        if (dot) {
          pack_head_dot(b, 0, sh.tiles, w.kb.data(), w.vb.data());
          attend_rows_dot(Q, w.kb.data(), w.vb.data(), sh, b, 0, sh.L, fscale, w, out_base + out_offsets[b], out_rs);
        } else {
          pack_head(b, 0, sh.tiles, w.k.data(), w.v.data());
          attend_rows(Q, w.k.data(), v_rows(b, w.v.data()), sh, b, 0, sh.L, fscale, w, out_base + out_offsets[b], out_rs, bf16);
        }
      }
    });
    return out;
  }

  std::vector<float> kp(static_cast<size_t>(dot ? 0 : heads_at_once * k_elems)),
      vp(static_cast<size_t>(dot ? 0 : heads_at_once * v_elems));
  std::vector<uint16_t> kpb(static_cast<size_t>(dot ? heads_at_once * k_elems : 0)),
      vpb(static_cast<size_t>(dot ? heads_at_once * v_elems : 0));
  for (int64_t h0 = 0; h0 < sh.B; h0 += heads_at_once) {
    const int64_t nh = std::min(heads_at_once, sh.B - h0);
    // Pack k (and v where it is not contiguous f32 rows, or on the dot-product path): 64 keys of one head per task.
    at::parallel_for(0, nh * sh.tiles, 1, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; i++) {
        const int64_t h = i / sh.tiles, t = i % sh.tiles;
        if (dot)
          pack_head_dot(h0 + h, t, t + 1, kpb.data() + h * k_elems, vpb.data() + h * v_elems);
        else
          pack_head(h0 + h, t, t + 1, kp.data() + h * k_elems, vp.data() + h * v_elems);
      }
    });
    at::parallel_for(0, nh * row_blocks, 1, [&](int64_t begin, int64_t end) {
      Scratch& w = scratch;
      w.fit(sh, dot, 0, 0);
      for (int64_t i = begin; i < end; i++) {
        const int64_t h = i / row_blocks, l0 = (i % row_blocks) * block_rows;
        const int64_t b = h0 + h, rows = std::min(block_rows, sh.L - l0);
        if (dot)
          attend_rows_dot(Q, kpb.data() + h * k_elems, vpb.data() + h * v_elems, sh, b, l0, rows, fscale, w,
                          out_base + out_offsets[b], out_rs);
        else
          attend_rows(Q, kp.data() + h * k_elems, v_rows(b, vp.data() + h * v_elems), sh, b, l0, rows, fscale, w, out_base + out_offsets[b], out_rs, bf16);
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
  if (cpu_supported())
    return fused_attention_avx512(q, k, v, scale, q.scalar_type() == at::kBFloat16 && dot_active());
#endif
  throw std::runtime_error("the fused attention kernel needs a CPU with AVX-512 (F, BW, VL, DQ)");
}

}  // namespace ld

extern "C" {

LD_API int ld_set_fused_attention(int mode) { return set_mode(override_mode, mode, "set_fused_attention"); }

LD_API int ld_fused_attention_active(void) { return active() ? 1 : 0; }

LD_API int ld_set_attention_bf16_dot(int mode) { return set_mode(dot_override_mode, mode, "set_attention_bf16_dot"); }

LD_API int ld_attention_bf16_dot_active(void) { return dot_active() ? 1 : 0; }

}  // extern "C"

// Neural-network functional operations.
#include "common.h"
#include "onednn.h"
#include "attention.h"
#include <ATen/record_function.h>
#include <cstdlib>
#include <c10/core/InferenceMode.h>

// scaled_dot_product_attention with an explicit scale arrived in libtorch 2.1.
#define LD_FUSED_SDPA (TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1))

namespace {
int64_t reduction_enum(int reduction) {
  switch (reduction) {
    case 0: return at::Reduction::None;
    case 1: return at::Reduction::Mean;
    case 2: return at::Reduction::Sum;
    default: throw std::invalid_argument("unknown reduction " + std::to_string(reduction));
  }
}

#if !LD_FUSED_SDPA
// Bytes of attention scores computed at once by attention_blocked: small enough to come from the
// heap that the previous block freed (glibc serves anything above 32 MB with a fresh mmap, every page
// a fault) and to stay mostly in cache between the two matmuls and the softmax.
constexpr int64_t kScoreBlockBytes = 4 << 20;

// softmax(q kᵀ · scale) v without autograd, a block of (batch × head) rows, or of query rows, at a
// time: one [rows, L, S] score buffer reused for every block, the scale folded into the first matmul
// (baddbmm's alpha, as diffusers' AttnProcessor does) and the softmax computed in place. The
// unblocked path below holds three [batch × heads, L, S] tensors at once (scores, scaled, softmax):
// 192 MB per self-attention of the SD1.5 U-Net at 256², each page faulted in anew.
at::Tensor attention_blocked(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  const auto L = q.size(-2), S = k.size(-2), E = q.size(-1), Ev = v.size(-1);
  auto batch_shape = q.sizes().slice(0, q.dim() - 2);
  const auto B = c10::multiply_integers(batch_shape);
  auto q3 = q.reshape({B, L, E});
  auto k3t = k.reshape({B, S, E}).transpose(1, 2);
  auto v3 = v.reshape({B, S, Ev});
  auto out = at::empty({B, L, Ev}, q.options());
  const int64_t per_row = S * static_cast<int64_t>(q.element_size());
  const int64_t rows = std::max<int64_t>(1, kScoreBlockBytes / per_row);  // query rows per block
  const int64_t heads_per_block = rows >= L ? std::min<int64_t>(B, rows / L) : 1;
  const int64_t rows_per_block = rows >= L ? L : rows;
  // Zeroed: libtorch 1.13's small-matrix baddbmm kernel computes beta · self even for beta = 0, so
  // garbage in a fresh buffer would come back as NaN.
  auto buffer = at::zeros({heads_per_block * rows_per_block * S}, q.options());
  for (int64_t b = 0; b < B; b += heads_per_block) {
    const auto nb = std::min(heads_per_block, B - b);
    for (int64_t l = 0; l < L; l += rows_per_block) {
      const auto nl = std::min(rows_per_block, L - l);
      auto qb = q3.narrow(0, b, nb).narrow(1, l, nl);
      auto scores = buffer.narrow(0, 0, nb * nl * S).view({nb, nl, S});
      at::baddbmm_out(scores, scores, qb, k3t.narrow(0, b, nb), 0.0, scale);
      at::_softmax_out(scores, scores, -1, false);
      auto ob = out.narrow(0, b, nb).narrow(1, l, nl);
      if (ob.is_contiguous())
        at::bmm_out(ob, scores, v3.narrow(0, b, nb));
      else
        ob.copy_(at::bmm(scores, v3.narrow(0, b, nb)));
    }
  }
  std::vector<int64_t> out_shape(batch_shape.begin(), batch_shape.end());
  out_shape.push_back(L);
  out_shape.push_back(Ev);
  return out.view(out_shape);
}

bool attention_blocked_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const c10::optional<at::Tensor>& mask, double dropout, bool causal) {
  if (mask || dropout > 0 || causal || q.dim() < 3 || k.dim() != q.dim() || v.dim() != q.dim()) return false;
  if (at::GradMode::is_enabled() && (q.requires_grad() || k.requires_grad() || v.requires_grad())) return false;
  if (!q.device().is_cpu() || k.scalar_type() != q.scalar_type() || v.scalar_type() != q.scalar_type()) return false;
  auto batch = q.sizes().slice(0, q.dim() - 2);
  return batch == k.sizes().slice(0, k.dim() - 2) && batch == v.sizes().slice(0, v.dim() - 2) &&
         k.size(-1) == q.size(-1) && v.size(-2) == k.size(-2);
}

// softmax(q kᵀ · scale + mask) v, the reference math path (used on libtorch < 2.1).
at::Tensor attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const c10::optional<at::Tensor>& mask, double dropout, bool causal, double scale) {
  auto scores = at::matmul(q, k.transpose(-2, -1)).mul(scale);
  if (causal) {
    auto L = q.size(-2), S = k.size(-2);
    auto keep = at::ones({L, S}, q.options().dtype(at::kBool)).tril();
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask) {
    if (mask->scalar_type() == at::kBool)
      scores = scores.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity());
    else
      scores = scores.add(*mask);
  }
  auto probs = at::softmax(scores, -1);
  if (dropout > 0) probs = at::dropout(probs, dropout, true);
  return at::matmul(probs, v);
}
#endif
}  // namespace

extern "C" {

LD_API int ld_has_fused_attention(void) {
  return LD_FUSED_SDPA ? 1 : 0;
}

LD_API ld_tensor* ld_conv2d(ld_tensor* x, ld_tensor* w, ld_tensor* b, const int64_t* stride, const int64_t* padding,
                            const int64_t* dilation, int64_t groups) {
  LD_TENSOR("conv2d", at::conv2d(ld::T(x), ld::T(w), ld::opt(b), ld::dims(stride, 2), ld::dims(padding, 2),
                                 ld::dims(dilation, 2), groups))
}
// Inference convolution with the weight reordered once into oneDNN's blocked layout. at::conv2d
// reorders the dense weight on every call, which at the U-Net's low resolutions (1280 channels at
// 4×4) costs several times the convolution itself. Same primitive, so the same results up to float
// rounding (the packed layout is chosen without the input's size, which can change the kernel).
LD_API int ld_has_mkldnn(void) { return at::hasMKLDNN() ? 1 : 0; }
LD_API ld_tensor* ld_conv2d_prepack(ld_tensor* w, const int64_t* stride, const int64_t* padding, const int64_t* dilation,
                                    int64_t groups) {
  LD_GUARD("conv2d_prepack", nullptr, {
    auto& W = ld::T(w);
    if (!at::hasMKLDNN()) throw std::invalid_argument("this libtorch has no oneDNN (MKL-DNN)");
    if (!W.device().is_cpu() || W.dim() != 4 || (W.scalar_type() != at::kFloat && W.scalar_type() != at::kBFloat16))
      throw std::invalid_argument("only a 4-D float32 or bfloat16 CPU weight can be prepacked");
    if (groups == 1 && ld::onednn::conv_enabled() && ld::onednn::conv_prefers_matmul(W)) return ld::wrap(ld::onednn::pack_conv2d(W));
    at::NoGradGuard no_grad;
    ld::CpuCachePause dense_copy_not_cached;
    return ld::wrap(at::mkldnn_reorder_conv2d_weight(W.contiguous().to_mkldnn(), ld::dims(padding, 2), ld::dims(stride, 2),
                                                     ld::dims(dilation, 2), groups));
  })
}
LD_API ld_tensor* ld_conv2d_prepacked(ld_tensor* x, ld_tensor* packed, ld_tensor* b, const int64_t* stride,
                                      const int64_t* padding, const int64_t* dilation, int64_t groups) {
  LD_GUARD("conv2d_prepacked", nullptr, {
    auto& X = ld::T(x);
    auto& P = ld::T(packed);
    if (ld::onednn::is_packed(P)) {
      if (groups != 1) throw std::invalid_argument("the weight was packed for a convolution of one group");
      return ld::wrap(ld::onednn::conv2d(X, P, ld::opt(b), ld::dims(stride, 2), ld::dims(padding, 2), ld::dims(dilation, 2)));
    }
    if (!P.is_mkldnn()) throw std::invalid_argument("the weight was not prepacked (ld_conv2d_prepack)");
    if (X.dim() != 4 || !X.device().is_cpu()) throw std::invalid_argument("a prepacked convolution takes a 4-D CPU input");
    if (X.scalar_type() != P.scalar_type())
      throw std::invalid_argument("input and prepacked weight dtypes differ");
    return ld::wrap(at::mkldnn_convolution(X.contiguous(), P, ld::opt(b), ld::dims(padding, 2), ld::dims(stride, 2),
                                           ld::dims(dilation, 2), groups));
  })
}
LD_API ld_tensor* ld_conv2d_unpack(ld_tensor* packed, const int64_t* shape) {
  LD_GUARD("conv2d_unpack", nullptr, {
    auto& P = ld::T(packed);
    if (ld::onednn::is_packed(P)) {
      // A convolution's kernel, or a 1×1 kernel packed as a linear layer's [O, C] matrix (Conv2d fed tokens): the same
      // values in the same order. A tensor of its own (not a view of the matrix), as ld_linear_unpack gives it.
      auto dense = ld::onednn::unpack(P);
      auto sizes = ld::dims(shape, 4);
      if (dense.sizes() != sizes) {
        if (dense.dim() != 2 || dense.size(0) != sizes[0] || dense.size(1) != sizes[1] || sizes[2] != 1 || sizes[3] != 1)
          throw std::invalid_argument("the packed weight has another shape");
        at::NoGradGuard no_grad;
        c10::InferenceMode not_inference(false);
        auto kernel = at::empty({0}, dense.options());
        kernel.set_(dense.storage(), 0, sizes, {sizes[1], 1, 1, 1});
        return ld::wrap(kernel);
      }
      return ld::wrap(dense);
    }
    if (!P.is_mkldnn()) throw std::invalid_argument("the weight was not prepacked (ld_conv2d_prepack)");
    at::NoGradGuard no_grad;
    // A normal tensor even when asked under inference mode: the weight must keep a version counter and
    // accept in-place updates (a LoRA merge) afterwards.
    c10::InferenceMode not_inference(false);
    at::Tensor dense;
    {
      // oneDNN tensors are read below autograd (as mkldnn_convolution is called), which a packed copy made
      // under inference mode requires.
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      dense = P.to_dense();
    }
    // A grouped weight may come back with a leading groups dimension: the logical shape is the caller's.
    return ld::wrap(dense.reshape(ld::dims(shape, 4)).contiguous());
  })
}
LD_API int64_t ld_tensor_bytes(ld_tensor* t) {
  LD_GUARD("tensor_bytes", -1, {
    auto& T = ld::T(t);
    if (T.is_mkldnn()) return static_cast<int64_t>(T.numel() * T.element_size());
    return T.has_storage() ? static_cast<int64_t>(T.storage().nbytes()) : 0;
  })
}
// The version counter that in-place ops bump; -1 for inference tensors, which have none.
LD_API int64_t ld_tensor_version(ld_tensor* t) {
  LD_GUARD("version", -2, {
    auto& T = ld::T(t);
    return T.is_inference() ? -1 : static_cast<int64_t>(T._version());
  })
}

LD_API ld_tensor* ld_conv_transpose2d(ld_tensor* x, ld_tensor* w, ld_tensor* b, const int64_t* stride,
                                      const int64_t* padding, const int64_t* output_padding, int64_t groups,
                                      const int64_t* dilation) {
  LD_TENSOR("conv_transpose2d",
            at::conv_transpose2d(ld::T(x), ld::T(w), ld::opt(b), ld::dims(stride, 2), ld::dims(padding, 2),
                                 ld::dims(output_padding, 2), groups, ld::dims(dilation, 2)))
}
// bf16 GroupNorm and LayerNorm without autograd are computed in f32 and rounded back: libtorch 1.13's bf16 CPU norms
// are 7–9× slower than its f32 ones. Measured in the bf16 SD1.5 U-Net at 256² (batch 2, 2 threads, `chrt -f 1`,
// 2026-12-05, `ldm bench unet --dtype bf16 --profile`): group_norm 65.8 ms and layer_norm 58.4 ms of a 0.78 s pass,
// against 7.2 and 10.7 ms for the same calls in f32. The statistics are then f32's (the reference's). Where the fused
// kernels apply (groupnorm.cpp, layernorm.cpp: AVX-512, no autograd) they run instead and read bf16 directly; this is
// their fallback.
namespace {
bool norm_in_f32(const at::Tensor& x, const c10::optional<at::Tensor>& w, const c10::optional<at::Tensor>& b) {
  if (x.scalar_type() != at::kBFloat16 || !x.device().is_cpu()) return false;
  return !(at::GradMode::is_enabled() && (x.requires_grad() || (w && w->requires_grad()) || (b && b->requires_grad())));
}
c10::optional<at::Tensor> f32(const c10::optional<at::Tensor>& t) {
  return t ? c10::optional<at::Tensor>(t->to(at::kFloat)) : c10::nullopt;
}
}  // namespace
}  // extern "C"
namespace ld {
at::Tensor group_norm_reference(const at::Tensor& X, int64_t groups, const c10::optional<at::Tensor>& W,
                                const c10::optional<at::Tensor>& B, double eps) {
  if (norm_in_f32(X, W, B)) return at::group_norm(X.to(at::kFloat), groups, f32(W), f32(B), eps).to(at::kBFloat16);
  return at::group_norm(X, groups, W, B, eps);
}
}  // namespace ld
extern "C" {
LD_API ld_tensor* ld_group_norm(ld_tensor* x, int64_t groups, ld_tensor* w, ld_tensor* b, double eps) {
  LD_GUARD("group_norm", nullptr, {
    auto& X = ld::T(x);
    auto W = ld::opt(w), B = ld::opt(b);
    if (auto fused = ld::group_norm_fused(X, groups, W, B, eps)) return ld::wrap(std::move(*fused));
    return ld::wrap(ld::group_norm_reference(X, groups, W, B, eps));
  })
}
LD_API ld_tensor* ld_layer_norm(ld_tensor* x, const int64_t* shape, int ndim, ld_tensor* w, ld_tensor* b, double eps) {
  LD_GUARD("layer_norm", nullptr, {
    auto& X = ld::T(x);
    auto W = ld::opt(w), B = ld::opt(b);
    if (auto fused = ld::layer_norm_fused(X, ld::dims(shape, ndim), W, B, eps)) return ld::wrap(std::move(*fused));
    if (norm_in_f32(X, W, B))
      return ld::wrap(at::layer_norm(X.to(at::kFloat), ld::dims(shape, ndim), f32(W), f32(B), eps).to(at::kBFloat16));
    return ld::wrap(at::layer_norm(X, ld::dims(shape, ndim), W, B, eps));
  })
}
LD_API ld_tensor* ld_batch_norm(ld_tensor* x, ld_tensor* w, ld_tensor* b, ld_tensor* rm, ld_tensor* rv, int training,
                                double momentum, double eps) {
  LD_TENSOR("batch_norm", at::batch_norm(ld::T(x), ld::opt(w), ld::opt(b), ld::opt(rm), ld::opt(rv), training != 0,
                                         momentum, eps, false))
}
LD_API ld_tensor* ld_embedding(ld_tensor* weight, ld_tensor* indices) { LD_TENSOR("embedding", at::embedding(ld::T(weight), ld::T(indices))) }
LD_API ld_tensor* ld_softmax(ld_tensor* x, int64_t dim) { LD_TENSOR("softmax", at::softmax(ld::T(x), dim)) }
LD_API ld_tensor* ld_log_softmax(ld_tensor* x, int64_t dim) { LD_TENSOR("log_softmax", at::log_softmax(ld::T(x), dim)) }
LD_API ld_tensor* ld_leaky_relu(ld_tensor* x, double slope) { LD_TENSOR("leaky_relu", at::leaky_relu(ld::T(x), slope)) }
LD_API ld_tensor* ld_dropout(ld_tensor* x, double p, int train) { LD_TENSOR("dropout", at::dropout(ld::T(x), p, train != 0)) }

LD_API ld_tensor* ld_interpolate(ld_tensor* x, int mode, const int64_t* size, const double* scale, int align_corners) {
  LD_GUARD("interpolate", nullptr, {
    auto& in = ld::T(x);
    if (in.dim() != 4) throw std::invalid_argument("interpolate expects a 4-D [N, C, H, W] tensor");
    c10::optional<at::IntArrayRef> out_size = size ? c10::optional<at::IntArrayRef>(ld::dims(size, 2)) : c10::nullopt;
    c10::optional<at::ArrayRef<double>> scales =
        (!size && scale) ? c10::optional<at::ArrayRef<double>>(at::ArrayRef<double>(scale, 2)) : c10::nullopt;
    if (!size && !scale) throw std::invalid_argument("interpolate needs a size or a scale factor");
    switch (mode) {
      case 0: return ld::wrap(at::upsample_nearest2d(in, out_size, scales));
      case 1: return ld::wrap(at::upsample_bilinear2d(in, out_size, align_corners != 0, scales));
      case 2: return ld::wrap(at::upsample_bicubic2d(in, out_size, align_corners != 0, scales));
      case 3: return ld::wrap(at::_upsample_nearest_exact2d(in, out_size, scales));
      default: throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
    }
  })
}

LD_API ld_tensor* ld_pad(ld_tensor* x, const int64_t* pads, int npads, int mode, double value) {
  LD_GUARD("pad", nullptr, {
    auto& in = ld::T(x);
    auto p = ld::dims(pads, npads);
    switch (mode) {
      case 0: return ld::wrap(at::constant_pad_nd(in, p, value));
      case 1: return ld::wrap(npads == 2 ? at::reflection_pad1d(in, p) : at::reflection_pad2d(in, p));
      case 2: return ld::wrap(npads == 2 ? at::replication_pad1d(in, p) : at::replication_pad2d(in, p));
      case 3: return ld::wrap(at::_pad_circular(in, p));
      default: throw std::invalid_argument("unknown padding mode " + std::to_string(mode));
    }
  })
}
LD_API ld_tensor* ld_pixel_shuffle(ld_tensor* x, int64_t f) { LD_TENSOR("pixel_shuffle", at::pixel_shuffle(ld::T(x), f)) }
LD_API ld_tensor* ld_pixel_unshuffle(ld_tensor* x, int64_t f) { LD_TENSOR("pixel_unshuffle", at::pixel_unshuffle(ld::T(x), f)) }
LD_API ld_tensor* ld_avg_pool2d(ld_tensor* x, const int64_t* k, const int64_t* s, const int64_t* p) {
  LD_TENSOR("avg_pool2d", at::avg_pool2d(ld::T(x), ld::dims(k, 2), ld::dims(s, 2), ld::dims(p, 2)))
}
LD_API ld_tensor* ld_max_pool2d(ld_tensor* x, const int64_t* k, const int64_t* s, const int64_t* p) {
  LD_TENSOR("max_pool2d", at::max_pool2d(ld::T(x), ld::dims(k, 2), ld::dims(s, 2), ld::dims(p, 2)))
}
LD_API ld_tensor* ld_adaptive_avg_pool2d(ld_tensor* x, const int64_t* size) {
  LD_TENSOR("adaptive_avg_pool2d", at::adaptive_avg_pool2d(ld::T(x), ld::dims(size, 2)))
}

LD_API ld_tensor* ld_scaled_dot_product_attention(ld_tensor* q, ld_tensor* k, ld_tensor* v, ld_tensor* mask,
                                                  double dropout, int is_causal, double scale) {
  LD_GUARD("scaled_dot_product_attention", nullptr, {
    auto& Q = ld::T(q);
    double s = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(Q.size(-1)));
    // One entry in the op profile (profiler.cpp), its matmuls and softmax inside it.
    RECORD_FUNCTION("ld::attention", std::vector<c10::IValue>({Q, ld::T(k), ld::T(v)}));
#if LD_FUSED_SDPA
    return ld::wrap(at::scaled_dot_product_attention(Q, ld::T(k), ld::T(v), ld::opt(mask), dropout, is_causal != 0, s));
#else
    auto M = ld::opt(mask);
    if (attention_blocked_applies(Q, ld::T(k), ld::T(v), M, dropout, is_causal != 0)) {
      if (ld::fused_attention_applies(Q, ld::T(k), ld::T(v))) return ld::wrap(ld::fused_attention(Q, ld::T(k), ld::T(v), s));
      return ld::wrap(attention_blocked(Q, ld::T(k), ld::T(v), s));
    }
    return ld::wrap(attention_math(Q, ld::T(k), ld::T(v), M, dropout, is_causal != 0, s));
#endif
  })
}

LD_API ld_tensor* ld_mse_loss(ld_tensor* x, ld_tensor* y, int r) { LD_TENSOR("mse_loss", at::mse_loss(ld::T(x), ld::T(y), reduction_enum(r))) }
LD_API ld_tensor* ld_l1_loss(ld_tensor* x, ld_tensor* y, int r) { LD_TENSOR("l1_loss", at::l1_loss(ld::T(x), ld::T(y), reduction_enum(r))) }
LD_API ld_tensor* ld_smooth_l1_loss(ld_tensor* x, ld_tensor* y, int r, double beta) {
  LD_TENSOR("smooth_l1_loss", at::smooth_l1_loss(ld::T(x), ld::T(y), reduction_enum(r), beta))
}
LD_API ld_tensor* ld_cross_entropy(ld_tensor* logits, ld_tensor* target, int r, int64_t ignore_index, double smoothing) {
  LD_TENSOR("cross_entropy", at::cross_entropy_loss(ld::T(logits), ld::T(target), c10::nullopt, reduction_enum(r),
                                                    ignore_index, smoothing))
}
LD_API ld_tensor* ld_bce_with_logits(ld_tensor* x, ld_tensor* y, int r) {
  LD_TENSOR("binary_cross_entropy_with_logits",
            at::binary_cross_entropy_with_logits(ld::T(x), ld::T(y), c10::nullopt, c10::nullopt, reduction_enum(r)))
}

}  // extern "C"

// Neural-network functional operations.
#include "common.h"

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

LD_API ld_tensor* ld_linear(ld_tensor* x, ld_tensor* w, ld_tensor* b) { LD_TENSOR("linear", at::linear(ld::T(x), ld::T(w), ld::opt(b))) }

LD_API ld_tensor* ld_conv2d(ld_tensor* x, ld_tensor* w, ld_tensor* b, const int64_t* stride, const int64_t* padding,
                            const int64_t* dilation, int64_t groups) {
  LD_TENSOR("conv2d", at::conv2d(ld::T(x), ld::T(w), ld::opt(b), ld::dims(stride, 2), ld::dims(padding, 2),
                                 ld::dims(dilation, 2), groups))
}
LD_API ld_tensor* ld_conv_transpose2d(ld_tensor* x, ld_tensor* w, ld_tensor* b, const int64_t* stride,
                                      const int64_t* padding, const int64_t* output_padding, int64_t groups,
                                      const int64_t* dilation) {
  LD_TENSOR("conv_transpose2d",
            at::conv_transpose2d(ld::T(x), ld::T(w), ld::opt(b), ld::dims(stride, 2), ld::dims(padding, 2),
                                 ld::dims(output_padding, 2), groups, ld::dims(dilation, 2)))
}
LD_API ld_tensor* ld_group_norm(ld_tensor* x, int64_t groups, ld_tensor* w, ld_tensor* b, double eps) {
  LD_TENSOR("group_norm", at::group_norm(ld::T(x), groups, ld::opt(w), ld::opt(b), eps))
}
LD_API ld_tensor* ld_layer_norm(ld_tensor* x, const int64_t* shape, int ndim, ld_tensor* w, ld_tensor* b, double eps) {
  LD_TENSOR("layer_norm", at::layer_norm(ld::T(x), ld::dims(shape, ndim), ld::opt(w), ld::opt(b), eps))
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
#if LD_FUSED_SDPA
    return ld::wrap(at::scaled_dot_product_attention(Q, ld::T(k), ld::T(v), ld::opt(mask), dropout, is_causal != 0, s));
#else
    return ld::wrap(attention_math(Q, ld::T(k), ld::T(v), ld::opt(mask), dropout, is_causal != 0, s));
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

// Linear layers for inference: the oneDNN paths beside at::linear (moved here from nn.cpp), and a weight prepacked
// once into oneDNN's blocked layout for the small-row products, where the per-call reorder of a dense weight costs
// more than the product itself.
#include "common.h"
#include "onednn.h"
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <cstdlib>
#include <memory>

namespace {
// Rows from which an f32 linear layer runs as a oneDNN 1×1 convolution (below: OpenBLAS's sgemm through
// at::linear). Measured on the 2-core AVX-512 machine (Zen 5 class), libtorch 1.13 with OpenBLAS 0.3.21, `chrt -f 1`,
// 2026-12-05, GFLOP/s of at::linear vs this path (weight reordered by oneDNN in each call included), rows × in → out:
// 2048×320→320 232 vs 501, 2048×320→2560 272 vs 528, 2048×1280→320 258 vs 529, 512×640→5120 204 vs 478,
// 256×1280→1280 264 vs 464; at 128 rows it loses for the large weights (128×1280→10240: 232 vs 129), whose
// per-call reorder then costs more than the product — but those run on the prepacked weight (Linear.PackedIsFaster),
// so from 128 rows only the shapes that keep a dense weight come here: 128×640→640 85–116 vs 336, 154×768→320 (CLIP
// and the U-Net's cross-attention keys/values at batch 2) 7 vs 367. 128 instead of 256 (same session, locked,
// alternating): U-Net 256² f32 1.24 → 1.09 s, CLIP 0.16 → 0.12 s. Below 128 (32×320→320: 142 vs 138) no gain.
// Same values up to float rounding (max |Δ| ~5e-6 on these shapes). Like OpenBLAS's sgemm, oneDNN splits the
// product by the intra-op thread count, so results are bit-identical for a given thread count (the process's), not
// across counts (max |Δ| 1e-6–2.4e-6 between 1 and 2 threads; OpenBLAS 5.7e-5).
constexpr int64_t kLinearOneDnnMinRows = 128;

bool linear_onednn_applies(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b) {
  static const bool enabled = [] {
    const char* v = std::getenv("LDTORCH_LINEAR_ONEDNN");
    return !(v && std::string(v) == "0");
  }();
  if (!enabled || !at::hasMKLDNN()) return false;
  // f32 only: a bf16 linear already runs on oneDNN (at::addmm's bf16 path), as fast as this one.
  if (x.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || (b && b->scalar_type() != at::kFloat)) return false;
  if (!x.device().is_cpu() || !w.device().is_cpu() || x.is_mkldnn() || w.dim() != 2 || x.dim() < 2 || x.size(-1) != w.size(1)) return false;
  if (b && (b->dim() != 1 || b->size(0) != w.size(0))) return false;
  // Inference only: training keeps at::linear (and its autograd) as it was.
  if (at::GradMode::is_enabled() && (x.requires_grad() || w.requires_grad() || (b && b->requires_grad()))) return false;
  return x.numel() / std::max<int64_t>(1, x.size(-1)) >= kLinearOneDnnMinRows && w.size(0) > 0;
}

// x [..., K] · wᵀ + b as a 1×1 convolution: the M rows of x are the spatial positions of a channels-last
// [1, K, M, 1] image (a view, no copy), w [N, K] the [N, K, 1, 1] kernel (also a view), and the output comes
// back channels-last, i.e. [M, N] rows: a view again.
at::Tensor linear_onednn(const at::Tensor& x, const at::Tensor& w, const c10::optional<at::Tensor>& b) {
  RECORD_FUNCTION("ld::linear_onednn", std::vector<c10::IValue>({x, w}));
  const auto K = x.size(-1), N = w.size(0), M = x.numel() / K;
  auto image = x.contiguous().view({1, M, 1, K}).permute({0, 3, 1, 2});
  auto wc = w.contiguous();
  auto kernel = wc.as_strided({N, K, 1, 1}, {K, 1, K, K});
  auto y = at::conv2d(image, kernel, b);
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  return y.permute({0, 2, 3, 1}).reshape(sizes);
}

// x [..., K] · wᵀ + b with w prepacked as a [N, K, 1, 1] oneDNN convolution kernel. libtorch 1.13's
// mkldnn_convolution runs a packed kernel only on a contiguous (NCHW) input, so the M rows become the
// positions of a [1, K, M, 1] image (a transposed copy of x) and the [1, N, M, 1] output is transposed back:
// two copies of the activations, which cost less than reordering the weight where the rows are few
// (measurements at the Linear module, src/Torch/nn/Linear.cs).
at::Tensor linear_prepacked(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b) {
  RECORD_FUNCTION("ld::linear_prepacked", std::vector<c10::IValue>({x, packed}));
  const auto K = x.size(-1), N = packed.size(0), M = x.numel() / std::max<int64_t>(1, K);
  auto image = x.reshape({M, K}).t().contiguous().view({1, K, M, 1});
  auto y = at::mkldnn_convolution(image, packed, b, {0, 0}, {1, 1}, {1, 1}, 1);
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  return y.view({N, M}).t().contiguous().view(sizes);
}
}  // namespace

extern "C" {

LD_API ld_tensor* ld_linear(ld_tensor* x, ld_tensor* w, ld_tensor* b) {
  LD_GUARD("linear", nullptr, {
    auto& X = ld::T(x);
    auto& W = ld::T(w);
    auto B = ld::opt(b);
    if (linear_onednn_applies(X, W, B)) return ld::wrap(linear_onednn(X, W, B));
    return ld::wrap(at::linear(X, W, B));
  })
}

// A [N, K] weight reordered once into oneDNN's blocked layout of a [N, K, 1, 1] convolution kernel (f32; bf16
// linear layers run on oneDNN's matmul through at::linear, faster than this at every row count measured).
// ld_conv2d_unpack with the shape [N, K, 1, 1] gives the plain values back, bit for bit.
LD_API int ld_onednn_direct(void) { return ld::onednn::enabled() ? 1 : 0; }
LD_API int ld_set_onednn_direct(int mode) { return ld::onednn::set_enabled(mode); }

LD_API ld_tensor* ld_linear_prepack(ld_tensor* w) {
  LD_GUARD("linear_prepack", nullptr, {
    auto& W = ld::T(w);
    if (ld::onednn::enabled()) {
      if (!W.device().is_cpu() || W.dim() != 2 || (W.scalar_type() != at::kFloat && W.scalar_type() != at::kBFloat16))
        throw std::invalid_argument("only a 2-D float32 or bfloat16 CPU weight can be prepacked for a linear layer");
      return ld::wrap(ld::onednn::pack_linear(W));
    }
    if (!at::hasMKLDNN()) throw std::invalid_argument("this libtorch has no oneDNN (MKL-DNN)");
    if (!W.device().is_cpu() || W.dim() != 2 || W.scalar_type() != at::kFloat)
      throw std::invalid_argument("only a 2-D float32 CPU weight can be prepacked for a linear layer");
    at::NoGradGuard no_grad;
    ld::CpuCachePause dense_copy_not_cached;
    auto kernel = W.contiguous().view({W.size(0), W.size(1), 1, 1}).to_mkldnn();
    return ld::wrap(at::mkldnn_reorder_conv2d_weight(kernel, {0, 0}, {1, 1}, {1, 1}, 1));
  })
}

LD_API ld_tensor* ld_linear_prepacked(ld_tensor* x, ld_tensor* packed, ld_tensor* b) {
  LD_GUARD("linear_prepacked", nullptr, {
    auto& X = ld::T(x);
    auto& P = ld::T(packed);
    auto B = ld::opt(b);
    if (ld::onednn::is_packed(P)) return ld::wrap(ld::onednn::linear(X, P, B));
    if (!P.is_mkldnn() || P.dim() != 4) throw std::invalid_argument("the weight was not prepacked (ld_linear_prepack)");
    if (!X.device().is_cpu() || X.dim() < 1 || X.size(-1) != P.size(1))
      throw std::invalid_argument("a prepacked linear layer takes a CPU input [..., " + std::to_string(P.size(1)) + "]");
    if (X.scalar_type() != P.scalar_type() || (B && B->scalar_type() != P.scalar_type()))
      throw std::invalid_argument("input, bias and prepacked weight dtypes differ");
    if (B && (B->dim() != 1 || B->size(0) != P.size(0))) throw std::invalid_argument("the bias does not match the prepacked weight");
    if (X.numel() == 0) {
      auto sizes = X.sizes().vec();
      sizes.back() = P.size(0);
      return ld::wrap(at::empty(sizes, X.options()));
    }
    return ld::wrap(linear_prepacked(X, P, B));
  })
}

// ld_linear_prepacked(x, packed, b) + residual: on the direct oneDNN path the sum is a post-op of the product (the
// output rounded once); on the mkldnn-kernel path, the product and then the sum.
LD_API ld_tensor* ld_linear_prepacked_add(ld_tensor* x, ld_tensor* packed, ld_tensor* b, ld_tensor* residual) {
  LD_GUARD("linear_prepacked_add", nullptr, {
    auto& X = ld::T(x);
    auto& P = ld::T(packed);
    auto& R = ld::T(residual);
    if (ld::onednn::is_packed(P)) return ld::wrap(ld::onednn::linear(X, P, ld::opt(b), R));
    std::unique_ptr<ld_tensor> y(ld_linear_prepacked(x, packed, b));
    if (!y) return nullptr;  // the error is recorded
    if (R.sizes() != y->t.sizes() || R.scalar_type() != y->t.scalar_type() || !R.device().is_cpu())
      throw std::invalid_argument("the residual must be a CPU tensor of the output's shape and dtype");
    y->t.add_(R);
    return y.release();
  })
}

// The plain [N, K] weight back from ld_linear_prepack's copy, bit for bit (ld_conv2d_unpack's reorder of the
// [N, K, 1, 1] kernel), as a tensor of its own: a normal tensor even under inference mode, so that it keeps a
// version counter and accepts in-place updates (a LoRA merge).
LD_API ld_tensor* ld_linear_unpack(ld_tensor* packed) {
  LD_GUARD("linear_unpack", nullptr, {
    auto& P = ld::T(packed);
    if (ld::onednn::is_packed(P)) return ld::wrap(ld::onednn::unpack(P));
    if (!P.is_mkldnn() || P.dim() != 4) throw std::invalid_argument("the weight was not prepacked (ld_linear_prepack)");
    const int64_t shape[4] = {P.size(0), P.size(1), 1, 1};
    std::unique_ptr<ld_tensor> kernel(ld_conv2d_unpack(packed, shape));
    if (!kernel) return nullptr;  // the error is recorded
    at::NoGradGuard no_grad;
    c10::InferenceMode not_inference(false);
    auto dense = at::empty({0}, kernel->t.options());
    dense.set_(kernel->t.storage(), 0, {shape[0], shape[1]}, {shape[1], 1});
    return ld::wrap(dense);
  })
}

}  // extern "C"

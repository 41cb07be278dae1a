// The fused CPU attention kernel for inference (attention.cpp), behind nn.cpp's scaled_dot_product_attention.
#pragma once
#include <ATen/ATen.h>

namespace ld {

// Whether fused_attention runs for these inputs on the calling thread: the CPU has AVX-512 (F, BW, VL, DQ), the
// kernel is enabled (LDTORCH_FUSED_ATTENTION=0 turns it off; ld_set_fused_attention overrides that per thread),
// q, k and v are f32 or bf16 (all three the same) and no size is zero. The caller has already checked what
// attention_blocked needs (no mask, dropout, causal mask or autograd; CPU; matching batch shapes and sizes).
bool fused_attention_applies(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// softmax(q kᵀ · scale) v for q [..., L, E], k [..., S, E], v [..., S, Ev] → [..., L, Ev] in q's dtype; any strides.
// bf16 runs on AVX512-BF16 dot products where the CPU has them (LDTORCH_ATTENTION_BF16_DOT=0 widens it to f32;
// ld_set_attention_bf16_dot overrides that per thread), as the calling thread's switch says.
at::Tensor fused_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace ld

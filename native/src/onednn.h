// Linear layers for inference straight on oneDNN's matmul, the library libtorch itself calls (onednn.cpp).
#pragma once
#include "common.h"

namespace ld::onednn {

// Compiled in (libtorch links the system's oneDNN and its headers were found) and not turned off (LDTORCH_ONEDNN=0,
// or set_enabled on this thread). Linear weights are then packed for this path; otherwise for linear.cpp's.
bool enabled();
// Overrides enabled() for the calling thread (1 on, 0 off, -1 back to the environment); returns the previous mode.
int set_enabled(int mode);

// Whether `t` is a weight packed by pack_linear.
bool is_packed(const at::Tensor& t);

// A [N, K] linear weight, f32 or bf16, packed once; linear(x [..., K]) = x · wᵀ + b, [..., N].
at::Tensor pack_linear(const at::Tensor& w);
at::Tensor linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b);

// The plain [N, K] weight back from a packed one, bit for bit, as a normal tensor (a version counter, in-place updates).
at::Tensor unpack(const at::Tensor& packed);

}  // namespace ld::onednn

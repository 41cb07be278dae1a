// Linear layers (and the long convolutions, as im2col) for inference straight on oneDNN's matmul, the library libtorch
// itself calls (onednn.cpp).
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

// A [N, K] linear weight, f32 or bf16, packed once; linear(x [..., K]) = x · wᵀ + b (+ residual), [..., N]. The
// residual (the output's shape and dtype) is added inside the product, before its one rounding to the output dtype.
at::Tensor pack_linear(const at::Tensor& w);
at::Tensor linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b,
                  const c10::optional<at::Tensor>& residual = c10::nullopt);

// Convolutions (groups 1) as im2col and the same matmul (onednn.cpp): on where enabled() is and LDTORCH_CONV_MATMUL is
// not 0. pack_conv2d packs a [O, C, kh, kw] weight; conv2d takes any NCHW input and returns the NCHW output.
bool conv_enabled();
// Whether a [O, C, kh, kw] weight's convolution is faster as im2col + matmul than on libtorch's blocked kernel.
bool conv_prefers_matmul(const at::Tensor& w);
at::Tensor pack_conv2d(const at::Tensor& w);
at::Tensor conv2d(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation);

// The plain weight ([N, K], or a convolution's [O, C, kh, kw]) back from a packed one, bit for bit, as a normal tensor (a version counter, in-place updates).
at::Tensor unpack(const at::Tensor& packed);

}  // namespace ld::onednn

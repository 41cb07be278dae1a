// Convolutions and linear layers for inference straight on oneDNN, the library libtorch itself calls (onednn.cpp).
#pragma once
#include "common.h"

namespace ld::onednn {

// Compiled in (libtorch links the system's oneDNN and its headers were found) and not turned off
// (LDTORCH_ONEDNN=0). Weights are then packed for this path; otherwise for libtorch's mkldnn_convolution.
bool enabled();
// Overrides enabled() for the calling thread (1 on, 0 off, -1 back to the environment); returns the previous mode.
int set_enabled(int mode);

// Whether `t` is a weight packed by pack_conv or pack_linear.
bool is_packed(const at::Tensor& t);

// A [O, I/groups, kh, kw] convolution weight, f32 or bf16, packed once into the layout oneDNN's kernel reads.
at::Tensor pack_conv(const at::Tensor& w, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                     int64_t groups);
at::Tensor conv2d(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b,
                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups);

// A [N, K] linear weight, f32 or bf16, packed once; linear(x [..., K]) = x · wᵀ + b, [..., N].
at::Tensor pack_linear(const at::Tensor& w);
at::Tensor linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b);

// The plain weight back from a packed one, bit for bit, as a normal tensor (a version counter, in-place updates).
at::Tensor unpack(const at::Tensor& packed);
// The plain weight's shape: [O, I/groups, kh, kw] or [N, K].
std::vector<int64_t> packed_shape(const at::Tensor& packed);

}  // namespace ld::onednn

// Linear layers for inference straight on oneDNN's matmul (2.x, the library libtorch 1.13 itself calls), with the
// weight packed once into the layout its kernel reads; and, on the same matmul, the convolutions whose product has a
// long inner dimension, as im2col over channels-last activations (conv2d below).
//
// Why: linear.cpp reaches oneDNN only through libtorch 1.13's mkldnn_convolution, as a 1×1 convolution over the rows:
// the dense weight reordered in every call, or, packed, the activations transposed twice around it; at::linear's bf16
// goes to oneDNN's matmul on a dense weight. Measured 2026-12-05 on the 2-core Zen 5 machine (AVX-512 + AVX512_BF16,
// oneDNN 2.6.3, 2 threads, `chrt -f 1`; bench/README.md "Linear layers straight on oneDNN's matmul"): on a packed
// weight oneDNN's matmul (brgemm kernels) runs 470–560 GFLOP/s f32 and 950–1,100 bf16 from 128 rows on, on every
// shape of the SD1.5 U-Net (bench/onednn_shapes.cpp); in the U-Net at 256², batch 2, the linear layers took 318 → 257 ms f32 and
// 177 → 135 ms bf16.
//
// A packed weight is a uint8 tensor: a header (magic, dtype, logical shape, the oneDNN memory descriptor of the packed
// layout) and the packed values 64-byte aligned after it. The layout is chosen for 128 rows; oneDNN's matmul picks the
// same layout at every row count measured (1–8,192) and where it would not, the packed weight is reordered for that
// call (correct, slower). Primitives are made once per shape, dtype and thread count and kept (at most
// kMaxPrimitives). Scratchpads come from libtorch's allocator. oneDNN's blocking depends on the thread count, and for
// few rows it may split the inner dimension over threads: results are bit-identical for a given thread count, as for
// the paths this replaces (README: thread counts).
#include "onednn.h"
#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <c10/core/InferenceMode.h>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#ifdef LD_WITH_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace ld::onednn {

#ifndef LD_WITH_DNNL

bool enabled() { return false; }
int set_enabled(int) { return -1; }
bool conv_enabled() { return false; }
bool conv_prefers_matmul(const at::Tensor&) { return false; }
bool is_packed(const at::Tensor&) { return false; }
[[noreturn]] static void not_built() {
  throw std::invalid_argument("this build has no direct oneDNN path (native/ built without oneDNN's headers)");
}
at::Tensor pack_linear(const at::Tensor&) { not_built(); }
at::Tensor linear(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, const c10::optional<at::Tensor>&) {
  not_built();
}
at::Tensor pack_conv2d(const at::Tensor&) { not_built(); }
at::Tensor conv2d(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, at::IntArrayRef, at::IntArrayRef,
                  at::IntArrayRef) {
  not_built();
}
at::Tensor unpack(const at::Tensor&) { not_built(); }

#else

namespace {

using dnnl::memory;
using tag = memory::format_tag;

constexpr size_t kMaxPrimitives = 1024;
constexpr int64_t kCanonicalRows = 128;

struct Header {
  char magic[8];
  int32_t dtype;  // at::ScalarType
  int32_t conv;   // 1: a convolution kernel [O, C, kh, kw] held as the [O, kh·kw·C] matrix of its im2col product
  int64_t out_features, in_features;  // O and kh·kw·C for a convolution
  int64_t kernel_h, kernel_w;         // 1, 1 for a linear layer
  dnnl_memory_desc_t packed;  // the layout of the values after the header
};
constexpr char kMagic[8] = {'l', 'd', 'D', 'N', 'N', 'L', '1', 0};
constexpr int64_t kHeaderBytes = (sizeof(Header) + 63) / 64 * 64;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

memory::data_type data_type(at::ScalarType t) {
  if (t == at::kFloat) return memory::data_type::f32;
  if (t == at::kBFloat16) return memory::data_type::bf16;
  throw std::invalid_argument(std::string("oneDNN linear weights are float32 or bfloat16, not ") + c10::toString(t));
}

const Header& header(const at::Tensor& packed) {
  if (!is_packed(packed)) throw std::invalid_argument("the weight was not packed for oneDNN's matmul");
  return *reinterpret_cast<const Header*>(packed.data_ptr());
}
void* values(const at::Tensor& packed) { return static_cast<uint8_t*>(packed.data_ptr()) + kHeaderBytes; }
at::ScalarType scalar_type(const Header& h) { return static_cast<at::ScalarType>(h.dtype); }

// The plain [N, K] weight as the matmul's [K, N] weights: "ba", K the fast dimension.
memory::desc plain_desc(const Header& h) {
  return memory::desc({h.in_features, h.out_features}, data_type(scalar_type(h)), tag::ba);
}

void run_reorder(const memory::desc& from, void* src, const memory::desc& to, void* dst) {
  dnnl::stream s(engine());
  memory a(from, engine(), src), b(to, engine(), dst);
  dnnl::reorder(a, b).execute(s, a, b);
  s.wait();
}

at::Tensor bytes(size_t n) { return at::empty({static_cast<int64_t>(n)}, at::TensorOptions().dtype(at::kByte)); }

// A primitive made once per shape, dtype and thread count, with its weight and scratchpad descriptors.
struct Entry {
  dnnl::matmul prim;
  memory::desc weights, scratch;
};

std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Entry>>& cache() {
  static std::unordered_map<std::string, std::shared_ptr<Entry>> c;
  return c;
}

// The matmul x [M, K] · w [K, N] (+ bias [1, N], f32) (+ a residual [M, N] of the same dtype, added by a binary
// post-op before the one rounding of the output) → [M, N], or null where oneDNN has only a reference kernel ("ref:any",
// "gemm:ref"…; e.g. bf16 on a CPU without AVX-512): far slower than libtorch's own paths, which the caller then takes.
std::shared_ptr<Entry> matmul_entry(int64_t M, int64_t K, int64_t N, memory::data_type dt, bool bias, bool residual = false) {
  std::string key;
  for (int64_t v : {M, K, N, static_cast<int64_t>(dt), static_cast<int64_t>(bias), static_cast<int64_t>(residual),
                    static_cast<int64_t>(at::get_num_threads())})
    key += std::to_string(v) + ',';
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache().find(key);
    if (it != cache().end()) return it->second;
  }
  // Outside the lock: creating a primitive takes ~0.1–1 ms.
  const memory::desc src({M, K}, dt, tag::ab), wei({K, N}, dt, tag::any), dst({M, N}, dt, tag::ab);
  auto desc = bias ? dnnl::matmul::desc(src, wei, memory::desc({1, N}, memory::data_type::f32, tag::ab), dst)
                   : dnnl::matmul::desc(src, wei, dst);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (residual) {
    dnnl::post_ops po;
    po.append_binary(dnnl::algorithm::binary_add, dst);
    attr.set_post_ops(po);
  }
  dnnl::matmul::primitive_desc pd(desc, attr, engine());
  std::shared_ptr<Entry> entry;
  if (std::strstr(pd.impl_info_str(), "ref") == nullptr)
    entry = std::make_shared<Entry>(Entry{dnnl::matmul(pd), pd.weights_desc(), pd.scratchpad_desc()});
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache().size() >= kMaxPrimitives) cache().clear();  // in-flight entries live on through their shared_ptr
  return cache().emplace(key, std::move(entry)).first->second;
}

int64_t in_channels(const Header& h) { return h.in_features / (h.kernel_h * h.kernel_w); }

// A stand-in for the plain weight in a profiler's record of the inputs (its shape gives the FLOPs, profiler.cpp):
// one element expanded, made only while a profiler records inputs.
at::Tensor shape_of(const Header& h) {
  auto one = at::empty({1}, at::TensorOptions().dtype(scalar_type(h)));
  if (!h.conv) return one.expand({h.out_features, h.in_features});
  return one.view({1, 1, 1, 1}).expand({h.out_features, in_channels(h), h.kernel_h, h.kernel_w});
}

// x [M, K] · the packed weight (+ bias) (+ residual [M, N]) → y [M, N], all row-major, on the primitive for M rows.
// False where oneDNN has only a reference kernel for this shape.
bool run_matmul(const Header& h, const at::Tensor& packed, const void* x, void* y, int64_t M,
                const at::Tensor& bias32, const void* residual = nullptr) {
  const int64_t N = h.out_features, K = h.in_features;
  const auto dt = data_type(scalar_type(h));
  auto e = matmul_entry(M, K, N, dt, bias32.defined(), residual != nullptr);
  if (!e) return false;
  auto& eng = engine();
  dnnl::stream s(eng);
  std::unordered_map<int, memory> args{
      {DNNL_ARG_SRC, memory({{M, K}, dt, tag::ab}, eng, const_cast<void*>(x))},
      {DNNL_ARG_DST, memory({{M, N}, dt, tag::ab}, eng, y)}};
  at::Tensor weights_now, scratch;
  const memory::desc packed_desc(h.packed);
  if (packed_desc == e->weights) {
    args.emplace(DNNL_ARG_WEIGHTS, memory(e->weights, eng, values(packed)));
  } else {  // a kernel that wants another layout for this many rows: reordered for this call
    weights_now = bytes(e->weights.get_size());
    run_reorder(packed_desc, values(packed), e->weights, weights_now.data_ptr());
    args.emplace(DNNL_ARG_WEIGHTS, memory(e->weights, eng, weights_now.data_ptr()));
  }
  if (bias32.defined()) args.emplace(DNNL_ARG_BIAS, memory({{1, N}, memory::data_type::f32, tag::ab}, eng, bias32.data_ptr()));
  if (residual)
    args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1,
                 memory({{M, N}, dt, tag::ab}, eng, const_cast<void*>(residual)));
  if (e->scratch.get_size() > 0) {
    scratch = bytes(e->scratch.get_size());
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(e->scratch, eng, scratch.data_ptr()));
  }
  e->prim.execute(s, args);
  s.wait();
  return true;
}

// The bias as the f32 [1, N] the kernel adds before rounding the output (bf16 → f32 is exact), or undefined.
at::Tensor bias_f32(const Header& h, const c10::optional<at::Tensor>& b) {
  if (!b) return {};
  if (b->dim() != 1 || b->size(0) != h.out_features || !b->device().is_cpu())
    throw std::invalid_argument("the bias does not match the packed weight (" + std::to_string(h.out_features) + " outputs)");
  return b->to(at::kFloat).contiguous();
}

at::Tensor pack_matrix(const at::Tensor& w2, int32_t conv, int64_t kernel_h, int64_t kernel_w) {
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.dtype = static_cast<int32_t>(w2.scalar_type());
  h.conv = conv;
  h.out_features = w2.size(0);
  h.in_features = w2.size(1);
  h.kernel_h = kernel_h;
  h.kernel_w = kernel_w;
  auto e = matmul_entry(kCanonicalRows, h.in_features, h.out_features, data_type(w2.scalar_type()), false);
  const auto packed = e ? e->weights : plain_desc(h);
  h.packed = packed.data;
  auto out = bytes(kHeaderBytes + packed.get_size());
  std::memcpy(out.data_ptr(), &h, sizeof h);
  run_reorder(plain_desc(h), w2.data_ptr(), packed, values(out));
  return out;
}

// The convolutions that run as im2col + matmul: kernels larger than 1×1 whose product has a long inner dimension
// (Cin·kh·kw ≥ 11,520: the 3×3 ones from 1,280 input channels). Measured in the SD1.5 U-Net at 256², batch 2
// (`ldm bench unet --profile --profile-shapes`, LDTORCH_CONV_MATMUL=0 / 1, median of 3 locked profiles each,
// 2026-12-05; bench/README.md): libtorch's blocked oneDNN kernel runs those on 4×4–16×16 maps at 400–650 GFLOP/s
// f32 / 550–850 bf16, the matmul at ~480 / ~950 (8 × 1280→1280 at 8×8: 70.2 → 63.2 ms f32, 44.1 → 32.0 bf16;
// 11 × at 4×4: 36.0 → 29.9, 18.4 → 16.8). Where the blocked kernel is already at ~1,000 GFLOP/s bf16 (320–960
// channels on 16×16–32×32 maps), the im2col copy and the two channels-last reorders make the matmul lose or tie
// (960→320 at 32×32: f32 23.3 → 26.5 ms), and so do the 1×1 convolutions (320→320 at 32×32: 12.0 → 13.7 f32).
constexpr int64_t kMatmulMinConvInner = 11520;

// Rows of the im2col matrix built at a time: its buffer stays near kColumnBytes (in cache between being written and
// read by the product) but holds at least kMinColumnRows rows, from which oneDNN's matmul keeps its speed (128 × 11,520
// → 1,280 bf16: 1,044 GFLOP/s, bench/README.md).
constexpr int64_t kColumnBytes = 8 << 20;
constexpr int64_t kMinColumnRows = 256;

// Rows [r0, r0 + m) of the im2col matrix of the channels-last input xh [N, H, W, C]: row (n, oh, ow) holds, for each
// kernel tap (i, j) in turn, the C channels of the input pixel under it, zeros where the tap falls in the padding.
void im2col(const at::Tensor& xh, const Header& h, int64_t OH, int64_t OW, at::IntArrayRef stride, at::IntArrayRef padding,
            at::IntArrayRef dilation, int64_t r0, int64_t m, at::Tensor& cols) {
  const int64_t H = xh.size(1), W = xh.size(2), C = xh.size(3), K = h.in_features;
  const int64_t es = xh.element_size();
  const auto* src = static_cast<const uint8_t*>(xh.data_ptr());
  auto* dst = static_cast<uint8_t*>(cols.data_ptr());
  at::parallel_for(0, m, 16, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t row = r0 + r, n = row / (OH * OW), oh = row / OW % OH, ow = row % OW;
      uint8_t* out = dst + r * K * es;
      for (int64_t i = 0; i < h.kernel_h; i++) {
        const int64_t ih = oh * stride[0] - padding[0] + i * dilation[0];
        for (int64_t j = 0; j < h.kernel_w; j++, out += C * es) {
          const int64_t iw = ow * stride[1] - padding[1] + j * dilation[1];
          if (ih < 0 || ih >= H || iw < 0 || iw >= W) std::memset(out, 0, C * es);
          else std::memcpy(out, src + ((n * H + ih) * W + iw) * C * es, C * es);
        }
      }
    }
  });
}

// x [N, C, H, W] (NCHW, contiguous) and the same values channels-last, [N, H, W, C] contiguous, through oneDNN's jit
// reorder: libtorch 1.13's permuted copy of a bf16 [2, 320, 32, 32] took ~0.3 ms, as long as a 1×1 convolution's product.
at::Tensor channels_last(const at::Tensor& x, bool to_nhwc) {
  const int64_t N = x.size(0), C = to_nhwc ? x.size(1) : x.size(3), H = to_nhwc ? x.size(2) : x.size(1),
                W = to_nhwc ? x.size(3) : x.size(2);
  const auto dt = data_type(x.scalar_type());
  auto X = x.contiguous();
  auto y = to_nhwc ? at::empty({N, H, W, C}, X.options()) : at::empty({N, C, H, W}, X.options());
  const memory::desc nchw({N, C, H, W}, dt, tag::nchw), nhwc({N, C, H, W}, dt, tag::nhwc);
  run_reorder(to_nhwc ? nchw : nhwc, X.data_ptr(), to_nhwc ? nhwc : nchw, y.data_ptr());
  return y;
}

}  // namespace

// -1: follow the environment; 0: off; 1: on. Per thread, so that a test can pack weights for either path without
// changing what other threads do (a weight runs on the path it was packed for).
thread_local int override_mode = -1;

bool enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LDTORCH_ONEDNN");
    return !(v && std::string(v) == "0");
  }();
  return override_mode >= 0 ? override_mode == 1 : on;
}

int set_enabled(int mode) {
  const int previous = override_mode;
  override_mode = mode < 0 ? -1 : (mode ? 1 : 0);
  return previous;
}

bool conv_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LDTORCH_CONV_MATMUL");
    return !(v && std::string(v) == "0");
  }();
  return on && enabled();
}

bool conv_prefers_matmul(const at::Tensor& w) {
  if (w.dim() != 4) return false;
  const int64_t K = w.size(1) * w.size(2) * w.size(3);
  return w.size(2) * w.size(3) > 1 && K >= kMatmulMinConvInner;
}

bool is_packed(const at::Tensor& t) {
  return t.defined() && !t.is_mkldnn() && t.device().is_cpu() && t.scalar_type() == at::kByte && t.dim() == 1 &&
         t.is_contiguous() && t.numel() >= kHeaderBytes &&
         std::memcmp(static_cast<const char*>(t.data_ptr()), kMagic, sizeof kMagic) == 0;
}

at::Tensor pack_linear(const at::Tensor& w) {
  if (!w.device().is_cpu() || w.dim() != 2) throw std::invalid_argument("only a 2-D CPU linear weight can be packed");
  data_type(w.scalar_type());
  at::NoGradGuard no_grad;
  ld::CpuCachePause dense_copy_not_cached;
  return pack_matrix(w.contiguous(), 0, 1, 1);
}

at::Tensor pack_conv2d(const at::Tensor& w) {
  if (!w.device().is_cpu() || w.dim() != 4) throw std::invalid_argument("only a 4-D CPU convolution weight can be packed");
  data_type(w.scalar_type());
  at::NoGradGuard no_grad;
  ld::CpuCachePause dense_copy_not_cached;
  const int64_t O = w.size(0), C = w.size(1), kh = w.size(2), kw = w.size(3);
  // [O, C, kh, kw] → [O, kh, kw, C]: the order of im2col's columns
  return pack_matrix(w.permute({0, 2, 3, 1}).contiguous().view({O, kh * kw * C}), 1, kh, kw);
}

at::Tensor unpack(const at::Tensor& packed) {
  const auto& h = header(packed);
  at::NoGradGuard no_grad;
  c10::InferenceMode not_inference(false);
  auto dense = at::empty({h.out_features, h.in_features}, at::TensorOptions().dtype(scalar_type(h)));
  run_reorder(memory::desc(h.packed), values(packed), plain_desc(h), dense.data_ptr());
  if (!h.conv) return dense;
  return dense.view({h.out_features, h.kernel_h, h.kernel_w, in_channels(h)}).permute({0, 3, 1, 2}).contiguous();
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b,
                  const c10::optional<at::Tensor>& residual) {
  const auto& h = header(packed);
  RECORD_FUNCTION("ld::linear_prepacked", std::vector<c10::IValue>({x, shape_of(h)}));
  const int64_t N = h.out_features, K = h.in_features;
  if (h.conv) throw std::invalid_argument("the weight was packed for a convolution, not a linear layer");
  if (!x.device().is_cpu() || x.dim() < 1 || x.size(-1) != K)
    throw std::invalid_argument("a packed linear layer takes a CPU input [..., " + std::to_string(K) + "]");
  if (x.scalar_type() != scalar_type(h)) throw std::invalid_argument("input and packed weight dtypes differ");
  auto bias32 = bias_f32(h, b);
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  if (residual && (residual->sizes() != at::IntArrayRef(sizes) || residual->scalar_type() != x.scalar_type() ||
                   !residual->device().is_cpu()))
    throw std::invalid_argument("the residual must be a CPU tensor of the output's shape and dtype");
  auto y = at::empty(sizes, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  auto add = [&](at::Tensor out) { return residual ? out.add_(*residual) : out; };  // the unfused sum, same order
  if (K == 0) return add(b ? y.copy_(b->expand_as(y)) : y.zero_());
  auto X = x.contiguous();
  const int64_t M = x.numel() / K;
  if (residual) {
    auto R = residual->contiguous();
    if (run_matmul(h, packed, X.data_ptr(), y.data_ptr(), M, bias32, R.data_ptr())) return y;
  }
  if (!run_matmul(h, packed, X.data_ptr(), y.data_ptr(), M, bias32)) return add(at::linear(x, unpack(packed), b));
  return add(y);
}

at::Tensor conv2d(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b, at::IntArrayRef stride,
                  at::IntArrayRef padding, at::IntArrayRef dilation) {
  const auto& h = header(packed);  // a linear layer's matrix is a 1×1 kernel (Conv2d packs one so when fed tokens)
  const int64_t C = in_channels(h), O = h.out_features, K = h.in_features;
  if (x.dim() != 4 || !x.device().is_cpu() || x.size(1) != C)
    throw std::invalid_argument("a packed convolution takes a 4-D CPU input of " + std::to_string(C) + " channels");
  if (x.scalar_type() != scalar_type(h)) throw std::invalid_argument("input and packed weight dtypes differ");
  for (int d = 0; d < 2; d++)
    if (stride[d] < 1 || dilation[d] < 1 || padding[d] < 0) throw std::invalid_argument("invalid stride, padding or dilation");
  auto bias32 = bias_f32(h, b);
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  if (N > 0 && (H == 0 || W == 0))  // as libtorch's convolution refuses it: padding alone makes no image
    throw std::invalid_argument("a convolution takes an input of at least one pixel, not [" + std::to_string(N) + ", " +
                                std::to_string(C) + ", " + std::to_string(H) + ", " + std::to_string(W) + "]");
  const int64_t OH = (H + 2 * padding[0] - dilation[0] * (h.kernel_h - 1) - 1) / stride[0] + 1;
  const int64_t OW = (W + 2 * padding[1] - dilation[1] * (h.kernel_w - 1) - 1) / stride[1] + 1;
  if (OH < 1 || OW < 1)
    throw std::invalid_argument("the input (" + std::to_string(H) + " × " + std::to_string(W) + ") is smaller than the kernel");
  // The weight and output as stand-ins (profiler.cpp counts the FLOPs from them), made only while a profiler records.
  RECORD_FUNCTION("ld::convolution_matmul",
                  std::vector<c10::IValue>({x, shape_of(h), at::empty({1}, x.options()).view({1, 1, 1, 1}).expand({N, O, OH, OW})}));
  auto fallback = [&] { return at::conv2d(x, unpack(packed), b, stride, padding, dilation, 1); };
  const int64_t M = N * OH * OW;
  // The product's rows are the output pixels channels-last; the values at NCHW after it (as libtorch's convolution
  // returns them, and the blocked kernel reorders its output anyway).
  auto out = at::empty({N, OH, OW, O}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (out.numel() == 0) return out.permute({0, 3, 1, 2}).contiguous();
  auto xh = channels_last(x, true);  // [N, H, W, C]
  const int64_t chunk = std::min(M, std::max(kMinColumnRows, kColumnBytes / std::max<int64_t>(1, K * x.element_size())));
  auto cols = at::empty({chunk, K}, x.options().memory_format(at::MemoryFormat::Contiguous));
  auto* y = static_cast<uint8_t*>(out.data_ptr());
  for (int64_t r0 = 0; r0 < M; r0 += chunk) {
    const int64_t m = std::min(chunk, M - r0);
    im2col(xh, h, OH, OW, stride, padding, dilation, r0, m, cols);
    if (!run_matmul(h, packed, cols.data_ptr(), y + r0 * O * x.element_size(), m, bias32)) return fallback();
  }
  return channels_last(out, false);
}

#endif  // LD_WITH_DNNL

}  // namespace ld::onednn

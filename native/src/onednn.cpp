// Convolutions and linear layers for inference straight on oneDNN (2.x, the library libtorch 1.13 itself calls),
// with the weight packed once into the layout the chosen kernel reads.
//
// Why: libtorch 1.13's mkldnn_convolution hands oneDNN the NCHW input as it is, and oneDNN's kernel for a plain NCHW
// source is its slow one. Measured 2026-12-05 on the 2-core Zen 5 machine (AVX-512 + AVX512_BF16, oneDNN 2.6.3,
// 2 threads, `chrt -f 1`; bench/README.md "Convolutions and linear layers straight on oneDNN"), the SD1.5 U-Net's
// 3×3 convolutions at batch 2: NCHW source 450–480 GFLOP/s f32, 740 bf16; the blocked source (brgemm kernels)
// 540–600 f32, 1,090–1,220 bf16, with the two reorders (NCHW into the blocked layout and back) 1–3 % of the
// convolution. Linear layers: oneDNN's matmul on a packed weight 500–560 GFLOP/s f32 and 1,000–1,100 bf16 from 32
// rows on, against ~380 for our 1×1-convolution paths (linear.cpp) and ~680 for at::linear's bf16.
//
// A packed weight is a uint8 tensor: a header (magic, kind, logical shape, the oneDNN memory descriptor of the packed
// layout) and the packed values 64-byte aligned after it. The layout is chosen for a canonical input size; oneDNN's
// kernels pick the same weight layout at every input size measured (batch 1–4, 4²–128², 1–8,192 rows), and where one
// does not, the packed weight is reordered for that call (correct, slower). Primitives are made once per shape and
// thread count and kept (at most kMaxPrimitives). Scratchpads come from libtorch's allocator (the block cache).
// oneDNN splits a convolution's or a matmul's work over the threads without reductions across them for these
// shapes, but its blocking depends on the thread count: results are bit-identical for a given thread count, as for
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
bool is_packed(const at::Tensor&) { return false; }
[[noreturn]] static void not_built() {
  throw std::invalid_argument("this build has no direct oneDNN path (native/ built without oneDNN's headers)");
}
at::Tensor pack_conv(const at::Tensor&, at::IntArrayRef, at::IntArrayRef, at::IntArrayRef, int64_t) { not_built(); }
at::Tensor conv2d(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&, at::IntArrayRef,
                  at::IntArrayRef, at::IntArrayRef, int64_t) { not_built(); }
at::Tensor pack_linear(const at::Tensor&) { not_built(); }
at::Tensor linear(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&) { not_built(); }
at::Tensor unpack(const at::Tensor&) { not_built(); }
std::vector<int64_t> packed_shape(const at::Tensor&) { not_built(); }

#else

namespace {

using dnnl::memory;
using tag = memory::format_tag;

constexpr size_t kMaxPrimitives = 1024;

enum class Kind : int32_t { Conv = 1, Linear = 2 };

struct Header {
  char magic[8];
  Kind kind;
  int32_t dtype;  // at::ScalarType
  int32_t ndim;
  int64_t shape[5];  // plain weight: [O, I/g, kh, kw] or [N, K]
  int64_t groups;
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
  throw std::invalid_argument(std::string("oneDNN weights are float32 or bfloat16, not ") + c10::toString(t));
}

const Header& header(const at::Tensor& packed) {
  if (!is_packed(packed)) throw std::invalid_argument("the weight was not packed for oneDNN");
  return *reinterpret_cast<const Header*>(packed.data_ptr());
}
void* values(const at::Tensor& packed) { return static_cast<uint8_t*>(packed.data_ptr()) + kHeaderBytes; }

// The plain weight's oneDNN descriptor: a convolution kernel [O, I, kh, kw] (grouped: [g, O/g, I, kh, kw]) or a
// linear weight [N, K] seen as the matmul's [K, N] weights ("ba": K is the fast dimension).
memory::desc plain_desc(const Header& h) {
  const auto dt = data_type(static_cast<at::ScalarType>(h.dtype));
  if (h.kind == Kind::Linear) return memory::desc({h.shape[1], h.shape[0]}, dt, tag::ba);
  if (h.groups == 1) return memory::desc({h.shape[0], h.shape[1], h.shape[2], h.shape[3]}, dt, tag::oihw);
  return memory::desc({h.groups, h.shape[0] / h.groups, h.shape[1], h.shape[2], h.shape[3]}, dt, tag::goihw);
}

void run_reorder(const memory::desc& from, void* src, const memory::desc& to, void* dst) {
  dnnl::stream s(engine());
  memory a(from, engine(), src), b(to, engine(), dst);
  dnnl::reorder(a, b).execute(s, a, b);
  s.wait();
}

at::Tensor bytes(size_t n) { return at::empty({static_cast<int64_t>(n)}, at::TensorOptions().dtype(at::kByte)); }

at::Tensor make_packed(const at::Tensor& w, Header h, const memory::desc& packed) {
  h.packed = packed.data;
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  at::NoGradGuard no_grad;
  ld::CpuCachePause dense_copy_not_cached;
  auto plain = w.contiguous();
  auto out = bytes(kHeaderBytes + packed.get_size());
  std::memcpy(out.data_ptr(), &h, sizeof h);
  run_reorder(plain_desc(h), plain.data_ptr(), packed, values(out));
  return out;
}

// Primitives made once per shape, dtype and thread count: the primitive, its descriptors and the reorders its
// layouts need from and to the caller's plain tensors.
struct Entry {
  dnnl::primitive prim;
  memory::desc src, weights, dst, scratch;
  std::unique_ptr<dnnl::reorder> src_in, dst_out;  // null where the plain layout is the kernel's
  memory::desc user_src, user_dst;
};

std::mutex cache_mutex;
std::unordered_map<std::string, std::shared_ptr<Entry>>& cache() {
  static std::unordered_map<std::string, std::shared_ptr<Entry>> c;
  return c;
}

template <class Make>
std::shared_ptr<Entry> cached(const std::string& key, Make make) {
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = cache().find(key);
    if (it != cache().end()) return it->second;
  }
  auto entry = make();  // outside the lock: creating a primitive takes ~0.1–1 ms
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache().size() >= kMaxPrimitives) cache().clear();  // in-flight entries live on through their shared_ptr
  return cache().emplace(key, std::move(entry)).first->second;
}

std::string key_of(std::initializer_list<int64_t> values) {
  std::string k;
  for (auto v : values) k += std::to_string(v) + ',';
  return k;
}

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// oneDNN falls back to its reference kernels where no optimised one fits (e.g. bf16 on a CPU without AVX-512): those
// are far slower than libtorch's own paths, so the caller computes on the plain weight instead.
bool is_reference(const char* impl) { return std::strncmp(impl, "ref", 3) == 0; }

struct Conv {
  int64_t N, C, H, W, O, kh, kw, OH, OW;
  int64_t stride[2], pad[2], dil[2], groups;
  memory::data_type dt;
  bool bias;
};

// The activations' layout a convolution reads and writes: oneDNN's channel blocks of a vector's width (16 floats on
// AVX-512, 8 on AVX2), where its jit kernels run with one weight layout at every input size. Given `any`, oneDNN 2.6
// picks its brgemm kernels on channels-last activations instead, whose weight layout for a 1×1 kernel changes with the
// input size (output blocks of 32, 48 or 64), so that a weight packed once would be reordered in most calls; for
// 3×3 kernels they are a little faster on large maps and slower on small ones (SD1.5 U-Net bf16 at 256², batch 2:
// 1280 channels at 4×4, 11 calls, 29.0 ms against 17.0 blocked; 320 at 32×32, 8 calls, 30.8 against 27.1).
tag blocked_tag() {
  static const tag t = dnnl::get_effective_cpu_isa() >= dnnl::cpu_isa::avx512_core ? tag::nChw16c : tag::nChw8c;
  return t;
}

std::shared_ptr<Entry> conv_entry(const Conv& c) {
  const auto key = key_of({1, c.N, c.C, c.H, c.W, c.O, c.kh, c.kw, c.stride[0], c.stride[1], c.pad[0], c.pad[1],
                           c.dil[0], c.dil[1], c.groups, static_cast<int64_t>(c.dt), c.bias, at::get_num_threads()});
  return cached(key, [&] {
    const memory::dims src{c.N, c.C, c.H, c.W}, dst{c.N, c.O, c.OH, c.OW}, strides{c.stride[0], c.stride[1]},
        dilates{c.dil[0] - 1, c.dil[1] - 1}, pad{c.pad[0], c.pad[1]};
    const memory::dims wei = c.groups == 1 ? memory::dims{c.O, c.C, c.kh, c.kw}
                                           : memory::dims{c.groups, c.O / c.groups, c.C / c.groups, c.kh, c.kw};
    // The blocked layout first; where no optimised kernel takes it (e.g. grouped channels that do not fill a block),
    // whatever layout oneDNN prefers.
    for (const tag activations : {blocked_tag(), tag::any}) {
      const memory::desc src_md(src, c.dt, activations), wei_any(wei, c.dt, tag::any), dst_md(dst, c.dt, activations);
      const auto prop = dnnl::prop_kind::forward_inference;
      const auto alg = dnnl::algorithm::convolution_direct;
      auto desc = c.bias ? dnnl::convolution_forward::desc(prop, alg, src_md, wei_any,
                                                           memory::desc({c.O}, memory::data_type::f32, tag::a), dst_md,
                                                           strides, dilates, pad, pad)
                         : dnnl::convolution_forward::desc(prop, alg, src_md, wei_any, dst_md, strides, dilates, pad, pad);
      dnnl::convolution_forward::primitive_desc pd;
      try {
        pd = dnnl::convolution_forward::primitive_desc(desc, user_scratchpad(), engine());
      } catch (const dnnl::error&) {
        continue;  // no kernel for this layout
      }
      if (is_reference(pd.impl_info_str())) continue;
      auto e = std::make_shared<Entry>();
      e->prim = dnnl::convolution_forward(pd);
      e->src = pd.src_desc();
      e->weights = pd.weights_desc();
      e->dst = pd.dst_desc();
      e->scratch = pd.scratchpad_desc();
      e->user_src = memory::desc(src, c.dt, tag::nchw);
      e->user_dst = memory::desc(dst, c.dt, tag::nchw);
      if (!(e->src == e->user_src)) e->src_in = std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(engine(), e->user_src, engine(), e->src));
      if (!(e->dst == e->user_dst)) e->dst_out = std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(engine(), e->dst, engine(), e->user_dst));
      return e;
    }
    return std::shared_ptr<Entry>();
  });
}

std::shared_ptr<Entry> matmul_entry(int64_t M, int64_t K, int64_t N, memory::data_type dt, bool bias) {
  const auto key = key_of({2, M, K, N, static_cast<int64_t>(dt), bias, at::get_num_threads()});
  return cached(key, [&] {
    const memory::desc src({M, K}, dt, tag::ab), wei({K, N}, dt, tag::any), dst({M, N}, dt, tag::ab);
    auto desc = bias ? dnnl::matmul::desc(src, wei, memory::desc({1, N}, memory::data_type::f32, tag::ab), dst)
                     : dnnl::matmul::desc(src, wei, dst);
    dnnl::matmul::primitive_desc pd(desc, user_scratchpad(), engine());
    if (is_reference(pd.impl_info_str())) return std::shared_ptr<Entry>();
    auto e = std::make_shared<Entry>();
    e->prim = dnnl::matmul(pd);
    e->src = e->user_src = pd.src_desc();
    e->weights = pd.weights_desc();
    e->dst = e->user_dst = pd.dst_desc();
    e->scratch = pd.scratchpad_desc();
    return e;
  });
}

// Runs an entry's primitive on plain src/dst pointers and a packed weight, with its bias (f32) if any.
void execute(const Entry& e, void* src, const at::Tensor& packed, const c10::optional<at::Tensor>& bias, void* dst) {
  auto& eng = engine();
  dnnl::stream s(eng);
  std::unordered_map<int, memory> args;
  at::Tensor src_tmp, dst_tmp, wei_tmp, scratch;
  memory user_src(e.user_src, eng, src), user_dst(e.user_dst, eng, dst);
  if (e.src_in) {
    src_tmp = bytes(e.src.get_size());
    memory m(e.src, eng, src_tmp.data_ptr());
    e.src_in->execute(s, user_src, m);
    args.emplace(DNNL_ARG_SRC, m);
  } else {
    args.emplace(DNNL_ARG_SRC, user_src);
  }
  const memory::desc packed_desc(header(packed).packed);
  if (packed_desc == e.weights) {
    args.emplace(DNNL_ARG_WEIGHTS, memory(e.weights, eng, values(packed)));
  } else {  // a kernel that wants another layout for this input size: reordered for this call
    wei_tmp = bytes(e.weights.get_size());
    memory from(packed_desc, eng, values(packed)), to(e.weights, eng, wei_tmp.data_ptr());
    dnnl::reorder(from, to).execute(s, from, to);
    args.emplace(DNNL_ARG_WEIGHTS, to);
  }
  at::Tensor b32;
  if (bias) {
    b32 = bias->to(at::kFloat).contiguous();
    args.emplace(DNNL_ARG_BIAS, memory(memory::desc({b32.numel()}, memory::data_type::f32, tag::a), eng, b32.data_ptr()));
  }
  if (e.scratch.get_size() > 0) {
    scratch = bytes(e.scratch.get_size());
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(e.scratch, eng, scratch.data_ptr()));
  }
  memory out = user_dst;
  if (e.dst_out) {
    dst_tmp = bytes(e.dst.get_size());
    out = memory(e.dst, eng, dst_tmp.data_ptr());
  }
  args.emplace(DNNL_ARG_DST, out);
  e.prim.execute(s, args);
  if (e.dst_out) e.dst_out->execute(s, out, user_dst);
  s.wait();
}

// A stand-in for the plain weight in a profiler's record of the inputs (its shape gives the FLOPs, profiler.cpp):
// one element expanded, made only while a profiler records inputs.
at::Tensor shape_of(const Header& h) {
  return at::empty({1}, at::TensorOptions().dtype(static_cast<at::ScalarType>(h.dtype))).expand(at::IntArrayRef(h.shape, h.ndim));
}

void check_bias(const c10::optional<at::Tensor>& b, int64_t n) {
  if (b && (b->dim() != 1 || b->size(0) != n || !b->device().is_cpu()))
    throw std::invalid_argument("the bias does not match the packed weight (" + std::to_string(n) + " outputs)");
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

bool is_packed(const at::Tensor& t) {
  return t.defined() && !t.is_mkldnn() && t.device().is_cpu() && t.scalar_type() == at::kByte && t.dim() == 1 &&
         t.is_contiguous() && t.numel() >= kHeaderBytes &&
         std::memcmp(static_cast<const char*>(t.data_ptr()), kMagic, sizeof kMagic) == 0;
}

at::Tensor pack_conv(const at::Tensor& w, at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
                     int64_t groups) {
  if (!w.device().is_cpu() || w.dim() != 4) throw std::invalid_argument("only a 4-D CPU convolution weight can be packed");
  if (groups < 1 || w.size(0) % groups != 0) throw std::invalid_argument("the groups do not divide the output channels");
  Header h{};
  h.kind = Kind::Conv;
  h.dtype = static_cast<int32_t>(w.scalar_type());
  h.ndim = 4;
  for (int i = 0; i < 4; ++i) h.shape[i] = w.size(i);
  h.groups = groups;
  // The layout for a canonical input: one 32×32 image (taller where the kernel needs it).
  Conv c{1, w.size(1) * groups, 0, 0, w.size(0), w.size(2), w.size(3), 0, 0,
         {stride[0], stride[1]}, {padding[0], padding[1]}, {dilation[0], dilation[1]}, groups, data_type(w.scalar_type()), false};
  c.H = std::max<int64_t>(32, c.dil[0] * (c.kh - 1) + 1);
  c.W = std::max<int64_t>(32, c.dil[1] * (c.kw - 1) + 1);
  c.OH = (c.H + 2 * c.pad[0] - c.dil[0] * (c.kh - 1) - 1) / c.stride[0] + 1;
  c.OW = (c.W + 2 * c.pad[1] - c.dil[1] * (c.kw - 1) - 1) / c.stride[1] + 1;
  auto e = conv_entry(c);
  return make_packed(w, h, e ? e->weights : plain_desc(h));
}

at::Tensor pack_linear(const at::Tensor& w) {
  if (!w.device().is_cpu() || w.dim() != 2) throw std::invalid_argument("only a 2-D CPU linear weight can be packed");
  Header h{};
  h.kind = Kind::Linear;
  h.dtype = static_cast<int32_t>(w.scalar_type());
  h.ndim = 2;
  h.shape[0] = w.size(0);
  h.shape[1] = w.size(1);
  h.groups = 1;
  auto e = matmul_entry(128, w.size(1), w.size(0), data_type(w.scalar_type()), false);  // canonical: 128 rows
  return make_packed(w, h, e ? e->weights : plain_desc(h));
}

std::vector<int64_t> packed_shape(const at::Tensor& packed) {
  const auto& h = header(packed);
  return std::vector<int64_t>(h.shape, h.shape + h.ndim);
}

at::Tensor unpack(const at::Tensor& packed) {
  const auto& h = header(packed);
  at::NoGradGuard no_grad;
  c10::InferenceMode not_inference(false);
  auto dense = at::empty(packed_shape(packed), at::TensorOptions().dtype(static_cast<at::ScalarType>(h.dtype)));
  run_reorder(memory::desc(h.packed), values(packed), plain_desc(h), dense.data_ptr());
  return dense;
}

at::Tensor conv2d(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b,
                  at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const auto& h = header(packed);
  RECORD_FUNCTION("ld::convolution_onednn", std::vector<c10::IValue>({x, shape_of(h)}));
  if (h.kind != Kind::Conv) throw std::invalid_argument("the weight was packed for a linear layer, not a convolution");
  if (x.dim() != 4 || !x.device().is_cpu()) throw std::invalid_argument("a packed convolution takes a 4-D CPU input");
  if (x.scalar_type() != static_cast<at::ScalarType>(h.dtype)) throw std::invalid_argument("input and packed weight dtypes differ");
  if (groups != h.groups) throw std::invalid_argument("the groups differ from the packed weight's");
  Conv c{x.size(0), x.size(1), x.size(2), x.size(3), h.shape[0], h.shape[2], h.shape[3], 0, 0,
         {stride[0], stride[1]}, {padding[0], padding[1]}, {dilation[0], dilation[1]}, groups, data_type(x.scalar_type()), b.has_value()};
  if (c.C != h.shape[1] * groups)
    throw std::invalid_argument("the input has " + std::to_string(c.C) + " channels, the convolution takes " +
                                std::to_string(h.shape[1] * groups));
  for (int i = 0; i < 2; ++i)
    if (c.stride[i] < 1 || c.dil[i] < 1 || c.pad[i] < 0) throw std::invalid_argument("invalid stride, padding or dilation");
  c.OH = (c.H + 2 * c.pad[0] - c.dil[0] * (c.kh - 1) - 1) / c.stride[0] + 1;
  c.OW = (c.W + 2 * c.pad[1] - c.dil[1] * (c.kw - 1) - 1) / c.stride[1] + 1;
  if (c.H + 2 * c.pad[0] < c.dil[0] * (c.kh - 1) + 1 || c.W + 2 * c.pad[1] < c.dil[1] * (c.kw - 1) + 1)
    throw std::invalid_argument("the input (" + std::to_string(c.H) + "×" + std::to_string(c.W) +
                                ", padded) is smaller than the kernel");
  check_bias(b, c.O);
  auto y = at::empty({c.N, c.O, c.OH, c.OW}, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  auto e = conv_entry(c);
  if (!e) return at::conv2d(x, unpack(packed), b, stride, padding, dilation, groups);
  auto X = x.contiguous();
  execute(*e, X.data_ptr(), packed, b, y.data_ptr());
  if (guard.isActive() && guard.needsOutputs()) guard.setOutputs(std::vector<c10::IValue>{y});  // the FLOPs (profiler.cpp)
  return y;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b) {
  const auto& h = header(packed);
  RECORD_FUNCTION("ld::linear_prepacked", std::vector<c10::IValue>({x, shape_of(h)}));
  if (h.kind != Kind::Linear) throw std::invalid_argument("the weight was packed for a convolution, not a linear layer");
  const int64_t N = h.shape[0], K = h.shape[1];
  if (!x.device().is_cpu() || x.dim() < 1 || x.size(-1) != K)
    throw std::invalid_argument("a packed linear layer takes a CPU input [..., " + std::to_string(K) + "]");
  if (x.scalar_type() != static_cast<at::ScalarType>(h.dtype)) throw std::invalid_argument("input and packed weight dtypes differ");
  check_bias(b, N);
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto y = at::empty(sizes, x.options().memory_format(at::MemoryFormat::Contiguous));
  const int64_t M = K == 0 ? 0 : x.numel() / K;
  if (y.numel() == 0) return y;
  if (K == 0) return b ? y.copy_(b->expand_as(y)) : y.zero_();
  auto e = matmul_entry(M, K, N, data_type(x.scalar_type()), b.has_value());
  if (!e) return at::linear(x, unpack(packed), b);
  auto X = x.contiguous();
  execute(*e, X.data_ptr(), packed, b, y.data_ptr());
  return y;
}

#endif  // LD_WITH_DNNL

}  // namespace ld::onednn

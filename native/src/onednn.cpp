// Linear layers for inference straight on oneDNN's matmul (2.x, the library libtorch 1.13 itself calls), with the
// weight packed once into the layout its kernel reads.
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
bool is_packed(const at::Tensor&) { return false; }
[[noreturn]] static void not_built() {
  throw std::invalid_argument("this build has no direct oneDNN path (native/ built without oneDNN's headers)");
}
at::Tensor pack_linear(const at::Tensor&) { not_built(); }
at::Tensor linear(const at::Tensor&, const at::Tensor&, const c10::optional<at::Tensor>&) { not_built(); }
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
  int64_t out_features, in_features;
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

// The matmul x [M, K] · w [K, N] (+ bias [1, N], f32) → [M, N], or null where oneDNN has only a reference kernel
// ("ref:any", "gemm:ref"…; e.g. bf16 on a CPU without AVX-512): far slower than libtorch's own paths, which the caller
// then takes.
std::shared_ptr<Entry> matmul_entry(int64_t M, int64_t K, int64_t N, memory::data_type dt, bool bias) {
  std::string key;
  for (int64_t v : {M, K, N, static_cast<int64_t>(dt), static_cast<int64_t>(bias), static_cast<int64_t>(at::get_num_threads())})
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
  dnnl::matmul::primitive_desc pd(desc, attr, engine());
  std::shared_ptr<Entry> entry;
  if (std::strstr(pd.impl_info_str(), "ref") == nullptr)
    entry = std::make_shared<Entry>(Entry{dnnl::matmul(pd), pd.weights_desc(), pd.scratchpad_desc()});
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache().size() >= kMaxPrimitives) cache().clear();  // in-flight entries live on through their shared_ptr
  return cache().emplace(key, std::move(entry)).first->second;
}

// A stand-in for the plain weight in a profiler's record of the inputs (its shape gives the FLOPs, profiler.cpp):
// one element expanded, made only while a profiler records inputs.
at::Tensor shape_of(const Header& h) {
  return at::empty({1}, at::TensorOptions().dtype(scalar_type(h))).expand({h.out_features, h.in_features});
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

at::Tensor pack_linear(const at::Tensor& w) {
  if (!w.device().is_cpu() || w.dim() != 2) throw std::invalid_argument("only a 2-D CPU linear weight can be packed");
  Header h{};
  std::memcpy(h.magic, kMagic, sizeof kMagic);
  h.dtype = static_cast<int32_t>(w.scalar_type());
  h.out_features = w.size(0);
  h.in_features = w.size(1);
  auto e = matmul_entry(kCanonicalRows, h.in_features, h.out_features, data_type(w.scalar_type()), false);
  const auto packed = e ? e->weights : plain_desc(h);
  h.packed = packed.data;
  at::NoGradGuard no_grad;
  ld::CpuCachePause dense_copy_not_cached;
  auto plain = w.contiguous();
  auto out = bytes(kHeaderBytes + packed.get_size());
  std::memcpy(out.data_ptr(), &h, sizeof h);
  run_reorder(plain_desc(h), plain.data_ptr(), packed, values(out));
  return out;
}

at::Tensor unpack(const at::Tensor& packed) {
  const auto& h = header(packed);
  at::NoGradGuard no_grad;
  c10::InferenceMode not_inference(false);
  auto dense = at::empty({h.out_features, h.in_features}, at::TensorOptions().dtype(scalar_type(h)));
  run_reorder(memory::desc(h.packed), values(packed), plain_desc(h), dense.data_ptr());
  return dense;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& packed, const c10::optional<at::Tensor>& b) {
  const auto& h = header(packed);
  RECORD_FUNCTION("ld::linear_prepacked", std::vector<c10::IValue>({x, shape_of(h)}));
  const int64_t N = h.out_features, K = h.in_features;
  if (!x.device().is_cpu() || x.dim() < 1 || x.size(-1) != K)
    throw std::invalid_argument("a packed linear layer takes a CPU input [..., " + std::to_string(K) + "]");
  if (x.scalar_type() != scalar_type(h)) throw std::invalid_argument("input and packed weight dtypes differ");
  if (b && (b->dim() != 1 || b->size(0) != N || !b->device().is_cpu()))
    throw std::invalid_argument("the bias does not match the packed weight (" + std::to_string(N) + " outputs)");
  auto sizes = x.sizes().vec();
  sizes.back() = N;
  auto y = at::empty(sizes, x.options().memory_format(at::MemoryFormat::Contiguous));
  if (y.numel() == 0) return y;
  if (K == 0) return b ? y.copy_(b->expand_as(y)) : y.zero_();
  const int64_t M = x.numel() / K;
  auto e = matmul_entry(M, K, N, data_type(x.scalar_type()), b.has_value());
  if (!e) return at::linear(x, unpack(packed), b);

  auto X = x.contiguous();
  auto& eng = engine();
  dnnl::stream s(eng);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, memory({{M, K}, data_type(x.scalar_type()), tag::ab}, eng, X.data_ptr())},
                                       {DNNL_ARG_DST, memory({{M, N}, data_type(x.scalar_type()), tag::ab}, eng, y.data_ptr())}};
  at::Tensor weights_now, bias32, scratch;
  const memory::desc packed_desc(h.packed);
  if (packed_desc == e->weights) {
    args.emplace(DNNL_ARG_WEIGHTS, memory(e->weights, eng, values(packed)));
  } else {  // a kernel that wants another layout for this many rows: reordered for this call
    weights_now = bytes(e->weights.get_size());
    run_reorder(packed_desc, values(packed), e->weights, weights_now.data_ptr());
    args.emplace(DNNL_ARG_WEIGHTS, memory(e->weights, eng, weights_now.data_ptr()));
  }
  if (b) {
    bias32 = b->to(at::kFloat).contiguous();  // bf16 → f32 is exact; the kernel adds it before rounding the output
    args.emplace(DNNL_ARG_BIAS, memory({{1, N}, memory::data_type::f32, tag::ab}, eng, bias32.data_ptr()));
  }
  if (e->scratch.get_size() > 0) {
    scratch = bytes(e->scratch.get_size());
    args.emplace(DNNL_ARG_SCRATCHPAD, memory(e->scratch, eng, scratch.data_ptr()));
  }
  e->prim.execute(s, args);
  s.wait();
  return y;
}

#endif  // LD_WITH_DNNL

}  // namespace ld::onednn

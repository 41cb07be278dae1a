// Times oneDNN's own primitives on the SD1.5 U-Net's shapes, the numbers behind native/src/onednn.cpp's choices
// (bench/README.md, "Linear layers straight on oneDNN's matmul"). Needs libdnnl-dev (the oneDNN Debian's libtorch links):
//   g++ -O2 -std=c++17 -o onednn_shapes bench/onednn_shapes.cpp -ldnnl
//   OMP_NUM_THREADS=2 flock LOCKFILE chrt -f 1 ./onednn_shapes [matmul|conv]
// matmul: GFLOP/s of the matmul and of the inner-product primitive on one packed weight (layout `any`, reordered once
// from the plain one), f32 and bf16, median of 12 calls. conv: ms and GFLOP/s of a 3×3 convolution with NCHW
// activations as they are, and with them reordered into oneDNN's channel blocks (nChw16c) or channels-last and back
// (the reorders included), median of 3–7 calls. Every buffer is written first: untouched memory maps the zero page,
// which costs no memory traffic and flatters weight-bound shapes.
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

using namespace dnnl;
using dt = memory::data_type;
using tag = memory::format_tag;

static double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <class F>
static double median(F f, int n) {
  std::vector<double> t;
  for (int i = 0; i < n; i++) {
    double t0 = now();
    f();
    t.push_back(now() - t0);
  }
  std::sort(t.begin(), t.end());
  return t[n / 2];
}

// Small finite values of either dtype (bytes below 0x40: no NaN, inf or huge exponents).
static void fill(memory& m) {
  auto* p = static_cast<uint8_t*>(m.get_data_handle());
  for (size_t i = 0, n = m.get_desc().get_size(); i < n; i++) p[i] = static_cast<uint8_t>((i * 2654435761u) >> 24) & 0x3f;
}

static const char* name(dt t) { return t == dt::f32 ? "f32 " : "bf16"; }

static void matmul_shapes(engine& eng, stream& s) {
  const int shapes[][3] = {{2048, 320, 320}, {2048, 320, 2560}, {2048, 1280, 320}, {512, 640, 640}, {512, 640, 5120},
                           {128, 1280, 10240}, {128, 5120, 1280}, {154, 768, 1280}, {2, 1280, 1280}};
  for (auto t : {dt::f32, dt::bf16})
    for (auto& sh : shapes) {
      const int M = sh[0], K = sh[1], N = sh[2];
      const memory::desc src({M, K}, t, tag::ab), dst({M, N}, t, tag::ab);
      matmul::primitive_desc mpd(matmul::desc(src, memory::desc({K, N}, t, tag::any), memory::desc({1, N}, dt::f32, tag::ab), dst), eng);
      inner_product_forward::primitive_desc ipd(
          inner_product_forward::desc(prop_kind::forward_inference, src, memory::desc({N, K}, t, tag::any),
                                      memory::desc({N}, dt::f32, tag::a), dst), eng);
      memory x(src, eng), y(dst, eng), b(mpd.bias_desc(), eng), plain_mm({{K, N}, t, tag::ba}, eng), plain_ip({{N, K}, t, tag::ab}, eng);
      memory w_mm(mpd.weights_desc(), eng), w_ip(ipd.weights_desc(), eng);
      for (memory* m : {&x, &y, &b, &plain_mm, &plain_ip}) fill(*m);
      reorder(plain_mm, w_mm).execute(s, plain_mm, w_mm);
      reorder(plain_ip, w_ip).execute(s, plain_ip, w_ip);
      matmul mm(mpd);
      inner_product_forward ip(ipd);
      const double tm = median([&] { mm.execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w_mm}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}}); s.wait(); }, 12);
      const double ti = median([&] { ip.execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w_ip}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}}); s.wait(); }, 12);
      const double flop = 2.0 * M * K * N;
      std::printf("%s %5d × %5d → %5d  matmul %7.3f ms %5.0f GFLOP/s [%s] | inner product %7.3f ms %5.0f GFLOP/s\n", name(t), M,
                  K, N, tm * 1e3, flop / tm / 1e9, mpd.impl_info_str(), ti * 1e3, flop / ti / 1e9);
    }
}

static void conv_shapes(engine& eng, stream& s) {
  const int shapes[][4] = {{2, 320, 320, 32}, {2, 640, 640, 16}, {2, 1280, 1280, 8}, {2, 1280, 1280, 4},
                           {1, 512, 512, 64}, {1, 128, 128, 512}};  // batch, in = out channels, size; 3×3, padding 1
  for (auto t : {dt::f32, dt::bf16})
    for (auto& sh : shapes) {
      const int N = sh[0], C = sh[1], O = sh[2], H = sh[3];
      const memory::dims src{N, C, H, H}, wei{O, C, 3, 3}, dst{N, O, H, H};
      const double flop = 2.0 * N * O * H * H * C * 9;
      memory in({src, t, tag::nchw}, eng), out({dst, t, tag::nchw}, eng);
      fill(in);
      std::printf("%s N%d %4d→%-4d %3d²", name(t), N, C, O, H);
      for (tag layout : {tag::nchw, tag::nChw16c, tag::nhwc}) {
        convolution_forward::primitive_desc pd(
            convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, memory::desc(src, t, layout),
                                      memory::desc(wei, t, tag::any), memory::desc({O}, dt::f32, tag::a),
                                      memory::desc(dst, t, layout), {1, 1}, {1, 1}, {1, 1}), eng);
        const bool plain = layout == tag::nchw;
        memory x(pd.src_desc(), eng), w(pd.weights_desc(), eng), b(pd.bias_desc(), eng), y(pd.dst_desc(), eng);
        fill(w);
        fill(b);
        convolution_forward conv(pd);
        const double tc = median([&] {
          if (!plain) reorder(in, x).execute(s, in, x);
          conv.execute(s, {{DNNL_ARG_SRC, plain ? in : x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, plain ? out : y}});
          if (!plain) reorder(y, out).execute(s, y, out);
          s.wait();
        }, flop > 50e9 ? 3 : 7);
        std::printf(" | %s %7.1f ms %5.0f GFLOP/s [%s]", plain ? "nchw" : layout == tag::nhwc ? "nhwc" : "blocked", tc * 1e3,
                    flop / tc / 1e9, pd.impl_info_str());
      }
      std::printf("\n");
    }
}

int main(int argc, char** argv) {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const char* what = argc > 1 ? argv[1] : "matmul";
  if (std::strcmp(what, "matmul") == 0) matmul_shapes(eng, s);
  else if (std::strcmp(what, "conv") == 0) conv_shapes(eng, s);
  else {
    std::fprintf(stderr, "usage: onednn_shapes [matmul|conv]\n");
    return 2;
  }
  return 0;
}

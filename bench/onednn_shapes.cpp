// Times oneDNN's own primitives on the SD1.5 U-Net's shapes, the numbers behind native/src/onednn.cpp's choices
// (bench/README.md, "Linear layers straight on oneDNN's matmul"). Needs libdnnl-dev (the oneDNN Debian's libtorch links):
//   g++ -O2 -std=c++17 -fopenmp -o onednn_shapes bench/onednn_shapes.cpp -ldnnl
//   OMP_NUM_THREADS=2 flock LOCKFILE chrt -f 1 ./onednn_shapes [matmul|conv|im2col|fusion|swapped]
// matmul: GFLOP/s of the matmul and of the inner-product primitive on one packed weight (layout `any`, reordered once
// from the plain one), f32 and bf16, median of 12 calls. conv: ms and GFLOP/s of a 3×3 convolution with NCHW
// activations as they are, and with them reordered into oneDNN's channel blocks (nChw16c) or channels-last and back
// (the reorders included), median of 3–7 calls. im2col: the 3×3 convolutions of the U-Net from 1,280 input channels, and
// two below that, on the blocked kernel (NCHW reordered in and out, as libtorch runs it) against what native/src/onednn.cpp
// does (NCHW → channels-last reorder, im2col, the matmul on the packed [out, 9·in] weight, reorder back), median of 7 calls
// over 24 weight copies in turn (each call reads its weight from memory, as in the U-Net). fusion: a skip connection
// added by the matmul's binary post-op against a separate sum, and q, k, v as one product against three (median of 15).
// swapped: a small map's convolution product with the weight as the packed operand or as the streamed rows. Every buffer is written first: untouched memory maps the zero page,
// which costs no memory traffic and flatters weight-bound shapes.
#include <oneapi/dnnl/dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <unordered_map>
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

static void im2col_shapes(engine& eng, stream& s) {
  const int shapes[][4] = {{2, 1280, 1280, 8}, {2, 1280, 1280, 4}, {2, 2560, 1280, 8}, {2, 1280, 1280, 16},
                           {2, 1920, 640, 16}, {2, 320, 320, 32}, {2, 640, 640, 16}};  // batch, in, out channels, size
  const int copies = 24;
  for (auto t : {dt::f32, dt::bf16})
    for (auto& sh : shapes) {
      const int N = sh[0], C = sh[1], O = sh[2], H = sh[3], M = N * H * H, K = 9 * C;
      const double flop = 2.0 * M * O * K;
      const memory::dims src{N, C, H, H}, wei{O, C, 3, 3}, dst{N, O, H, H};
      memory in({src, t, tag::nchw}, eng), out({dst, t, tag::nchw}, eng);
      fill(in);
      convolution_forward::primitive_desc cpd(
          convolution_forward::desc(prop_kind::forward_inference, algorithm::convolution_direct, memory::desc(src, t, tag::nChw16c),
                                    memory::desc(wei, t, tag::any), memory::desc({O}, dt::f32, tag::a),
                                    memory::desc(dst, t, tag::nChw16c), {1, 1}, {1, 1}, {1, 1}), eng);
      matmul::primitive_desc mpd(matmul::desc(memory::desc({M, K}, t, tag::ab), memory::desc({K, O}, t, tag::any),
                                              memory::desc({1, O}, dt::f32, tag::ab), memory::desc({M, O}, t, tag::ab)), eng);
      memory x(cpd.src_desc(), eng), y(cpd.dst_desc(), eng), b(cpd.bias_desc(), eng), bm(mpd.bias_desc(), eng);
      memory xh({src, t, tag::nhwc}, eng), cols({{M, K}, t, tag::ab}, eng), yh({{M, O}, t, tag::ab}, eng);
      std::vector<memory> wc, wm;
      for (int i = 0; i < copies; i++) {
        wc.emplace_back(cpd.weights_desc(), eng);
        wm.emplace_back(mpd.weights_desc(), eng);
        fill(wc.back());
        fill(wm.back());
      }
      for (memory* m : {&b, &bm, &cols, &yh}) fill(*m);
      convolution_forward conv(cpd);
      matmul mm(mpd);
      const memory out_nhwc({dst, t, tag::nhwc}, eng, yh.get_data_handle());
      const size_t es = t == dt::f32 ? 4 : 2;
      int call = 0;
      const double tc = median([&] {
        reorder(in, x).execute(s, in, x);
        conv.execute(s, {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, wc[call++ % copies]}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}});
        reorder(y, out).execute(s, y, out);
        s.wait();
      }, 7);
      const double tm = median([&] {
        reorder(in, xh).execute(s, in, xh);
        s.wait();
        const auto* px = static_cast<const uint8_t*>(xh.get_data_handle());
        auto* pc = static_cast<uint8_t*>(cols.get_data_handle());
#pragma omp parallel for
        for (int r = 0; r < M; r++) {  // row (n, oh, ow): the 9 taps' channels, zeros in the padding
          const int n = r / (H * H), oh = r / H % H, ow = r % H;
          for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++) {
              const int ih = oh + i - 1, iw = ow + j - 1;
              uint8_t* d = pc + (static_cast<size_t>(r) * K + (i * 3 + j) * C) * es;
              if (ih < 0 || ih >= H || iw < 0 || iw >= H) std::memset(d, 0, C * es);
              else std::memcpy(d, px + ((static_cast<size_t>(n) * H + ih) * H + iw) * C * es, C * es);
            }
        }
        mm.execute(s, {{DNNL_ARG_SRC, cols}, {DNNL_ARG_WEIGHTS, wm[call++ % copies]}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, yh}});
        reorder(out_nhwc, out).execute(s, const_cast<memory&>(out_nhwc), out);
        s.wait();
      }, 7);
      std::printf("%s N%d %4d→%-4d %2d²  blocked %6.2f ms %5.0f GFLOP/s [%s] | im2col + matmul %6.2f ms %5.0f GFLOP/s [%s]\n",
                  name(t), N, C, O, H, tc * 1e3, flop / tc / 1e9, cpd.impl_info_str(), tm * 1e3, flop / tm / 1e9, mpd.impl_info_str());
    }
}

// A primitive for x [M, K] · w [K, N] + b (+ a residual [M, N] by a binary post-op) with its packed weight written.
struct Product {
  matmul prim;
  memory x, w, b, y, r;
  Product(engine& eng, int M, int K, int N, dt t, bool residual) {
    const memory::desc src({M, K}, t, tag::ab), dst({M, N}, t, tag::ab);
    primitive_attr attr;
    if (residual) {
      post_ops po;
      po.append_binary(algorithm::binary_add, dst);
      attr.set_post_ops(po);
    }
    matmul::primitive_desc pd(matmul::desc(src, memory::desc({K, N}, t, tag::any), memory::desc({1, N}, dt::f32, tag::ab), dst), attr, eng);
    prim = matmul(pd);
    x = memory(src, eng), w = memory(pd.weights_desc(), eng), b = memory(pd.bias_desc(), eng), y = memory(dst, eng), r = memory(dst, eng);
    for (memory* m : {&x, &w, &b, &y, &r}) fill(*m);
    impl = pd.impl_info_str();
  }
  void run(stream& s) {
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}};
    if (residual_used) args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, r);
    prim.execute(s, args);
  }
  bool residual_used = false;
  std::string impl;
};

// The two fusions measured for the transformer blocks (bench/README.md, session 10): a skip connection added by the
// matmul's binary post-op against the product and then a separate sum (oneDNN's binary primitive, as a pass of its own);
// and the three q, k, v projections of a self-attention as one product of three times the outputs against three products.
static void fusion_shapes(engine& eng, stream& s) {
  const int residual_shapes[][3] = {{2048, 320, 320}, {2048, 1280, 320}, {512, 640, 640}, {512, 2560, 640}, {128, 1280, 1280}, {128, 5120, 1280}};
  for (auto t : {dt::f32, dt::bf16})
    for (auto& sh : residual_shapes) {
      const int M = sh[0], K = sh[1], N = sh[2];
      Product plain(eng, M, K, N, t, false), fused(eng, M, K, N, t, true);
      fused.residual_used = true;
      const memory::desc d({M, N}, t, tag::ab);
      binary add(binary::primitive_desc(binary::desc(algorithm::binary_add, d, d, d), eng));
      memory sum(d, eng);
      const double tp = median([&] { plain.run(s); add.execute(s, {{DNNL_ARG_SRC_0, plain.y}, {DNNL_ARG_SRC_1, plain.r}, {DNNL_ARG_DST, sum}}); s.wait(); }, 15);
      const double tf = median([&] { fused.run(s); s.wait(); }, 15);
      std::printf("%s %5d × %5d → %5d + residual: product then sum %7.3f ms | post-op %7.3f ms (%.2f×) [%s]\n", name(t), M, K, N,
                  tp * 1e3, tf * 1e3, tf / tp, fused.impl.c_str());
    }
  const int qkv_shapes[][3] = {{2048, 320, 3}, {512, 640, 3}, {128, 1280, 3}, {154, 768, 2}};  // rows, channels, products
  for (auto t : {dt::f32, dt::bf16})
    for (auto& sh : qkv_shapes) {
      const int M = sh[0], C = sh[1], n = sh[2], N = M == 154 ? 320 : C;
      std::vector<Product> apart;
      for (int i = 0; i < n; i++) apart.emplace_back(eng, M, C, N, t, false);
      Product one(eng, M, C, n * N, t, false);
      const double ta = median([&] { for (auto& p : apart) p.run(s); s.wait(); }, 15);
      const double to = median([&] { one.run(s); s.wait(); }, 15);
      std::printf("%s %5d × %5d → %d × %5d: apart %7.3f ms | one product %7.3f ms (%.2f×)\n", name(t), M, C, n, N, ta * 1e3, to * 1e3, to / ta);
    }
}

// The product of a 3×3 convolution from 1,280 channels on a small map, as native/src/onednn.cpp runs it (the im2col rows
// [M, K] times the packed weight [K, N]) and with the roles swapped (the plain weight [N, K] as the streamed row operand
// times the im2col rows as a [K, M] operand in their own row-major order, "ba"; the output [N, M], transposed). Median of 7
// calls over 8 weight copies in turn (each call reads its weight from memory, as in the U-Net).
static void swapped_shapes(engine& eng, stream& s) {
  const int shapes[][3] = {{32, 11520, 1280}, {32, 23040, 1280}, {128, 11520, 1280}, {512, 11520, 1280}};  // M, K, N
  constexpr int copies = 8;
  for (auto t : {dt::f32, dt::bf16})
    for (auto& sh : shapes) {
      const int M = sh[0], K = sh[1], N = sh[2];
      const double flop = 2.0 * M * K * N;
      matmul::primitive_desc packed(matmul::desc(memory::desc({M, K}, t, tag::ab), memory::desc({K, N}, t, tag::any),
                                                 memory::desc({M, N}, t, tag::ab)), eng);
      matmul::primitive_desc swapped(matmul::desc(memory::desc({N, K}, t, tag::ab), memory::desc({K, M}, t, tag::ba),
                                                  memory::desc({N, M}, t, tag::ab)), eng);
      memory cols({{M, K}, t, tag::ab}, eng), y({{M, N}, t, tag::ab}, eng), yt({{N, M}, t, tag::ab}, eng);
      fill(cols);
      std::vector<memory> wp, wr;
      for (int i = 0; i < copies; i++) {
        wp.emplace_back(packed.weights_desc(), eng);
        wr.emplace_back(memory::desc({N, K}, t, tag::ab), eng);
        fill(wp.back());
        fill(wr.back());
      }
      matmul mp(packed), ms(swapped);
      memory colsT({{K, M}, t, tag::ba}, eng, cols.get_data_handle());
      int call = 0;
      const double tp = median([&] { mp.execute(s, {{DNNL_ARG_SRC, cols}, {DNNL_ARG_WEIGHTS, wp[call++ % copies]}, {DNNL_ARG_DST, y}}); s.wait(); }, 7);
      call = 0;
      const double ts = median([&] { ms.execute(s, {{DNNL_ARG_SRC, wr[call++ % copies]}, {DNNL_ARG_WEIGHTS, colsT}, {DNNL_ARG_DST, yt}}); s.wait(); }, 7);
      std::printf("%s M %4d K %5d N %4d: packed weight %6.3f ms %5.0f GFLOP/s [%s] | swapped %6.3f ms %5.0f GFLOP/s [%s]\n", name(t), M, K,
                  N, tp * 1e3, flop / tp / 1e9, packed.impl_info_str(), ts * 1e3, flop / ts / 1e9, swapped.impl_info_str());
    }
}

int main(int argc, char** argv) {
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const char* what = argc > 1 ? argv[1] : "matmul";
  if (std::strcmp(what, "matmul") == 0) matmul_shapes(eng, s);
  else if (std::strcmp(what, "conv") == 0) conv_shapes(eng, s);
  else if (std::strcmp(what, "im2col") == 0) im2col_shapes(eng, s);
  else if (std::strcmp(what, "fusion") == 0) fusion_shapes(eng, s);
  else if (std::strcmp(what, "swapped") == 0) swapped_shapes(eng, s);
  else {
    std::fprintf(stderr, "usage: onednn_shapes [matmul|conv|im2col|fusion|swapped]\n");
    return 2;
  }
  return 0;
}

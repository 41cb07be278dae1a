/* Times the native scaled_dot_product_attention (the fused CPU kernel, native/src/attention.cpp) on the SD1.5 U-Net's
 * attention shapes at 256² (batch 2, 8 heads; q, k, v the head-split views diffusers makes), for any build of
 * libldtorch.so, loaded by path so that two builds run alternately in one locked session:
 *   cc -O2 -o attention_shapes bench/attention_shapes.c -ldl
 *   ./attention_shapes LIB [f32|bf16] [MODE…]
 * MODE per run: "fused", "blocked" (libtorch's products), "widened" (bf16 on the fused kernel computed in f32),
 * "dot" (bf16 with AVX512-BF16 dot products; libraries before ABI 9 have only the widened path). Prints per shape the
 * best of 30 calls in ms and GFLOP/s (both products, 4·L·S·E per head), and a 32-bit FNV-1a hash of the output's bytes
 * (the inputs come from the default generator seeded with 0, so equal hashes across builds mean equal bits). */
#include <dlfcn.h>
#include <stdlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

typedef struct ld_tensor ld_tensor;
static ld_tensor* (*randn)(const int64_t*, int, void*, int, int, int);
static ld_tensor* (*to)(ld_tensor*, int, int, int, int, int);
static ld_tensor* (*transpose)(ld_tensor*, int64_t, int64_t);
static ld_tensor* (*sdpa)(ld_tensor*, ld_tensor*, ld_tensor*, ld_tensor*, double, int, double);
static ld_tensor* (*contiguous)(ld_tensor*);
static int (*copy_out)(ld_tensor*, void*, int64_t), (*seed)(uint64_t);
static void (*release)(ld_tensor*);
static int (*set_fused)(int), (*set_dot)(int), (*set_threads)(int);
static void* (*inference)(void);

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static ld_tensor* head_split(int64_t len, int64_t dim, int dtype) {  /* [2, len, 8, dim] → [2, 8, len, dim] */
  const int64_t shape[4] = {2, len, 8, dim};
  ld_tensor *x = randn(shape, 4, NULL, 6, 0, 0), *y = to(x, dtype, 0, 0, 0, 0), *z = transpose(y, 1, 2);
  release(x);
  release(y);
  return z;
}

int main(int argc, char** argv) {
  if (argc < 3) return fprintf(stderr, "usage: %s LIB f32|bf16 [fused|blocked|widened|dot]…\n", argv[0]), 2;
  void* lib = dlopen(argv[1], RTLD_NOW);
  if (!lib) return fprintf(stderr, "%s\n", dlerror()), 1;
  randn = dlsym(lib, "ld_randn"); to = dlsym(lib, "ld_to"); transpose = dlsym(lib, "ld_transpose");
  sdpa = dlsym(lib, "ld_scaled_dot_product_attention"); release = dlsym(lib, "ld_free");
  set_fused = dlsym(lib, "ld_set_fused_attention"); set_dot = dlsym(lib, "ld_set_attention_bf16_dot");
  contiguous = dlsym(lib, "ld_contiguous"); copy_out = dlsym(lib, "ld_copy_to_buffer"); seed = dlsym(lib, "ld_manual_seed");
  set_threads = dlsym(lib, "ld_set_num_threads"); inference = dlsym(lib, "ld_inference_mode_enter");
  const int dtype = strcmp(argv[2], "bf16") == 0 ? 15 : 6;
  set_threads(2);
  inference();
  static const int64_t shapes[][3] = {{1024, 1024, 40}, {1024, 77, 40}, {256, 256, 80}, {256, 77, 80}, {64, 64, 160}, {64, 77, 160}};
  seed(0);
  for (int s = 0; s < 6; s++) {
    const int64_t L = shapes[s][0], S = shapes[s][1], E = shapes[s][2];
    ld_tensor *q = head_split(L, E, dtype), *k = head_split(S, E, dtype), *v = head_split(S, E, dtype);
    printf("16 x %4lld x %4lld x %3lld %s:", (long long)L, (long long)S, (long long)E, argv[2]);
    for (int m = 3; m < argc; m++) {
      const char* mode = argv[m];
      if (strcmp(mode, "dot") == 0 && !set_dot) { printf("  dot -"); continue; }
      set_fused(strcmp(mode, "blocked") != 0);
      if (set_dot) set_dot(strcmp(mode, "dot") == 0 ? 1 : strcmp(mode, "widened") == 0 ? 0 : -1);
      double best = 1e30;
      uint32_t hash = 2166136261u;
      for (int i = 0; i < 31; i++) {
        const double t0 = now();
        ld_tensor* o = sdpa(q, k, v, NULL, 0.0, 0, -1.0);
        const double t = now() - t0;
        if (!o) return fprintf(stderr, "attention failed\n"), 1;
        if (i == 0) {
          const int64_t bytes = 16 * L * E * (dtype == 15 ? 2 : 4);
          unsigned char* data = malloc((size_t)bytes);
          ld_tensor* c = contiguous(o);
          copy_out(c, data, bytes);
          for (int64_t j = 0; j < bytes; j++) hash = (hash ^ data[j]) * 16777619u;
          release(c);
          free(data);
        }
        release(o);
        if (i > 0 && t < best) best = t;
      }
      printf("  %s %.3f ms (%.0f GFLOP/s, %08x)", mode, best * 1e3, 16.0 * 4 * L * S * E / best * 1e-9, hash);
    }
    printf("\n");
    release(q); release(k); release(v);
  }
  return 0;
}

/* ldtorch: a thin C ABI over libtorch for LatentDiffusion.NET.
 *
 * Conventions
 *  - One opaque tensor handle (ld_tensor*), owned by the caller: free it with ld_free.
 *  - Functions that produce a tensor return NULL on failure; functions returning int return
 *    0 on success and -1 on failure. After a failure, ld_last_error() gives the message
 *    (thread-local, valid until the next failing call on the same thread).
 *  - No C++ exception ever crosses this boundary; nothing here aborts the process.
 *  - dtype codes are c10::ScalarType values: 0 uint8, 1 int8, 2 int16, 3 int32, 4 int64,
 *    5 float16, 6 float32, 7 float64, 11 bool, 15 bfloat16.
 *  - device: (type, index) with type 0 = cpu, 1 = cuda.
 *  - Optional tensor arguments may be NULL.
 */
#ifndef LDTORCH_H
#define LDTORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever any signature or semantic in this header changes; the C# side refuses a
 * native library whose version differs from the one it was compiled against. */
#define LD_ABI_VERSION 11

#if defined(_WIN32)
#define LD_API __declspec(dllexport)
#else
#define LD_API __attribute__((visibility("default")))
#endif

typedef struct ld_tensor ld_tensor;
typedef struct ld_generator ld_generator;
typedef struct ld_guard ld_guard;
typedef struct ld_store ld_store;
typedef struct ld_process_group ld_process_group;
typedef struct ld_thread_state ld_thread_state;
typedef struct ld_thread_scope ld_thread_scope;

/* ---- errors, versions, runtime (errors.cpp, runtime.cpp) ---- */
LD_API int ld_abi_version(void);
LD_API const char* ld_last_error(void);
LD_API const char* ld_libtorch_version(void);
LD_API int64_t ld_live_tensors(void);
LD_API int ld_set_num_threads(int n);
LD_API int ld_get_num_threads(void);
/* The calling thread's intra-op thread count only (since ABI 11); returns the previous one, -1 (error set) where
 * libtorch's threads are not OpenMP's and so have no per-thread count. */
LD_API int ld_set_thread_intra_op_threads(int n);
/* Running part of a pass on another thread as the calling thread would (since ABI 11): ld_thread_state_capture takes
 * the caller's libtorch thread-local state (grad and inference mode, dispatch keys, thread-local RecordFunction
 * callbacks) and this binding's per-thread switches (ld_set_fused_attention, ld_set_attention_bf16_dot,
 * ld_set_onednn_direct); ld_thread_state_enter applies it on the current thread until ld_thread_state_exit restores
 * that thread's own. A state may be entered on several threads at once; free it after the last exit. */
LD_API ld_thread_state* ld_thread_state_capture(void);
LD_API void ld_thread_state_free(ld_thread_state* state);
LD_API ld_thread_scope* ld_thread_state_enter(ld_thread_state* state);
LD_API void ld_thread_state_exit(ld_thread_scope* scope);
LD_API const char* ld_blas_info(void);          /* "openblas <config>", "mkl", or "reference" */
LD_API int ld_openblas_set_num_threads(int n);   /* -1 where OpenBLAS is not loaded */
LD_API int ld_cuda_is_available(void);
LD_API int ld_cuda_device_count(void);
LD_API int ld_cuda_synchronize(int index);
LD_API int ld_cuda_memory(int index, int64_t* allocated, int64_t* peak);
LD_API int ld_cuda_reset_peak(int index);
LD_API int ld_has_fused_attention(void);
/* The fused AVX-512 CPU attention kernel of inference (attention.cpp), on the calling thread only:
 * mode -1 follows the default (on where the CPU has AVX-512 unless LDTORCH_FUSED_ATTENTION=0), 0 forces
 * the blocked libtorch path, 1 the fused kernel where the CPU has it. Returns the previous mode (-2: bad mode). */
LD_API int ld_set_fused_attention(int mode);
LD_API int ld_fused_attention_active(void);     /* 1 if inference attention on this thread runs the fused kernel */
/* Its bf16 dot-product path (AVX512-BF16 vdpbf16ps for q kᵀ and p · v, the probabilities rounded to bf16) for bf16
 * inputs, on the calling thread only: mode -1 follows the default (on where the CPU has AVX512-BF16 unless
 * LDTORCH_ATTENTION_BF16_DOT=0), 0 forces the widened path (bf16 computed in f32), 1 the dot products where the CPU
 * has them. Returns the previous mode (-2: bad mode). */
LD_API int ld_set_attention_bf16_dot(int mode);
LD_API int ld_attention_bf16_dot_active(void);  /* 1 if bf16 fused attention on this thread runs the dot products */

/* ---- the cache of large CPU blocks (allocator.cpp) ----
 * libtorch's CPU allocator is replaced, when the library loads, by one that maps blocks of 8 MiB or more itself
 * (2 MiB-aligned, advised as transparent huge pages) and keeps freed ones, up to `limit` bytes (oldest unmapped
 * first), for the next allocation of about their size; smaller blocks go to libtorch's default allocator.
 * Limit 0 turns the cache off. While paused (loading weights) large blocks come from the default allocator and
 * freed ones are unmapped at once. stats: out[5] = limit, cached bytes, live large bytes, hits, misses. */
LD_API int ld_cpu_cache_set_limit(int64_t bytes);
LD_API int ld_cpu_cache_trim(void);
LD_API int ld_cpu_cache_pause(int on);
LD_API int ld_cpu_cache_stats(int64_t* out);

/* ---- generators (runtime.cpp) ---- */
LD_API ld_generator* ld_generator_new(uint64_t seed, int device_type, int device_index);
LD_API void ld_generator_free(ld_generator* g);
LD_API int ld_generator_manual_seed(ld_generator* g, uint64_t seed);
LD_API int ld_generator_get_state(ld_generator* g, ld_tensor** out_state);
LD_API int ld_generator_set_state(ld_generator* g, ld_tensor* state);
LD_API int ld_manual_seed(uint64_t seed);

/* ---- tensors: handles, metadata, data, creation (tensor.cpp) ---- */
LD_API void ld_free(ld_tensor* t);
LD_API ld_tensor* ld_alias(ld_tensor* t);  /* a second handle onto the same tensor */
LD_API int ld_dim(ld_tensor* t);
LD_API int ld_shape(ld_tensor* t, int64_t* out, int cap);
LD_API int ld_strides(ld_tensor* t, int64_t* out, int cap);
LD_API int64_t ld_numel(ld_tensor* t);
LD_API int ld_dtype(ld_tensor* t);
LD_API int ld_device(ld_tensor* t, int* type, int* index);
LD_API int ld_is_contiguous(ld_tensor* t);
LD_API int ld_requires_grad(ld_tensor* t);
LD_API int ld_set_requires_grad(ld_tensor* t, int flag);
LD_API int ld_is_leaf(ld_tensor* t);
LD_API ld_tensor* ld_from_data(const void* data, const int64_t* shape, int ndim, int dtype);
LD_API int ld_copy_to_buffer(ld_tensor* t, void* dst, int64_t nbytes);
/* The address of a contiguous tensor's first element (on its device), for zero-copy views by another runtime;
 * valid while the tensor lives. Fails for a non-contiguous tensor. */
LD_API int ld_data_ptr(ld_tensor* t, void** out);
LD_API int ld_item(ld_tensor* t, double* out);
LD_API int ld_item_int64(ld_tensor* t, int64_t* out);
LD_API ld_tensor* ld_to(ld_tensor* t, int dtype, int device_type, int device_index, int non_blocking, int copy);
LD_API ld_tensor* ld_contiguous(ld_tensor* t);
LD_API ld_tensor* ld_clone(ld_tensor* t);
LD_API ld_tensor* ld_detach(ld_tensor* t);
LD_API int ld_copy_(ld_tensor* dst, ld_tensor* src);
LD_API int ld_fill_(ld_tensor* t, double value);
LD_API int ld_zero_(ld_tensor* t);
LD_API int ld_equal(ld_tensor* a, ld_tensor* b);
LD_API ld_tensor* ld_empty(const int64_t* shape, int ndim, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_zeros(const int64_t* shape, int ndim, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_ones(const int64_t* shape, int ndim, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_full(const int64_t* shape, int ndim, double value, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_arange(double start, double end, double step, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_linspace(double start, double end, int64_t steps, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_rand(const int64_t* shape, int ndim, ld_generator* g, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_randn(const int64_t* shape, int ndim, ld_generator* g, int dtype, int device_type, int device_index);
LD_API ld_tensor* ld_randint(int64_t low, int64_t high, const int64_t* shape, int ndim, ld_generator* g, int dtype, int device_type, int device_index);
LD_API int ld_uniform_(ld_tensor* t, double from, double to, ld_generator* g);
LD_API int ld_normal_(ld_tensor* t, double mean, double std, ld_generator* g);
LD_API ld_tensor* ld_multinomial(ld_tensor* probs, int64_t n, int replacement, ld_generator* g);
LD_API ld_tensor* ld_randperm(int64_t n, ld_generator* g);

/* ---- elementwise math (math.cpp) ---- */
/* unary op codes */
enum {
  LD_NEG = 0, LD_ABS, LD_SQRT, LD_RSQRT, LD_EXP, LD_LOG, LD_SIN, LD_COS, LD_TANH, LD_SIGMOID,
  LD_FLOOR, LD_ROUND, LD_CEIL, LD_RELU, LD_SILU, LD_SIGN, LD_LOGICAL_NOT, LD_ISNAN, LD_ISFINITE,
  LD_RECIPROCAL, LD_SQUARE, LD_LOG1P, LD_EXPM1, LD_ERF, LD_TRUNC, LD_UNARY_COUNT
};
/* binary op codes (tensor ∘ tensor, broadcasting) */
enum {
  LD_ADD = 0, LD_SUB, LD_MUL, LD_DIV, LD_POW, LD_MINIMUM, LD_MAXIMUM, LD_EQ, LD_NE, LD_LT, LD_LE,
  LD_GT, LD_GE, LD_ATAN2, LD_REMAINDER, LD_FLOOR_DIVIDE, LD_LOGICAL_AND, LD_LOGICAL_OR, LD_BINARY_COUNT
};
LD_API ld_tensor* ld_unary(int op, ld_tensor* a);
LD_API int ld_unary_(int op, ld_tensor* a);
LD_API ld_tensor* ld_binary(int op, ld_tensor* a, ld_tensor* b);
LD_API int ld_binary_(int op, ld_tensor* a, ld_tensor* b);
LD_API ld_tensor* ld_binary_scalar(int op, ld_tensor* a, double b);
LD_API int ld_binary_scalar_(int op, ld_tensor* a, double b);
LD_API ld_tensor* ld_scalar_binary(int op, double a, ld_tensor* b);  /* a ∘ tensor (rsub, rdiv, rpow) */
LD_API ld_tensor* ld_add_scaled(ld_tensor* a, ld_tensor* b, double alpha);  /* a + alpha*b */
LD_API int ld_add_scaled_(ld_tensor* a, ld_tensor* b, double alpha);
LD_API ld_tensor* ld_clamp(ld_tensor* a, double min, double max, int has_min, int has_max);
LD_API ld_tensor* ld_lerp(ld_tensor* a, ld_tensor* b, double weight);
LD_API ld_tensor* ld_lerp_tensor(ld_tensor* a, ld_tensor* b, ld_tensor* weight);
LD_API int ld_lerp_(ld_tensor* a, ld_tensor* b, double weight);
LD_API ld_tensor* ld_where(ld_tensor* cond, ld_tensor* a, ld_tensor* b);
LD_API ld_tensor* ld_masked_fill(ld_tensor* a, ld_tensor* mask, double value);
LD_API ld_tensor* ld_cumprod(ld_tensor* a, int64_t dim);
LD_API ld_tensor* ld_cumsum(ld_tensor* a, int64_t dim);
LD_API ld_tensor* ld_gelu(ld_tensor* a, int tanh_approximation);

/* ---- reductions (math.cpp) ---- */
enum { LD_SUM = 0, LD_MEAN, LD_AMAX, LD_AMIN, LD_PROD, LD_REDUCE_COUNT };
/* ndim == 0 (dims NULL) reduces over all dimensions */
LD_API ld_tensor* ld_reduce(int op, ld_tensor* a, const int64_t* dims, int ndims, int keepdim);
LD_API ld_tensor* ld_var(ld_tensor* a, const int64_t* dims, int ndims, int64_t correction, int keepdim);
LD_API ld_tensor* ld_std(ld_tensor* a, const int64_t* dims, int ndims, int64_t correction, int keepdim);
LD_API ld_tensor* ld_norm(ld_tensor* a, double p, const int64_t* dims, int ndims, int keepdim);
LD_API int ld_max_dim(ld_tensor* a, int64_t dim, int keepdim, ld_tensor** values, ld_tensor** indices);
LD_API int ld_min_dim(ld_tensor* a, int64_t dim, int keepdim, ld_tensor** values, ld_tensor** indices);
LD_API ld_tensor* ld_argmax(ld_tensor* a, int64_t dim, int has_dim, int keepdim);
LD_API int ld_topk(ld_tensor* a, int64_t k, int64_t dim, int largest, ld_tensor** values, ld_tensor** indices);
LD_API int ld_sort(ld_tensor* a, int64_t dim, int descending, ld_tensor** values, ld_tensor** indices);

/* ---- linear algebra (math.cpp) ---- */
LD_API ld_tensor* ld_matmul(ld_tensor* a, ld_tensor* b);
LD_API ld_tensor* ld_bmm(ld_tensor* a, ld_tensor* b);
LD_API ld_tensor* ld_baddbmm(ld_tensor* input, ld_tensor* a, ld_tensor* b, double beta, double alpha);
LD_API ld_tensor* ld_outer(ld_tensor* a, ld_tensor* b);

/* ---- shape and indexing (shape.cpp) ---- */
LD_API ld_tensor* ld_reshape(ld_tensor* a, const int64_t* shape, int ndim);
LD_API ld_tensor* ld_view(ld_tensor* a, const int64_t* shape, int ndim);
LD_API ld_tensor* ld_permute(ld_tensor* a, const int64_t* dims, int ndim);
LD_API ld_tensor* ld_transpose(ld_tensor* a, int64_t d0, int64_t d1);
LD_API ld_tensor* ld_flatten(ld_tensor* a, int64_t start, int64_t end);
LD_API ld_tensor* ld_squeeze(ld_tensor* a, int64_t dim, int has_dim);
LD_API ld_tensor* ld_unsqueeze(ld_tensor* a, int64_t dim);
LD_API ld_tensor* ld_expand(ld_tensor* a, const int64_t* shape, int ndim);
LD_API ld_tensor* ld_repeat(ld_tensor* a, const int64_t* repeats, int ndim);
LD_API ld_tensor* ld_cat(ld_tensor** list, int n, int64_t dim);
LD_API ld_tensor* ld_stack(ld_tensor** list, int n, int64_t dim);
/* chunk/split write up to cap handles into out and return how many (or -1) */
LD_API int ld_chunk(ld_tensor* a, int64_t chunks, int64_t dim, ld_tensor** out, int cap);
LD_API int ld_split(ld_tensor* a, const int64_t* sizes, int nsizes, int64_t dim, ld_tensor** out, int cap);
LD_API ld_tensor* ld_narrow(ld_tensor* a, int64_t dim, int64_t start, int64_t length);
LD_API ld_tensor* ld_slice(ld_tensor* a, int64_t dim, int64_t start, int64_t end, int64_t step);
LD_API ld_tensor* ld_select(ld_tensor* a, int64_t dim, int64_t index);
LD_API ld_tensor* ld_index_select(ld_tensor* a, int64_t dim, ld_tensor* index);
LD_API ld_tensor* ld_gather(ld_tensor* a, int64_t dim, ld_tensor* index);
LD_API ld_tensor* ld_index_put(ld_tensor* a, ld_tensor* index, ld_tensor* values); /* a[index] = values along dim 0 */
LD_API ld_tensor* ld_triu(ld_tensor* a, int64_t diagonal);
LD_API ld_tensor* ld_tril(ld_tensor* a, int64_t diagonal);
LD_API ld_tensor* ld_flip(ld_tensor* a, const int64_t* dims, int ndims);
LD_API ld_tensor* ld_roll(ld_tensor* a, int64_t shift, int64_t dim);
LD_API ld_tensor* ld_nonzero(ld_tensor* a);

/* ---- linear layers (linear.cpp) ---- */
LD_API ld_tensor* ld_linear(ld_tensor* x, ld_tensor* w, ld_tensor* b);
/* Inference linear layer (CPU, no autograd) on a [out, in] weight reordered once into oneDNN's layout:
 * ld_linear_prepack returns the opaque tensor for ld_linear_prepacked, whose output equals ld_linear's up to float
 * rounding; ld_linear_unpack gives the plain [out, in] values back, bit for bit. Where ld_onednn_direct is 1
 * (onednn.cpp: libtorch's oneDNN called directly), float32 and bfloat16 weights pack, and the packed weight is
 * faster at every row count; else only float32, as a [out, in, 1, 1] convolution kernel for libtorch's
 * mkldnn_convolution, faster only where the rows are few (linear.cpp). */
LD_API int ld_onednn_direct(void);
/* Overrides ld_onednn_direct for the calling thread's packing (1 on, 0 off, -1 the environment: LDTORCH_ONEDNN=0
 * turns it off); returns the previous mode. A packed weight runs on the path it was packed for. */
LD_API int ld_set_onednn_direct(int mode);
LD_API ld_tensor* ld_linear_prepack(ld_tensor* w);
LD_API ld_tensor* ld_linear_prepacked(ld_tensor* x, ld_tensor* packed, ld_tensor* b);
/* ld_linear_prepacked(x, packed, b) + residual (the output's shape and dtype; since ABI 10): where the weight is packed
 * for the direct oneDNN path the sum is added inside the product, before the output's one rounding (bf16: apart from
 * the separate sum by at most its two roundings; f32: the same values); elsewhere the product, then the sum. */
LD_API ld_tensor* ld_linear_prepacked_add(ld_tensor* x, ld_tensor* packed, ld_tensor* b, ld_tensor* residual);
LD_API ld_tensor* ld_linear_unpack(ld_tensor* packed);

/* ---- GEGLU's activation (geglu.cpp) ---- */
/* x[..., :n] * gelu(x[..., n:]) (exact GELU) of x [..., 2n]: one fused pass (AVX-512, float32/bfloat16, no
 * autograd) where ld_geglu_fused_available says so and LDTORCH_FUSED_GEGLU is not 0, else the at:: ops. */
LD_API ld_tensor* ld_geglu(ld_tensor* x);
LD_API int ld_geglu_fused_available(void);

/* ---- nn functional (nn.cpp) ---- */
LD_API ld_tensor* ld_conv2d(ld_tensor* x, ld_tensor* w, ld_tensor* b, const int64_t* stride, const int64_t* padding,
                            const int64_t* dilation, int64_t groups);
/* Inference convolution with a weight reordered once into oneDNN's layout (CPU, float32/bfloat16, no
 * autograd): ld_conv2d_prepack returns an opaque oneDNN tensor for ld_conv2d_prepacked, whose output
 * equals ld_conv2d's. ld_tensor_version: the in-place version counter (-1 for an inference tensor),
 * by which a cached prepacked weight knows it is stale. */
LD_API int ld_has_mkldnn(void);
LD_API ld_tensor* ld_conv2d_prepack(ld_tensor* w, const int64_t* stride, const int64_t* padding, const int64_t* dilation,
                                    int64_t groups);
LD_API ld_tensor* ld_conv2d_prepacked(ld_tensor* x, ld_tensor* packed, ld_tensor* b, const int64_t* stride,
                                      const int64_t* padding, const int64_t* dilation, int64_t groups);
LD_API int64_t ld_tensor_version(ld_tensor* t);
/* The dense [out, in / groups, kh, kw] weight back from a prepacked one (the same values: a reorder is a
 * permutation), so that inference can keep the packed copy only. ld_tensor_bytes: the bytes a tensor's
 * memory holds (a dense tensor's whole storage, shared or not; a oneDNN tensor's elements). */
LD_API ld_tensor* ld_conv2d_unpack(ld_tensor* packed, const int64_t* shape);
LD_API int64_t ld_tensor_bytes(ld_tensor* t);
LD_API ld_tensor* ld_conv_transpose2d(ld_tensor* x, ld_tensor* w, ld_tensor* b, const int64_t* stride,
                                      const int64_t* padding, const int64_t* output_padding, int64_t groups,
                                      const int64_t* dilation);
LD_API ld_tensor* ld_group_norm(ld_tensor* x, int64_t groups, ld_tensor* w, ld_tensor* b, double eps);
/* Inference GroupNorm over contiguous [N, C, *spatial] f32/bf16 with SiLU applied in the same pass when silu != 0
 * (native/src/groupnorm.cpp): one AVX-512 pass where the CPU has it, autograd is off and the fused kernel is enabled,
 * else at::group_norm (in f32 for bf16) followed by SiLU. ld_fused_norm_set: 0 forces that fallback (and ld_layer_norm's,
 * whose fused kernel is native/src/layernorm.cpp), 1 enables the kernels (the default unless LDTORCH_FUSED_NORM=0), -1
 * only asks; returns 1 when the fused kernels are in use. */
LD_API ld_tensor* ld_group_norm_silu(ld_tensor* x, int64_t groups, ld_tensor* w, ld_tensor* b, double eps, int silu);
LD_API int ld_fused_norm_set(int mode);
LD_API ld_tensor* ld_layer_norm(ld_tensor* x, const int64_t* shape, int ndim, ld_tensor* w, ld_tensor* b, double eps);
LD_API ld_tensor* ld_batch_norm(ld_tensor* x, ld_tensor* w, ld_tensor* b, ld_tensor* running_mean, ld_tensor* running_var,
                                int training, double momentum, double eps);
LD_API ld_tensor* ld_embedding(ld_tensor* weight, ld_tensor* indices);
LD_API ld_tensor* ld_softmax(ld_tensor* x, int64_t dim);
LD_API ld_tensor* ld_log_softmax(ld_tensor* x, int64_t dim);
LD_API ld_tensor* ld_leaky_relu(ld_tensor* x, double slope);
LD_API ld_tensor* ld_dropout(ld_tensor* x, double p, int train);
/* mode: 0 nearest, 1 bilinear, 2 bicubic, 3 nearest-exact. Either sizes (h, w) or scales. */
LD_API ld_tensor* ld_interpolate(ld_tensor* x, int mode, const int64_t* size, const double* scale, int align_corners);
/* pads: last dim first, as torch.nn.functional.pad; mode 0 constant, 1 reflect, 2 replicate, 3 circular */
LD_API ld_tensor* ld_pad(ld_tensor* x, const int64_t* pads, int npads, int mode, double value);
LD_API ld_tensor* ld_pixel_shuffle(ld_tensor* x, int64_t factor);
LD_API ld_tensor* ld_pixel_unshuffle(ld_tensor* x, int64_t factor);
LD_API ld_tensor* ld_avg_pool2d(ld_tensor* x, const int64_t* kernel, const int64_t* stride, const int64_t* padding);
LD_API ld_tensor* ld_max_pool2d(ld_tensor* x, const int64_t* kernel, const int64_t* stride, const int64_t* padding);
LD_API ld_tensor* ld_adaptive_avg_pool2d(ld_tensor* x, const int64_t* size);
/* scale <= 0 means 1/sqrt(head_dim); mask is boolean (true = attend) or additive float */
LD_API ld_tensor* ld_scaled_dot_product_attention(ld_tensor* q, ld_tensor* k, ld_tensor* v, ld_tensor* mask,
                                                  double dropout, int is_causal, double scale);
/* reduction: 0 none, 1 mean, 2 sum */
LD_API ld_tensor* ld_mse_loss(ld_tensor* x, ld_tensor* y, int reduction);
LD_API ld_tensor* ld_l1_loss(ld_tensor* x, ld_tensor* y, int reduction);
LD_API ld_tensor* ld_smooth_l1_loss(ld_tensor* x, ld_tensor* y, int reduction, double beta);
LD_API ld_tensor* ld_cross_entropy(ld_tensor* logits, ld_tensor* target, int reduction, int64_t ignore_index,
                                   double label_smoothing);
LD_API ld_tensor* ld_bce_with_logits(ld_tensor* x, ld_tensor* y, int reduction);

/* ---- op-level profiler (profiler.cpp) ----
 * Times the top-level libtorch operators of the calling thread (nested operators run inside their caller's time,
 * so entries never overlap), keyed by operator name (by_shape: name and input shapes). ld_profiler_stop (same
 * thread) returns the number of entries, longest total first; ld_profiler_entry copies entry i's key (truncated to
 * cap bytes), its calls, total nanoseconds and FLOPs (-1 where unknown: only convolutions, linear layers, matrix
 * products and ld::attention count them). */
LD_API int ld_profiler_start(int by_shape);
LD_API int ld_profiler_stop(void);
LD_API int ld_profiler_entry(int index, char* name, int cap, int64_t* calls, int64_t* total_ns, double* flops);

/* ---- autograd and optimisers (autograd.cpp) ---- */
LD_API int ld_backward(ld_tensor* t, ld_tensor* grad, int retain_graph);
/* *out is set to NULL when the tensor has no gradient */
LD_API int ld_grad(ld_tensor* t, ld_tensor** out);
/* torch.autograd.grad: d(Σ grad_outputs[i]·outputs[i]) / d inputs[j] into out[j] (n_inputs handles, NULL for an
 * input the outputs do not depend on when allow_unused); nothing is accumulated into .grad. grad_outputs may be
 * NULL (every output a scalar), as may each of its entries. */
LD_API int ld_autograd_grad(ld_tensor** outputs, ld_tensor** grad_outputs, int n_outputs, ld_tensor** inputs, int n_inputs,
                            int retain_graph, int create_graph, int allow_unused, ld_tensor** out);
LD_API int ld_set_grad(ld_tensor* t, ld_tensor* grad);
LD_API int ld_zero_grad(ld_tensor* t);
LD_API int ld_is_grad_enabled(void);
LD_API int ld_set_grad_enabled(int enabled);
LD_API ld_guard* ld_inference_mode_enter(void);
LD_API void ld_inference_mode_exit(ld_guard* g);
/* torch.optim.AdamW / Adam (single-tensor path) over n parameters; step is the 1-based step count. */
LD_API int ld_adamw_step(ld_tensor** params, ld_tensor** exp_avg, ld_tensor** exp_avg_sq, int n, double lr,
                         double beta1, double beta2, double eps, double weight_decay, int64_t step, int decoupled);
/* torch.optim.SGD; momentum_buffers[i] may be NULL on entry for the first step and is then created. */
LD_API int ld_sgd_step(ld_tensor** params, ld_tensor** momentum_buffers, int n, double lr, double momentum,
                       double dampening, double weight_decay, int nesterov);
/* torch.nn.utils.clip_grad_norm_: returns the total norm before clipping in *total */
LD_API int ld_clip_grad_norm(ld_tensor** params, int n, double max_norm, double norm_type, double* total);
/* ema = decay*ema + (1-decay)*param, for n pairs */
LD_API int ld_ema_update(ld_tensor** ema, ld_tensor** params, int n, double decay);

/* ---- data-parallel communication over c10d (distributed.cpp) ----
 * A store for the rendezvous (TCPStore served by rank 0; FileStore on a shared file), a process group
 * (backend 0 Gloo, 1 NCCL), and collectives on lists of tensors, flattened into buckets of about
 * bucket_bytes. Every blocking call is bounded by the timeout given (milliseconds): a missing or dead
 * peer is an error. The store must outlive the process groups made from it. */
LD_API int ld_distributed_backends(void);  /* bit 0: Gloo built in; bit 1: NCCL built in and CUDA present */
LD_API ld_store* ld_tcp_store_new(const char* host, int port, int world_size, int is_master, int64_t timeout_ms);
LD_API ld_store* ld_file_store_new(const char* path, int world_size, int64_t timeout_ms);
LD_API void ld_store_free(ld_store* s);
LD_API int ld_store_set(ld_store* s, const char* key, const char* value);
LD_API int ld_store_get(ld_store* s, const char* key, char* out, int cap); /* waits for the key; returns its length */
LD_API int ld_store_add(ld_store* s, const char* key, int64_t delta, int64_t* out_value);
/* hostname: the address Gloo binds to ("" = this host's name; GLOO_SOCKET_IFNAME overrides both). */
LD_API ld_process_group* ld_process_group_new(ld_store* s, int backend, int rank, int world_size, const char* hostname,
                                             int64_t timeout_ms);
LD_API void ld_process_group_free(ld_process_group* g);
LD_API int ld_all_reduce(ld_process_group* g, ld_tensor** tensors, int n, int64_t bucket_bytes, int average);
LD_API int ld_broadcast(ld_process_group* g, ld_tensor** tensors, int n, int root, int64_t bucket_bytes);
LD_API int ld_barrier(ld_process_group* g);
/* Ranks whose heartbeat did not advance within window_ms (rank 0 when its TCP store is gone); returns their count. */
LD_API int ld_process_group_lost_ranks(ld_process_group* g, int64_t window_ms, int* out, int cap);

#ifdef __cplusplus
}
#endif
#endif

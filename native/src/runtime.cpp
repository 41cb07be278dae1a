// Runtime: versions, threads, BLAS detection, devices and random generators.
#include "common.h"
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <dlfcn.h>
#include <link.h>
#include <cstring>
#ifdef _OPENMP
#include <omp.h>
#endif

struct ld_generator {
  at::Generator g;
};

// What a thread's share of a pass must run with to compute as the thread that hands it over (BatchStreams): libtorch's
// thread-local state (grad and inference mode, dispatch keys, RecordFunction's thread-local callbacks) and this
// binding's per-thread switches (fused attention, its bf16 dot products, the direct oneDNN packing).
struct ld_thread_state {
  at::ThreadLocalState tls;
  int fused_attention, attention_bf16_dot, onednn_direct;
};

// Applied on another thread until ld_thread_state_exit: libtorch's guard restores that thread's own state, and the
// switches are set back to the thread's own.
struct ld_thread_scope {
  explicit ld_thread_scope(const at::ThreadLocalState& s) : guard(s) {}
  at::ThreadLocalStateGuard guard;
  int fused_attention = -1, attention_bf16_dot = -1, onednn_direct = -1;
};

namespace {

// Loaded shared objects whose file name contains `needle`.
std::vector<std::string> loaded_libraries(const char* needle) {
  struct Search {
    const char* needle;
    std::vector<std::string> found;
  } search{needle, {}};
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        auto* s = static_cast<Search*>(data);
        if (info->dlpi_name && std::strstr(info->dlpi_name, s->needle)) s->found.emplace_back(info->dlpi_name);
        return 0;
      },
      &search);
  return search.found;
}

void* find_symbol(const char* library_needle, const char* symbol) {
  if (void* p = dlsym(RTLD_DEFAULT, symbol)) return p;
  for (const auto& name : loaded_libraries(library_needle)) {
    if (void* h = dlopen(name.c_str(), RTLD_LAZY | RTLD_NOLOAD)) {
      void* p = dlsym(h, symbol);
      dlclose(h);
      if (p) return p;
    }
  }
  return nullptr;
}

thread_local std::string blas_description;

}  // namespace

namespace ld {
c10::optional<at::Generator> generator(ld_generator* g) {
  return g ? c10::optional<at::Generator>(g->g) : c10::nullopt;
}
}  // namespace ld

extern "C" {

LD_API const char* ld_libtorch_version(void) { return TORCH_VERSION; }

LD_API int ld_set_num_threads(int n) { LD_STATUS("set_num_threads", at::set_num_threads(n)) }
LD_API int ld_get_num_threads(void) { return at::get_num_threads(); }

// The calling thread's intra-op thread count alone (OpenMP's nthreads ICV is per thread; at::set_num_threads also
// changes the default of threads that have not run an operator yet). libtorch reads it in every parallel_for, and
// oneDNN (OpenMP runtime) when a primitive runs: a stream of BatchStreams runs its share on its threads only.
LD_API int ld_set_thread_intra_op_threads(int n) {
  LD_GUARD("set_thread_intra_op_threads", -1, {
    if (n < 1) throw std::invalid_argument("the thread count must be positive, not " + std::to_string(n));
#ifdef _OPENMP
    at::internal::lazy_init_num_threads();  // the thread's first operator would otherwise reset the count
    const int previous = at::get_num_threads();
    omp_set_num_threads(n);
    if (at::get_num_threads() == n) return previous;
    omp_set_num_threads(previous);
#endif
    throw std::runtime_error("this libtorch's intra-op threads are not OpenMP's: no per-thread thread count");
  })
}

LD_API ld_thread_state* ld_thread_state_capture(void) {
  LD_GUARD("thread_state_capture", nullptr, {
    auto* s = new ld_thread_state{at::ThreadLocalState(), -1, -1, -1};
    s->fused_attention = ld_set_fused_attention(-1);
    ld_set_fused_attention(s->fused_attention);
    s->attention_bf16_dot = ld_set_attention_bf16_dot(-1);
    ld_set_attention_bf16_dot(s->attention_bf16_dot);
    s->onednn_direct = ld_set_onednn_direct(-1);
    ld_set_onednn_direct(s->onednn_direct);
    return s;
  })
}

LD_API void ld_thread_state_free(ld_thread_state* s) { delete s; }

LD_API ld_thread_scope* ld_thread_state_enter(ld_thread_state* s) {
  LD_GUARD("thread_state_enter", nullptr, {
    if (!s) throw std::invalid_argument("null thread state");
    auto* scope = new ld_thread_scope(s->tls);
    scope->fused_attention = ld_set_fused_attention(s->fused_attention);
    scope->attention_bf16_dot = ld_set_attention_bf16_dot(s->attention_bf16_dot);
    scope->onednn_direct = ld_set_onednn_direct(s->onednn_direct);
    return scope;
  })
}

LD_API void ld_thread_state_exit(ld_thread_scope* scope) {
  if (!scope) return;
  ld_set_fused_attention(scope->fused_attention);
  ld_set_attention_bf16_dot(scope->attention_bf16_dot);
  ld_set_onednn_direct(scope->onednn_direct);
  delete scope;  // the guard restores the thread's own libtorch state
}

LD_API const char* ld_blas_info(void) {
  using config_fn = char* (*)();
  if (auto cfg = reinterpret_cast<config_fn>(find_symbol("blas", "openblas_get_config")))
    blas_description = std::string("openblas ") + cfg();
  else if (!loaded_libraries("mkl").empty())
    blas_description = "mkl";
  else if (!loaded_libraries("libblas").empty())
    blas_description = "reference";
  else
    blas_description = "unknown";
  return blas_description.c_str();
}

LD_API int ld_openblas_set_num_threads(int n) {
  using set_fn = void (*)(int);
  auto set = reinterpret_cast<set_fn>(find_symbol("blas", "openblas_set_num_threads"));
  if (!set) return -1;
  set(n);
  return 0;
}

LD_API int ld_cuda_is_available(void) { return at::hasCUDA() ? 1 : 0; }
LD_API int ld_cuda_device_count(void) {
  LD_GUARD("cuda_device_count", -1, { return at::hasCUDA() ? static_cast<int>(at::detail::getCUDAHooks().getNumGPUs()) : 0; })
}
LD_API int ld_cuda_synchronize(int index) {
  LD_STATUS("cuda_synchronize", {
    if (!at::hasCUDA()) throw std::runtime_error("CUDA is not available");
    using set_fn = int (*)(int);
    using sync_fn = int (*)();
    auto set = reinterpret_cast<set_fn>(find_symbol("cudart", "cudaSetDevice"));
    auto sync = reinterpret_cast<sync_fn>(find_symbol("cudart", "cudaDeviceSynchronize"));
    if (!set || !sync) throw std::runtime_error("the CUDA runtime library is not loaded");
    if (set(index) != 0 || sync() != 0) throw std::runtime_error("cudaDeviceSynchronize failed");
  })
}
LD_API int ld_cuda_memory(int index, int64_t* allocated, int64_t* total) {
  LD_STATUS("cuda_memory", {
    if (!at::hasCUDA()) throw std::runtime_error("CUDA is not available");
    using set_fn = int (*)(int);
    using info_fn = int (*)(size_t*, size_t*);
    auto set = reinterpret_cast<set_fn>(find_symbol("cudart", "cudaSetDevice"));
    auto info = reinterpret_cast<info_fn>(find_symbol("cudart", "cudaMemGetInfo"));
    if (!set || !info) throw std::runtime_error("the CUDA runtime library is not loaded");
    size_t free_bytes = 0, total_bytes = 0;
    if (set(index) != 0 || info(&free_bytes, &total_bytes) != 0) throw std::runtime_error("cudaMemGetInfo failed");
    *allocated = static_cast<int64_t>(total_bytes - free_bytes);
    *total = static_cast<int64_t>(total_bytes);
  })
}
LD_API int ld_cuda_reset_peak(int) { return 0; }

LD_API ld_generator* ld_generator_new(uint64_t seed, int device_type, int device_index) {
  LD_GUARD("generator", nullptr, {
    at::Generator g;
    if (device_type == 0) {
      g = at::make_generator<at::CPUGeneratorImpl>(seed);
    } else {
      if (!at::hasCUDA()) throw std::runtime_error("CUDA is not available");
      g = at::detail::getCUDAHooks().getDefaultCUDAGenerator(static_cast<c10::DeviceIndex>(device_index)).clone();
      g.set_current_seed(seed);
    }
    return new ld_generator{g};
  })
}
LD_API void ld_generator_free(ld_generator* g) { delete g; }
LD_API int ld_generator_manual_seed(ld_generator* g, uint64_t seed) {
  LD_STATUS("manual_seed", {
    std::lock_guard<std::mutex> lock(g->g.mutex());
    g->g.set_current_seed(seed);
  })
}
LD_API int ld_generator_get_state(ld_generator* g, ld_tensor** out) {
  LD_STATUS("generator_get_state", {
    std::lock_guard<std::mutex> lock(g->g.mutex());
    *out = ld::wrap(g->g.get_state());
  })
}
LD_API int ld_generator_set_state(ld_generator* g, ld_tensor* state) {
  LD_STATUS("generator_set_state", {
    std::lock_guard<std::mutex> lock(g->g.mutex());
    g->g.set_state(ld::T(state));
  })
}
LD_API int ld_manual_seed(uint64_t seed) {
  LD_STATUS("manual_seed", {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  })
}

}  // extern "C"

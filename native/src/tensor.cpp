// Tensor handles, metadata, data transfer and creation.
#include "common.h"
#include <cstring>

ld_tensor::ld_tensor(at::Tensor tensor) : t(std::move(tensor)) { ld::live_counter()++; }
ld_tensor::~ld_tensor() { ld::live_counter()--; }

namespace ld {
std::atomic<int64_t>& live_counter() {
  static std::atomic<int64_t> counter{0};
  return counter;
}

at::ScalarType dtype(int code) {
  switch (code) {
    case 0: return at::kByte;
    case 1: return at::kChar;
    case 2: return at::kShort;
    case 3: return at::kInt;
    case 4: return at::kLong;
    case 5: return at::kHalf;
    case 6: return at::kFloat;
    case 7: return at::kDouble;
    case 11: return at::kBool;
    case 15: return at::kBFloat16;
    default: throw std::invalid_argument("unsupported dtype code " + std::to_string(code));
  }
}

at::TensorOptions options(int dtype_code, int device_type, int device_index) {
  return at::TensorOptions().dtype(dtype(dtype_code)).device(device(device_type, device_index));
}

std::vector<at::Tensor> tensors(ld_tensor** list, int n) {
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; i++) v.push_back(T(list[i]));
  return v;
}
}  // namespace ld

extern "C" {

LD_API int64_t ld_live_tensors(void) { return ld::live_counter().load(); }
LD_API void ld_free(ld_tensor* t) { delete t; }
LD_API ld_tensor* ld_alias(ld_tensor* t) { LD_TENSOR("alias", ld::T(t)) }

LD_API int ld_dim(ld_tensor* t) { LD_GUARD("dim", -1, { return static_cast<int>(ld::T(t).dim()); }) }
LD_API int ld_shape(ld_tensor* t, int64_t* out, int cap) {
  LD_GUARD("shape", -1, {
    auto s = ld::T(t).sizes();
    for (size_t i = 0; i < s.size() && static_cast<int>(i) < cap; i++) out[i] = s[i];
    return static_cast<int>(s.size());
  })
}
LD_API int ld_strides(ld_tensor* t, int64_t* out, int cap) {
  LD_GUARD("strides", -1, {
    auto s = ld::T(t).strides();
    for (size_t i = 0; i < s.size() && static_cast<int>(i) < cap; i++) out[i] = s[i];
    return static_cast<int>(s.size());
  })
}
LD_API int64_t ld_numel(ld_tensor* t) { LD_GUARD("numel", -1, { return ld::T(t).numel(); }) }
LD_API int ld_dtype(ld_tensor* t) { LD_GUARD("dtype", -1, { return static_cast<int>(ld::T(t).scalar_type()); }) }
LD_API int ld_device(ld_tensor* t, int* type, int* index) {
  LD_STATUS("device", {
    auto d = ld::T(t).device();
    *type = d.is_cuda() ? 1 : 0;
    *index = d.has_index() ? d.index() : 0;
  })
}
LD_API int ld_is_contiguous(ld_tensor* t) { LD_GUARD("is_contiguous", -1, { return ld::T(t).is_contiguous() ? 1 : 0; }) }
LD_API int ld_requires_grad(ld_tensor* t) { LD_GUARD("requires_grad", -1, { return ld::T(t).requires_grad() ? 1 : 0; }) }
LD_API int ld_set_requires_grad(ld_tensor* t, int flag) { LD_STATUS("requires_grad_", ld::T(t).requires_grad_(flag != 0)) }
LD_API int ld_is_leaf(ld_tensor* t) { LD_GUARD("is_leaf", -1, { return ld::T(t).is_leaf() ? 1 : 0; }) }

LD_API ld_tensor* ld_from_data(const void* data, const int64_t* shape, int ndim, int dtype) {
  LD_GUARD("from_data", nullptr, {
    auto out = at::empty(ld::dims(shape, ndim), at::TensorOptions().dtype(ld::dtype(dtype)));
    if (out.numel() > 0) std::memcpy(out.data_ptr(), data, static_cast<size_t>(out.nbytes()));
    return ld::wrap(out);
  })
}

LD_API int ld_copy_to_buffer(ld_tensor* t, void* dst, int64_t nbytes) {
  LD_STATUS("copy_to_buffer", {
    auto src = ld::T(t).detach().to(at::kCPU).contiguous();
    if (static_cast<int64_t>(src.nbytes()) != nbytes)
      throw std::invalid_argument("buffer holds " + std::to_string(nbytes) + " bytes but the tensor has " +
                                  std::to_string(src.nbytes()));
    if (nbytes > 0) std::memcpy(dst, src.data_ptr(), static_cast<size_t>(nbytes));
  })
}

LD_API int ld_data_ptr(ld_tensor* t, void** out) {
  LD_STATUS("data_ptr", {
    const auto& x = ld::T(t);
    if (!x.is_contiguous()) throw std::invalid_argument("the tensor is not contiguous: call contiguous() first");
    *out = x.data_ptr();
  })
}

LD_API int ld_item(ld_tensor* t, double* out) { LD_STATUS("item", *out = ld::T(t).item<double>()) }
LD_API int ld_item_int64(ld_tensor* t, int64_t* out) { LD_STATUS("item", *out = ld::T(t).item<int64_t>()) }

LD_API ld_tensor* ld_to(ld_tensor* t, int dtype, int device_type, int device_index, int non_blocking, int copy) {
  LD_TENSOR("to", ld::T(t).to(ld::device(device_type, device_index), ld::dtype(dtype), non_blocking != 0, copy != 0))
}
LD_API ld_tensor* ld_contiguous(ld_tensor* t) { LD_TENSOR("contiguous", ld::T(t).contiguous()) }
LD_API ld_tensor* ld_clone(ld_tensor* t) { LD_TENSOR("clone", ld::T(t).clone()) }
LD_API ld_tensor* ld_detach(ld_tensor* t) { LD_TENSOR("detach", ld::T(t).detach()) }
LD_API int ld_copy_(ld_tensor* dst, ld_tensor* src) { LD_STATUS("copy_", ld::T(dst).copy_(ld::T(src))) }
LD_API int ld_fill_(ld_tensor* t, double value) { LD_STATUS("fill_", ld::T(t).fill_(value)) }
LD_API int ld_zero_(ld_tensor* t) { LD_STATUS("zero_", ld::T(t).zero_()) }
LD_API int ld_equal(ld_tensor* a, ld_tensor* b) { LD_GUARD("equal", -1, { return at::equal(ld::T(a), ld::T(b)) ? 1 : 0; }) }

LD_API ld_tensor* ld_empty(const int64_t* shape, int ndim, int dtype, int dt, int di) {
  LD_TENSOR("empty", at::empty(ld::dims(shape, ndim), ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_zeros(const int64_t* shape, int ndim, int dtype, int dt, int di) {
  LD_TENSOR("zeros", at::zeros(ld::dims(shape, ndim), ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_ones(const int64_t* shape, int ndim, int dtype, int dt, int di) {
  LD_TENSOR("ones", at::ones(ld::dims(shape, ndim), ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_full(const int64_t* shape, int ndim, double value, int dtype, int dt, int di) {
  LD_TENSOR("full", at::full(ld::dims(shape, ndim), value, ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_arange(double start, double end, double step, int dtype, int dt, int di) {
  LD_TENSOR("arange", at::arange(start, end, step, ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_linspace(double start, double end, int64_t steps, int dtype, int dt, int di) {
  LD_TENSOR("linspace", at::linspace(start, end, steps, ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_rand(const int64_t* shape, int ndim, ld_generator* g, int dtype, int dt, int di) {
  LD_TENSOR("rand", at::rand(ld::dims(shape, ndim), ld::generator(g), ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_randn(const int64_t* shape, int ndim, ld_generator* g, int dtype, int dt, int di) {
  LD_TENSOR("randn", at::randn(ld::dims(shape, ndim), ld::generator(g), ld::options(dtype, dt, di)))
}
LD_API ld_tensor* ld_randint(int64_t low, int64_t high, const int64_t* shape, int ndim, ld_generator* g, int dtype,
                             int dt, int di) {
  LD_TENSOR("randint", at::randint(low, high, ld::dims(shape, ndim), ld::generator(g), ld::options(dtype, dt, di)))
}
LD_API int ld_uniform_(ld_tensor* t, double from, double to, ld_generator* g) {
  LD_STATUS("uniform_", ld::T(t).uniform_(from, to, ld::generator(g)))
}
LD_API int ld_normal_(ld_tensor* t, double mean, double std, ld_generator* g) {
  LD_STATUS("normal_", ld::T(t).normal_(mean, std, ld::generator(g)))
}
LD_API ld_tensor* ld_multinomial(ld_tensor* probs, int64_t n, int replacement, ld_generator* g) {
  LD_TENSOR("multinomial", at::multinomial(ld::T(probs), n, replacement != 0, ld::generator(g)))
}
LD_API ld_tensor* ld_randperm(int64_t n, ld_generator* g) {
  LD_TENSOR("randperm", at::randperm(n, ld::generator(g), at::TensorOptions().dtype(at::kLong)))
}

}  // extern "C"

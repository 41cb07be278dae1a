// Elementwise math, reductions and linear algebra.
#include "common.h"

namespace {

at::Tensor unary(int op, const at::Tensor& a) {
  switch (op) {
    case LD_NEG: return a.neg();
    case LD_ABS: return a.abs();
    case LD_SQRT: return a.sqrt();
    case LD_RSQRT: return a.rsqrt();
    case LD_EXP: return a.exp();
    case LD_LOG: return a.log();
    case LD_SIN: return a.sin();
    case LD_COS: return a.cos();
    case LD_TANH: return a.tanh();
    case LD_SIGMOID: return a.sigmoid();
    case LD_FLOOR: return a.floor();
    case LD_ROUND: return a.round();
    case LD_CEIL: return a.ceil();
    case LD_RELU: return a.relu();
    case LD_SILU: return at::silu(a);
    case LD_SIGN: return a.sign();
    case LD_LOGICAL_NOT: return a.logical_not();
    case LD_ISNAN: return a.isnan();
    case LD_ISFINITE: return a.isfinite();
    case LD_RECIPROCAL: return a.reciprocal();
    case LD_SQUARE: return a.square();
    case LD_LOG1P: return a.log1p();
    case LD_EXPM1: return a.expm1();
    case LD_ERF: return a.erf();
    case LD_TRUNC: return a.trunc();
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
}

void unary_(int op, at::Tensor& a) {
  switch (op) {
    case LD_NEG: a.neg_(); return;
    case LD_ABS: a.abs_(); return;
    case LD_SQRT: a.sqrt_(); return;
    case LD_EXP: a.exp_(); return;
    case LD_SIGMOID: a.sigmoid_(); return;
    case LD_TANH: a.tanh_(); return;
    case LD_RELU: a.relu_(); return;
    case LD_SILU: at::silu_(a); return;
    case LD_FLOOR: a.floor_(); return;
    case LD_ROUND: a.round_(); return;
    default: a.copy_(unary(op, a));
  }
}

at::Tensor binary(int op, const at::Tensor& a, const at::Tensor& b) {
  switch (op) {
    case LD_ADD: return a.add(b);
    case LD_SUB: return a.sub(b);
    case LD_MUL: return a.mul(b);
    case LD_DIV: return a.div(b);
    case LD_POW: return a.pow(b);
    case LD_MINIMUM: return at::minimum(a, b);
    case LD_MAXIMUM: return at::maximum(a, b);
    case LD_EQ: return a.eq(b);
    case LD_NE: return a.ne(b);
    case LD_LT: return a.lt(b);
    case LD_LE: return a.le(b);
    case LD_GT: return a.gt(b);
    case LD_GE: return a.ge(b);
    case LD_ATAN2: return a.atan2(b);
    case LD_REMAINDER: return a.remainder(b);
    case LD_FLOOR_DIVIDE: return a.div(b, "floor");
    case LD_LOGICAL_AND: return a.logical_and(b);
    case LD_LOGICAL_OR: return a.logical_or(b);
    default: throw std::invalid_argument("unknown binary op " + std::to_string(op));
  }
}

void binary_(int op, at::Tensor& a, const at::Tensor& b) {
  switch (op) {
    case LD_ADD: a.add_(b); return;
    case LD_SUB: a.sub_(b); return;
    case LD_MUL: a.mul_(b); return;
    case LD_DIV: a.div_(b); return;
    case LD_POW: a.pow_(b); return;
    default: a.copy_(binary(op, a, b));
  }
}

// Scalars cross the C boundary as double; an integral tensor combined with a whole number keeps
// its integer type (torch does the same for a Python int), so int64 counters can be updated in place.
at::Scalar scalar_for(const at::Tensor& a, double s) {
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false) && std::floor(s) == s &&
      std::abs(s) < 9.007199254740992e15)
    return at::Scalar(static_cast<int64_t>(s));
  return at::Scalar(s);
}

at::Tensor binary_scalar(int op, const at::Tensor& a, double value) {
  auto s = scalar_for(a, value);
  switch (op) {
    case LD_ADD: return a.add(s);
    case LD_SUB: return a.sub(s);
    case LD_MUL: return a.mul(s);
    case LD_DIV: return a.div(s);
    case LD_POW: return a.pow(s);
    case LD_MINIMUM: return a.clamp_max(s);
    case LD_MAXIMUM: return a.clamp_min(s);
    case LD_EQ: return a.eq(s);
    case LD_NE: return a.ne(s);
    case LD_LT: return a.lt(s);
    case LD_LE: return a.le(s);
    case LD_GT: return a.gt(s);
    case LD_GE: return a.ge(s);
    case LD_REMAINDER: return a.remainder(s);
    case LD_FLOOR_DIVIDE: return a.div(s, "floor");
    default: return binary(op, a, at::scalar_tensor(s, a.options()));
  }
}

void binary_scalar_(int op, at::Tensor& a, double value) {
  auto s = scalar_for(a, value);
  switch (op) {
    case LD_ADD: a.add_(s); return;
    case LD_SUB: a.sub_(s); return;
    case LD_MUL: a.mul_(s); return;
    case LD_DIV: a.div_(s); return;
    case LD_POW: a.pow_(s); return;
    default: a.copy_(binary_scalar(op, a, value));
  }
}

at::Tensor scalar_binary(int op, double s, const at::Tensor& b) {
  switch (op) {
    case LD_ADD: return b.add(s);
    case LD_SUB: return at::rsub(b, s);
    case LD_MUL: return b.mul(s);
    case LD_DIV: return b.reciprocal().mul(s);
    case LD_POW: return at::pow(s, b);
    default: return binary(op, at::scalar_tensor(s, b.options()), b);
  }
}

std::vector<int64_t> dimvec(const int64_t* dims, int n) { return std::vector<int64_t>(dims, dims + n); }

}  // namespace

extern "C" {

LD_API ld_tensor* ld_unary(int op, ld_tensor* a) { LD_TENSOR("unary", unary(op, ld::T(a))) }
LD_API int ld_unary_(int op, ld_tensor* a) { LD_STATUS("unary_", unary_(op, ld::T(a))) }
LD_API ld_tensor* ld_binary(int op, ld_tensor* a, ld_tensor* b) { LD_TENSOR("binary", binary(op, ld::T(a), ld::T(b))) }
LD_API int ld_binary_(int op, ld_tensor* a, ld_tensor* b) { LD_STATUS("binary_", binary_(op, ld::T(a), ld::T(b))) }
LD_API ld_tensor* ld_binary_scalar(int op, ld_tensor* a, double b) { LD_TENSOR("binary", binary_scalar(op, ld::T(a), b)) }
LD_API int ld_binary_scalar_(int op, ld_tensor* a, double b) { LD_STATUS("binary_", binary_scalar_(op, ld::T(a), b)) }
LD_API ld_tensor* ld_scalar_binary(int op, double a, ld_tensor* b) { LD_TENSOR("binary", scalar_binary(op, a, ld::T(b))) }
LD_API ld_tensor* ld_add_scaled(ld_tensor* a, ld_tensor* b, double alpha) { LD_TENSOR("add", ld::T(a).add(ld::T(b), alpha)) }
LD_API int ld_add_scaled_(ld_tensor* a, ld_tensor* b, double alpha) { LD_STATUS("add_", ld::T(a).add_(ld::T(b), alpha)) }

LD_API ld_tensor* ld_clamp(ld_tensor* a, double min, double max, int has_min, int has_max) {
  LD_TENSOR("clamp", at::clamp(ld::T(a), has_min ? c10::optional<at::Scalar>(min) : c10::nullopt,
                               has_max ? c10::optional<at::Scalar>(max) : c10::nullopt))
}
LD_API ld_tensor* ld_lerp(ld_tensor* a, ld_tensor* b, double w) { LD_TENSOR("lerp", at::lerp(ld::T(a), ld::T(b), w)) }
LD_API ld_tensor* ld_lerp_tensor(ld_tensor* a, ld_tensor* b, ld_tensor* w) {
  LD_TENSOR("lerp", at::lerp(ld::T(a), ld::T(b), ld::T(w)))
}
LD_API int ld_lerp_(ld_tensor* a, ld_tensor* b, double w) { LD_STATUS("lerp_", ld::T(a).lerp_(ld::T(b), w)) }
LD_API ld_tensor* ld_where(ld_tensor* c, ld_tensor* a, ld_tensor* b) { LD_TENSOR("where", at::where(ld::T(c), ld::T(a), ld::T(b))) }
LD_API ld_tensor* ld_masked_fill(ld_tensor* a, ld_tensor* mask, double value) {
  LD_TENSOR("masked_fill", ld::T(a).masked_fill(ld::T(mask), value))
}
LD_API ld_tensor* ld_cumprod(ld_tensor* a, int64_t dim) { LD_TENSOR("cumprod", ld::T(a).cumprod(dim)) }
LD_API ld_tensor* ld_cumsum(ld_tensor* a, int64_t dim) { LD_TENSOR("cumsum", ld::T(a).cumsum(dim)) }
LD_API ld_tensor* ld_gelu(ld_tensor* a, int tanh_approximation) {
  LD_TENSOR("gelu", at::gelu(ld::T(a), tanh_approximation ? "tanh" : "none"))
}

LD_API ld_tensor* ld_reduce(int op, ld_tensor* a, const int64_t* dims, int ndims, int keepdim) {
  LD_GUARD("reduce", nullptr, {
    auto& x = ld::T(a);
    auto d = dimvec(dims, ndims);
    bool all = ndims == 0;
    switch (op) {
      case LD_SUM: return ld::wrap(all && !keepdim ? x.sum() : x.sum(d, keepdim != 0));
      case LD_MEAN: return ld::wrap(all && !keepdim ? x.mean() : x.mean(d, keepdim != 0));
      case LD_AMAX: return ld::wrap(all && !keepdim ? x.max() : x.amax(d, keepdim != 0));
      case LD_AMIN: return ld::wrap(all && !keepdim ? x.min() : x.amin(d, keepdim != 0));
      case LD_PROD: {
        if (all) return ld::wrap(x.prod());
        if (ndims != 1) throw std::invalid_argument("prod reduces over one dimension at a time");
        return ld::wrap(x.prod(d[0], keepdim != 0));
      }
      default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
    }
  })
}

LD_API ld_tensor* ld_var(ld_tensor* a, const int64_t* dims, int ndims, int64_t correction, int keepdim) {
  LD_TENSOR("var", at::var(ld::T(a), ndims ? at::OptionalIntArrayRef(ld::dims(dims, ndims)) : c10::nullopt,
                           c10::optional<int64_t>(correction), keepdim != 0))
}
LD_API ld_tensor* ld_std(ld_tensor* a, const int64_t* dims, int ndims, int64_t correction, int keepdim) {
  LD_TENSOR("std", at::std(ld::T(a), ndims ? at::OptionalIntArrayRef(ld::dims(dims, ndims)) : c10::nullopt,
                           c10::optional<int64_t>(correction), keepdim != 0))
}
LD_API ld_tensor* ld_norm(ld_tensor* a, double p, const int64_t* dims, int ndims, int keepdim) {
  LD_GUARD("norm", nullptr, {
    auto& x = ld::T(a);
    if (ndims == 0 && !keepdim) return ld::wrap(at::norm(x, p));
    if (ndims == 0) {  // every dimension, kept as size 1 (torch.norm(x, p, keepdim=True))
      std::vector<int64_t> all(static_cast<size_t>(x.dim()));
      for (int64_t i = 0; i < x.dim(); i++) all[static_cast<size_t>(i)] = i;
      return ld::wrap(at::norm(x, p, all, true));
    }
    return ld::wrap(at::norm(x, p, ld::dims(dims, ndims), keepdim != 0));
  })
}
LD_API int ld_max_dim(ld_tensor* a, int64_t dim, int keepdim, ld_tensor** values, ld_tensor** indices) {
  LD_STATUS("max", {
    auto r = ld::T(a).max(dim, keepdim != 0);
    *values = ld::wrap(std::get<0>(r));
    *indices = ld::wrap(std::get<1>(r));
  })
}
LD_API int ld_min_dim(ld_tensor* a, int64_t dim, int keepdim, ld_tensor** values, ld_tensor** indices) {
  LD_STATUS("min", {
    auto r = ld::T(a).min(dim, keepdim != 0);
    *values = ld::wrap(std::get<0>(r));
    *indices = ld::wrap(std::get<1>(r));
  })
}
LD_API ld_tensor* ld_argmax(ld_tensor* a, int64_t dim, int has_dim, int keepdim) {
  LD_TENSOR("argmax", ld::T(a).argmax(has_dim ? c10::optional<int64_t>(dim) : c10::nullopt, keepdim != 0))
}
LD_API int ld_topk(ld_tensor* a, int64_t k, int64_t dim, int largest, ld_tensor** values, ld_tensor** indices) {
  LD_STATUS("topk", {
    auto r = ld::T(a).topk(k, dim, largest != 0, true);
    *values = ld::wrap(std::get<0>(r));
    *indices = ld::wrap(std::get<1>(r));
  })
}
LD_API int ld_sort(ld_tensor* a, int64_t dim, int descending, ld_tensor** values, ld_tensor** indices) {
  LD_STATUS("sort", {
    auto r = ld::T(a).sort(dim, descending != 0);
    *values = ld::wrap(std::get<0>(r));
    *indices = ld::wrap(std::get<1>(r));
  })
}

LD_API ld_tensor* ld_matmul(ld_tensor* a, ld_tensor* b) { LD_TENSOR("matmul", at::matmul(ld::T(a), ld::T(b))) }
LD_API ld_tensor* ld_bmm(ld_tensor* a, ld_tensor* b) { LD_TENSOR("bmm", at::bmm(ld::T(a), ld::T(b))) }
LD_API ld_tensor* ld_baddbmm(ld_tensor* input, ld_tensor* a, ld_tensor* b, double beta, double alpha) {
  LD_TENSOR("baddbmm", at::baddbmm(ld::T(input), ld::T(a), ld::T(b), beta, alpha))
}
LD_API ld_tensor* ld_outer(ld_tensor* a, ld_tensor* b) { LD_TENSOR("outer", at::outer(ld::T(a), ld::T(b))) }

}  // extern "C"

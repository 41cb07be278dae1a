// Shape, view and indexing operations.
#include "common.h"

namespace {
int write_list(const std::vector<at::Tensor>& parts, ld_tensor** out, int cap) {
  if (static_cast<int>(parts.size()) > cap)
    throw std::invalid_argument("result has " + std::to_string(parts.size()) + " parts, room for " + std::to_string(cap));
  for (size_t i = 0; i < parts.size(); i++) out[i] = ld::wrap(parts[i]);
  return static_cast<int>(parts.size());
}
}  // namespace

extern "C" {

LD_API ld_tensor* ld_reshape(ld_tensor* a, const int64_t* s, int n) { LD_TENSOR("reshape", ld::T(a).reshape(ld::dims(s, n))) }
LD_API ld_tensor* ld_view(ld_tensor* a, const int64_t* s, int n) { LD_TENSOR("view", ld::T(a).view(ld::dims(s, n))) }
LD_API ld_tensor* ld_permute(ld_tensor* a, const int64_t* d, int n) { LD_TENSOR("permute", ld::T(a).permute(ld::dims(d, n))) }
LD_API ld_tensor* ld_transpose(ld_tensor* a, int64_t d0, int64_t d1) { LD_TENSOR("transpose", ld::T(a).transpose(d0, d1)) }
LD_API ld_tensor* ld_flatten(ld_tensor* a, int64_t s, int64_t e) { LD_TENSOR("flatten", ld::T(a).flatten(s, e)) }
LD_API ld_tensor* ld_squeeze(ld_tensor* a, int64_t dim, int has_dim) {
  LD_TENSOR("squeeze", has_dim ? ld::T(a).squeeze(dim) : ld::T(a).squeeze())
}
LD_API ld_tensor* ld_unsqueeze(ld_tensor* a, int64_t dim) { LD_TENSOR("unsqueeze", ld::T(a).unsqueeze(dim)) }
LD_API ld_tensor* ld_expand(ld_tensor* a, const int64_t* s, int n) { LD_TENSOR("expand", ld::T(a).expand(ld::dims(s, n))) }
LD_API ld_tensor* ld_repeat(ld_tensor* a, const int64_t* r, int n) { LD_TENSOR("repeat", ld::T(a).repeat(ld::dims(r, n))) }
LD_API ld_tensor* ld_cat(ld_tensor** list, int n, int64_t dim) { LD_TENSOR("cat", at::cat(ld::tensors(list, n), dim)) }
LD_API ld_tensor* ld_stack(ld_tensor** list, int n, int64_t dim) { LD_TENSOR("stack", at::stack(ld::tensors(list, n), dim)) }
LD_API int ld_chunk(ld_tensor* a, int64_t chunks, int64_t dim, ld_tensor** out, int cap) {
  LD_GUARD("chunk", -1, { return write_list(ld::T(a).chunk(chunks, dim), out, cap); })
}
LD_API int ld_split(ld_tensor* a, const int64_t* sizes, int n, int64_t dim, ld_tensor** out, int cap) {
  LD_GUARD("split", -1, {
    if (n == 1) return write_list(ld::T(a).split(sizes[0], dim), out, cap);
    return write_list(ld::T(a).split_with_sizes(ld::dims(sizes, n), dim), out, cap);
  })
}
LD_API ld_tensor* ld_narrow(ld_tensor* a, int64_t dim, int64_t start, int64_t len) {
  LD_TENSOR("narrow", ld::T(a).narrow(dim, start, len))
}
LD_API ld_tensor* ld_slice(ld_tensor* a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  LD_TENSOR("slice", ld::T(a).slice(dim, start, end, step))
}
LD_API ld_tensor* ld_select(ld_tensor* a, int64_t dim, int64_t index) { LD_TENSOR("select", ld::T(a).select(dim, index)) }
LD_API ld_tensor* ld_index_select(ld_tensor* a, int64_t dim, ld_tensor* index) {
  LD_TENSOR("index_select", ld::T(a).index_select(dim, ld::T(index)))
}
LD_API ld_tensor* ld_gather(ld_tensor* a, int64_t dim, ld_tensor* index) { LD_TENSOR("gather", ld::T(a).gather(dim, ld::T(index))) }
LD_API ld_tensor* ld_index_put(ld_tensor* a, ld_tensor* index, ld_tensor* values) {
  LD_TENSOR("index_put", ld::T(a).index_put({c10::optional<at::Tensor>(ld::T(index))}, ld::T(values)))
}
LD_API ld_tensor* ld_triu(ld_tensor* a, int64_t k) { LD_TENSOR("triu", ld::T(a).triu(k)) }
LD_API ld_tensor* ld_tril(ld_tensor* a, int64_t k) { LD_TENSOR("tril", ld::T(a).tril(k)) }
LD_API ld_tensor* ld_flip(ld_tensor* a, const int64_t* d, int n) { LD_TENSOR("flip", ld::T(a).flip(ld::dims(d, n))) }
LD_API ld_tensor* ld_roll(ld_tensor* a, int64_t shift, int64_t dim) { LD_TENSOR("roll", ld::T(a).roll(shift, dim)) }
LD_API ld_tensor* ld_nonzero(ld_tensor* a) { LD_TENSOR("nonzero", ld::T(a).nonzero()) }

}  // extern "C"

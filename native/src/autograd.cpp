// Autograd entry points and the fused optimiser / training helpers.
#include "common.h"
#include <torch/csrc/autograd/autograd.h>

extern "C" {

LD_API int ld_backward(ld_tensor* t, ld_tensor* grad, int retain_graph) {
  LD_STATUS("backward", ld::T(t).backward(grad ? ld::T(grad) : at::Tensor(), retain_graph != 0))
}
LD_API int ld_grad(ld_tensor* t, ld_tensor** out) {
  LD_STATUS("grad", {
    const auto& g = ld::T(t).grad();
    *out = g.defined() ? ld::wrap(g) : nullptr;
  })
}
LD_API int ld_autograd_grad(ld_tensor** outputs, ld_tensor** grad_outputs, int n_outputs, ld_tensor** inputs, int n_inputs,
                            int retain_graph, int create_graph, int allow_unused, ld_tensor** out) {
  LD_STATUS("autograd_grad", {
    std::vector<at::Tensor> weights;
    if (grad_outputs)
      for (int i = 0; i < n_outputs; i++) weights.push_back(grad_outputs[i] ? ld::T(grad_outputs[i]) : at::Tensor());
    auto grads = torch::autograd::grad(ld::tensors(outputs, n_outputs), ld::tensors(inputs, n_inputs), weights,
                                       retain_graph != 0, create_graph != 0, allow_unused != 0);
    for (int i = 0; i < n_inputs; i++) out[i] = grads[i].defined() ? ld::wrap(grads[i]) : nullptr;
  })
}
LD_API int ld_set_grad(ld_tensor* t, ld_tensor* grad) {
  LD_STATUS("set_grad", ld::T(t).mutable_grad() = grad ? ld::T(grad) : at::Tensor())
}
LD_API int ld_zero_grad(ld_tensor* t) { LD_STATUS("zero_grad", ld::T(t).mutable_grad().reset()) }
LD_API int ld_is_grad_enabled(void) { return at::GradMode::is_enabled() ? 1 : 0; }
LD_API int ld_set_grad_enabled(int enabled) {
  bool previous = at::GradMode::is_enabled();
  at::GradMode::set_enabled(enabled != 0);
  return previous ? 1 : 0;
}
LD_API ld_guard* ld_inference_mode_enter(void) {
  LD_GUARD("inference_mode", nullptr, { return reinterpret_cast<ld_guard*>(new c10::InferenceMode()); })
}
LD_API void ld_inference_mode_exit(ld_guard* g) { delete reinterpret_cast<c10::InferenceMode*>(g); }

// torch.optim.AdamW (decoupled weight decay) or torch.optim.Adam (L2 added to the gradient),
// single-tensor path, in the same order of operations so the numbers agree bit for bit.
LD_API int ld_adamw_step(ld_tensor** params, ld_tensor** exp_avg, ld_tensor** exp_avg_sq, int n, double lr,
                         double beta1, double beta2, double eps, double weight_decay, int64_t step, int decoupled) {
  LD_STATUS("adamw_step", {
    at::NoGradGuard no_grad;
    double bias_correction1 = 1 - std::pow(beta1, static_cast<double>(step));
    double bias_correction2 = 1 - std::pow(beta2, static_cast<double>(step));
    double step_size = lr / bias_correction1;
    double bias_correction2_sqrt = std::sqrt(bias_correction2);
    for (int i = 0; i < n; i++) {
      auto& p = ld::T(params[i]);
      auto grad = p.grad();
      if (!grad.defined()) continue;
      if (decoupled)
        p.mul_(1 - lr * weight_decay);
      else if (weight_decay != 0)
        grad = grad.add(p, weight_decay);
      auto& m = ld::T(exp_avg[i]);
      auto& v = ld::T(exp_avg_sq[i]);
      m.mul_(beta1).add_(grad, 1 - beta1);
      v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      auto denom = (v.sqrt() / bias_correction2_sqrt).add_(eps);
      p.addcdiv_(m, denom, -step_size);
    }
  })
}

// torch.optim.SGD, single-tensor path.
LD_API int ld_sgd_step(ld_tensor** params, ld_tensor** buffers, int n, double lr, double momentum, double dampening,
                       double weight_decay, int nesterov) {
  LD_STATUS("sgd_step", {
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; i++) {
      auto& p = ld::T(params[i]);
      auto d_p = p.grad();
      if (!d_p.defined()) continue;
      if (weight_decay != 0) d_p = d_p.add(p, weight_decay);
      if (momentum != 0) {
        if (!buffers[i]) {
          buffers[i] = ld::wrap(d_p.clone().detach());
        } else {
          ld::T(buffers[i]).mul_(momentum).add_(d_p, 1 - dampening);
        }
        auto& buf = ld::T(buffers[i]);
        d_p = nesterov ? d_p.add(buf, momentum) : buf;
      }
      p.add_(d_p, -lr);
    }
  })
}

// torch.nn.utils.clip_grad_norm_
LD_API int ld_clip_grad_norm(ld_tensor** params, int n, double max_norm, double norm_type, double* total) {
  LD_STATUS("clip_grad_norm", {
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> grads;
    for (int i = 0; i < n; i++) {
      const auto& g = ld::T(params[i]).grad();
      if (g.defined()) grads.push_back(g);
    }
    if (grads.empty()) {
      *total = 0;
      return 0;
    }
    std::vector<at::Tensor> norms;
    for (auto& g : grads) norms.push_back(std::isinf(norm_type) ? g.detach().abs().max() : at::norm(g.detach(), norm_type));
    auto total_norm = std::isinf(norm_type)
                          ? (norms.size() == 1 ? norms[0] : at::stack(norms).max())
                          : at::norm(at::stack(norms), norm_type);
    auto clip_coef = at::clamp(max_norm / (total_norm + 1e-6), c10::nullopt, 1.0);
    for (auto& g : grads) g.detach().mul_(clip_coef.to(g.device()));
    *total = total_norm.item<double>();
  })
}

LD_API int ld_ema_update(ld_tensor** ema, ld_tensor** params, int n, double decay) {
  LD_STATUS("ema_update", {
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; i++) {
      auto& e = ld::T(ema[i]);
      auto p = ld::T(params[i]).detach();
      if (e.is_floating_point())
        e.mul_(decay).add_(p.to(e.scalar_type()), 1 - decay);
      else
        e.copy_(p);
    }
  })
}

}  // extern "C"

// Fused SchNet continuous-filter convolution for the CPU: torch.ops.mlpot.cfconv.
//
// out[idx_i[p]] += x[idx_j[p]] * W(d[p])                 for every edge p
// out[idx_j[p]] += x[idx_i[p]] * W(d[p])                 also, for p < n_two_way
// W(d) = (w2 · ssp(w1 · rbf(d) + b1) + b2) · fc(d),  rbf_k(d) = exp(coeff (d − centers_k)²),
// fc(d) = ½ (cos(π d / cutoff) + 1) for d < cutoff, else 0,  ssp(z) = softplus(z) − ln 2.
//
// Shapes: d [P] Å, x [N, F], idx_i/idx_j [P] int64, w1 [H, K], b1 [H], w2 [F, H], b2 [F],
// centers [K]; out [n_out, F]; every idx_i < n_out, and idx_j < n_out for p < n_two_way.
//
// The loops are in cfconv_kernels.cpp. Derivatives, all hand-written except where noted:
// - first derivatives in d, x and the weights (forces; training on energies), from the filter
//   and its slope dW/dd kept per edge by the forward;
// - the derivatives of those first derivatives in the output gradient, x and the weights
//   (training on forces: CFConvGradient below), computed only for what the running backward
//   needs (AutogradContext::needs_input_grad);
// - anything else (a second derivative in d, e.g. Hessians; third derivatives; gradients for
//   the Gaussian centres) differentiates the composite ATen formulation, correct to every order.
#include <torch/library.h>
#include <torch/torch.h>

#include "cfconv_kernels.h"
#include "messages.h"

#include <cmath>
#include <vector>

namespace {

using mlpot::cfconv::Inputs;
using mlpot::cfconv::LN2;
using mlpot::cfconv::SOFTPLUS_THRESHOLD;
using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

Inputs checked(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j, const Tensor& w1,
               const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& centers, double coeff,
               double cutoff, int64_t n_two_way, int64_t n_out, bool check_indices = true) {
  TORCH_CHECK(d.device().is_cpu(), "mlpot::cfconv runs on the CPU only; use the reference kernel elsewhere");
  TORCH_CHECK(d.dim() == 1 && x.dim() == 2, "mlpot::cfconv: d must be [P] and x [N, F]");
  if (check_indices) mlpot::check_edges(idx_i, idx_j, d.size(0), x.size(0), n_two_way, n_out, "mlpot::cfconv");
  const auto dtype = x.scalar_type();
  for (const Tensor* t : {&d, &w1, &b1, &w2, &b2, &centers})
    TORCH_CHECK(t->scalar_type() == dtype, "mlpot::cfconv: all floating inputs must share x's dtype");
  const int64_t H = w1.size(0), K = w1.size(1), F = x.size(1);
  TORCH_CHECK(centers.numel() == K && b1.numel() == H && w2.size(0) == F && w2.size(1) == H && b2.numel() == F,
              "mlpot::cfconv: weight shapes do not match (w1 [H, K], b1 [H], w2 [F, H], b2 [F], centers [K])");
  return {d.contiguous(), x.contiguous(), idx_i.contiguous(), idx_j.contiguous(), w1.contiguous(), b1.contiguous(),
          w2.contiguous(), b2.contiguous(), centers.contiguous(), coeff, cutoff, n_two_way, n_out};
}

// The same inputs cut from the graph: the hand-written kernels never need autograd.
Inputs detached(const Inputs& in) {
  return {in.d.detach(),  in.x.detach(),  in.idx_i, in.idx_j, in.w1.detach(), in.b1.detach(),
          in.w2.detach(), in.b2.detach(), in.centers.detach(), in.coeff, in.cutoff, in.n_two_way, in.n_out};
}

// The straightforward differentiable formulation (ATen ops on whole edge tensors).
Tensor cfconv_composite(const Inputs& in) {
  auto diff = in.d.unsqueeze(1) - in.centers;
  auto rbf = torch::exp(in.coeff * diff * diff);
  auto fc = 0.5 * (torch::cos(in.d * (M_PI / in.cutoff)) + 1.0) * (in.d < in.cutoff).to(in.d.scalar_type());
  auto hidden = at::softplus(at::linear(rbf, in.w1, in.b1), 1.0, SOFTPLUS_THRESHOLD) - LN2;
  auto w = at::linear(hidden, in.w2, in.b2) * fc.unsqueeze(1);
  return mlpot::scatter_messages(in.x, w, in.idx_i, in.idx_j, in.n_two_way, in.n_out);
}

// Inputs from the saved variables (d, x, idx_i, idx_j, w1, b1, w2, b2, centers) of a node.
Inputs from_saved(const variable_list& s, AutogradContext* ctx) {
  return {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], ctx->saved_data["coeff"].toDouble(),
          ctx->saved_data["cutoff"].toDouble(), ctx->saved_data["n_two_way"].toInt(), ctx->saved_data["n_out"].toInt()};
}

void save_scalars(AutogradContext* ctx, const Inputs& in) {
  ctx->saved_data["coeff"] = in.coeff;
  ctx->saved_data["cutoff"] = in.cutoff;
  ctx->saved_data["n_two_way"] = in.n_two_way;
  ctx->saved_data["n_out"] = in.n_out;
}

// Replaces the inputs at positions `wanted` (0 d, 1 x, 4..8 weights and centres) that require
// grad by fresh aliases, so that a nested backward stops there instead of following the graph
// into earlier layers that share weights; returns their positions and the aliases.
std::pair<std::vector<int>, variable_list> alias_inputs(Inputs& in, const std::vector<int>& wanted) {
  Tensor* slots[9] = {&in.d, &in.x, &in.idx_i, &in.idx_j, &in.w1, &in.b1, &in.w2, &in.b2, &in.centers};
  std::vector<int> which;
  variable_list wrt;
  for (int k : wanted) {
    if (slots[k]->requires_grad()) {
      *slots[k] = slots[k]->view_as(*slots[k]);
      which.push_back(k);
      wrt.push_back(*slots[k]);
    }
  }
  return {which, wrt};
}

// Derivatives of Σ out(inputs) · go by differentiating the composite formulation with respect
// to the inputs at positions `wanted` (see alias_inputs); one entry per input (undefined if not
// wanted).
variable_list composite_gradient(Inputs in, const Tensor& go, const std::vector<int>& wanted) {
  const bool create_graph = torch::GradMode::is_enabled();
  torch::AutoGradMode grad_on(true);
  auto [which, wrt] = alias_inputs(in, wanted);
  variable_list result(9);
  if (wrt.empty()) return result;
  Tensor out = cfconv_composite(in);
  auto g = torch::autograd::grad({out}, wrt, {go}, /*retain_graph=*/create_graph, /*create_graph=*/create_graph,
                                 /*allow_unused=*/true);
  for (size_t m = 0; m < which.size(); ++m) result[which[m]] = g[m];
  return result;
}

// The first derivatives of cfconv in d and x as a differentiable operation of (go, d, x, weights):
// used when the graph of the forces is kept (training on forces, Hessians).
class CFConvGradient : public torch::autograd::Function<CFConvGradient> {
 public:
  // inputs: go, d, x, w1, b1, w2, b2, centers, idx_i, idx_j (edge order for needs_input_grad),
  // then the forward's kept filter and slope; returns (grad_d [P], grad_x [N, F]).
  static variable_list forward(AutogradContext* ctx, Tensor go, Tensor d, Tensor x, Tensor w1, Tensor b1, Tensor w2,
                               Tensor b2, Tensor centers, Tensor idx_i, Tensor idx_j, Tensor filter, Tensor slope,
                               double coeff, double cutoff, int64_t n_two_way, int64_t n_out) {
    Inputs in = detached(checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out, false));
    auto g = mlpot::cfconv::gradient(in, filter, slope, go.detach(), true, true, false);
    ctx->save_for_backward({d, x, idx_i, idx_j, w1, b1, w2, b2, centers, go});
    ctx->saved_data["filter"] = filter;
    ctx->saved_data["slope"] = slope;
    save_scalars(ctx, in);
    return {g.d, g.x};
  }

  static variable_list backward(AutogradContext* ctx, variable_list gg) {
    auto s = ctx->get_saved_variables();
    const Tensor go = s[9];
    variable_list result(16);
    const bool need_go = ctx->needs_input_grad(0), need_d = ctx->needs_input_grad(1),
               need_x = ctx->needs_input_grad(2), need_c = ctx->needs_input_grad(7);
    bool need_w = false;
    for (int k = 3; k < 7; ++k) need_w = need_w || ctx->needs_input_grad(k);
    if (need_d || need_c || torch::GradMode::is_enabled()) {
      // a second derivative in d, or third derivatives: differentiate the composite formulation twice
      torch::AutoGradMode grad_on(true);
      Inputs in = from_saved(s, ctx);
      Tensor go_alias = go.requires_grad() ? go.view_as(go) : go.detach().requires_grad_(true);
      auto [which, wrt] = alias_inputs(in, {0, 1, 4, 5, 6, 7, 8});
      // grad_d and grad_x need d and x in the graph even when they do not require grad
      if (!in.d.requires_grad()) in.d = in.d.detach().requires_grad_(true);
      if (!in.x.requires_grad()) in.x = in.x.detach().requires_grad_(true);
      Tensor out = cfconv_composite(in);
      auto first = torch::autograd::grad({out}, {in.d, in.x}, {go_alias}, true, true, true);
      variable_list outs, gouts;
      for (int m = 0; m < 2; ++m)
        if (gg[m].defined() && first[m].defined()) {
          outs.push_back(first[m]);
          gouts.push_back(gg[m]);
        }
      if (go.requires_grad()) wrt.push_back(go_alias);
      if (outs.empty() || wrt.empty()) return result;
      const bool create_graph = torch::GradMode::is_enabled();
      auto second = torch::autograd::grad(outs, wrt, gouts, create_graph, create_graph, true);
      // saved input k of the forward node sits at edge: d 1, x 2, w1..b2 3..6, centres 7
      const int edge_of[9] = {1, 2, -1, -1, 3, 4, 5, 6, 7};
      for (size_t m = 0; m < which.size(); ++m) result[edge_of[which[m]]] = second[m];
      if (go.requires_grad()) result[0] = second.back();
      return result;
    }
    if (!(need_go || need_x || need_w)) return result;
    Inputs in = detached(from_saved(s, ctx));
    auto g = mlpot::cfconv::second_gradient(in, ctx->saved_data["filter"].toTensor(),
                                            ctx->saved_data["slope"].toTensor(), go.detach(), gg[0], gg[1]);
    if (need_go) result[0] = g.go;
    if (need_x) result[2] = g.x;
    if (ctx->needs_input_grad(3)) result[3] = g.w1;
    if (ctx->needs_input_grad(4)) result[4] = g.b1;
    if (ctx->needs_input_grad(5)) result[5] = g.w2;
    if (ctx->needs_input_grad(6)) result[6] = g.b2;
    return result;
  }
};

class CFConv : public torch::autograd::Function<CFConv> {
 public:
  // keep: the caller will differentiate (grad mode on and some input requires grad)
  static Tensor forward(AutogradContext* ctx, Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor w1, Tensor b1,
                        Tensor w2, Tensor b2, Tensor centers, double coeff, double cutoff, int64_t n_two_way,
                        int64_t n_out, bool keep) {
    Inputs in = detached(checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out));
    auto r = mlpot::cfconv::forward(in, keep);
    ctx->save_for_backward({d, x, idx_i, idx_j, w1, b1, w2, b2, centers});
    ctx->saved_data["filter"] = r.filter;
    ctx->saved_data["slope"] = r.slope;
    save_scalars(ctx, in);
    return r.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    variable_list result(14);
    const bool need_d = ctx->needs_input_grad(0), need_x = ctx->needs_input_grad(1),
               need_c = ctx->needs_input_grad(8);
    bool need_w = false;
    for (int k = 4; k < 8; ++k) need_w = need_w || ctx->needs_input_grad(k);
    const Tensor filter = ctx->saved_data["filter"].toTensor(), slope = ctx->saved_data["slope"].toTensor();
    const bool create_graph = torch::GradMode::is_enabled();
    if (need_c || !filter.defined() || (create_graph && need_w)) {
      std::vector<int> wanted;
      for (int k : {0, 1, 4, 5, 6, 7, 8})
        if (ctx->needs_input_grad(k)) wanted.push_back(k);
      auto g = composite_gradient(from_saved(s, ctx), grads[0], wanted);
      for (int k = 0; k < 9; ++k) result[k] = g[k];
      return result;
    }
    if (create_graph) {
      auto g = CFConvGradient::apply(grads[0], s[0], s[1], s[4], s[5], s[6], s[7], s[8], s[2], s[3], filter, slope,
                                     ctx->saved_data["coeff"].toDouble(), ctx->saved_data["cutoff"].toDouble(),
                                     ctx->saved_data["n_two_way"].toInt(), ctx->saved_data["n_out"].toInt());
      if (need_d) result[0] = g[0];
      if (need_x) result[1] = g[1];
      return result;
    }
    Inputs in = detached(from_saved(s, ctx));
    auto g = mlpot::cfconv::gradient(in, filter, slope, grads[0].detach(), need_d, need_x, need_w);
    if (need_d) result[0] = g.d;
    if (need_x) result[1] = g.x;
    if (ctx->needs_input_grad(4)) result[4] = g.w1;
    if (ctx->needs_input_grad(5)) result[5] = g.b1;
    if (ctx->needs_input_grad(6)) result[6] = g.w2;
    if (ctx->needs_input_grad(7)) result[7] = g.b2;
    return result;
  }
};

Tensor cfconv(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j, const Tensor& w1,
              const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& centers, double coeff,
              double cutoff, int64_t n_two_way, int64_t n_out) {
  bool keep = false;
  if (torch::GradMode::is_enabled())
    for (const Tensor* t : {&d, &x, &w1, &b1, &w2, &b2, &centers}) keep = keep || t->requires_grad();
  return CFConv::apply(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out, keep);
}

Tensor cfconv_composite_op(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                           const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
                           const Tensor& centers, double coeff, double cutoff, int64_t n_two_way, int64_t n_out) {
  return cfconv_composite(checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out));
}

}  // namespace

TORCH_LIBRARY(mlpot, m) {
  m.def("cfconv(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor w1, Tensor b1, Tensor w2, Tensor b2, "
        "Tensor centers, float coeff, float cutoff, int n_two_way, int n_out) -> Tensor",
        &cfconv);
  m.def("cfconv_composite(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor w1, Tensor b1, Tensor w2, "
        "Tensor b2, Tensor centers, float coeff, float cutoff, int n_two_way, int n_out) -> Tensor",
        &cfconv_composite_op);
}

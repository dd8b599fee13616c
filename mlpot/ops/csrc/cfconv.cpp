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
// The loops are in cfconv_kernels.cpp. Two graphs, the same function:
// - weights fixed (an exported model in MD): one node, CFConv, whose forward evaluates the filter
//   network and sends the messages in one pass and keeps the filter f and its slope f' per edge;
// - weights trained: two nodes, FilterNetwork (d, weights) -> (f, f') and Messages (d, x, f, f')
//   -> out, so that autograd adds the gradients of f and f' from the energy and the force terms
//   of a loss before FilterNetwork's backward does the weights' matrix products, once.
// Derivatives, all hand-written except where noted:
// - first derivatives in d and x (forces) and in f (training), loops only, from the kept f, f';
// - the derivatives of those first derivatives in the output gradient, x, f and f' (training on
//   forces: MessagesGradient below), computed only for what the running backward needs
//   (AutogradContext::needs_input_grad), and the weights' gradients from those of f and f';
// - anything else (a second derivative in d, e.g. Hessians; third derivatives; gradients for
//   the Gaussian centres) differentiates the composite ATen formulation, correct to every order;
//   it then returns the weights' gradients through the weights, none through f and f'.
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
  auto cut = [](const Tensor& t) { return t.requires_grad() ? t.detach() : t; };  // (a per-call cost for molecules)
  return {cut(in.d),  cut(in.x),  in.idx_i, in.idx_j, cut(in.w1), cut(in.b1),
          cut(in.w2), cut(in.b2), cut(in.centers), in.coeff, in.cutoff, in.n_two_way, in.n_out};
}

// The filter f [P, F] (without the cutoff) as differentiable ATen operations; with `slope`, also
// f' = ∂f/∂d [P, F] as such a function of the weights (at fixed d).
Tensor filter_composite(const Inputs& in, Tensor* slope = nullptr) {
  auto diff = in.d.unsqueeze(1) - in.centers;
  auto rbf = torch::exp(in.coeff * diff * diff);
  auto z = at::linear(rbf, in.w1, in.b1);
  if (slope) *slope = at::linear(torch::sigmoid(z) * at::linear(rbf * (2.0 * in.coeff) * diff, in.w1), in.w2);
  return at::linear(at::softplus(z, 1.0, SOFTPLUS_THRESHOLD) - LN2, in.w2, in.b2);
}

// The straightforward differentiable formulation (ATen ops on whole edge tensors).
Tensor cfconv_composite(const Inputs& in) {
  auto fc = 0.5 * (torch::cos(in.d * (M_PI / in.cutoff)) + 1.0) * (in.d < in.cutoff).to(in.d.scalar_type());
  auto w = filter_composite(in) * fc.unsqueeze(1);
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

// Second derivatives through the composite formulation: the gradients of Σ gg_d · grad_d +
// Σ gg_x · grad_x, (grad_d, grad_x) = d/d(d, x) of Σ out · go, with respect to go and the
// saved inputs that need them; entries at the edges of a node whose inputs are go, d, x, w1, b1,
// w2, b2, centres (0 .. 7).
variable_list composite_second_gradient(Inputs in, const Tensor& go, const variable_list& gg) {
  torch::AutoGradMode grad_on(true);
  variable_list result(8);
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
  const int edge_of[9] = {1, 2, -1, -1, 3, 4, 5, 6, 7};  // input slot -> edge
  for (size_t m = 0; m < which.size(); ++m) result[edge_of[which[m]]] = second[m];
  if (go.requires_grad()) result[0] = second.back();
  return result;
}

// The first derivatives of the convolution in d and x as a differentiable operation of (go, d,
// x, f, f'), used when the graph of the forces is kept (training on forces, Hessians). f and f'
// are differentiable inputs when they come from FilterNetwork, kept tensors otherwise.
class MessagesGradient : public torch::autograd::Function<MessagesGradient> {
 public:
  // inputs: go, d, x, w1, b1, w2, b2, centers, idx_i, idx_j, filter, slope (edge order for
  // needs_input_grad; the weights serve the composite fallback); returns (grad_d [P], grad_x [N, F]).
  static variable_list forward(AutogradContext* ctx, Tensor go, Tensor d, Tensor x, Tensor w1, Tensor b1, Tensor w2,
                               Tensor b2, Tensor centers, Tensor idx_i, Tensor idx_j, Tensor filter, Tensor slope,
                               double coeff, double cutoff, int64_t n_two_way, int64_t n_out) {
    Inputs in = detached(checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out, false));
    auto g = mlpot::cfconv::gradient(in, filter.detach(), slope.detach(), go.detach(), true, true, false);
    ctx->save_for_backward({d, x, idx_i, idx_j, w1, b1, w2, b2, centers, go, filter, slope});
    save_scalars(ctx, in);
    return {g.d, g.x};
  }

  static variable_list backward(AutogradContext* ctx, variable_list gg) {
    auto s = ctx->get_saved_variables();
    const Tensor go = s[9];
    variable_list result(16);
    const bool need_go = ctx->needs_input_grad(0), need_d = ctx->needs_input_grad(1),
               need_x = ctx->needs_input_grad(2), need_c = ctx->needs_input_grad(7),
               need_fs = ctx->needs_input_grad(10) || ctx->needs_input_grad(11);
    if (need_d || need_c || torch::GradMode::is_enabled()) {
      // a second derivative in d, or third derivatives: differentiate the composite formulation twice
      auto g = composite_second_gradient(from_saved(s, ctx), go, gg);
      for (int k = 0; k < 8; ++k) result[k] = g[k];
      return result;
    }
    if (!(need_go || need_x || need_fs)) return result;
    Inputs in = detached(from_saved(s, ctx));
    auto g = mlpot::cfconv::second_gradient(in, s[10].detach(), s[11].detach(), go.detach(), gg[0], gg[1], need_fs);
    if (need_go) result[0] = g.go;
    if (need_x) result[2] = g.x;
    if (need_fs) {
      result[10] = g.filter;
      result[11] = g.slope;
    }
    return result;
  }
};

// Backward of a node whose forward was the convolution of (d, x) with the kept f and f': the
// hand-written first derivatives, or MessagesGradient when the graph is kept. Inputs at the
// edges d 0, x 1, w1..b2 4..7, centres 8, and (two-node form) f `filter_edge`, f' after it.
variable_list convolution_backward(AutogradContext* ctx, const variable_list& s, const Tensor& filter,
                                   const Tensor& slope, const Tensor& go, int filter_edge, size_t n_edges) {
  variable_list result(n_edges);
  const bool need_d = ctx->needs_input_grad(0), need_x = ctx->needs_input_grad(1),
             need_c = ctx->needs_input_grad(8), create_graph = torch::GradMode::is_enabled();
  const bool need_f = filter_edge >= 0 && ctx->needs_input_grad(filter_edge);
  bool need_w = false;
  for (int k = 4; k < 8; ++k) need_w = need_w || ctx->needs_input_grad(k);
  // one node: the weights' gradients only through the composite formulation; two nodes: through
  // f, unless the centres or a kept graph of f's gradient are asked for
  const bool composite = need_c || !filter.defined() || (filter_edge < 0 ? need_w : create_graph && (need_f || need_w));
  if (composite) {
    std::vector<int> wanted;
    for (int k : {0, 1, 4, 5, 6, 7, 8})
      if (ctx->needs_input_grad(k)) wanted.push_back(k);
    auto g = composite_gradient(from_saved(s, ctx), go, wanted);
    for (int k = 0; k < 9; ++k) result[k] = g[k];
    return result;
  }
  if (create_graph) {
    auto g = MessagesGradient::apply(go, s[0], s[1], s[4], s[5], s[6], s[7], s[8], s[2], s[3], filter, slope,
                                     ctx->saved_data["coeff"].toDouble(), ctx->saved_data["cutoff"].toDouble(),
                                     ctx->saved_data["n_two_way"].toInt(), ctx->saved_data["n_out"].toInt());
    if (need_d) result[0] = g[0];
    if (need_x) result[1] = g[1];
    return result;
  }
  Inputs in = detached(from_saved(s, ctx));
  auto g = mlpot::cfconv::gradient(in, filter.detach(), slope.detach(), go.detach(), need_d, need_x, need_f);
  if (need_d) result[0] = g.d;
  if (need_x) result[1] = g.x;
  if (need_f) result[filter_edge] = g.filter;
  return result;
}

// One node (weights fixed): filter network and messages in one pass, f and f' kept.
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
    return convolution_backward(ctx, ctx->get_saved_variables(), ctx->saved_data["filter"].toTensor(),
                                ctx->saved_data["slope"].toTensor(), grads[0], -1, 14);
  }
};

// Two nodes (weights trained), first: f and f' per edge [P, F] at fixed d.
class FilterNetwork : public torch::autograd::Function<FilterNetwork> {
 public:
  // d and x enter detached (x only for shapes): d's gradient is Messages' business.
  static variable_list forward(AutogradContext* ctx, Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor w1,
                               Tensor b1, Tensor w2, Tensor b2, Tensor centers, double coeff, double cutoff) {
    Inputs in{d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, 0, 0};
    const Inputs cut = detached(in);
    auto [f, s] = mlpot::cfconv::filters(cut, cut.w1.unsqueeze(0), cut.b1.unsqueeze(0), cut.w2.unsqueeze(0),
                                         cut.b2.unsqueeze(0));  // one network of the stacked form
    ctx->save_for_backward({d, x, idx_i, idx_j, w1, b1, w2, b2, centers});
    save_scalars(ctx, in);
    return {f[0], s[0]};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    variable_list result(11);
    if (!grads[0].defined() && !grads[1].defined()) return result;
    Inputs in = from_saved(s, ctx);
    if (ctx->needs_input_grad(8) || torch::GradMode::is_enabled()) {
      torch::AutoGradMode grad_on(true);
      auto [which, wrt] = alias_inputs(in, {4, 5, 6, 7, 8});
      if (wrt.empty()) return result;
      Tensor slope;
      Tensor f = filter_composite(in, &slope);
      variable_list outs, gouts;
      for (auto [out, g] : {std::pair{f, grads[0]}, std::pair{slope, grads[1]}})
        if (g.defined()) {
          outs.push_back(out);
          gouts.push_back(g);
        }
      const bool create_graph = torch::GradMode::is_enabled();
      auto g = torch::autograd::grad(outs, wrt, gouts, create_graph, create_graph, true);
      for (size_t m = 0; m < which.size(); ++m) result[which[m]] = g[m];
      return result;
    }
    auto g = mlpot::cfconv::filter_backward(detached(in), grads[0], grads[1]);
    const Tensor* w[4] = {&g.w1, &g.b1, &g.w2, &g.b2};
    for (int k = 0; k < 4; ++k)
      if (ctx->needs_input_grad(4 + k)) result[4 + k] = *w[k];
    return result;
  }
};

// Two nodes, second: the messages of a given f (f' kept for the derivatives in d).
class Messages : public torch::autograd::Function<Messages> {
 public:
  // inputs: d, x, idx_i, idx_j, w1, b1, w2, b2, centers (the weights serve the composite
  // fallbacks), filter, slope
  static Tensor forward(AutogradContext* ctx, Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor w1, Tensor b1,
                        Tensor w2, Tensor b2, Tensor centers, Tensor filter, Tensor slope, double coeff, double cutoff,
                        int64_t n_two_way, int64_t n_out) {
    Inputs in = detached(checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out, false));
    Tensor out = mlpot::cfconv::messages(in, filter.detach());
    ctx->save_for_backward({d, x, idx_i, idx_j, w1, b1, w2, b2, centers, filter, slope});
    save_scalars(ctx, in);
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    return convolution_backward(ctx, s, s[9], s[10], grads[0], 9, 15);
  }
};

Tensor cfconv(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j, const Tensor& w1,
              const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& centers, double coeff,
              double cutoff, int64_t n_two_way, int64_t n_out) {
  bool keep = false, trained = false;
  if (torch::GradMode::is_enabled()) {
    for (const Tensor* t : {&w1, &b1, &w2, &b2, &centers}) trained = trained || t->requires_grad();
    keep = trained || d.requires_grad() || x.requires_grad();
  }
  if (!trained)
    return CFConv::apply(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out, keep);
  checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out);
  auto fs = FilterNetwork::apply(d.detach().contiguous(), x.detach().contiguous(), idx_i.contiguous(),
                                 idx_j.contiguous(), w1.contiguous(), b1.contiguous(), w2.contiguous(),
                                 b2.contiguous(), centers.contiguous(), coeff, cutoff);
  return Messages::apply(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, fs[0], fs[1], coeff, cutoff, n_two_way, n_out);
}

// Without autograd, for a caller that writes out the chain rule (mlpot/schnet_forces.py): the
// filters of all interactions, the messages of one, and their gradient.

// Inputs of the message and gradient loops, which read d, x, the edges and the cutoff only.
Inputs message_inputs(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                      const Tensor& filter, double cutoff, int64_t n_two_way, int64_t n_out, bool check_edges,
                      const char* op) {
  TORCH_CHECK(d.device().is_cpu() && x.device().is_cpu(), op, " runs on the CPU only");
  TORCH_CHECK(d.dim() == 1 && x.dim() == 2, op, ": d must be [P] and x [N, F]");
  if (check_edges) mlpot::check_edges(idx_i, idx_j, d.size(0), x.size(0), n_two_way, n_out, op);
  TORCH_CHECK(d.scalar_type() == x.scalar_type() && filter.scalar_type() == x.scalar_type(), op,
              ": d, x and the filter must share one dtype");
  TORCH_CHECK(filter.dim() == 2 && filter.size(0) == d.size(0) && filter.size(1) == x.size(1), op,
              ": the filter must be [P, F]");
  auto none = torch::empty({0, 0}, x.options());
  return {d.detach().contiguous(), x.detach().contiguous(), idx_i.contiguous(), idx_j.contiguous(), none,
          none.reshape({0}), none, none.reshape({0}), none.reshape({0}), 0.0, cutoff, n_two_way, n_out};
}

// f and f' [T, P, F] (without the cutoff) of T filter networks, weights stacked: w1 [T, H, K],
// b1 [T, H], w2 [T, F, H], b2 [T, F]; d [P] Å.
std::tuple<Tensor, Tensor> cfconv_filters(const Tensor& d, const Tensor& w1, const Tensor& b1, const Tensor& w2,
                                          const Tensor& b2, const Tensor& centers, double coeff, double cutoff) {
  TORCH_CHECK(d.device().is_cpu(), "mlpot::cfconv_filters runs on the CPU only");
  TORCH_CHECK(d.dim() == 1 && w1.dim() == 3 && b1.dim() == 2 && w2.dim() == 3 && b2.dim() == 2,
              "mlpot::cfconv_filters: d [P], w1 [T, H, K], b1 [T, H], w2 [T, F, H], b2 [T, F]");
  const int64_t T = w1.size(0), H = w1.size(1), K = w1.size(2), F = w2.size(1);
  TORCH_CHECK(b1.size(0) == T && b1.size(1) == H && w2.size(0) == T && w2.size(2) == H && b2.size(0) == T &&
                  b2.size(1) == F && centers.dim() == 1 && centers.size(0) == K,
              "mlpot::cfconv_filters: weight shapes do not match");
  for (const Tensor* t : {&w1, &b1, &w2, &b2, &centers})
    TORCH_CHECK(t->scalar_type() == d.scalar_type(), "mlpot::cfconv_filters: all inputs must share d's dtype");
  const Tensor w1c = w1.detach().contiguous();
  // in's own weights: the first network's, for the shapes the loops read
  Inputs in{d.detach().contiguous(), torch::empty({0, F}, d.options()), torch::empty({0}, torch::kLong),
            torch::empty({0}, torch::kLong), w1c[0], b1[0], w2[0], b2[0], centers.detach().contiguous(), coeff, cutoff, 0, 0};
  auto [f, s] = mlpot::cfconv::filters(in, w1c, b1.detach().contiguous(), w2.detach().contiguous(),
                                       b2.detach().contiguous());
  return {f, s};
}

// out [n_out, F] of x [N, F] along the edges with the filter f [P, F] of cfconv_filters (times the
// cosine cutoff of d); check_edges: check the edge indices (once per model call suffices).
Tensor cfconv_messages(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                       const Tensor& filter, double cutoff, int64_t n_two_way, int64_t n_out, bool check_edges) {
  Inputs in = message_inputs(d, x, idx_i, idx_j, filter, cutoff, n_two_way, n_out, check_edges,
                             "mlpot::cfconv_messages");
  return mlpot::cfconv::messages(in, filter.detach().contiguous());
}

// The gradient of Σ out · go for an output gradient go [n_out, F]: (grad_d [P], grad_x [N, F],
// or [0] when not want_x), from cfconv_filters' f and f' of this layer; the edges as checked by
// cfconv_messages.
std::tuple<Tensor, Tensor> cfconv_gradient(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                                           const Tensor& filter, const Tensor& slope, const Tensor& go, double cutoff,
                                           int64_t n_two_way, int64_t n_out, bool want_x) {
  Inputs in = message_inputs(d, x, idx_i, idx_j, filter, cutoff, n_two_way, n_out, false, "mlpot::cfconv_gradient");
  TORCH_CHECK(slope.sizes() == filter.sizes() && slope.scalar_type() == x.scalar_type(),
              "mlpot::cfconv_gradient: the slope must be [P, F] like the filter");
  TORCH_CHECK(go.dim() == 2 && go.size(0) == n_out && go.size(1) == x.size(1) && go.scalar_type() == x.scalar_type(),
              "mlpot::cfconv_gradient: go must be [n_out, F] in x's dtype");
  auto g = mlpot::cfconv::gradient(in, filter.detach().contiguous(), slope.detach().contiguous(), go.detach(), true,
                                   want_x, false);
  return {g.d, want_x ? g.x : torch::empty({0}, x.options())};
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
  m.def("cfconv_filters(Tensor d, Tensor w1, Tensor b1, Tensor w2, Tensor b2, Tensor centers, float coeff, "
        "float cutoff) -> (Tensor, Tensor)");
  m.def("cfconv_messages(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor filter, float cutoff, "
        "SymInt n_two_way, SymInt n_out, bool check_edges=True) -> Tensor");
  m.def("cfconv_gradient(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor filter, Tensor slope, Tensor go, "
        "float cutoff, SymInt n_two_way, SymInt n_out, bool want_x) -> (Tensor, Tensor)");
}

// the CPU kernels of the operators above whose schema is declared alone: a kernel for the
// CPU key (not a catch-all) lets torch.export trace them with their fake kernels (mlpot/ops/fake_kernels.py)
TORCH_LIBRARY_IMPL(mlpot, CPU, m) {
  m.impl("cfconv_filters", &cfconv_filters);
  m.impl("cfconv_messages", &cfconv_messages);
  m.impl("cfconv_gradient", &cfconv_gradient);
}

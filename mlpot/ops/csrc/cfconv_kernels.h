// The loops of torch.ops.mlpot.cfconv (cfconv.cpp): SchNet's filter network and continuous-filter
// convolution, its gradient, and the gradient of that gradient, edge block by edge block.
//
// Per edge p = (i, j) at distance d (i = idx_i[p], j = idx_j[p]; two-way if p < n_two_way):
//   r = rbf(d) [K], z = w1 r + b1 [H], a = ssp(z), f = w2 a + b2 [F], c = fc(d)
//   W = f c (the filter), W' = dW/dd = f' c + f c' with f' = w2 (σ(z) ⊙ w1 r')
//   out[i] += x[j] ⊙ W, and out[j] += x[i] ⊙ W when two-way.
// With G_p = go[i] ⊙ x[j] (+ go[j] ⊙ x[i] two-way) for an output gradient go:
//   grad_d[p] = G_p · W'_p,  grad_x[j] += go[i] ⊙ W_p (+ grad_x[i] += go[j] ⊙ W_p two-way),
//   and dE/df_p = c G_p.
// The filter network (f and its slope f' per edge, [P, F]) and the messages can run as one pass
// (`forward`, the filter kept in cache) or as two (`filters`, then `messages`): when the weights
// are trained, autograd then adds the gradients of f and f' from every path (energy and forces)
// before `filter_backward` does the weights' matrix products once.
// Nothing but the filter network has a matrix product: the message loops need none.
#pragma once
#include <torch/torch.h>

namespace mlpot::cfconv {

constexpr double LN2 = 0.6931471805599453;
constexpr double SOFTPLUS_THRESHOLD = 20.0;  // torch.nn.functional.softplus's default

struct Inputs {
  torch::Tensor d, x, idx_i, idx_j, w1, b1, w2, b2, centers;  // [P], [N, F], [P], [P], [H, K], [H], [F, H], [F], [K]
  double coeff;   // Gaussian exponent, 1/Å² (negative)
  double cutoff;  // Å
  int64_t n_two_way, n_out;
};

struct Forward {
  torch::Tensor out;     // [n_out, F]
  torch::Tensor filter;  // [P, F] f (without the cutoff), kept when asked
  torch::Tensor slope;   // [P, F] f', kept when asked
};

struct Gradients {
  torch::Tensor d, x, filter;       // [P], [N, F], [P, F] dE/df (each undefined unless asked)
};

struct SecondGradients {
  torch::Tensor go, x;              // [n_out, F], [N, F]
  torch::Tensor filter, slope;      // [P, F] (undefined unless asked)
};

struct WeightGradients {
  torch::Tensor w1, b1, w2, b2;
};

// All inputs detached and contiguous, one floating dtype (float or double).
// out, and with keep also f and f' per edge, in one pass (the filter used while in cache).
Forward forward(const Inputs& in, bool keep);

// out [n_out, F] from a given filter f [P, F] (the second pass of the two-pass form).
torch::Tensor messages(const Inputs& in, const torch::Tensor& filter);

// Gradients of Σ out · go from f and f': d, x and dE/df when asked (loops, no matrix product).
Gradients gradient(const Inputs& in, const torch::Tensor& filter, const torch::Tensor& slope, const torch::Tensor& go,
                   bool want_d, bool want_x, bool want_filter);

// Gradients of Σ gg_d · grad_d + Σ gg_x · grad_x (grad_d, grad_x from `gradient`) with respect
// to go, x and, when `want_filter`, f and f' (not d: the caller differentiates the composite
// formulation then).
SecondGradients second_gradient(const Inputs& in, const torch::Tensor& filter, const torch::Tensor& slope,
                                const torch::Tensor& go, const torch::Tensor& gg_d, const torch::Tensor& gg_x,
                                bool want_filter);

// The weights' gradients of Σ grad_filter · f + Σ grad_slope · f' (either may be undefined).
WeightGradients filter_backward(const Inputs& in, const torch::Tensor& grad_filter, const torch::Tensor& grad_slope);

// f and f' [T, P, F] of T filter networks at the distances of `in` (weights stacked: w1 [T, H, K],
// b1 [T, H], w2 [T, F, H], b2 [T, F]; in's own weights unused): the Gaussians once per block and
// one first-layer product for all T networks (the filters depend on d only).
std::pair<torch::Tensor, torch::Tensor> filters(const Inputs& in, const torch::Tensor& w1, const torch::Tensor& b1,
                                                const torch::Tensor& w2, const torch::Tensor& b2);

}  // namespace mlpot::cfconv

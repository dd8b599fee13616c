// The loops of torch.ops.mlpot.cfconv (cfconv.cpp): SchNet's filter network and continuous-filter
// convolution, its gradient, and the gradient of that gradient, edge block by edge block.
//
// Per edge p = (i, j) at distance d (i = idx_i[p], j = idx_j[p]; two-way if p < n_two_way):
//   r = rbf(d) [K], z = w1 r + b1 [H], a = ssp(z), f = w2 a + b2 [F], c = fc(d)
//   W = f c (the filter), W' = dW/dd = f' c + f c' with f' = w2 (σ(z) ⊙ w1 r')
//   out[i] += x[j] ⊙ W, and out[j] += x[i] ⊙ W when two-way.
// With G_p = go[i] ⊙ x[j] (+ go[j] ⊙ x[i] two-way) for an output gradient go:
//   grad_d[p] = G_p · W'_p,  grad_x[j] += go[i] ⊙ W_p (+ grad_x[i] += go[j] ⊙ W_p two-way),
//   and the weights' gradients through dE/df_p = c G_p.
// The forward keeps f − b2 + ln2·Σ_h w2 ("filter", the bias is added where it is used) and f'
// ("slope") per edge [P, F], so the gradient needs no matrix product; its own gradient (training
// on forces) recomputes r, z, σ per block.
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
  torch::Tensor filter;  // [P, F] w2 a (no bias), kept when asked
  torch::Tensor slope;   // [P, F] f', kept when asked
};

struct Gradients {
  torch::Tensor d, x;               // [P], [N, F] (undefined unless asked)
  torch::Tensor w1, b1, w2, b2;     // weight gradients (undefined unless asked)
};

struct SecondGradients {
  torch::Tensor go, x;              // [n_out, F], [N, F]
  torch::Tensor w1, b1, w2, b2;
};

// All inputs detached and contiguous, one floating dtype (float or double).
Forward forward(const Inputs& in, bool keep);

// Gradients of Σ out · go from the kept filter and slope: d and x when asked, the four weights
// when `weights` (their matrix products are then done per block).
Gradients gradient(const Inputs& in, const torch::Tensor& filter, const torch::Tensor& slope, const torch::Tensor& go,
                   bool want_d, bool want_x, bool weights);

// Gradients of Σ gg_d · grad_d + Σ gg_x · grad_x (grad_d, grad_x from `gradient`) with respect
// to go, x and the four weights (not d: the caller differentiates the composite formulation then).
SecondGradients second_gradient(const Inputs& in, const torch::Tensor& filter, const torch::Tensor& slope,
                                const torch::Tensor& go, const torch::Tensor& gg_d, const torch::Tensor& gg_x);

}  // namespace mlpot::cfconv

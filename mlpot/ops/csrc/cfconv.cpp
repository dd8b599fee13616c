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
// The edges are processed in blocks of BLOCK: radial basis, both filter layers (ATen matrix
// products on the block) and the gather-multiply-scatter stay in cache, so no [P, F] tensor of
// messages is materialised. Blocks run in parallel (at::parallel_for, torch's intra-op
// threads), each thread scattering into its own copy of the output. The forward keeps the
// activation's derivative and the filter per edge for a hand-written backward (forces). When a
// graph of the backward itself is needed (create_graph, e.g. training on forces or Hessians)
// or a weight needs a gradient, the backward differentiates the composite ATen formulation
// instead, so every derivative stays correct; only the first derivative in d and x is fused.
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include "messages.h"
#include "vector_math.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t BLOCK = 512;
constexpr double LN2 = 0.6931471805599453;
constexpr double SOFTPLUS_THRESHOLD = 20.0;  // torch.nn.functional.softplus's default

struct Geometry {
  double coeff;   // Gaussian exponent, 1/Å²  (negative)
  double cutoff;  // Å
};

// rbf [n, K], fc [n], dfc [n] (d fc / d d; skipped if null) for distances d [n].
template <typename T>
void radial_block(const T* d, int64_t n, const T* centers, int64_t K, Geometry g, T* rbf, T* fc, T* dfc) {
  mlpot::gaussians(d, n, centers, K, g.coeff, rbf);
  const double a = M_PI / g.cutoff;
  for (int64_t q = 0; q < n; ++q) {
    const double dq = d[q];
    if (dq < g.cutoff) {
      fc[q] = static_cast<T>(0.5 * (std::cos(a * dq) + 1.0));
      if (dfc) dfc[q] = static_cast<T>(-0.5 * a * std::sin(a * dq));
    } else {
      fc[q] = T(0);
      if (dfc) dfc[q] = T(0);
    }
  }
}

struct Inputs {
  Tensor d, x, idx_i, idx_j, w1, b1, w2, b2, centers;
  Geometry g;
  int64_t n_two_way, n_out;
};

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
          w2.contiguous(), b2.contiguous(), centers.contiguous(), {coeff, cutoff}, n_two_way, n_out};
}

// The same inputs cut from the graph: the hand-written kernels never need autograd.
Inputs detached(const Inputs& in) {
  return {in.d.detach(),  in.x.detach(),  in.idx_i, in.idx_j, in.w1.detach(), in.b1.detach(),
          in.w2.detach(), in.b2.detach(), in.centers.detach(), in.g, in.n_two_way, in.n_out};
}

// The straightforward differentiable formulation (ATen ops on whole edge tensors).
Tensor cfconv_composite(const Inputs& in) {
  auto diff = in.d.unsqueeze(1) - in.centers;
  auto rbf = torch::exp(in.g.coeff * diff * diff);
  auto fc = 0.5 * (torch::cos(in.d * (M_PI / in.g.cutoff)) + 1.0) * (in.d < in.g.cutoff).to(in.d.scalar_type());
  auto hidden = at::softplus(at::linear(rbf, in.w1, in.b1), 1.0, SOFTPLUS_THRESHOLD) - LN2;
  auto w = at::linear(hidden, in.w2, in.b2) * fc.unsqueeze(1);
  return mlpot::scatter_messages(in.x, w, in.idx_i, in.idx_j, in.n_two_way, in.n_out);
}

struct Forward {
  Tensor out;
  Tensor sig;     // [P, H] derivative of the first filter layer's activation (kept for the backward)
  Tensor filter;  // [P, F] filter before its bias and the cutoff (kept for the backward)
};

template <typename T>
Forward forward_kernel(const Inputs& in, bool keep) {
  const int64_t P = in.d.size(0), F = in.x.size(1), H = in.w1.size(0), K = in.w1.size(1);
  auto opts = in.x.options();
  Forward r;
  r.out = torch::zeros({in.n_out, F}, opts);
  if (keep) {
    r.sig = torch::empty({P, H}, opts);
    r.filter = torch::empty({P, F}, opts);
  }
  if (P == 0) return r;
  const Tensor b2s = (in.b2 - LN2 * in.w2.sum(1)).contiguous();  // ssp's −ln 2 folded into the bias
  const Tensor w1t = in.w1.t(), w2t = in.w2.t();
  const T* b1 = in.b1.data_ptr<T>();
  const T* b2 = b2s.data_ptr<T>();
  const T* d = in.d.data_ptr<T>();
  const T* x = in.x.data_ptr<T>();
  const T* centers = in.centers.data_ptr<T>();
  const int64_t* ii = in.idx_i.data_ptr<int64_t>();
  const int64_t* jj = in.idx_j.data_ptr<int64_t>();
  const int64_t n_blocks = (P + BLOCK - 1) / BLOCK;
  mlpot::PerThreadSum out_sum(r.out);

  at::parallel_for(0, n_blocks, 1, [&](int64_t first, int64_t last) {
    T* out = out_sum.mine().data_ptr<T>();
    Tensor rbf = torch::empty({BLOCK, K}, opts), act = torch::empty({BLOCK, H}, opts);
    Tensor sig_local = keep ? Tensor() : torch::empty({BLOCK, H}, opts);
    Tensor filter_local = keep ? Tensor() : torch::empty({BLOCK, F}, opts);
    std::vector<T> fc(BLOCK);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * BLOCK, n = std::min(BLOCK, P - p0);
      radial_block<T>(d + p0, n, centers, K, in.g, rbf.data_ptr<T>(), fc.data(), nullptr);
      Tensor sig = keep ? r.sig.narrow(0, p0, n) : sig_local.narrow(0, 0, n);
      Tensor filt = keep ? r.filter.narrow(0, p0, n) : filter_local.narrow(0, 0, n);
      Tensor a = act.narrow(0, 0, n);
      at::mm_out(a, rbf.narrow(0, 0, n), w1t);
      mlpot::softplus_and_sigmoid(a.data_ptr<T>(), b1, n, H, a.data_ptr<T>(), sig.data_ptr<T>());
      at::mm_out(filt, a, w2t);  // the bias is added where the filter is used
      const T* w = filt.data_ptr<T>();
      for (int64_t q = 0; q < n; ++q) {
        const T c = fc[q];
        if (c == T(0)) continue;
        const int64_t p = p0 + q, i = ii[p], j = jj[p];
        const T* wq = w + q * F;
        T* oi = out + i * F;
        const T* xj = x + j * F;
        if (p < in.n_two_way) {
          T* oj = out + j * F;
          const T* xi = x + i * F;
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) {
            const T wf = (wq[f] + b2[f]) * c;
            oi[f] += xj[f] * wf;
            oj[f] += xi[f] * wf;
          }
        } else {
#pragma omp simd
          for (int64_t f = 0; f < F; ++f) oi[f] += xj[f] * (wq[f] + b2[f]) * c;
        }
      }
    }
  });
  out_sum.sum();
  return r;
}

// Gradients of Σ out·grad_out with respect to d [P] and x [N, F], from the kept pre/filter.
template <typename T>
std::pair<Tensor, Tensor> backward_kernel(const Inputs& in, const Tensor& sig_all, const Tensor& filter_all,
                                          const Tensor& grad_out_) {
  const int64_t P = in.d.size(0), F = in.x.size(1), H = in.w1.size(0), K = in.w1.size(1), N = in.x.size(0);
  auto opts = in.x.options();
  const Tensor grad_out = grad_out_.contiguous();
  Tensor grad_d = torch::zeros({P}, opts), grad_x = torch::zeros({N, F}, opts);
  if (P == 0) return {grad_d, grad_x};
  const T* d = in.d.data_ptr<T>();
  const T* x = in.x.data_ptr<T>();
  const T* go = grad_out.data_ptr<T>();
  const T* centers = in.centers.data_ptr<T>();
  const int64_t* ii = in.idx_i.data_ptr<int64_t>();
  const int64_t* jj = in.idx_j.data_ptr<int64_t>();
  T* gd = grad_d.data_ptr<T>();
  const Tensor b2s = (in.b2 - LN2 * in.w2.sum(1)).contiguous();  // as in the forward
  const T* b2 = b2s.data_ptr<T>();
  const int64_t n_blocks = (P + BLOCK - 1) / BLOCK;
  mlpot::PerThreadSum grad_x_sum(grad_x);

  at::parallel_for(0, n_blocks, 1, [&](int64_t first, int64_t last) {
    T* gx = grad_x_sum.mine().data_ptr<T>();
    Tensor rbf = torch::empty({BLOCK, K}, opts), g_filter = torch::empty({BLOCK, F}, opts);
    Tensor g_act = torch::empty({BLOCK, H}, opts);
    Tensor g_rbf = torch::empty({BLOCK, K}, opts);
    std::vector<T> fc(BLOCK), dfc(BLOCK), g_fc(BLOCK);
    for (int64_t b = first; b < last; ++b) {
      const int64_t p0 = b * BLOCK, n = std::min(BLOCK, P - p0);
      T* rb = rbf.data_ptr<T>();
      radial_block<T>(d + p0, n, centers, K, in.g, rb, fc.data(), dfc.data());
      const T* w = filter_all.data_ptr<T>() + p0 * F;
      T* gw = g_filter.data_ptr<T>();
      for (int64_t q = 0; q < n; ++q) {
        const T c = fc[q];
        T* gwq = gw + q * F;
        if (c == T(0)) {
          std::fill(gwq, gwq + F, T(0));
          g_fc[q] = T(0);
          continue;
        }
        const int64_t p = p0 + q, i = ii[p], j = jj[p];
        const T* wq = w + q * F;
        const T* goi = go + i * F;
        const T* xj = x + j * F;
        T* gxj = gx + j * F;
        T s = 0;
        if (p < in.n_two_way) {
          const T* goj = go + j * F;
          const T* xi = x + i * F;
          T* gxi = gx + i * F;
#pragma omp simd reduction(+ : s)
          for (int64_t f = 0; f < F; ++f) {
            const T g = goi[f] * xj[f] + goj[f] * xi[f];
            const T wf = wq[f] + b2[f];
            s += g * wf;
            gwq[f] = g * c;
            gxj[f] += goi[f] * wf * c;
            gxi[f] += goj[f] * wf * c;
          }
        } else {
#pragma omp simd reduction(+ : s)
          for (int64_t f = 0; f < F; ++f) {
            const T g = goi[f] * xj[f];
            const T wf = wq[f] + b2[f];
            s += g * wf;
            gwq[f] = g * c;
            gxj[f] += goi[f] * wf * c;
          }
        }
        g_fc[q] = s;
      }
      Tensor ga = g_act.narrow(0, 0, n), gr = g_rbf.narrow(0, 0, n);
      at::mm_out(ga, g_filter.narrow(0, 0, n), in.w2);
      ga.mul_(sig_all.narrow(0, p0, n));
      at::mm_out(gr, ga, in.w1);
      const T* grp = gr.data_ptr<T>();
      for (int64_t q = 0; q < n; ++q) {
        const double dq = d[p0 + q];
        double s = static_cast<double>(g_fc[q]) * dfc[q];
        for (int64_t k = 0; k < K; ++k)
          s += static_cast<double>(grp[q * K + k]) * rb[q * K + k] * 2.0 * in.g.coeff * (dq - centers[k]);
        gd[p0 + q] = static_cast<T>(s);
      }
    }
  });
  grad_x_sum.sum();
  return {grad_d, grad_x};
}

class CFConv : public torch::autograd::Function<CFConv> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor w1, Tensor b1,
                        Tensor w2, Tensor b2, Tensor centers, double coeff, double cutoff, int64_t n_two_way,
                        int64_t n_out) {
    Inputs in = detached(checked(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out));
    const bool keep = d.requires_grad() || x.requires_grad();
    Forward r;
    AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_forward", [&] { r = forward_kernel<scalar_t>(in, keep); });
    ctx->save_for_backward({d, x, idx_i, idx_j, w1, b1, w2, b2, centers});
    ctx->saved_data["sig"] = r.sig;
    ctx->saved_data["filter"] = r.filter;
    ctx->saved_data["coeff"] = coeff;
    ctx->saved_data["cutoff"] = cutoff;
    ctx->saved_data["n_two_way"] = n_two_way;
    ctx->saved_data["n_out"] = n_out;
    return r.out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const double coeff = ctx->saved_data["coeff"].toDouble(), cutoff = ctx->saved_data["cutoff"].toDouble();
    const int64_t n_two_way = ctx->saved_data["n_two_way"].toInt(), n_out = ctx->saved_data["n_out"].toInt();
    variable_list result(13);
    bool weights_need_grad = false;
    for (int k = 4; k < 9; ++k) weights_need_grad = weights_need_grad || s[k].requires_grad();
    const Tensor sig = ctx->saved_data["sig"].toTensor();
    if (torch::GradMode::is_enabled() || weights_need_grad || !sig.defined()) {
      // differentiate the composite formulation: correct to every order, for every input
      const bool create_graph = torch::GradMode::is_enabled();
      torch::AutoGradMode grad_on(true);
      // differentiate with respect to fresh aliases of the inputs: the nested backward then stops
      // at them instead of following the graph beyond (into earlier layers that share weights)
      std::vector<int> which;
      variable_list wrt;
      for (int k : {0, 1, 4, 5, 6, 7, 8}) {
        if (s[k].requires_grad()) {
          s[k] = s[k].view_as(s[k]);
          which.push_back(k);
          wrt.push_back(s[k]);
        }
      }
      if (wrt.empty()) return result;
      Inputs in{s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], {coeff, cutoff}, n_two_way, n_out};
      Tensor out = cfconv_composite(in);
      auto g = torch::autograd::grad({out}, wrt, {grads[0]}, /*retain_graph=*/create_graph,
                                     /*create_graph=*/create_graph, /*allow_unused=*/true);
      for (size_t m = 0; m < which.size(); ++m) result[which[m]] = g[m];
      return result;
    }
    Inputs in = detached(checked(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], coeff, cutoff, n_two_way, n_out, false));
    std::pair<Tensor, Tensor> g;
    AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_backward", [&] {
      g = backward_kernel<scalar_t>(in, sig, ctx->saved_data["filter"].toTensor(), grads[0]);
    });
    if (s[0].requires_grad()) result[0] = g.first;
    if (s[1].requires_grad()) result[1] = g.second;
    return result;
  }
};

Tensor cfconv(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j, const Tensor& w1,
              const Tensor& b1, const Tensor& w2, const Tensor& b2, const Tensor& centers, double coeff,
              double cutoff, int64_t n_two_way, int64_t n_out) {
  return CFConv::apply(d, x, idx_i, idx_j, w1, b1, w2, b2, centers, coeff, cutoff, n_two_way, n_out);
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

// SchNet's continuous-filter convolution with tabulated filters: torch.ops.mlpot.cfconv_tabulated.
//
// Same messages as mlpot::cfconv (cfconv.cpp), but each interaction's whole filter W(d)·fc(d)
// is a cubic Hermite spline in d on knots d_k = k h, k = 0 .. M (M h = cutoff), from the
// network's values and slopes at the knots:  table [M + 1, 2F] = [W(d_k), h W'(d_k)] per row.
// W(d) = h00(t) y_k + h10(t) h m_k + h01(t) y_{k+1} + h11(t) h m_{k+1}, t = d/h − k; 0 beyond the
// cutoff. No matrix products remain per edge: the forward and the hand-written backward read
// two table rows per edge. Derivatives of the backward (create_graph) use the composite ATen
// formulation, as in cfconv.
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <vector>

#include "messages.h"

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t GRAIN = 64;  // edges per parallel chunk, at least

struct Spline {
  int64_t k;  // interval
  double h00, h10, h01, h11;      // Hermite basis at t
  double d00, d10, d01, d11;      // its derivative in d
  bool inside;                    // d < cutoff
};

// Σ basis × knot data at feature f: rows lo, up [2F] = [values, h·slopes] of the two knots.
template <typename T>
inline T hermite(const T* lo, const T* up, int64_t F, int64_t f, T a, T b, T c, T e) {
  return a * lo[f] + b * lo[F + f] + c * up[f] + e * up[F + f];
}

inline Spline locate(double d, double spacing, int64_t n_intervals, double cutoff) {
  Spline s{};
  s.inside = d < cutoff;
  if (!s.inside) return s;
  const double u = std::max(d, 0.0) / spacing;
  s.k = std::min<int64_t>(static_cast<int64_t>(u), n_intervals - 1);
  const double t = u - s.k, t2 = t * t, t3 = t2 * t;
  s.h00 = 2 * t3 - 3 * t2 + 1;
  s.h10 = t3 - 2 * t2 + t;
  s.h01 = -2 * t3 + 3 * t2;
  s.h11 = t3 - t2;
  s.d00 = (6 * t2 - 6 * t) / spacing;
  s.d10 = (3 * t2 - 4 * t + 1) / spacing;
  s.d01 = (-6 * t2 + 6 * t) / spacing;
  s.d11 = (3 * t2 - 2 * t) / spacing;
  return s;
}

struct Inputs {
  Tensor d, x, idx_i, idx_j, table;
  double spacing, cutoff;
  int64_t n_two_way, n_out;
};

Inputs checked(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j, const Tensor& table,
               double spacing, double cutoff, int64_t n_two_way, int64_t n_out, bool check_indices = true) {
  TORCH_CHECK(d.device().is_cpu(), "mlpot::cfconv_tabulated runs on the CPU only");
  TORCH_CHECK(d.dim() == 1 && x.dim() == 2, "mlpot::cfconv_tabulated: d must be [P] and x [N, F]");
  TORCH_CHECK(d.scalar_type() == x.scalar_type() && table.scalar_type() == x.scalar_type(),
              "mlpot::cfconv_tabulated: d, x and table must share a dtype");
  TORCH_CHECK(table.dim() == 2 && table.size(1) == 2 * x.size(1) && table.size(0) >= 2,
              "mlpot::cfconv_tabulated: table must be [M + 1, 2F] with M >= 1");
  TORCH_CHECK(spacing > 0 && cutoff > 0 && std::abs((table.size(0) - 1) * spacing - cutoff) <= 1e-6 * cutoff,
              "mlpot::cfconv_tabulated: the table's knots must span [0, cutoff] (M × spacing = cutoff)");
  if (check_indices) mlpot::check_edges(idx_i, idx_j, d.size(0), x.size(0), n_two_way, n_out, "mlpot::cfconv_tabulated");
  return {d.contiguous(), x.contiguous(), idx_i.contiguous(), idx_j.contiguous(), table.contiguous(),
          spacing, cutoff, n_two_way, n_out};
}

Inputs detached(const Inputs& in) {
  return {in.d.detach(), in.x.detach(), in.idx_i, in.idx_j, in.table.detach(), in.spacing, in.cutoff,
          in.n_two_way, in.n_out};
}

// The differentiable formulation (ATen ops on whole edge tensors).
Tensor composite(const Inputs& in) {
  const int64_t M = in.table.size(0) - 1, F = in.x.size(1);
  auto u = in.d.clamp_min(0.0) / in.spacing;
  auto k = u.detach().floor().clamp(0, M - 1).to(torch::kLong);
  auto t = u - k.to(u.scalar_type());
  auto t2 = t * t, t3 = t2 * t;
  auto lower = in.table.index_select(0, k), upper = in.table.index_select(0, k + 1);
  auto col = [](const Tensor& v) { return v.unsqueeze(1); };
  auto w = col(2 * t3 - 3 * t2 + 1) * lower.narrow(1, 0, F) + col(t3 - 2 * t2 + t) * lower.narrow(1, F, F) +
           col(-2 * t3 + 3 * t2) * upper.narrow(1, 0, F) + col(t3 - t2) * upper.narrow(1, F, F);
  w = w * col((in.d < in.cutoff).to(w.scalar_type()));
  return mlpot::scatter_messages(in.x, w, in.idx_i, in.idx_j, in.n_two_way, in.n_out);
}

template <typename T>
Tensor forward_kernel(const Inputs& in) {
  const int64_t P = in.d.size(0), F = in.x.size(1), M = in.table.size(0) - 1;
  Tensor out = torch::zeros({in.n_out, F}, in.x.options());
  const T* d = in.d.data_ptr<T>();
  const T* x = in.x.data_ptr<T>();
  const T* table = in.table.data_ptr<T>();
  const int64_t* ii = in.idx_i.data_ptr<int64_t>();
  const int64_t* jj = in.idx_j.data_ptr<int64_t>();
  mlpot::PerThreadSum out_sum(out);
  at::parallel_for(0, P, GRAIN, [&](int64_t first, int64_t last) {
    T* o = out_sum.mine().data_ptr<T>();
    std::vector<T> w(F);
    for (int64_t p = first; p < last; ++p) {
      const Spline s = locate(d[p], in.spacing, M, in.cutoff);
      if (!s.inside) continue;
      const T* lo = table + s.k * 2 * F;
      const T* up = lo + 2 * F;
      const T a = s.h00, b = s.h10, c = s.h01, e = s.h11;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) w[f] = hermite(lo, up, F, f, a, b, c, e);
      const int64_t i = ii[p], j = jj[p];
      T* oi = o + i * F;
      const T* xj = x + j * F;
      if (p < in.n_two_way) {
        T* oj = o + j * F;
        const T* xi = x + i * F;
#pragma omp simd
        for (int64_t f = 0; f < F; ++f) {
          oi[f] += xj[f] * w[f];
          oj[f] += xi[f] * w[f];
        }
      } else {
#pragma omp simd
        for (int64_t f = 0; f < F; ++f) oi[f] += xj[f] * w[f];
      }
    }
  });
  out_sum.sum();
  return out;
}

template <typename T>
std::pair<Tensor, Tensor> backward_kernel(const Inputs& in, const Tensor& grad_out_) {
  const int64_t P = in.d.size(0), F = in.x.size(1), M = in.table.size(0) - 1, N = in.x.size(0);
  const Tensor grad_out = grad_out_.contiguous();
  Tensor grad_d = torch::zeros({P}, in.x.options()), grad_x = torch::zeros({N, F}, in.x.options());
  const T* d = in.d.data_ptr<T>();
  const T* x = in.x.data_ptr<T>();
  const T* go = grad_out.data_ptr<T>();
  const T* table = in.table.data_ptr<T>();
  const int64_t* ii = in.idx_i.data_ptr<int64_t>();
  const int64_t* jj = in.idx_j.data_ptr<int64_t>();
  T* gd = grad_d.data_ptr<T>();
  mlpot::PerThreadSum grad_x_sum(grad_x);
  at::parallel_for(0, P, GRAIN, [&](int64_t first, int64_t last) {
    T* gx = grad_x_sum.mine().data_ptr<T>();
    for (int64_t p = first; p < last; ++p) {
      const Spline s = locate(d[p], in.spacing, M, in.cutoff);
      if (!s.inside) continue;
      const T* lo = table + s.k * 2 * F;
      const T* up = lo + 2 * F;
      const T a = s.h00, b = s.h10, c = s.h01, e = s.h11;
      const T da = s.d00, db = s.d10, dc = s.d01, de = s.d11;
      const int64_t i = ii[p], j = jj[p];
      const T* goi = go + i * F;
      const T* xj = x + j * F;
      T* gxj = gx + j * F;
      T sum = 0;
      if (p < in.n_two_way) {
        const T* goj = go + j * F;
        const T* xi = x + i * F;
        T* gxi = gx + i * F;
#pragma omp simd reduction(+ : sum)
        for (int64_t f = 0; f < F; ++f) {
          const T w = hermite(lo, up, F, f, a, b, c, e);
          const T dw = hermite(lo, up, F, f, da, db, dc, de);
          sum += (goi[f] * xj[f] + goj[f] * xi[f]) * dw;
          gxj[f] += goi[f] * w;
          gxi[f] += goj[f] * w;
        }
      } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t f = 0; f < F; ++f) {
          const T w = hermite(lo, up, F, f, a, b, c, e);
          const T dw = hermite(lo, up, F, f, da, db, dc, de);
          sum += goi[f] * xj[f] * dw;
          gxj[f] += goi[f] * w;
        }
      }
      gd[p] = sum;
    }
  });
  grad_x_sum.sum();
  return {grad_d, grad_x};
}

class TabulatedConv : public torch::autograd::Function<TabulatedConv> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table,
                        double spacing, double cutoff, int64_t n_two_way, int64_t n_out) {
    Inputs in = detached(checked(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out));
    Tensor out;
    AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_tabulated", [&] { out = forward_kernel<scalar_t>(in); });
    ctx->save_for_backward({d, x, idx_i, idx_j, table});
    ctx->saved_data["spacing"] = spacing;
    ctx->saved_data["cutoff"] = cutoff;
    ctx->saved_data["n_two_way"] = n_two_way;
    ctx->saved_data["n_out"] = n_out;
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto s = ctx->get_saved_variables();
    const double spacing = ctx->saved_data["spacing"].toDouble(), cutoff = ctx->saved_data["cutoff"].toDouble();
    const int64_t n_two_way = ctx->saved_data["n_two_way"].toInt(), n_out = ctx->saved_data["n_out"].toInt();
    variable_list result(9);
    if (torch::GradMode::is_enabled() || s[4].requires_grad()) {
      // composite backward, with respect to fresh aliases (see cfconv.cpp)
      const bool create_graph = torch::GradMode::is_enabled();
      torch::AutoGradMode grad_on(true);
      std::vector<int> which;
      variable_list wrt;
      for (int k : {0, 1, 4}) {
        if (s[k].requires_grad()) {
          s[k] = s[k].view_as(s[k]);
          which.push_back(k);
          wrt.push_back(s[k]);
        }
      }
      if (wrt.empty()) return result;
      Tensor out = composite({s[0], s[1], s[2], s[3], s[4], spacing, cutoff, n_two_way, n_out});
      auto g = torch::autograd::grad({out}, wrt, {grads[0]}, create_graph, create_graph, true);
      for (size_t m = 0; m < which.size(); ++m) result[which[m]] = g[m];
      return result;
    }
    Inputs in = detached(checked(s[0], s[1], s[2], s[3], s[4], spacing, cutoff, n_two_way, n_out, false));
    std::pair<Tensor, Tensor> g;
    AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_tabulated_backward",
                               [&] { g = backward_kernel<scalar_t>(in, grads[0]); });
    if (s[0].requires_grad()) result[0] = g.first;
    if (s[1].requires_grad()) result[1] = g.second;
    return result;
  }
};

Tensor cfconv_tabulated(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                        const Tensor& table, double spacing, double cutoff, int64_t n_two_way, int64_t n_out) {
  return TabulatedConv::apply(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out);
}

Tensor cfconv_tabulated_composite(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                                  const Tensor& table, double spacing, double cutoff, int64_t n_two_way,
                                  int64_t n_out) {
  return composite(checked(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out));
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(mlpot, m) {
  m.def("cfconv_tabulated(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table, float spacing, "
        "float cutoff, int n_two_way, int n_out) -> Tensor",
        &cfconv_tabulated);
  m.def("cfconv_tabulated_composite(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table, "
        "float spacing, float cutoff, int n_two_way, int n_out) -> Tensor",
        &cfconv_tabulated_composite);
}

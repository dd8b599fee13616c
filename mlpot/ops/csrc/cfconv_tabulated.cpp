// SchNet's continuous-filter convolution with tabulated filters: torch.ops.mlpot.cfconv_tabulated.
//
// Same messages as mlpot::cfconv (cfconv.cpp), but each interaction's whole filter W(d)·fc(d)
// is a piecewise polynomial in d on intervals [k h, (k + 1) h], M h = cutoff; 0 beyond the
// cutoff. Two table layouts, told apart by the width of a row:
//   quintic, [M, 6F] (what mlpot exports): row k = the coefficients c_0 .. c_5 (blocks of F) of
//     W(d) = Σ_n c_n t^n, t = d/h − k, so W'(d) = Σ_n n c_n t^(n−1) / h. The coefficients are
//     those of the quintic Hermite interpolant of the network's W, hW', h²W'' at the knots, made
//     in float64 before rounding: the slope is then as accurate as the stored numbers (no
//     difference of neighbouring values divided by h, which loses digits in float32).
//   cubic, [M + 1, 2F] (files of mlpot before the quintic tables): row k = [W(d_k), h W'(d_k)],
//     cubic Hermite between the rows k and k + 1.
// Either way one edge reads N blocks of F numbers that lie one after another in the table (N = 6,
// or 4: two consecutive rows of 2F), weighted by N numbers that depend on t only. No matrix
// products remain per edge: the forward and the hand-written backward read the table. Derivatives
// of the backward (create_graph) use the composite ATen formulation, as in cfconv.
//
// Also, without autograd, for the exported SchNet's written-out forces (mlpot/schnet_forces.py):
// cfconv_tabulated_messages (the forward loop) and cfconv_tabulated_gradient (the backward loop).
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <array>
#include <vector>

#include "messages.h"

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int64_t GRAIN = 64;  // edges per parallel chunk, at least

// Weights of the N blocks an edge reads, for the value (v) and its derivative in t (g).
template <int N>
void weights(double t, double* v, double* g);

template <>
void weights<4>(double t, double* v, double* g) {  // cubic Hermite: [y_k, m_k, y_k+1, m_k+1]
  const double t2 = t * t, t3 = t2 * t;
  v[0] = 2 * t3 - 3 * t2 + 1, v[1] = t3 - 2 * t2 + t, v[2] = -2 * t3 + 3 * t2, v[3] = t3 - t2;
  g[0] = 6 * t2 - 6 * t, g[1] = 3 * t2 - 4 * t + 1, g[2] = -6 * t2 + 6 * t, g[3] = 3 * t2 - 2 * t;
}

template <>
void weights<6>(double t, double* v, double* g) {  // quintic coefficients: powers of t
  double power = 1;
  g[0] = 0;
  for (int n = 0; n < 6; ++n) {
    v[n] = power;
    if (n < 5) g[n + 1] = (n + 1) * power;
    power *= t;
  }
}

// Where d falls: the offset of the edge's first block in the table and the weights, the
// derivative ones per Å.
template <int N, typename T>
struct Spline {
  int64_t offset = 0;
  bool inside = false;  // d < cutoff
  T v[N], g[N];
};

template <int N, typename T>
inline Spline<N, T> locate(double d, double spacing, int64_t n_intervals, double cutoff, int64_t F) {
  Spline<N, T> s;
  s.inside = d < cutoff;
  if (!s.inside) return s;
  const double u = std::max(d, 0.0) / spacing;
  const int64_t k = std::min<int64_t>(static_cast<int64_t>(u), n_intervals - 1);
  s.offset = k * (N == 6 ? 6 : 2) * F;
  double v[N], g[N];
  weights<N>(u - k, v, g);
  for (int n = 0; n < N; ++n) {
    s.v[n] = static_cast<T>(v[n]);
    s.g[n] = static_cast<T>(g[n] / spacing);
  }
  return s;
}

// Σ_n w[n] block_n[f] over the N blocks of F numbers from `base`.
template <int N, typename T>
inline T combine(const T* base, int64_t F, int64_t f, const T* w) {
  T sum = 0;
  for (int n = 0; n < N; ++n) sum += w[n] * base[n * F + f];
  return sum;
}

struct Inputs {
  Tensor d, x, idx_i, idx_j, table;
  double spacing, cutoff;
  int64_t n_two_way, n_out;
  // blocks one edge reads: 6 (quintic, rows of 6F) or 4 (cubic, two rows of 2F)
  int blocks() const { return table.size(1) == 6 * x.size(1) ? 6 : 4; }
  int64_t intervals() const { return blocks() == 6 ? table.size(0) : table.size(0) - 1; }
};

Inputs checked(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j, const Tensor& table,
               double spacing, double cutoff, int64_t n_two_way, int64_t n_out, bool check_indices = true,
               const char* op = "mlpot::cfconv_tabulated") {
  TORCH_CHECK(d.device().is_cpu() && x.device().is_cpu() && table.device().is_cpu(), op, " runs on the CPU only");
  TORCH_CHECK(d.dim() == 1 && x.dim() == 2, op, ": d must be [P] and x [N, F]");
  TORCH_CHECK(d.scalar_type() == x.scalar_type() && table.scalar_type() == x.scalar_type(), op,
              ": d, x and table must share a dtype");
  const bool quintic = table.dim() == 2 && table.size(1) == 6 * x.size(1) && table.size(0) >= 1;
  TORCH_CHECK(quintic || (table.dim() == 2 && table.size(1) == 2 * x.size(1) && table.size(0) >= 2), op,
              ": table must be [M, 6F] (quintic) or [M + 1, 2F] (cubic) with M >= 1 intervals");
  const int64_t n_intervals = quintic ? table.size(0) : table.size(0) - 1;
  TORCH_CHECK(spacing > 0 && cutoff > 0 && std::abs(n_intervals * spacing - cutoff) <= 1e-6 * cutoff, op,
              ": the table's intervals must span [0, cutoff] (M × spacing = cutoff)");
  if (check_indices) mlpot::check_edges(idx_i, idx_j, d.size(0), x.size(0), n_two_way, n_out, op);
  return {d.contiguous(), x.contiguous(), idx_i.contiguous(), idx_j.contiguous(), table.contiguous(),
          spacing, cutoff, n_two_way, n_out};
}

Inputs detached(const Inputs& in) {
  return {in.d.detach(), in.x.detach(), in.idx_i, in.idx_j, in.table.detach(), in.spacing, in.cutoff,
          in.n_two_way, in.n_out};
}

// The differentiable formulation (ATen ops on whole edge tensors).
Tensor composite(const Inputs& in) {
  const int64_t M = in.intervals(), F = in.x.size(1);
  auto u = in.d.clamp_min(0.0) / in.spacing;
  auto k = u.detach().floor().clamp(0, M - 1).to(torch::kLong);
  auto t = (u - k.to(u.scalar_type())).unsqueeze(1);
  Tensor w;
  if (in.blocks() == 6) {  // Horner on the coefficients of row k
    auto c = in.table.index_select(0, k);
    w = c.narrow(1, 5 * F, F);
    for (int n = 4; n >= 0; --n) w = w * t + c.narrow(1, n * F, F);
  } else {
    auto t2 = t * t, t3 = t2 * t;
    auto lower = in.table.index_select(0, k), upper = in.table.index_select(0, k + 1);
    w = (2 * t3 - 3 * t2 + 1) * lower.narrow(1, 0, F) + (t3 - 2 * t2 + t) * lower.narrow(1, F, F) +
        (-2 * t3 + 3 * t2) * upper.narrow(1, 0, F) + (t3 - t2) * upper.narrow(1, F, F);
  }
  w = w * (in.d < in.cutoff).to(w.scalar_type()).unsqueeze(1);
  return mlpot::scatter_messages(in.x, w, in.idx_i, in.idx_j, in.n_two_way, in.n_out);
}

// out[i] += x[j] w(d) per edge (and out[j] += x[i] w(d) on the two-way edges).
template <int N, typename T>
Tensor forward_kernel(const Inputs& in) {
  const int64_t P = in.d.size(0), F = in.x.size(1), M = in.intervals();
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
      const auto s = locate<N, T>(d[p], in.spacing, M, in.cutoff, F);
      if (!s.inside) continue;
      const T* base = table + s.offset;
#pragma omp simd
      for (int64_t f = 0; f < F; ++f) w[f] = combine<N>(base, F, f, s.v);
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

// The gradient of Σ out · go: (grad_d [P], grad_x [N, F], undefined unless WANT_X).
template <int N, typename T, bool WANT_X>
std::pair<Tensor, Tensor> backward_kernel(const Inputs& in, const Tensor& grad_out_) {
  const int64_t P = in.d.size(0), F = in.x.size(1), M = in.intervals(), n_atoms = in.x.size(0);
  const Tensor grad_out = grad_out_.contiguous();
  Tensor grad_d = torch::zeros({P}, in.x.options()), grad_x;
  if (WANT_X) grad_x = torch::zeros({n_atoms, F}, in.x.options());
  const T* d = in.d.data_ptr<T>();
  const T* x = in.x.data_ptr<T>();
  const T* go = grad_out.data_ptr<T>();
  const T* table = in.table.data_ptr<T>();
  const int64_t* ii = in.idx_i.data_ptr<int64_t>();
  const int64_t* jj = in.idx_j.data_ptr<int64_t>();
  T* gd = grad_d.data_ptr<T>();
  mlpot::PerThreadSum grad_x_sum(WANT_X ? grad_x : torch::empty({0}, in.x.options()));
  at::parallel_for(0, P, GRAIN, [&](int64_t first, int64_t last) {
    T* gx = WANT_X ? grad_x_sum.mine().data_ptr<T>() : nullptr;
    for (int64_t p = first; p < last; ++p) {
      const auto s = locate<N, T>(d[p], in.spacing, M, in.cutoff, F);
      if (!s.inside) continue;
      const T* base = table + s.offset;
      const int64_t i = ii[p], j = jj[p];
      const T* goi = go + i * F;
      const T* xj = x + j * F;
      T sum = 0;
      if (p < in.n_two_way) {
        const T* goj = go + j * F;
        const T* xi = x + i * F;
#pragma omp simd reduction(+ : sum)
        for (int64_t f = 0; f < F; ++f) {
          sum += (goi[f] * xj[f] + goj[f] * xi[f]) * combine<N>(base, F, f, s.g);
          if (WANT_X) {
            const T w = combine<N>(base, F, f, s.v);
            gx[j * F + f] += goi[f] * w;
            gx[i * F + f] += goj[f] * w;
          }
        }
      } else {
#pragma omp simd reduction(+ : sum)
        for (int64_t f = 0; f < F; ++f) {
          sum += goi[f] * xj[f] * combine<N>(base, F, f, s.g);
          if (WANT_X) gx[j * F + f] += goi[f] * combine<N>(base, F, f, s.v);
        }
      }
      gd[p] = sum;
    }
  });
  if (WANT_X) grad_x_sum.sum();
  return {grad_d, grad_x};
}

Tensor run_forward(const Inputs& in) {
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_tabulated", [&] {
    out = in.blocks() == 6 ? forward_kernel<6, scalar_t>(in) : forward_kernel<4, scalar_t>(in);
  });
  return out;
}

std::pair<Tensor, Tensor> run_backward(const Inputs& in, const Tensor& go, bool want_x) {
  std::pair<Tensor, Tensor> g;
  AT_DISPATCH_FLOATING_TYPES(in.x.scalar_type(), "mlpot_cfconv_tabulated_backward", [&] {
    if (in.blocks() == 6)
      g = want_x ? backward_kernel<6, scalar_t, true>(in, go) : backward_kernel<6, scalar_t, false>(in, go);
    else
      g = want_x ? backward_kernel<4, scalar_t, true>(in, go) : backward_kernel<4, scalar_t, false>(in, go);
  });
  return g;
}

class TabulatedConv : public torch::autograd::Function<TabulatedConv> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table,
                        double spacing, double cutoff, int64_t n_two_way, int64_t n_out) {
    Tensor out = run_forward(detached(checked(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out)));
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
    auto g = run_backward(in, grads[0], s[1].requires_grad());
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

// Without autograd: the messages of one layer (check_edges: check the edge indices, once per
// model call suffices) ...
Tensor cfconv_tabulated_messages(const Tensor& d, const Tensor& x, const Tensor& idx_i, const Tensor& idx_j,
                                 const Tensor& table, double spacing, double cutoff, int64_t n_two_way,
                                 int64_t n_out, bool check_edges) {
  return run_forward(detached(checked(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out, check_edges,
                                  "mlpot::cfconv_tabulated_messages")));
}

// ... and the gradient of Σ out · go for an output gradient go [n_out, F]: (grad_d [P], grad_x
// [N, F], or [0] when not want_x); the edges as checked by cfconv_tabulated_messages.
std::tuple<Tensor, Tensor> cfconv_tabulated_gradient(const Tensor& d, const Tensor& x, const Tensor& idx_i,
                                                     const Tensor& idx_j, const Tensor& table, const Tensor& go,
                                                     double spacing, double cutoff, int64_t n_two_way,
                                                     int64_t n_out, bool want_x) {
  Inputs in = detached(checked(d, x, idx_i, idx_j, table, spacing, cutoff, n_two_way, n_out, false,
                               "mlpot::cfconv_tabulated_gradient"));
  TORCH_CHECK(go.dim() == 2 && go.size(0) == n_out && go.size(1) == x.size(1) && go.scalar_type() == x.scalar_type(),
              "mlpot::cfconv_tabulated_gradient: go must be [n_out, F] in x's dtype");
  auto g = run_backward(in, go.detach(), want_x);
  return {g.first, want_x ? g.second : torch::empty({0}, x.options())};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(mlpot, m) {
  m.def("cfconv_tabulated(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table, float spacing, "
        "float cutoff, int n_two_way, int n_out) -> Tensor",
        &cfconv_tabulated);
  m.def("cfconv_tabulated_composite(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table, "
        "float spacing, float cutoff, int n_two_way, int n_out) -> Tensor",
        &cfconv_tabulated_composite);
  m.def("cfconv_tabulated_messages(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table, "
        "float spacing, float cutoff, SymInt n_two_way, SymInt n_out, bool check_edges=True) -> Tensor");
  m.def("cfconv_tabulated_gradient(Tensor d, Tensor x, Tensor idx_i, Tensor idx_j, Tensor table, Tensor go, "
        "float spacing, float cutoff, SymInt n_two_way, SymInt n_out, bool want_x) -> (Tensor, Tensor)");
}

// the CPU kernels of the operators above whose schema is declared alone: a kernel for the
// CPU key (not a catch-all) lets torch.export trace them with their fake kernels (mlpot/ops/fake_kernels.py)
TORCH_LIBRARY_IMPL(mlpot, CPU, m) {
  m.impl("cfconv_tabulated_messages", &cfconv_tabulated_messages);
  m.impl("cfconv_tabulated_gradient", &cfconv_tabulated_gradient);
}

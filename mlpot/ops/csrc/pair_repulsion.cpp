// torch.ops.mlpot.pair_repulsion: the pair repulsion below the training data's shortest contacts
// (mlpot.model.nn.pair_repulsion) in one pass, for the written-out engines (no autograd): the compiled
// twin of PairRepulsion.edge_terms + atom_shares + edge_weights, same function.
//
// pair_repulsion(d [E], numbers [N] int64, idx_i [E], idx_j [E] int64, element_index [119] int64,
//                radius [M, S*S] Å, strength [M] eV, weight [N], n_two_way)
//   -> (energies [M, N] eV: ½ φ(d_e) to atom i of every edge, and to atom j of the first n_two_way;
//       grad_d [M, E] eV/Å: ∂(Σ_n weight_n energies_n)/∂d_e)
// with φ(r) = A (1 − x)³ / x, x = r / r_ab < 1 (0 beyond, and where r_ab = 0), r_ab =
// radius[m, s_i S + s_j], s = element_index[Z] (an element the model lacks counts as its first).
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <tuple>

namespace {

template <typename T>
void pair_repulsion_t(const T* d, const int64_t* z, const int64_t* ii, const int64_t* jj, const int64_t* element,
                      int64_t n_elements, const T* radius, const T* strength, const T* weight, int64_t M, int64_t N,
                      int64_t E, int64_t S, int64_t n_two_way, T* energies, T* grad) {
  for (int64_t m = 0; m < M; ++m) {
    const T* r_m = radius + m * S * S;
    const T a = strength[m];
    T* e_m = energies + m * N;
    T* g_m = grad + m * E;
    for (int64_t e = 0; e < E; ++e) {
      const int64_t i = ii[e], j = jj[e];
      const int64_t zi = z[i], zj = z[j];
      const int64_t si = (zi >= 0 && zi < n_elements) ? std::max<int64_t>(element[zi], 0) : 0;
      const int64_t sj = (zj >= 0 && zj < n_elements) ? std::max<int64_t>(element[zj], 0) : 0;
      const T r = r_m[si * S + sj];
      g_m[e] = T(0);
      if (!(r > T(0))) continue;
      const T x = std::max(d[e], T(1e-6)) / r;
      if (x >= T(1)) continue;
      const T u = T(1) - x, u2 = u * u;
      const T phi = a * u2 * u / x;
      const T slope = a * (T(-3) * u2 / x - u2 * u / (x * x)) / r;
      const bool both = e < n_two_way;
      e_m[i] += T(0.5) * phi;
      if (both) e_m[j] += T(0.5) * phi;
      g_m[e] = slope * T(0.5) * (weight[i] + (both ? weight[j] : T(0)));
    }
  }
}

std::tuple<torch::Tensor, torch::Tensor> pair_repulsion(const torch::Tensor& d, const torch::Tensor& numbers,
                                                        const torch::Tensor& idx_i, const torch::Tensor& idx_j,
                                                        const torch::Tensor& element_index, const torch::Tensor& radius,
                                                        const torch::Tensor& strength, const torch::Tensor& weight,
                                                        int64_t n_two_way) {
  TORCH_CHECK(d.device().is_cpu(), "mlpot::pair_repulsion runs on the CPU only");
  const int64_t E = d.numel(), N = numbers.numel(), M = strength.numel();
  TORCH_CHECK(idx_i.numel() == E && idx_j.numel() == E && weight.numel() == N && radius.dim() == 2 &&
                  radius.size(0) == M,
              "mlpot::pair_repulsion: d, idx_i, idx_j [E]; numbers, weight [N]; radius [M, S*S]; strength [M]");
  const int64_t S = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(radius.size(1)))));
  TORCH_CHECK(S * S == radius.size(1), "mlpot::pair_repulsion: radius must be [M, S*S]");
  TORCH_CHECK(n_two_way >= 0 && n_two_way <= E, "mlpot::pair_repulsion: n_two_way out of range");
  const auto opts = d.options();
  torch::Tensor energies = torch::zeros({M, N}, opts), grad = torch::empty({M, E}, opts);
  const torch::Tensor dc = d.detach().contiguous(), z = numbers.contiguous(), ii = idx_i.contiguous(),
                      jj = idx_j.contiguous(), el = element_index.contiguous();
  AT_DISPATCH_FLOATING_TYPES(dc.scalar_type(), "mlpot_pair_repulsion", [&] {
    const torch::Tensor r = radius.to(dc.scalar_type()).contiguous(), a = strength.to(dc.scalar_type()).contiguous(),
                        w = weight.to(dc.scalar_type()).contiguous();
    pair_repulsion_t<scalar_t>(dc.data_ptr<scalar_t>(), z.data_ptr<int64_t>(), ii.data_ptr<int64_t>(),
                               jj.data_ptr<int64_t>(), el.data_ptr<int64_t>(), el.numel(), r.data_ptr<scalar_t>(),
                               a.data_ptr<scalar_t>(), w.data_ptr<scalar_t>(), M, N, E, S, n_two_way,
                               energies.data_ptr<scalar_t>(), grad.data_ptr<scalar_t>());
  });
  return {energies, grad};
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(mlpot, m) {
  m.def("pair_repulsion(Tensor d, Tensor numbers, Tensor idx_i, Tensor idx_j, Tensor element_index, Tensor radius, "
        "Tensor strength, Tensor weight, SymInt n_two_way) -> (Tensor, Tensor)");
}

// the CPU kernels of the operators above whose schema is declared alone: a kernel for the
// CPU key (not a catch-all) lets torch.export trace them with their fake kernels (mlpot/ops/fake_kernels.py)
TORCH_LIBRARY_IMPL(mlpot, CPU, m) {
  m.impl("pair_repulsion", &pair_repulsion);
}

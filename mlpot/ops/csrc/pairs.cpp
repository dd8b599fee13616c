// torch.ops.mlpot.canonical_edges: one edge per unordered pair of a symmetric edge list, in one
// pass — the compiled twin of mlpot.model.representations.schnet.half_of_symmetric_list (same rule,
// same checksum), for exported SchNet models whose per-call fixed cost matters (small molecules).
//
// canonical_edges(idx_i [E], idx_j [E] int64, vectors [E, 3], n_atoms)
//   -> (index [E/2] int64 of the edges with i < j, or i == j and r_ij lexicographically
//       positive, in increasing order; symmetric: bool)
// symmetric is false (and index empty) when the checksum shows the list is not symmetric: the
// counts of both halves, and Σ key, Σ (key mod p)² of the pair key, must agree between the
// canonical half and the reversed other half (a zero-length self edge belongs to neither).
#include <torch/library.h>
#include <torch/torch.h>

#include <tuple>
#include <vector>

#include "pair_rule.h"

namespace {

template <typename T>
std::tuple<torch::Tensor, bool> canonical_edges_t(const int64_t* ii, const int64_t* jj, const T* v, int64_t E,
                                                   int64_t n_atoms) {
  constexpr int64_t PRIME = 1048573;  // < 2^20: Σ residue² fits in int64
  std::vector<int64_t> index;
  index.reserve(E / 2 + 1);
  int64_t sign_sum = 0, key_sum = 0, square_sum = 0;
  for (int64_t e = 0; e < E; ++e) {
    const int64_t i = ii[e], j = jj[e];
    const T* r = v + 3 * e;
    const bool canonical = mlpot::keeps_entry(i, j, r[0], r[1], r[2]);
    const bool reverse = mlpot::keeps_entry(j, i, -r[0], -r[1], -r[2]);   // the pair's other entry is kept
    if (canonical == reverse) return {torch::empty({0}, torch::kLong), false};  // zero-length self edge
    const int64_t sign = canonical ? 1 : -1;
    const int64_t key = canonical ? i * n_atoms + j : j * n_atoms + i;
    const int64_t residue = key % PRIME;
    sign_sum += sign;
    key_sum += sign * key;
    square_sum += sign * residue * residue;
    if (canonical) index.push_back(e);
  }
  if (sign_sum != 0 || key_sum != 0 || square_sum != 0) return {torch::empty({0}, torch::kLong), false};
  return {torch::tensor(index, torch::kLong), true};
}

std::tuple<torch::Tensor, bool> canonical_edges(const torch::Tensor& idx_i, const torch::Tensor& idx_j,
                                                const torch::Tensor& vectors, int64_t n_atoms) {
  TORCH_CHECK(idx_i.device().is_cpu() && idx_j.device().is_cpu() && vectors.device().is_cpu(),
              "mlpot::canonical_edges runs on the CPU only");
  TORCH_CHECK(idx_i.scalar_type() == torch::kLong && idx_j.scalar_type() == torch::kLong,
              "mlpot::canonical_edges: indices must be int64");
  const int64_t E = idx_i.numel();
  TORCH_CHECK(idx_i.dim() == 1 && idx_j.dim() == 1 && idx_j.numel() == E && vectors.dim() == 2 &&
                  vectors.size(0) == E && vectors.size(1) == 3,
              "mlpot::canonical_edges: idx_i, idx_j [E] and vectors [E, 3]");
  const torch::Tensor ii = idx_i.contiguous(), jj = idx_j.contiguous(), v = vectors.detach().contiguous();
  std::tuple<torch::Tensor, bool> result;
  AT_DISPATCH_FLOATING_TYPES(v.scalar_type(), "mlpot_canonical_edges", [&] {
    result = canonical_edges_t<scalar_t>(ii.data_ptr<int64_t>(), jj.data_ptr<int64_t>(), v.data_ptr<scalar_t>(), E,
                                         n_atoms);
  });
  return result;
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(mlpot, m) {
  m.def("canonical_edges(Tensor idx_i, Tensor idx_j, Tensor vectors, int n_atoms) -> (Tensor, bool)",
        &canonical_edges);
}

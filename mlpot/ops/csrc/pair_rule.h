// The pair rule, once in C++ (Python: mlpot.model.representations.schnet.half_of_symmetric_list):
// of the two entries (a, b, s) and (b, a, −s) of one unordered pair in a symmetric neighbour
// list, keep the one with a < b, or, for an atom and its own periodic image (a == b), the one
// whose shift s is lexicographically positive. Used by torch.ops.mlpot.canonical_edges
// (pairs.cpp: atom indices and edge vectors) and the LAMMPS plugin (pair_mlpot_edges.cpp: atom tags
// and integer lattice shifts).
#pragma once

namespace mlpot {

// s0 > 0, or s0 == 0 and (s1 > 0, or s1 == 0 and s2 > 0)
template <typename T>
inline bool lexicographically_positive(T s0, T s1, T s2) {
  return s0 > 0 || (s0 == 0 && (s1 > 0 || (s1 == 0 && s2 > 0)));
}

// whether the entry (a, b, s) is the one kept of its pair
template <typename K, typename T>
inline bool keeps_entry(K a, K b, T s0, T s1, T s2) {
  return a < b || (a == b && lexicographically_positive(s0, s1, s2));
}

}  // namespace mlpot

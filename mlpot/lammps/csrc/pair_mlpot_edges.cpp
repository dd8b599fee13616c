/* pair_style mlpot: the edges of a step and the atoms the model sees. The whole model on a ghost
   shell (build_edges, keep_needed_edges), the pairs of the feature exchange (build_local_edges,
   with the pair rule of pair_rule.h, shared with the kernels), the refusal of overlapping atoms,
   and with NULL types the compact model order (select_model_atoms, edges_to_model_indices,
   model_positions, model_numbers). */
#include "pair_mlpot.h"

#include "mlpot_model.h"
#include "pair_rule.h"   // mlpot/ops/csrc: the pair rule shared with torch.ops.mlpot.canonical_edges

#include "atom.h"
#include "domain.h"
#include "error.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include <cmath>

using namespace LAMMPS_NS;

// Two atoms closer than this (A) overlap: no chemistry has such a pair and no model has data there
// (the same limit as mlpot.data.neighbors.MIN_DISTANCE in Python).
static constexpr double MIN_DISTANCE = 0.2;

void PairMLPot::refuse_overlap(int i, int j, double rsq) {
  error->one(FLERR, "pair mlpot: atoms {} and {} are {:.3g} A apart at step {}, closer than {} A: overlapping "
                    "atoms, where no model has data; check the input structure, or stop such a run earlier "
                    "(smaller timestep, pair_style mlpot ... halt_deviation X with a committee)",
             atom->tag ? atom->tag[i] : i, atom->tag ? atom->tag[j] : j, std::sqrt(rsq), update->ntimestep,
             MIN_DISTANCE);
}

void PairMLPot::build_edges() {
  double **x = atom->x;
  const double cutoff = model_->info().cutoff;
  const double cutsq_model = cutoff * cutoff;
  const int n_with_neighbors = list->inum + list->gnum;
  edge_i_.clear();
  edge_j_.clear();
  const bool skip_null = has_null_;     // no edge to or from an atom of a NULL type
  for (int ii = 0; ii < n_with_neighbors; ii++) {
    const int i = list->ilist[ii];
    if (skip_null && numbers_[i] == 0) continue;
    const int *neighbors = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = neighbors[jj] & NEIGHMASK;
      if (skip_null && numbers_[j] == 0) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq < MIN_DISTANCE * MIN_DISTANCE) refuse_overlap(i, j, rsq);
      if (rsq < cutsq_model) {
        edge_i_.push_back(i);
        edge_j_.push_back(j);
      }
    }
  }
  keep_needed_edges();
}

void PairMLPot::keep_needed_edges() {
  // The energy of the local atoms after T layers needs layer-(T-1) features of atoms one
  // hop away, ..., layer-1 features of atoms T-1 hops away: only atoms at most T-1 hops
  // (edges within the cutoff) from a local atom receive messages. Edges into atoms further
  // out only change energies that are never summed, so they are dropped (exact).
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int n_layers = model_->info().n_interactions > 0 ? model_->info().n_interactions : 1;
  const int far = n_layers;  // hop count of every atom not reached within n_layers - 1 hops
  hops_.assign(nall, far);
  for (int i = 0; i < nlocal; i++) hops_[i] = 0;
  const size_t n_edges = edge_i_.size();
  for (int hop = 0; hop < n_layers - 1; hop++)
    for (size_t e = 0; e < n_edges; e++)
      if (hops_[edge_i_[e]] == hop && hops_[edge_j_[e]] > hop + 1) hops_[edge_j_[e]] = hop + 1;
  size_t kept = 0;
  for (size_t e = 0; e < n_edges; e++) {
    if (hops_[edge_i_[e]] < far) {
      edge_i_[kept] = edge_i_[e];
      edge_j_[kept] = edge_j_[e];
      kept++;
    }
  }
  edge_i_.resize(kept);
  edge_j_.resize(kept);
}

// Whether the entry (atom with tag a, image of the atom with tag b at r = x_image − x_atom =
// S·cell) is the one of its pair that the pair rule keeps (pair_rule.h). The lattice shift S
// comes from the box's inverse matrix (LAMMPS' h_inv, as in Domain::x2lamda) rounded to
// integers, so it is exact: r itself is not, and for shifts with a zero component (c − b in a
// triclinic cell, say) rounding can give both r and −r the same sign there, which would keep
// both entries of the pair or neither.
static bool keeps_image_entry(tagint a, tagint b, const double *h_inv, double dx, double dy, double dz) {
  const long s0 = std::lround(h_inv[0] * dx + h_inv[5] * dy + h_inv[4] * dz);
  const long s1 = std::lround(h_inv[1] * dy + h_inv[3] * dz);
  const long s2 = std::lround(h_inv[2] * dz);
  return mlpot::keeps_entry(a, b, s0, s1, s2);
}

int PairMLPot::build_local_edges() {
  // Pairs once, messages both ways: two local atoms (i < j; the full list holds both
  // directions), and a local atom with a periodic image (a ghost) of another local atom, whose
  // features are then that atom's own — the ghost j is mapped to its owner o, and of the two
  // entries of the pair (i with o's image, o with i's image) the one with tag i < tag o is kept
  // (equal tags, an atom and its own image: the one whose lattice shift is lexicographically
  // positive; pair_rule.h, keeps_image_entry).
  // Then edges from the remaining ghosts (owned by other ranks) into local atoms, one way.
  double **x = atom->x;
  const tagint *tag = atom->tag;
  const int nlocal = atom->nlocal;
  const double cutoff = model_->info().cutoff;
  const double cutsq_model = cutoff * cutoff;
  if (neighbor->ago == 0 || static_cast<int>(local_of_tag_.size()) != nlocal) {
    // local indices and tags only change when LAMMPS re-neighbours (atoms migrate, are sorted)
    local_of_tag_.clear();
    local_of_tag_.reserve(2 * nlocal);
    for (int i = 0; i < nlocal; i++) local_of_tag_[tag[i]] = i;
  }
  edge_i_.clear();
  edge_j_.clear();
  feature_j_.clear();
  ghost_edge_i_.clear();
  ghost_edge_j_.clear();
  const bool skip_null = has_null_;     // no edge to or from an atom of a NULL type
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    if (skip_null && numbers_[i] == 0) continue;
    const int *neighbors = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = neighbors[jj] & NEIGHMASK;
      if (j < nlocal && !mlpot::keeps_entry(i, j, 0, 0, 0)) continue;   // two local atoms: i < j
      if (skip_null && numbers_[j] == 0) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      const double rsq = dx * dx + dy * dy + dz * dz;
      if (rsq < MIN_DISTANCE * MIN_DISTANCE) refuse_overlap(i, j, rsq);
      if (rsq >= cutsq_model) continue;
      int owner = j;
      if (j >= nlocal) {
        const auto found = local_of_tag_.find(tag[j]);
        owner = found == local_of_tag_.end() ? -1 : found->second;
      }
      if (owner < 0) {                       // a ghost of another rank's atom: one way
        ghost_edge_i_.push_back(i);
        ghost_edge_j_.push_back(j);
        continue;
      }
      if (j >= nlocal && !keeps_image_entry(tag[i], tag[j], domain->h_inv, dx, dy, dz))
        continue;                            // the other entry of this pair is kept
      edge_i_.push_back(i);
      edge_j_.push_back(j);
      feature_j_.push_back(owner);
    }
  }
  const int n_two_way = static_cast<int>(edge_i_.size());
  edge_i_.insert(edge_i_.end(), ghost_edge_i_.begin(), ghost_edge_i_.end());
  edge_j_.insert(edge_j_.end(), ghost_edge_j_.begin(), ghost_edge_j_.end());
  feature_j_.insert(feature_j_.end(), ghost_edge_j_.begin(), ghost_edge_j_.end());
  return n_two_way;
}

void PairMLPot::select_model_atoms(int nlocal, int nall) {
  // LAMMPS orders local atoms before ghosts, so keeping that order keeps the model's local atoms first
  double **x = atom->x;
  model_of_atom_.assign(nall, -1);
  atom_of_model_.clear();
  model_x_.clear();
  model_numbers_.clear();
  n_model_local_ = 0;
  for (int i = 0; i < nall; i++) {
    if (numbers_[i] == 0) continue;
    model_of_atom_[i] = static_cast<int>(atom_of_model_.size());
    atom_of_model_.push_back(i);
    model_numbers_.push_back(numbers_[i]);
    model_x_.insert(model_x_.end(), x[i], x[i] + 3);
    if (i < nlocal) n_model_local_++;
  }
  n_model_ = static_cast<int>(atom_of_model_.size());
}

void PairMLPot::edges_to_model_indices() {
  for (auto &i : edge_i_) i = model_of_atom_[i];
  for (auto &j : edge_j_) j = model_of_atom_[j];
  if (exchange_)
    for (auto &j : feature_j_) j = model_of_atom_[j];
}

const double *PairMLPot::model_positions() const { return has_null_ ? model_x_.data() : &atom->x[0][0]; }

const int64_t *PairMLPot::model_numbers() const { return has_null_ ? model_numbers_.data() : numbers_.data(); }

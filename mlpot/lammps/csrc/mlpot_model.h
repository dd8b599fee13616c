/* An exported mlpot model (a TorchScript file, or an AOTInductor package (.pt2) whose "lammps"
   model runs the whole graph; mlpot.json metadata either way) behind a plain C++ interface, so
   that only mlpot_model.cpp compiles against libtorch. */
#ifndef MLPOT_MODEL_H
#define MLPOT_MODEL_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlpot {

// What LAMMPS needs to know from mlpot.json.
struct ModelInfo {
  int format_version = 0;
  std::string mlpot_version;
  double cutoff = 0.0;                // Å
  int n_interactions = 0;             // message-passing layers: ghost shell = n_interactions × cutoff
  std::vector<int64_t> species;       // atomic numbers the model knows
  std::vector<std::string> symbols;   // their element symbols, same order
  std::string dtype;                  // "float32" | "float64"
  bool per_layer = false;             // the file has embed / interaction / readout (SchNet)
  int n_features = 0;                 // F, width of the features exchanged between layers
  bool pair_terms = false;            // per-layer file with pair_terms (the short-range pair repulsion)
  bool written_out = false;           // per-layer file with interaction_forward / _backward and
                                      // readout_gradient: the exchange path records no autograd graph
  bool atom_virial = false;           // forward takes compute_atom_virial (files exported before
                                      // it existed do not: the shell path has no per-atom virial then)
  bool declared = false;              // format version >= 2 with "provides": the fields above are
                                      // read from mlpot.json; version-1 files are probed
  bool angle_triplets = false;        // a .pt2 of wACSF / ACSF: its lammps model takes the edges' angle
                                      // triplets too (mlpot.deploy.pt2_symmetry)
  bool pt2 = false;                   // an AOTInductor package (.pt2, mlpot.deploy.pt2_lammps and
                                      // pt2_exchange): the whole graph (evaluate), the layers where
                                      // it holds their models (per_layer)
  int n_members = 1;                  // a committee package's members (metadata n_members), each
                                      // with its own whole-graph model lammps_{m}
};

// The pair style's LAMMPS communication of per-atom rows of `width` numbers ([nall*width],
// local atoms first, then ghosts; width = the calling model's n_features), between
// message-passing layers: float64, or float32 for float32 models (half the bytes to move). Every
// rank must call the same overload with the same width, atoms or not.
class FeatureExchange {
 public:
  virtual ~FeatureExchange() = default;
  virtual void owned_to_ghosts(double *rows, int width) = 0;   // forward: ghost rows := their owners' rows
  virtual void owned_to_ghosts(float *rows, int width) = 0;
  virtual void ghosts_to_owned(double *rows, int width) = 0;   // reverse: owners' rows += their ghosts' rows
  virtual void ghosts_to_owned(float *rows, int width) = 0;
  // false when one process holds every atom (one MPI rank): then each ghost is a periodic image
  // whose edges carry its owner's row, and a layer whose rows are all local may skip the exchange
  virtual bool across_ranks() const { return true; }
};

// One evaluation for one MPI rank: local atoms first, then ghosts.
struct Result {
  double energy = 0.0;                // eV, sum over atoms < n_local
  std::vector<double> forces;         // [N*3] eV/Å on every atom, ghosts included
  std::vector<double> energies;       // [N] eV per atom (filled when asked)
  double virial[9] = {0};             // eV, -dE/dε row-major (filled when asked)
  // [N*9] eV per atom, row-major 3x3, ghosts included (filled when asked): −½ r_e ⊗ ∂E/∂r_e to
  // both atoms of every edge e, unsymmetrised (row: the edge vector's component, column: the
  // gradient's). Summed over atoms (ghosts to their owners) it is −Σ_e r_e ⊗ ∂E/∂r_e, whose
  // symmetric part is the virial.
  std::vector<double> atom_virial;
};

class Model {
 public:
  // Throws std::runtime_error with a one-line message when `path` is not an mlpot export.
  // `member`: which member of a committee package (.pt2 with info().n_members > 1) this is.
  explicit Model(const std::string &path, int member = 0);
  ~Model();
  const ModelInfo &info() const { return info_; }

  // positions [n*3] Å, numbers [n], edges (i, j) with j a neighbour of i (both directions
  // listed), cell [9] Å rows. Shift vectors are zero: periodic images are explicit atoms.
  void evaluate(const double *positions, const int64_t *numbers, int64_t n,
                const std::vector<int64_t> &edge_i, const std::vector<int64_t> &edge_j,
                const double *cell, int64_t n_local, bool want_virial, bool want_energies,
                Result &out, bool want_atom_virial = false);   // the latter needs info().atom_virial

  // Layer by layer (info().per_layer): features of ghosts come from their owners through
  // `exchange` after each layer, gradients go back before each earlier layer, so the ghosts
  // need only reach one cutoff. Edges (i < n_local, j any atom), r_e = x_j − x_i, messages
  // j -> i carrying the features of atom feature_j[e] (j itself, or the local atom a ghost j
  // is an image of); the first n_two_way edges are pairs of local atoms (or of a local atom
  // and the owner of a periodic image) listed once, messages both ways. Positions [n*3] Å.
  // Forces on local and ghost atoms; virial −Σ_e r_e ⊗ ∂E/∂r_e (symmetrised); per-atom virial
  // as in Result (any per-layer file: it needs only the edge gradients).
  void evaluate_per_layer(const double *positions, const int64_t *numbers, int64_t n,
                          const std::vector<int64_t> &edge_i, const std::vector<int64_t> &edge_j,
                          const std::vector<int64_t> &feature_j, int64_t n_two_way, int64_t n_local,
                          bool want_virial, bool want_energies, FeatureExchange &exchange, Result &out,
                          bool want_atom_virial = false);

 private:
  void load_pt2(const std::string &path, const std::vector<std::string> &records, int member);   // the constructor's, for a .pt2
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ModelInfo info_;
};

}  // namespace mlpot

#endif

/* An exported mlpot model (TorchScript file with mlpot.json metadata) behind a plain C++
   interface, so that only mlpot_model.cpp compiles against libtorch. */
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
};

// One evaluation for one MPI rank: local atoms first, then ghosts.
struct Result {
  double energy = 0.0;                // eV, sum over atoms < n_local
  std::vector<double> forces;         // [N*3] eV/Å on every atom, ghosts included
  std::vector<double> energies;       // [N] eV per atom (filled when asked)
  double virial[9] = {0};             // eV, -dE/dε row-major (filled when asked)
};

class Model {
 public:
  // Throws std::runtime_error with a one-line message when `path` is not an mlpot export.
  explicit Model(const std::string &path);
  ~Model();
  const ModelInfo &info() const { return info_; }

  // positions [n*3] Å, numbers [n], edges (i, j) with j a neighbour of i (both directions
  // listed), cell [9] Å rows. Shift vectors are zero: periodic images are explicit atoms.
  void evaluate(const double *positions, const int64_t *numbers, int64_t n,
                const std::vector<int64_t> &edge_i, const std::vector<int64_t> &edge_j,
                const double *cell, int64_t n_local, bool want_virial, bool want_energies,
                Result &out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  ModelInfo info_;
};

}  // namespace mlpot

#endif

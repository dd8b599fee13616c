/* pair_style mlpot: the committee deviation (pair_mlpot.h): on output steps every member on the
   first model's edges, the force deviation per owned atom and its statistics over ranks, the
   deviation file (rank 0) and halt_deviation. */
#include "pair_mlpot.h"

#include "mlpot_model.h"

#include "comm.h"
#include "error.h"
#include "update.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>

using namespace LAMMPS_NS;

void PairMLPot::open_deviation_file() {
  if (deviation_fp_) return;
  deviation_fp_ = fopen(out_file_.c_str(), deviation_fresh_ ? "w" : "a");
  if (!deviation_fp_)
    error->one(FLERR, "pair mlpot: cannot open the committee deviation file {}: {}; give another out_file in {}",
               out_file_, strerror(errno), STYLE_SYNTAX);
  if (deviation_fresh_) {
    fprintf(deviation_fp_, "#%11s %22s %22s %22s %22s\n", "step", "max_devi_f", "min_devi_f", "avg_devi_f", "devi_e");
    fflush(deviation_fp_);
  }
  deviation_fresh_ = false;
}

bool PairMLPot::deviation_step() const {
  return !members_.empty() && out_freq_ > 0 && update->ntimestep % out_freq_ == 0;
}

void PairMLPot::compute_deviation(int nlocal, int nall) {
  // Every committee member on this step's edges (those of the first model, built in compute),
  // without virial or per-atom energies; nothing of it goes to LAMMPS' forces or energy.
  const int n_models = static_cast<int>(members_.size()) + 1;
  std::vector<double> energies(n_models, 0.0);    // this rank's share (sum over local atoms)
  double none = 0.0;
  double cell[9];
  cell_rows(cell);
  for (size_t m = 0; m < members_.size(); m++) {
    mlpot::Model &member = *members_[m];
    mlpot::Result &r = member_results_[m];
    if (n_model_ == 0) {
      if (exchange_) exchange_nothing(member.info());   // the neighbouring ranks' exchanges still need this rank
      continue;
    }
    try {
      if (exchange_)
        member.evaluate_per_layer(model_positions(), model_numbers(), n_model_, edge_i_, edge_j_, feature_j_,
                                  n_two_way_, n_model_local_, false, false, *exchange_impl_, r);
      else
        member.evaluate(model_positions(), model_numbers(), n_model_, edge_i_, edge_j_, cell, n_model_local_, false,
                        false, r);
    } catch (const std::exception &e) {
      error->one(FLERR, "pair mlpot: evaluation of committee member {} failed: {}", model_paths_[m + 1], e.what());
    }
    energies[m + 1] = r.energy;
  }

  // Each model's full forces on owned atoms: its forces on ghosts summed back to their owners.
  const size_t stride = 3 * static_cast<size_t>(nall);
  if (!has_null_) {
    committee_forces_.resize(n_models * stride);
    if (nall > 0) {
      energies[0] = result_->energy;
      std::copy(result_->forces.begin(), result_->forces.begin() + stride, committee_forces_.begin());
      for (size_t m = 0; m < members_.size(); m++)
        std::copy(member_results_[m].forces.begin(), member_results_[m].forces.begin() + stride,
                  committee_forces_.begin() + (m + 1) * stride);
    }
  } else {   // the model's rows into LAMMPS order, zero for atoms of NULL types
    committee_forces_.assign(n_models * stride, 0.0);
    if (n_model_ > 0) {
      energies[0] = result_->energy;
      for (int m = 0; m < n_models; m++) {
        const std::vector<double> &forces = m == 0 ? result_->forces : member_results_[m - 1].forces;
        for (int a = 0; a < n_model_; a++)
          for (int k = 0; k < 3; k++) committee_forces_[m * stride + 3 * atom_of_model_[a] + k] = forces[3 * a + k];
      }
    }
  }
  for (int m = 0; m < n_models; m++)
    communicate_rows(nall > 0 ? committee_forces_.data() + m * stride : &none, 3, false);

  // forces_std of each owned atom; max, -min, then sum, count and the models' energies over ranks
  double extremes[2] = {-std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity()};
  std::vector<double> sums(2 + n_models, 0.0);
  for (int i = 0; i < nlocal; i++) {
    if (has_null_ && model_of_atom_[i] < 0) continue;   // not an atom of the model
    double mean[3] = {0.0, 0.0, 0.0};
    for (int m = 0; m < n_models; m++)
      for (int k = 0; k < 3; k++) mean[k] += committee_forces_[m * stride + 3 * i + k];
    for (int k = 0; k < 3; k++) mean[k] /= n_models;
    double spread = 0.0;
    for (int m = 0; m < n_models; m++)
      for (int k = 0; k < 3; k++) {
        const double d = committee_forces_[m * stride + 3 * i + k] - mean[k];
        spread += d * d;
      }
    const double std_i = std::sqrt(spread / n_models);
    extremes[0] = std::max(extremes[0], std_i);
    extremes[1] = std::max(extremes[1], -std_i);
    sums[0] += std_i;
  }
  sums[1] = has_null_ ? n_model_local_ : nlocal;
  for (int m = 0; m < n_models; m++) sums[2 + m] = energies[m];
  double global_extremes[2];
  std::vector<double> global_sums(sums.size());
  MPI_Allreduce(extremes, global_extremes, 2, MPI_DOUBLE, MPI_MAX, world);
  MPI_Allreduce(sums.data(), global_sums.data(), static_cast<int>(sums.size()), MPI_DOUBLE, MPI_SUM, world);
  const double count = global_sums[1];
  const double max_std = count > 0 ? global_extremes[0] : 0.0;
  if (comm->me == 0) write_deviation(global_extremes, global_sums, n_models);
  // every rank has the global maximum: all stop together, after rank 0 wrote this step's line
  if (halt_deviation_ > 0 && !(max_std <= halt_deviation_))
    error->all(FLERR, "pair mlpot: committee force deviation {:.4g} eV/A at step {} passed halt_deviation {} "
                      "eV/A: the structure has left the training data (line in {}); label such frames with the "
                      "reference and retrain (mlpot learn), or raise halt_deviation", max_std,
               update->ntimestep, halt_deviation_, out_file_);
}

void PairMLPot::write_deviation(const double *global_extremes, const std::vector<double> &global_sums,
                                int n_models) {
  const double count = global_sums[1];
  const double max_std = count > 0 ? global_extremes[0] : 0.0;
  const double min_std = count > 0 ? -global_extremes[1] : 0.0;
  const double mean_std = count > 0 ? global_sums[0] / count : 0.0;
  double mean_energy = 0.0, energy_spread = 0.0;
  for (int m = 0; m < n_models; m++) mean_energy += global_sums[2 + m];
  mean_energy /= n_models;
  for (int m = 0; m < n_models; m++) energy_spread += (global_sums[2 + m] - mean_energy) * (global_sums[2 + m] - mean_energy);
  const double energy_std = std::sqrt(energy_spread / n_models);
  open_deviation_file();
  fprintf(deviation_fp_, "%12" PRId64 " %22.15e %22.15e %22.15e %22.15e\n", static_cast<int64_t>(update->ntimestep),
          max_std, min_std, mean_std, energy_std);
  fflush(deviation_fp_);
}

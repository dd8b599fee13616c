/* pair_style mlpot: communication of per-atom rows and the feature exchange between layers. The
   pair style's forward and reverse communication (communicate_rows, pack / unpack, add_rows),
   used for features here and for the committee's forces in pair_mlpot_deviation.cpp; the
   FeatureExchange the model calls between layers (LammpsFeatureExchange, exchange_rows,
   exchange_nothing); and the evaluation of a step with features exchanged (compute_exchange). */
#include "pair_mlpot.h"

#include "mlpot_model.h"

#include "atom.h"
#include "comm.h"
#include "error.h"

#include <algorithm>
#include <cstring>
#include <exception>

using namespace LAMMPS_NS;

namespace LAMMPS_NS {
// FeatureExchange through the pair style's forward and reverse communication.
class LammpsFeatureExchange : public mlpot::FeatureExchange {
 public:
  explicit LammpsFeatureExchange(PairMLPot *pair) : pair_(pair) {}
  void owned_to_ghosts(double *rows, int width) override { pair_->exchange_rows(rows, width, true); }
  void owned_to_ghosts(float *rows, int width) override { pair_->exchange_rows(rows, width, true); }
  void ghosts_to_owned(double *rows, int width) override { pair_->exchange_rows(rows, width, false); }
  void ghosts_to_owned(float *rows, int width) override { pair_->exchange_rows(rows, width, false); }
  bool across_ranks() const override { return pair_->comm->nprocs > 1; }

 private:
  PairMLPot *pair_;
};
}  // namespace LAMMPS_NS

std::unique_ptr<mlpot::FeatureExchange> PairMLPot::make_feature_exchange() {
  return std::make_unique<LammpsFeatureExchange>(this);
}

// Forward (owned -> ghost copies) or reverse (ghosts summed into owners) communication of
// per-atom rows of `width` numbers of type T (double, or float for float32 models), [nall * width]
// with local atoms first. LAMMPS' buffers hold doubles: a row travels as ceil(width·sizeof(T)/8) of
// them, which must not exceed comm_forward / comm_reverse (sized for the widest model's features
// as doubles, or 3 force components).
template <typename T> void PairMLPot::communicate_rows(T *rows, int width, bool forward) {
  const int doubles = static_cast<int>((width * sizeof(T) + sizeof(double) - 1) / sizeof(double));
  if (doubles > (forward ? comm_forward : comm_reverse))
    error->one(FLERR, "pair mlpot: internal error: a communication of {} doubles per atom exceeds comm_{} = {}",
               doubles, forward ? "forward" : "reverse", forward ? comm_forward : comm_reverse);
  comm_rows_ = reinterpret_cast<char *>(rows);
  comm_row_bytes_ = width * sizeof(T);
  comm_width_ = doubles;
  comm_single_ = sizeof(T) == sizeof(float);
  if (forward) comm->forward_comm(this, doubles);
  else comm->reverse_comm(this, doubles);
  comm_rows_ = nullptr;
  comm_width_ = 0;
}

// used by exchange_rows here and by compute_deviation (pair_mlpot_deviation.cpp)
template void PairMLPot::communicate_rows<double>(double *rows, int width, bool forward);
template void PairMLPot::communicate_rows<float>(float *rows, int width, bool forward);

// The feature exchange of the model's rows ([n_model_ * width], model order). Without NULL types
// the model's order is LAMMPS' and the rows are communicated in place; with them, through
// LAMMPS-ordered rows (zero for atoms of NULL types, whose ghosts are never read).
template <typename T> void PairMLPot::exchange_rows(T *rows, int width, bool forward) {
  if (!has_null_) {
    communicate_rows(rows, width, forward);
    return;
  }
  const size_t nall = static_cast<size_t>(atom->nlocal + atom->nghost);
  const size_t values = nall * width;
  full_rows_.assign((values * sizeof(T) + sizeof(double) - 1) / sizeof(double), 0.0);
  T *full = reinterpret_cast<T *>(full_rows_.data());
  for (int m = 0; m < n_model_; m++)
    std::copy(rows + (size_t) m * width, rows + (size_t) (m + 1) * width, full + (size_t) atom_of_model_[m] * width);
  communicate_rows(full, width, forward);
  for (int m = 0; m < n_model_; m++)
    std::copy(full + (size_t) atom_of_model_[m] * width, full + (size_t) (atom_of_model_[m] + 1) * width,
              rows + (size_t) m * width);
}

// A rank without atoms of the model still takes part in every exchange of an evaluation on the
// other ranks: the same calls, in the member's row type.
void PairMLPot::exchange_nothing(const mlpot::ModelInfo &info) {
  double none = 0.0;
  float none_single = 0.0f;
  const bool single = info.dtype == "float32";
  for (int t = 0; t + 1 < info.n_interactions; t++)
    single ? exchange_impl_->owned_to_ghosts(&none_single, info.n_features)
           : exchange_impl_->owned_to_ghosts(&none, info.n_features);
  for (int t = 0; t + 1 < info.n_interactions; t++)
    single ? exchange_impl_->ghosts_to_owned(&none_single, info.n_features)
           : exchange_impl_->ghosts_to_owned(&none, info.n_features);
}

// A row is comm_row_bytes_ in comm_rows_ and comm_width_ doubles in LAMMPS' buffers.
int PairMLPot::pack_forward_comm(int n, int *list, double *buf, int, int *) {
  for (int k = 0; k < n; k++)
    std::memcpy(buf + (size_t) k * comm_width_, comm_rows_ + (size_t) list[k] * comm_row_bytes_, comm_row_bytes_);
  return n * comm_width_;
}

void PairMLPot::unpack_forward_comm(int n, int first, double *buf) {
  for (int k = 0; k < n; k++)
    std::memcpy(comm_rows_ + (size_t) (first + k) * comm_row_bytes_, buf + (size_t) k * comm_width_, comm_row_bytes_);
}

int PairMLPot::pack_reverse_comm(int n, int first, double *buf) {
  for (int k = 0; k < n; k++)
    std::memcpy(buf + (size_t) k * comm_width_, comm_rows_ + (size_t) (first + k) * comm_row_bytes_, comm_row_bytes_);
  return n * comm_width_;
}

template <typename T> static void add_rows(int n, const int *list, const double *buf, char *rows, size_t row_bytes,
                                           int stride) {
  const size_t width = row_bytes / sizeof(T);
  for (int k = 0; k < n; k++) {
    T *row = reinterpret_cast<T *>(rows + (size_t) list[k] * row_bytes);
    const T *add = reinterpret_cast<const T *>(buf + (size_t) k * stride);
    for (size_t c = 0; c < width; c++) row[c] += add[c];
  }
}

void PairMLPot::unpack_reverse_comm(int n, int *list, double *buf) {
  if (comm_single_) add_rows<float>(n, list, buf, comm_rows_, comm_row_bytes_, comm_width_);
  else add_rows<double>(n, list, buf, comm_rows_, comm_row_bytes_, comm_width_);
}

void PairMLPot::compute_exchange(int, int) {
  if (n_model_ == 0) {   // no atoms of the model here, but the neighbouring ranks' exchanges still need this one
    exchange_nothing(model_->info());
    return;
  }
  n_two_way_ = build_local_edges();
  if (has_null_) edges_to_model_indices();
  mlpot::Result &r = *result_;
  try {
    model_->evaluate_per_layer(model_positions(), model_numbers(), n_model_, edge_i_, edge_j_, feature_j_,
                               n_two_way_, n_model_local_, vflag_global != 0, eflag_atom != 0, *exchange_impl_, r,
                               want_atom_virial());
  } catch (const std::exception &e) {
    error->one(FLERR, "pair mlpot: model evaluation failed: {}", e.what());
  }
}

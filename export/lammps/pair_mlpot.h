/* pair_style mlpot: an exported mlpot model (message-passing network) as a LAMMPS pair style.

   pair_style mlpot [exchange | shell]
   pair_coeff * * model.pt C H O      (one element symbol per LAMMPS atom type, in order)

   exchange (default when the model file has its layers one at a time, SchNet): ghosts within
   one cutoff (+ skin); after each layer the new features of owned atoms go to their ghost
   copies (forward communication), and in the backward pass the feature gradients of ghosts
   go back to their owners (reverse communication).
   shell (default otherwise): the whole model on local atoms plus a ghost shell of
   n_interactions × cutoff (+ skin), edges from a full neighbour list that includes ghosts.
   Either way the energy sums over local atoms only; forces go to local and ghost atoms and
   LAMMPS sums the ghost forces back to their owners (newton pair on). */
#ifndef LMP_PAIR_MLPOT_H
#define LMP_PAIR_MLPOT_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace mlpot {
class Model;
struct Result;
class FeatureExchange;
}  // namespace mlpot

namespace LAMMPS_NS {

class PairMLPot : public Pair {
 public:
  PairMLPot(class LAMMPS *);
  ~PairMLPot() override;

  void compute(int eflag, int vflag) override;
  void settings(int narg, char **arg) override;
  void coeff(int narg, char **arg) override;
  void init_style() override;
  double init_one(int i, int j) override;
  int pack_forward_comm(int n, int *list, double *buf, int pbc_flag, int *pbc) override;
  void unpack_forward_comm(int n, int first, double *buf) override;
  int pack_reverse_comm(int n, int first, double *buf) override;
  void unpack_reverse_comm(int n, int *list, double *buf) override;

 private:
  std::unique_ptr<mlpot::Model> model_;
  std::unique_ptr<mlpot::Result> result_;
  std::vector<int64_t> type_to_z_;      // [ntypes + 1] atomic number of each LAMMPS type, 0 = none
  std::vector<int64_t> numbers_;        // [nall] atomic numbers, reused between steps
  std::vector<int64_t> edge_i_, edge_j_;
  std::vector<int> hops_;               // [nall] message-passing hops from the nearest local atom
  enum class Mode { Automatic, Exchange, Shell };
  Mode requested_ = Mode::Automatic;    // from pair_style
  bool exchange_ = false;               // this run exchanges features between layers
  double *comm_rows_ = nullptr;         // [nall * comm_forward] rows being communicated
  std::unique_ptr<mlpot::FeatureExchange> exchange_impl_;
  friend class LammpsFeatureExchange;

  void allocate();
  void build_edges();                   // model edges from the full ghost neighbour list
  void keep_needed_edges();             // drop edges into atoms >= n_interactions hops out
  int build_local_edges();              // exchange mode: local pairs once (periodic images of
                                        // local atoms mapped to them), then ghost -> local;
                                        // returns the number of pairs (two-way edges)
  std::vector<int64_t> ghost_edge_i_, ghost_edge_j_;
  std::vector<int64_t> feature_j_;      // exchange mode: whose features edge e carries
  std::unordered_map<tagint, int> local_of_tag_;   // exchange mode: local index of each owned atom,
                                                   // rebuilt when LAMMPS re-neighbours
  void compute_exchange(int nlocal, int nall);
  void accumulate(int nlocal, int nall);  // result_ into energy, forces, eatom, virial
  void choose_mode();                   // after the model is read
  double ghost_shell() const;           // Å, n_interactions × cutoff + skin
};

}  // namespace LAMMPS_NS

#endif

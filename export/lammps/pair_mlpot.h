/* pair_style mlpot: an exported mlpot model (message-passing network) as a LAMMPS pair style.

   pair_style mlpot
   pair_coeff * * model.pt C H O      (one element symbol per LAMMPS atom type, in order)

   Each rank evaluates the model on its local atoms plus a ghost shell of
   n_interactions × cutoff (+ skin), with edges from a full neighbour list that includes
   ghost atoms. The energy sums over local atoms only; forces go to local and ghost atoms
   and LAMMPS sums the ghost forces back to their owners (newton pair on). */
#ifndef LMP_PAIR_MLPOT_H
#define LMP_PAIR_MLPOT_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlpot {
class Model;
struct Result;
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

 private:
  std::unique_ptr<mlpot::Model> model_;
  std::unique_ptr<mlpot::Result> result_;
  std::vector<int64_t> type_to_z_;      // [ntypes + 1] atomic number of each LAMMPS type, 0 = none
  std::vector<int64_t> numbers_;        // [nall] atomic numbers, reused between steps
  std::vector<int64_t> edge_i_, edge_j_;
  std::vector<int> hops_;               // [nall] message-passing hops from the nearest local atom

  void allocate();
  void build_edges();                   // model edges from the full ghost neighbour list
  void keep_needed_edges();             // drop edges into atoms >= n_interactions hops out
  double ghost_shell() const;           // Å, n_interactions × cutoff + skin
};

}  // namespace LAMMPS_NS

#endif

/* pair_style mlpot: an exported mlpot model (message-passing network) as a LAMMPS pair style.

   pair_style mlpot [exchange | shell] [out_freq N] [out_file FILE]
   pair_coeff * * model_0.pt [model_1.pt ...] C H O   (one element symbol per LAMMPS atom type, in order)

   Model files: TorchScript (.pt), or AOTInductor packages (.pt2, mlpot.deploy.pt2_lammps), which
   run the whole model on a ghost shell only (no exchange, no per-atom virial; refused in one line).

   exchange (default when the model file has its layers one at a time, SchNet): ghosts within
   one cutoff (+ skin); after each layer the new features of owned atoms go to their ghost
   copies (forward communication), and in the backward pass the feature gradients of ghosts
   go back to their owners (reverse communication).
   shell (default otherwise): the whole model on local atoms plus a ghost shell of
   n_interactions × cutoff (+ skin), edges from a full neighbour list that includes ghosts.
   Either way the energy sums over local atoms only; forces go to local and ghost atoms and
   LAMMPS sums the ghost forces back to their owners (newton pair on).

   Committee (model deviation): the leading arguments of pair_coeff after `* *` that end in
   ".pt" or ".pt2" or name an existing file are model files (the first one always is), the rest are the
   element symbols. The FIRST model drives the dynamics (energy, forces, virial, per-atom
   energies, exactly as with one model). With two or more, on every step with
   ntimestep % out_freq == 0 (out_freq default 100; 0 = never) every model is evaluated on the
   same edges, each model's forces on ghosts are summed back to their owners (this pair's own
   reverse communication, 3 doubles per atom), and per owned atom
       forces_std[i] = sqrt( mean_m |F_m,i - mean_m F_m,i|^2 )      (population std, eV/Å)
   Rank 0 appends `step max min mean` of forces_std over all atoms and devi_e (population std
   of the models' total energies, eV) to out_file (default mlpot_deviation.out), which is
   truncated and given the header `# step max_devi_f min_devi_f avg_devi_f devi_e` at the start
   of the first run after pair_style; one line per evaluation on an output step, flushed.
   Other steps evaluate the first model only. Members must agree in cutoff, elements,
   message passing (per_layer or whole_graph) and n_interactions; dtype and feature width may
   differ. The deviation file is in the model's units (eV/Å, eV) whatever LAMMPS' units.

   Units: metal (eV, Å: the model's own) or real (kcal/mol, Å): in real, energy, per-atom
   energies, forces and virial are multiplied by force->qe2f, LAMMPS' own eV -> kcal/mol
   (23.060549, set with units real in update.cpp; 1 in metal). Other unit styles are refused.

   Hybrid: a sub-style of pair_style hybrid / hybrid/overlay (e.g. `pair_style hybrid/overlay
   mlpot zbl 1.0 2.0`, `pair_coeff * * mlpot model.pt Si C`). A symbol NULL leaves that atom type
   to the other styles (`pair_coeff * * mlpot model.pt Si NULL`, only inside hybrid): atoms of
   NULL types are not part of the model (no local or ghost atoms of it, no edges, no energy,
   no force). The atoms of the model are then copied into a compact order (local atoms first),
   and the feature exchange goes through LAMMPS-ordered rows.

   Per-atom virial (compute stress/atom, compute centroid/stress/atom), both paths: with
   g_e = ∂E/∂r_e for every edge e = (i, j), r_e = x_j − x_i, atoms i and j (local or ghost) each
   get −½ r_e ⊗ g_e (the model's own decomposition of its virial −Σ_e r_e ⊗ g_e into edge forces);
   the computes sum the ghosts' shares into their owners. vatom holds the symmetric part (its sum
   over atoms is the global virial), cvatom all nine components. Same sign as the global virial
   (positive for repulsion); compute stress/atom reports −nktv2p × it. The shell path needs a file
   whose forward has compute_atom_virial (exports from before it are refused with a message). */
#ifndef LMP_PAIR_MLPOT_H
#define LMP_PAIR_MLPOT_H

#include "pair.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace mlpot {
class Model;
struct ModelInfo;
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
  // the syntax, quoted in messages
  static constexpr const char *SYNTAX = "pair_coeff * * model.pt [more_models.pt ...] C H O (model files .pt or .pt2, a committee .pt2 gives all its members; one element symbol per atom type; NULL for a type left to another style of pair_style hybrid)";
  static constexpr const char *STYLE_SYNTAX = "pair_style mlpot [exchange | shell] [out_freq N] [out_file FILE] [halt_deviation X]";

  // data members (their order is the order of construction)
  std::unique_ptr<mlpot::Model> model_;     // the first model of pair_coeff: drives the dynamics
  std::unique_ptr<mlpot::Result> result_;
  std::vector<std::unique_ptr<mlpot::Model>> members_;   // committee models 1..M-1 (deviation only)
  std::vector<mlpot::Result> member_results_;
  std::vector<std::string> model_paths_;                 // [M] files of all models, model_ first
  std::vector<double> committee_forces_;                 // [M * nall * 3] on output steps
  int out_freq_ = 100;                  // deviation every out_freq steps (0 = never)
  std::string out_file_ = "mlpot_deviation.out";
  double halt_deviation_ = 0.0;         // stop the run when the largest force deviation exceeds it (eV/A; 0 = never)
  FILE *deviation_fp_ = nullptr;        // rank 0, open while this pair style lives
  bool deviation_fresh_ = true;         // truncate out_file at the next open (pair_style given)
  std::vector<int64_t> type_to_z_;      // [ntypes + 1] atomic number of each LAMMPS type, 0 = none
  std::vector<char> null_type_;         // [ntypes + 1] 1 = NULL in pair_coeff (left to other styles)
  bool has_null_ = false;               // some type is NULL: the model sees a compact subset
  double energy_scale_ = 1.0;           // eV -> LAMMPS energy unit (1 metal, force->qe2f real)
  std::vector<int64_t> numbers_;        // [nall] atomic numbers, reused between steps (0 = NULL type)
  // the atoms of the model (has_null_): LAMMPS index <-> model index, local atoms first
  int n_model_ = 0, n_model_local_ = 0; // atoms and local atoms the model sees (nall, nlocal without NULL)
  std::vector<int> model_of_atom_;      // [nall] model index of each LAMMPS atom, -1 = NULL type
  std::vector<int> atom_of_model_;      // [n_model_] LAMMPS index of each model atom
  std::vector<double> model_x_;         // [n_model_ * 3] their positions
  std::vector<int64_t> model_numbers_;  // [n_model_] their atomic numbers
  std::vector<double> full_rows_;       // [nall * width] LAMMPS-ordered rows of one feature exchange
  std::vector<int64_t> edge_i_, edge_j_;
  std::vector<int> hops_;               // [nall] message-passing hops from the nearest local atom
  enum class Mode { Automatic, Exchange, Shell };
  Mode requested_ = Mode::Automatic;    // from pair_style
  bool exchange_ = false;               // this run exchanges features between layers
  char *comm_rows_ = nullptr;           // [nall] rows being communicated, comm_row_bytes_ each
  size_t comm_row_bytes_ = 0;           // bytes per atom in comm_rows_ (width · sizeof(double or float))
  int comm_width_ = 0;                  // doubles per atom in LAMMPS' buffers (<= comm_forward/reverse)
  bool comm_single_ = false;            // the rows are float (sums in reverse communication as float)
  int n_two_way_ = 0;                   // exchange mode: two-way pairs among this step's edges
  std::unique_ptr<mlpot::FeatureExchange> exchange_impl_;
  friend class LammpsFeatureExchange;
  std::vector<int64_t> ghost_edge_i_, ghost_edge_j_;
  std::vector<int64_t> feature_j_;      // exchange mode: whose features edge e carries
  std::unordered_map<tagint, int> local_of_tag_;   // exchange mode: local index of each owned atom,
                                                   // rebuilt when LAMMPS re-neighbours

  // pair_mlpot.cpp: LAMMPS glue
  void allocate();
  void check_units();                   // metal or real; sets energy_scale_
  void check_member(const mlpot::Model &member, const std::string &path);
  void choose_mode();                   // after the model is read
  double ghost_shell() const;           // Å, n_interactions × cutoff + skin
  void cell_rows(double *cell) const;   // [9] Å, rows a, b, c of the box
  void accumulate(int nlocal, int nall);  // result_ into energy, forces, eatom, virial, vatom, cvatom
  bool want_atom_virial() const { return vflag_atom || cvflag_atom; }   // this step's per-atom virial

  // pair_mlpot_edges.cpp: edges and the atoms of the model
  void build_edges();                   // model edges from the full ghost neighbour list
  void keep_needed_edges();             // drop edges into atoms >= n_interactions hops out
  int build_local_edges();              // exchange mode: local pairs once (periodic images of
                                        // local atoms mapped to them), then ghost -> local;
                                        // returns the number of pairs (two-way edges)
  [[noreturn]] void refuse_overlap(int i, int j, double rsq);   // error: atoms closer than MIN_DISTANCE
  void select_model_atoms(int nlocal, int nall);   // has_null_: model_of_atom_ ... model_numbers_
  void edges_to_model_indices();        // has_null_: edge_i_, edge_j_, feature_j_ -> model indices
  const double *model_positions() const;
  const int64_t *model_numbers() const;

  // pair_mlpot_exchange.cpp: communication of rows, feature exchange
  // (communicate_rows is instantiated there for double and float, the only row types; it is also
  // used by compute_deviation. exchange_rows is used there only.)
  template <typename T> void communicate_rows(T *rows, int width, bool forward);
  template <typename T> void exchange_rows(T *rows, int width, bool forward);   // model rows, through LAMMPS order
  void exchange_nothing(const mlpot::ModelInfo &info);   // this rank's part in others' exchanges
  std::unique_ptr<mlpot::FeatureExchange> make_feature_exchange();   // a LammpsFeatureExchange of this pair
  void compute_exchange(int nlocal, int nall);

  // pair_mlpot_deviation.cpp: committee deviation
  bool deviation_step() const;          // a committee, and this step is an output step
  void compute_deviation(int nlocal, int nall);   // every rank, also without atoms
  void write_deviation(const double *global_extremes, const std::vector<double> &global_sums, int n_models);
  void open_deviation_file();           // rank 0
};

}  // namespace LAMMPS_NS

#endif

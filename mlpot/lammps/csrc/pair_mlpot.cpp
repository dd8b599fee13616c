/* pair_style mlpot: see pair_mlpot.h. */
#include "pair_mlpot.h"

#include "mlpot_model.h"
#include "pair_rule.h"   // mlpot/ops/csrc: the pair rule shared with torch.ops.mlpot.canonical_edges

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "platform.h"
#include "update.h"
#include "utils.h"

#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>

using namespace LAMMPS_NS;

static const char *SYNTAX = "pair_coeff * * model.pt [more_models.pt ...] C H O (one element symbol per atom type; NULL for a type left to another style of pair_style hybrid)";
static const char *STYLE_SYNTAX = "pair_style mlpot [exchange | shell] [out_freq N] [out_file FILE] [halt_deviation X]";

// Whether a pair_coeff argument names an atom type: an element symbol (H ... Og) or NULL.
static bool is_type_symbol(const std::string &word) {
  static const std::string symbols =
      " NULL H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr"
      " Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb Lu"
      " Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf Db Sg"
      " Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og ";
  return !word.empty() && word.find(' ') == std::string::npos && symbols.find(" " + word + " ") != std::string::npos;
}

#ifndef MLPOT_PLUGIN_BUILD
#error "define MLPOT_PLUGIN_BUILD, the name of this build; CMakeLists.txt does"
#endif

// The file this code was loaded from (not necessarily the one named in `plugin load`, should
// another build of the plugin have been loaded into the process first).
static std::string plugin_file() {
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&plugin_file), &info) && info.dli_fname) return info.dli_fname;
  return "unknown";
}

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

PairMLPot::PairMLPot(LAMMPS *lmp)
    : Pair(lmp), result_(std::make_unique<mlpot::Result>()),
      exchange_impl_(std::make_unique<LammpsFeatureExchange>(this)) {
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  ghostneigh = 1;                 // message passing needs the neighbours of ghost atoms too
  no_virial_fdotr_compute = 1;    // the model returns its virial (strain derivative)
  // per-atom virial from the edge split (see accumulate): vatom for compute stress/atom, the
  // unsymmetrised cvatom for compute centroid/stress/atom
  centroidstressflag = CENTROID_AVAIL;
}

PairMLPot::~PairMLPot() {
  if (deviation_fp_) fclose(deviation_fp_);
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairMLPot::allocate() {
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; i++)
    for (int j = 0; j < n; j++) setflag[i][j] = 0;
}

void PairMLPot::settings(int narg, char **arg) {
  Mode requested = Mode::Automatic;
  int out_freq = 100;
  std::string out_file = "mlpot_deviation.out";
  double halt_deviation = 0.0;
  for (int k = 0; k < narg; k++) {
    const std::string word = arg[k];
    if (word == "exchange" || word == "shell") {
      if (requested != Mode::Automatic)
        error->all(FLERR, "pair_style mlpot takes at most one of exchange, shell (got a second: '{}'): {}", word,
                   STYLE_SYNTAX);
      requested = word == "exchange" ? Mode::Exchange : Mode::Shell;
    } else if (word == "halt_deviation") {
      if (k + 1 >= narg) error->all(FLERR, "pair_style mlpot: halt_deviation needs a value: {}", STYLE_SYNTAX);
      const std::string value = arg[++k];
      if (!utils::is_double(value) || utils::numeric(FLERR, value, false, lmp) <= 0)
        error->all(FLERR, "pair_style mlpot: halt_deviation needs a force deviation in eV/A > 0, got '{}': {}",
                   value, STYLE_SYNTAX);
      halt_deviation = utils::numeric(FLERR, value, false, lmp);
    } else if (word == "out_freq" || word == "out_file") {
      if (k + 1 >= narg) error->all(FLERR, "pair_style mlpot: {} needs a value: {}", word, STYLE_SYNTAX);
      const std::string value = arg[++k];
      if (word == "out_file") {
        out_file = value;
      } else {
        if (!utils::is_integer(value) || utils::inumeric(FLERR, value, false, lmp) < 0)
          error->all(FLERR, "pair_style mlpot: out_freq needs a whole number of steps >= 0 (0 = never), got "
                            "'{}': {}", value, STYLE_SYNTAX);
        out_freq = utils::inumeric(FLERR, value, false, lmp);
      }
    } else {
      error->all(FLERR, "pair_style mlpot: unknown argument '{}'; it takes one of exchange, shell, then "
                        "out_freq N and out_file FILE (committee deviation): {}; give the model(s) in "
                        "pair_coeff: {}", word, STYLE_SYNTAX, SYNTAX);
    }
  }
  requested_ = requested;
  out_freq_ = out_freq;
  out_file_ = out_file;
  halt_deviation_ = halt_deviation;
  if (halt_deviation_ > 0 && out_freq_ == 0)
    error->all(FLERR, "pair_style mlpot: halt_deviation is checked where the deviation is computed, every "
                      "out_freq steps; give out_freq N > 0: {}", STYLE_SYNTAX);
  // pair_style (re)defined: the deviation file starts again at the next run
  if (deviation_fp_) fclose(deviation_fp_);
  deviation_fp_ = nullptr;
  deviation_fresh_ = true;
  if (model_) choose_mode();
}

void PairMLPot::choose_mode() {
  const mlpot::ModelInfo &info = model_->info();
  if (requested_ == Mode::Exchange && !info.per_layer)
    error->all(FLERR, "pair_style mlpot exchange needs a model exported with its layers one at a time "
                      "(SchNet, mlpot.json message_passing = per_layer): export it again with `mlpot export`, "
                      "or use pair_style mlpot shell");
  exchange_ = info.per_layer && requested_ != Mode::Shell;
  // ghost atoms need neighbour lists only when the whole model runs over several hops
  ghostneigh = (!exchange_ && info.n_interactions > 1) ? 1 : 0;
  // widths of this pair's communications: features (exchange; committee members may differ in
  // n_features) and, with a committee, 3 doubles of each model's forces on ghosts
  int features = 0;
  if (exchange_) {
    features = info.n_features;
    for (const auto &member : members_) features = std::max(features, member->info().n_features);
  }
  comm_forward = features;
  comm_reverse = members_.empty() ? features : std::max(features, 3);
}

void PairMLPot::coeff(int narg, char **arg) {
  if (!allocated) allocate();
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_style mlpot needs {}", SYNTAX);
  check_units();
  // models: arg[2], then every following argument that ends in .pt, or that names an existing
  // file and is not an element symbol or NULL (a file called C in the working folder is no model)
  int n_models = 1;
  while (2 + n_models < narg) {
    const std::string word = arg[2 + n_models];
    const bool ends_pt = word.size() > 3 && word.compare(word.size() - 3, 3, ".pt") == 0;
    const bool model_file = ends_pt || (!is_type_symbol(word) && platform::file_is_readable(word));
    if (!model_file) break;
    n_models++;
  }
  const std::string path = arg[2];
  std::vector<std::unique_ptr<mlpot::Model>> members;
  std::vector<std::string> paths;
  try {
    model_ = std::make_unique<mlpot::Model>(path);
    paths.push_back(path);
    for (int m = 1; m < n_models; m++) {
      paths.push_back(arg[2 + m]);
      members.push_back(std::make_unique<mlpot::Model>(paths.back()));
    }
  } catch (const std::exception &e) {
    error->all(FLERR, std::string(e.what()));
  }
  members_ = std::move(members);
  model_paths_ = paths;
  member_results_.assign(members_.size(), mlpot::Result());
  for (size_t m = 0; m < members_.size(); m++) check_member(*members_[m], model_paths_[m + 1]);
  const mlpot::ModelInfo &info = model_->info();
  const std::string known = utils::join_words(info.symbols, " ");

  const int ntypes = atom->ntypes;
  const int n_symbols = narg - 2 - n_models;
  if (n_symbols < ntypes)
    error->all(FLERR, "LAMMPS atom type {} has no element: pair_coeff * * {} lists {} symbol(s) for {} atom "
                      "types; give one element symbol per type, in type order (model knows {})",
               n_symbols + 1, path, n_symbols, ntypes, known);
  if (n_symbols > ntypes)
    error->all(FLERR, "pair_coeff * * {} lists {} element symbols but there are only {} atom types: "
                      "give exactly one symbol per type", path, n_symbols, ntypes);

  type_to_z_.assign(ntypes + 1, 0);
  null_type_.assign(ntypes + 1, 0);
  has_null_ = false;
  for (int t = 1; t <= ntypes; t++) {
    const std::string symbol = arg[1 + n_models + t];
    if (symbol == "NULL") {        // this type is left to another sub-style of pair_style hybrid
      null_type_[t] = 1;
      has_null_ = true;
      continue;
    }
    for (size_t k = 0; k < info.symbols.size(); k++)
      if (info.symbols[k] == symbol) type_to_z_[t] = info.species[k];
    if (type_to_z_[t] == 0)
      error->all(FLERR, "element {} (atom type {}) is not known to the model {}, which knows {}: "
                        "fix the symbol in pair_coeff or use a model trained on {}",
                 symbol, t, path, known, symbol);
  }
  if (has_null_) {
    if (force->pair == this)
      error->all(FLERR, "pair_coeff * * {} ... NULL: a NULL type is left to another pair style, which needs "
                        "pair_style hybrid or hybrid/overlay (e.g. pair_style hybrid mlpot lj/cut 5.0 with "
                        "pair_coeff * * mlpot {} ... NULL); pair_style mlpot alone needs an element for every "
                        "type", path, path);
    if (std::all_of(null_type_.begin() + 1, null_type_.end(), [](char null) { return null != 0; }))
      error->all(FLERR, "pair_coeff * * mlpot {}: every atom type is NULL, so the model has no atoms: give "
                        "the element of at least one type", path);
  }
  // type pairs of this style: both types in the model (a NULL type has no pair with it here)
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = (null_type_[i] || null_type_[j]) ? 0 : 1;
  choose_mode();

  if (comm->me == 0)
    utils::logmesg(lmp, "pair mlpot: {} (mlpot {}, {}), cutoff {} A, {} interactions, elements {}, {}\n", path,
                   info.mlpot_version, info.dtype, info.cutoff, info.n_interactions, known,
                   exchange_ ? "features exchanged between layers (ghosts within one cutoff)"
                             : "whole model on a ghost shell of n_interactions x cutoff");
  if (comm->me == 0 && has_null_) {
    std::vector<std::string> left;
    for (int t = 1; t <= ntypes; t++)
      if (null_type_[t]) left.push_back(std::to_string(t));
    utils::logmesg(lmp, "pair mlpot: atom type(s) {} NULL: not part of the model (left to the other pair "
                        "styles)\n", utils::join_words(left, " "));
  }
  if (comm->me == 0 && energy_scale_ != 1.0)
    utils::logmesg(lmp, "pair mlpot: units {}: the model's eV are converted with force->qe2f = {} (energy, "
                        "per-atom energy, forces, virial); a committee deviation file stays in eV/A and eV\n",
                   update->unit_style, energy_scale_);
  if (comm->me == 0 && !members_.empty() && halt_deviation_ > 0)
    utils::logmesg(lmp, "pair mlpot: the run stops when the largest force deviation exceeds {} eV/A (checked "
                        "every {} steps)\n", halt_deviation_, out_freq_);
  if (comm->me == 0 && !members_.empty()) {
    for (size_t m = 0; m < members_.size(); m++)
      utils::logmesg(lmp, "pair mlpot: committee member {} of {}: {} (mlpot {}, {})\n", m + 2, members_.size() + 1,
                     model_paths_[m + 1], members_[m]->info().mlpot_version, members_[m]->info().dtype);
    if (out_freq_ > 0)
      utils::logmesg(lmp, "pair mlpot: committee of {} models; the first drives the dynamics, the force "
                          "deviation goes to {} every {} steps\n", members_.size() + 1, out_file_, out_freq_);
    else
      utils::logmesg(lmp, "pair mlpot: committee of {} models, out_freq 0: no deviation is computed\n",
                     members_.size() + 1);
  }
  if (comm->me == 0)
    utils::logmesg(lmp, "pair mlpot: plugin build {} ({})\n", MLPOT_PLUGIN_BUILD, plugin_file());
  if (members_.empty() && halt_deviation_ > 0)
    error->all(FLERR, "pair mlpot: halt_deviation needs a committee: give two or more model files in "
                      "pair_coeff: {}", SYNTAX);
}

void PairMLPot::check_member(const mlpot::Model &member, const std::string &path) {
  const mlpot::ModelInfo &a = model_->info(), &b = member.info();
  const std::string &first = model_paths_[0];
  const char *advice = "every model of a committee needs the same cutoff, elements, message passing and number "
                       "of interactions (e.g. the members of one `mlpot train` run with training.ensemble)";
  if (std::fabs(a.cutoff - b.cutoff) > 1e-9)
    error->all(FLERR, "pair_coeff: committee members differ in cutoff: {} has {} A, {} has {} A; {}", first,
               a.cutoff, path, b.cutoff, advice);
  std::vector<int64_t> sa = a.species, sb = b.species;
  std::sort(sa.begin(), sa.end());
  std::sort(sb.begin(), sb.end());
  if (sa != sb)
    error->all(FLERR, "pair_coeff: committee members differ in elements: {} has {}, {} has {}; {}", first,
               utils::join_words(a.symbols, " "), path, utils::join_words(b.symbols, " "), advice);
  if (a.per_layer != b.per_layer)
    error->all(FLERR, "pair_coeff: committee members differ in message_passing: {} has {}, {} has {}; {}", first,
               a.per_layer ? "per_layer" : "whole_graph", path, b.per_layer ? "per_layer" : "whole_graph", advice);
  if (a.n_interactions != b.n_interactions)
    error->all(FLERR, "pair_coeff: committee members differ in n_interactions: {} has {}, {} has {}; {}", first,
               a.n_interactions, path, b.n_interactions, advice);
}

void PairMLPot::check_units() {
  // The model works in eV and Å. units real (kcal/mol, Å): LAMMPS' own eV -> kcal/mol is
  // force->qe2f (charge × field in e·V/Å to force, 23.060549 in units real, 1 in metal).
  if (strcmp(update->unit_style, "metal") == 0) energy_scale_ = 1.0;
  else if (strcmp(update->unit_style, "real") == 0) energy_scale_ = force->qe2f;
  else
    error->all(FLERR, "pair_style mlpot needs units metal or real (the model works in eV and Å), not units {}: "
                      "put `units metal` (or `units real`) at the top of the input", update->unit_style);
}

double PairMLPot::ghost_shell() const {
  const mlpot::ModelInfo &info = model_->info();
  const int hops = (info.n_interactions > 0 && !exchange_) ? info.n_interactions : 1;
  return hops * info.cutoff + neighbor->skin;
}

void PairMLPot::init_style() {
  if (!model_) error->all(FLERR, "pair_style mlpot has no model: add {}", SYNTAX);
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style mlpot needs newton pair on (forces on ghost atoms are summed back to "
                      "their owners): remove `newton off` or write `newton on`");
  check_units();
  if (exchange_ && !atom->tag_enable)
    error->all(FLERR, "pair_style mlpot exchange maps ghost atoms to their owners by atom ID, which `atom_modify "
                      "id no` removes: remove `atom_modify id no` from the input (or use pair_style mlpot shell)");
  for (int t = 1; t <= atom->ntypes; t++)
    if (t >= (int) type_to_z_.size() || (type_to_z_[t] == 0 && !null_type_[t]))
      error->all(FLERR, "LAMMPS atom type {} has no element: give one element symbol per type in {}", t, SYNTAX);

  neighbor->add_request(this, ghostneigh ? NeighConst::REQ_FULL | NeighConst::REQ_GHOST : NeighConst::REQ_FULL);

  // A sub-style of pair_style hybrid: the hybrid took comm_forward / comm_reverse (which size
  // LAMMPS' communication buffers, Comm::init after this) from its sub-styles at pair_style
  // time, before pair_coeff read the model that sets ours.
  if (force->pair && force->pair != this) {
    force->pair->comm_forward = std::max(force->pair->comm_forward, comm_forward);
    force->pair->comm_reverse = std::max(force->pair->comm_reverse, comm_reverse);
  }

  // Whole model over n_interactions layers: a local atom's energy depends on atoms up to
  // n_interactions × cutoff away, so every rank needs ghosts that far out. With features
  // exchanged between layers (or one layer), one cutoff: LAMMPS' default ghost cutoff.
  const double shell = ghost_shell();
  if (ghostneigh && comm->cutghostuser < shell) {
    comm->cutghostuser = shell;
    if (comm->me == 0)
      utils::logmesg(lmp, "pair mlpot: ghost cutoff set to {:.4f} A (n_interactions x cutoff + skin)\n", shell);
  }
  if (!members_.empty() && out_freq_ > 0 && comm->me == 0) open_deviation_file();
}

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

double PairMLPot::init_one(int i, int j) {
  const double cutoff = model_->info().cutoff;
  cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

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

void PairMLPot::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  if (want_atom_virial() && !exchange_ && !model_->info().atom_virial)
    error->all(FLERR, "pair_style mlpot: {} was exported before per-atom virials existed, which compute "
                      "stress/atom needs: export it again with `mlpot export`, or remove the compute",
               model_paths_.empty() ? std::string("the model") : model_paths_[0]);
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  int *type = atom->type;
  numbers_.resize(nall);
  for (int i = 0; i < nall; i++) numbers_[i] = type_to_z_[type[i]];
  if (has_null_) {
    select_model_atoms(nlocal, nall);
  } else {
    n_model_ = nall;
    n_model_local_ = nlocal;
  }
  if (exchange_) {
    compute_exchange(nlocal, nall);
    if (n_model_ > 0) accumulate(nlocal, nall);
  } else if (n_model_ > 0) {
    build_edges();
    if (has_null_) edges_to_model_indices();
    double cell[9];
    cell_rows(cell);
    mlpot::Result &r = *result_;
    try {
      model_->evaluate(model_positions(), model_numbers(), n_model_, edge_i_, edge_j_, cell, n_model_local_,
                       vflag_global != 0, eflag_atom != 0, r, want_atom_virial());
    } catch (const std::exception &e) {
      error->one(FLERR, "pair mlpot: model evaluation failed: {}", e.what());
    }
    accumulate(nlocal, nall);
  }
  // on every rank, atoms or not: communication and reductions
  if (deviation_step()) compute_deviation(nlocal, nall);
}

void PairMLPot::cell_rows(double *cell) const {
  // cell rows a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd)
  const double rows[9] = {domain->xprd, 0.0, 0.0, domain->xy, domain->yprd, 0.0, domain->xz, domain->yz, domain->zprd};
  std::copy(rows, rows + 9, cell);
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

void PairMLPot::accumulate(int nlocal, int nall) {
  // eV (the model's) -> LAMMPS' energy unit: s = 1 in units metal (x * 1.0 is exactly x), qe2f in real
  const mlpot::Result &r = *result_;
  const double s = energy_scale_;
  double **f = atom->f;
  if (!has_null_) {
    for (int i = 0; i < nall; i++)
      for (int k = 0; k < 3; k++) f[i][k] += r.forces[3 * i + k] * s;
    if (eflag_atom)
      for (int i = 0; i < nlocal; i++) eatom[i] += r.energies[i] * s;
  } else {   // model index m is LAMMPS atom atom_of_model_[m]; atoms of NULL types get nothing
    for (int m = 0; m < n_model_; m++)
      for (int k = 0; k < 3; k++) f[atom_of_model_[m]][k] += r.forces[3 * m + k] * s;
    if (eflag_atom)
      for (int m = 0; m < n_model_local_; m++) eatom[atom_of_model_[m]] += r.energies[m] * s;
  }
  if (eflag_global) eng_vdwl += r.energy * s;
  if (vflag_atom || cvflag_atom) {
    // Per-atom virial W_a (eV; s converts): the edge split −½ r_e ⊗ ∂E/∂r_e to both atoms of every
    // edge, on local atoms and ghosts alike; compute stress/atom (and centroid/stress/atom) sums
    // the ghosts' rows into their owners (reverse communication, newton pair on), so that
    // Σ_atoms vatom = this pair's global virial. vatom: the symmetric part, LAMMPS order xx, yy, zz,
    // xy, xz, yz; cvatom: all nine, xx, yy, zz, xy, xz, yz, yx, zx, zy with xy = W[x][y], row the
    // edge vector's component, as LAMMPS' centroid form r_a F_b.
    static const int row[9] = {0, 1, 2, 0, 0, 1, 1, 2, 2}, col[9] = {0, 1, 2, 1, 2, 2, 0, 0, 1};
    const int n_rows = has_null_ ? n_model_ : nall;
    for (int m = 0; m < n_rows; m++) {
      const int i = has_null_ ? atom_of_model_[m] : m;
      const double *w = r.atom_virial.data() + 9 * static_cast<size_t>(m);
      if (vflag_atom)
        for (int k = 0; k < 6; k++) vatom[i][k] += 0.5 * (w[3 * row[k] + col[k]] + w[3 * col[k] + row[k]]) * s;
      if (cvflag_atom)
        for (int k = 0; k < 9; k++) cvatom[i][k] += w[3 * row[k] + col[k]] * s;
    }
  }
  if (vflag_global) {
    // LAMMPS order xx, yy, zz, xy, xz, yz; this rank's share, LAMMPS sums over ranks
    virial[0] += r.virial[0] * s;
    virial[1] += r.virial[4] * s;
    virial[2] += r.virial[8] * s;
    virial[3] += r.virial[1] * s;
    virial[4] += r.virial[2] * s;
    virial[5] += r.virial[5] * s;
  }
}

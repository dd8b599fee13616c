/* pair_style mlpot (see pair_mlpot.h): the LAMMPS glue. Constructor and destructor, pair_style
   (settings) and pair_coeff (coeff) with their checks of committee members and units, init_style,
   init_one, and compute, which orchestrates a step: edges (pair_mlpot_edges.cpp), the model
   (mlpot_model.cpp; with features exchanged between layers, pair_mlpot_exchange.cpp), the result
   into LAMMPS' energy, forces and virials (accumulate), and the committee deviation
   (pair_mlpot_deviation.cpp). */
#include "pair_mlpot.h"

#include "mlpot_model.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neighbor.h"
#include "platform.h"
#include "update.h"
#include "utils.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

using namespace LAMMPS_NS;

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

PairMLPot::PairMLPot(LAMMPS *lmp)
    : Pair(lmp), result_(std::make_unique<mlpot::Result>()),
      exchange_impl_(make_feature_exchange()) {
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
  if (requested_ == Mode::Exchange && info.pt2 && !info.per_layer && !info.angle_triplets)
    error->all(FLERR, "pair_style mlpot exchange: this .pt2 package holds no layer models (written without them, "
                      "or before the plugin ran .pt2 layers): export it again with `mlpot export CHECKPOINT -o "
                      "model.pt2`, or use pair_style mlpot shell");
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
  // models: arg[2], then every following argument that ends in .pt or .pt2, or that names an existing
  // file and is not an element symbol or NULL (a file called C in the working folder is no model)
  int n_models = 1;
  while (2 + n_models < narg) {
    const std::string word = arg[2 + n_models];
    const bool ends_pt = word.ends_with(".pt") || word.ends_with(".pt2");
    const bool model_file = ends_pt || (!is_type_symbol(word) && platform::file_is_readable(word));
    if (!model_file) break;
    n_models++;
  }
  const std::string path = arg[2];
  // every model of every file: a committee package (.pt2 of n_members > 1) gives each of its members
  std::vector<std::unique_ptr<mlpot::Model>> models;
  std::vector<std::string> paths;
  try {
    for (int k = 0; k < n_models; k++) {
      const std::string file = arg[2 + k];
      models.push_back(std::make_unique<mlpot::Model>(file));
      const int n_members = models.back()->info().n_members;
      auto member = [&](int m) {
        return file + " (member " + std::to_string(m + 1) + " of " + std::to_string(n_members) + ")";
      };
      paths.push_back(n_members > 1 ? member(0) : file);
      for (int m = 1; m < n_members; m++) {
        models.push_back(std::make_unique<mlpot::Model>(file, m));
        paths.push_back(member(m));
      }
    }
  } catch (const std::exception &e) {
    error->all(FLERR, std::string(e.what()));
  }
  model_ = std::move(models.front());
  members_.clear();
  for (size_t m = 1; m < models.size(); m++) members_.push_back(std::move(models[m]));
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
    utils::logmesg(lmp, "pair mlpot: {} (mlpot {}, {}{}), cutoff {} A, {} interactions, elements {}, {}\n", path,
                   info.mlpot_version, info.dtype, info.pt2 ? ", AOTInductor package" : "", info.cutoff, info.n_interactions, known,
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
    error->all(FLERR, "pair mlpot: halt_deviation needs a committee: give two or more model files (or a "
                      "committee .pt2) in pair_coeff: {}", SYNTAX);
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
  if (a.per_layer != b.per_layer && a.pt2 != b.pt2)
    error->all(FLERR, "pair_coeff: committee members mix a .pt2 file without layer models (the whole model only) "
                      "and a .pt file run layer by layer: {} and {}; give every member as .pt2, or every member as "
                      ".pt", first, path);
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

double PairMLPot::init_one(int i, int j) {
  const double cutoff = model_->info().cutoff;
  cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

void PairMLPot::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  // the exchange path takes per-atom virials from the layers' edge gradients; the whole-model path
  // from the file's forward (or a .pt2's lammps model), which files exported before them lack
  if (want_atom_virial() && !exchange_ && !model_->info().atom_virial) {
    const std::string model = model_paths_.empty() ? std::string("the model") : model_paths_[0];
    if (model_->info().pt2)
      error->all(FLERR, "pair_style mlpot: {} is a .pt2 file written before its lammps model had per-atom virials "
                        "(compute stress/atom) on the whole-model path: export it again with `mlpot export "
                        "CHECKPOINT -o model.pt2`, or use the exchange path, or remove the compute", model);
    error->all(FLERR, "pair_style mlpot: {} was exported before per-atom virials existed, which compute "
                      "stress/atom needs: export it again with `mlpot export`, or remove the compute", model);
  }
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

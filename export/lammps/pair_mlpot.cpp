/* pair_style mlpot: see pair_mlpot.h. */
#include "pair_mlpot.h"

#include "mlpot_model.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"
#include "utils.h"

#include <dlfcn.h>

#include <cmath>
#include <cstring>
#include <exception>

using namespace LAMMPS_NS;

static const char *SYNTAX = "pair_coeff * * model.pt C H O (one element symbol per atom type)";

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
  void owned_to_ghosts(double *rows) override {
    pair_->comm_rows_ = rows;
    pair_->comm->forward_comm(pair_);
    pair_->comm_rows_ = nullptr;
  }
  void ghosts_to_owned(double *rows) override {
    pair_->comm_rows_ = rows;
    pair_->comm->reverse_comm(pair_);
    pair_->comm_rows_ = nullptr;
  }

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
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairMLPot::~PairMLPot() {
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
  requested_ = Mode::Automatic;
  if (narg == 1 && strcmp(arg[0], "exchange") == 0) requested_ = Mode::Exchange;
  else if (narg == 1 && strcmp(arg[0], "shell") == 0) requested_ = Mode::Shell;
  else if (narg != 0)
    error->all(FLERR, "pair_style mlpot takes no argument or one of exchange, shell (got {} argument(s), first "
                      "'{}'); give the model in pair_coeff: {}", narg, arg[0], SYNTAX);
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
  comm_forward = comm_reverse = exchange_ ? info.n_features : 0;
}

void PairMLPot::coeff(int narg, char **arg) {
  if (!allocated) allocate();
  if (narg < 3 || strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_style mlpot needs {}", SYNTAX);
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style mlpot needs units metal (the model works in eV and Å), not units {}: "
                      "put `units metal` at the top of the input", update->unit_style);
  const std::string path = arg[2];
  try {
    model_ = std::make_unique<mlpot::Model>(path);
  } catch (const std::exception &e) {
    error->all(FLERR, std::string(e.what()));
  }
  const mlpot::ModelInfo &info = model_->info();
  const std::string known = utils::join_words(info.symbols, " ");

  const int ntypes = atom->ntypes;
  const int n_symbols = narg - 3;
  if (n_symbols < ntypes)
    error->all(FLERR, "LAMMPS atom type {} has no element: pair_coeff * * {} lists {} symbol(s) for {} atom "
                      "types; give one element symbol per type, in type order (model knows {})",
               n_symbols + 1, path, n_symbols, ntypes, known);
  if (n_symbols > ntypes)
    error->all(FLERR, "pair_coeff * * {} lists {} element symbols but there are only {} atom types: "
                      "give exactly one symbol per type", path, n_symbols, ntypes);

  type_to_z_.assign(ntypes + 1, 0);
  for (int t = 1; t <= ntypes; t++) {
    const std::string symbol = arg[2 + t];
    for (size_t k = 0; k < info.symbols.size(); k++)
      if (info.symbols[k] == symbol) type_to_z_[t] = info.species[k];
    if (type_to_z_[t] == 0)
      error->all(FLERR, "element {} (atom type {}) is not known to the model {}, which knows {}: "
                        "fix the symbol in pair_coeff or use a model trained on {}",
                 symbol, t, path, known, symbol);
  }
  for (int i = 1; i <= ntypes; i++)
    for (int j = i; j <= ntypes; j++) setflag[i][j] = 1;
  choose_mode();

  if (comm->me == 0)
    utils::logmesg(lmp, "pair mlpot: {} (mlpot {}, {}), cutoff {} A, {} interactions, elements {}, {}\n", path,
                   info.mlpot_version, info.dtype, info.cutoff, info.n_interactions, known,
                   exchange_ ? "features exchanged between layers (ghosts within one cutoff)"
                             : "whole model on a ghost shell of n_interactions x cutoff");
  if (comm->me == 0)
    utils::logmesg(lmp, "pair mlpot: plugin build {} ({})\n", MLPOT_PLUGIN_BUILD, plugin_file());
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
  if (strcmp(update->unit_style, "metal") != 0)
    error->all(FLERR, "pair_style mlpot needs units metal (eV, Å), not units {}", update->unit_style);
  for (int t = 1; t <= atom->ntypes; t++)
    if (t >= (int) type_to_z_.size() || type_to_z_[t] == 0)
      error->all(FLERR, "LAMMPS atom type {} has no element: give one element symbol per type in {}", t, SYNTAX);

  neighbor->add_request(this, ghostneigh ? NeighConst::REQ_FULL | NeighConst::REQ_GHOST : NeighConst::REQ_FULL);

  // Whole model over n_interactions layers: a local atom's energy depends on atoms up to
  // n_interactions × cutoff away, so every rank needs ghosts that far out. With features
  // exchanged between layers (or one layer), one cutoff: LAMMPS' default ghost cutoff.
  const double shell = ghost_shell();
  if (ghostneigh && comm->cutghostuser < shell) {
    comm->cutghostuser = shell;
    if (comm->me == 0)
      utils::logmesg(lmp, "pair mlpot: ghost cutoff set to {:.4f} A (n_interactions x cutoff + skin)\n", shell);
  }
}

double PairMLPot::init_one(int i, int j) {
  const double cutoff = model_->info().cutoff;
  cutghost[i][j] = cutghost[j][i] = cutoff;
  return cutoff;
}

void PairMLPot::build_edges() {
  double **x = atom->x;
  const double cutoff = model_->info().cutoff;
  const double cutsq_model = cutoff * cutoff;
  const int n_with_neighbors = list->inum + list->gnum;
  edge_i_.clear();
  edge_j_.clear();
  for (int ii = 0; ii < n_with_neighbors; ii++) {
    const int i = list->ilist[ii];
    const int *neighbors = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = neighbors[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz < cutsq_model) {
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

// Whether the periodic image of an atom at r = x_image − x_atom = S·cell has a lattice shift S
// that is lexicographically positive. S comes from the box's inverse matrix (LAMMPS' h_inv,
// as in Domain::x2lamda) rounded to integers, so it is exact: r itself is not, and for shifts
// with a zero component (c − b in a triclinic cell, say) rounding can give both r and −r the
// same sign there, which would keep both entries of the pair or neither.
static bool image_shift_positive(const double *h_inv, double dx, double dy, double dz) {
  const long s0 = std::lround(h_inv[0] * dx + h_inv[5] * dy + h_inv[4] * dz);
  const long s1 = std::lround(h_inv[1] * dy + h_inv[3] * dz);
  const long s2 = std::lround(h_inv[2] * dz);
  return s0 > 0 || (s0 == 0 && (s1 > 0 || (s1 == 0 && s2 > 0)));
}

int PairMLPot::build_local_edges() {
  // Pairs once, messages both ways: two local atoms (i < j; the full list holds both
  // directions), and a local atom with a periodic image (a ghost) of another local atom, whose
  // features are then that atom's own — the ghost j is mapped to its owner o, and of the two
  // entries of the pair (i with o's image, o with i's image) the one with tag i < tag o is kept
  // (equal tags, an atom and its own image: the one whose lattice shift is lexicographically
  // positive, see image_shift_positive).
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
  for (int ii = 0; ii < list->inum; ii++) {
    const int i = list->ilist[ii];
    const int *neighbors = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; jj++) {
      const int j = neighbors[jj] & NEIGHMASK;
      if (j < nlocal && j <= i) continue;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cutsq_model) continue;
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
      if (j >= nlocal && !(tag[i] < tag[j] || (tag[i] == tag[j] && image_shift_positive(domain->h_inv, dx, dy, dz))))
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

int PairMLPot::pack_forward_comm(int n, int *list, double *buf, int, int *) {
  const int width = comm_forward;
  for (int k = 0; k < n; k++) std::memcpy(buf + k * width, comm_rows_ + (size_t) list[k] * width, width * sizeof(double));
  return n * width;
}

void PairMLPot::unpack_forward_comm(int n, int first, double *buf) {
  std::memcpy(comm_rows_ + (size_t) first * comm_forward, buf, (size_t) n * comm_forward * sizeof(double));
}

int PairMLPot::pack_reverse_comm(int n, int first, double *buf) {
  std::memcpy(buf, comm_rows_ + (size_t) first * comm_reverse, (size_t) n * comm_reverse * sizeof(double));
  return n * comm_reverse;
}

void PairMLPot::unpack_reverse_comm(int n, int *list, double *buf) {
  const int width = comm_reverse;
  for (int k = 0; k < n; k++) {
    double *row = comm_rows_ + (size_t) list[k] * width;
    for (int c = 0; c < width; c++) row[c] += buf[k * width + c];
  }
}

void PairMLPot::compute_exchange(int nlocal, int nall) {
  const int n_layers = model_->info().n_interactions;
  if (nall == 0) {   // nothing here, but the neighbouring ranks' exchanges still need this one
    double none = 0.0;
    for (int t = 0; t + 1 < n_layers; t++) exchange_impl_->owned_to_ghosts(&none);
    for (int t = 0; t + 1 < n_layers; t++) exchange_impl_->ghosts_to_owned(&none);
    return;
  }
  const int n_two_way = build_local_edges();
  mlpot::Result &r = *result_;
  try {
    model_->evaluate_per_layer(&atom->x[0][0], numbers_.data(), nall, edge_i_, edge_j_, feature_j_, n_two_way,
                               nlocal, vflag_global != 0, eflag_atom != 0, *exchange_impl_, r);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair mlpot: model evaluation failed: {}", e.what());
  }
}

void PairMLPot::compute(int eflag, int vflag) {
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "pair_style mlpot has no per-atom virial: remove compute stress/atom "
                      "(the global pressure and virial are available)");
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  int *type = atom->type;
  numbers_.resize(nall);
  for (int i = 0; i < nall; i++) numbers_[i] = type_to_z_[type[i]];
  if (exchange_) {
    compute_exchange(nlocal, nall);
    if (nall == 0) return;
    accumulate(nlocal, nall);
    return;
  }
  if (nall == 0) return;

  build_edges();

  // cell rows a = (xprd, 0, 0), b = (xy, yprd, 0), c = (xz, yz, zprd)
  const double cell[9] = {domain->xprd, 0.0, 0.0, domain->xy, domain->yprd, 0.0,
                          domain->xz, domain->yz, domain->zprd};
  mlpot::Result &r = *result_;
  try {
    model_->evaluate(&atom->x[0][0], numbers_.data(), nall, edge_i_, edge_j_, cell, nlocal,
                     vflag_global != 0, eflag_atom != 0, r);
  } catch (const std::exception &e) {
    error->one(FLERR, "pair mlpot: model evaluation failed: {}", e.what());
  }
  accumulate(nlocal, nall);
}

void PairMLPot::accumulate(int nlocal, int nall) {
  const mlpot::Result &r = *result_;
  double **f = atom->f;
  for (int i = 0; i < nall; i++)
    for (int k = 0; k < 3; k++) f[i][k] += r.forces[3 * i + k];
  if (eflag_global) eng_vdwl += r.energy;
  if (eflag_atom)
    for (int i = 0; i < nlocal; i++) eatom[i] += r.energies[i];
  if (vflag_global) {
    // LAMMPS order xx, yy, zz, xy, xz, yz; this rank's share, LAMMPS sums over ranks
    virial[0] += r.virial[0];
    virial[1] += r.virial[4];
    virial[2] += r.virial[8];
    virial[3] += r.virial[1];
    virial[4] += r.virial[2];
    virial[5] += r.virial[5];
  }
}

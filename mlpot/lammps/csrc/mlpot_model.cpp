/* Loading an mlpot export and calling its forward from C++ (the only file that sees libtorch):
   a TorchScript file (.pt), or an AOTInductor package (.pt2) whose "lammps" model
   (mlpot.deploy.pt2_lammps) takes the whole graph and whose layer models
   (mlpot.deploy.pt2_exchange) run one interaction at a time. */
#include "mlpot_model.h"

#include "json.h"  // LAMMPS' bundled nlohmann::json (header only)

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <dlfcn.h>

#include <algorithm>
#include <stdexcept>

namespace mlpot {

static const int SUPPORTED_FORMAT_VERSION = 2;
static const char *METADATA_NAME = "mlpot.json";
static const char *PT2_MODEL = "lammps";          // the package's model for LAMMPS (mlpot.deploy.pt2_lammps)
static const std::string AOTI_FOLDER = "data/aotinductor/";

struct Model::Impl {
  torch::jit::Module module;
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;   // a .pt2 file's lammps model
  // a .pt2 file's layer models: layer_{t}_forward, then layer_{t}_backward, t = 0 .. T-1
  std::vector<std::unique_ptr<torch::inductor::AOTIModelPackageLoader>> forward_layers, backward_layers;
  torch::Dtype dtype = torch::kFloat64;
  std::vector<double> exchange_rows;   // evaluate_per_layer's feature-exchange buffer, reused
};

static std::string first_line(const std::string &text) {
  return text.substr(0, text.find('\n'));
}

static ModelInfo parse_metadata(const std::string &path, const std::string &text) {
  using LAMMPS_NS::json;
  const std::string not_export = path + " is not an mlpot export";
  if (text.empty())
    throw std::runtime_error(not_export + " (no mlpot.json inside): give pair_coeff a file written by `mlpot export`");
  json meta;
  try {
    meta = json::parse(text);
  } catch (const std::exception &e) {
    throw std::runtime_error(not_export + " (its mlpot.json is not valid JSON): export the model again");
  }
  ModelInfo info;
  try {
    info.format_version = meta.at("format_version").get<int>();
    if (info.format_version > SUPPORTED_FORMAT_VERSION)
      throw std::runtime_error(path + " has model format version " + std::to_string(info.format_version) +
                               " but this plugin reads up to " + std::to_string(SUPPORTED_FORMAT_VERSION) +
                               ": update mlpot and rebuild the plugin with `mlpot lammps build`");
    info.mlpot_version = meta.value("mlpot_version", std::string("unknown"));
    info.cutoff = meta.at("cutoff").get<double>();
    info.n_interactions = meta.at("n_interactions").get<int>();
    info.species = meta.at("species").get<std::vector<int64_t>>();
    info.symbols = meta.at("species_symbols").get<std::vector<std::string>>();
    info.dtype = meta.at("dtype").get<std::string>();
    info.per_layer = meta.value("message_passing", std::string("whole_graph")) == "per_layer";
    info.angle_triplets = meta.value("angle_triplets", false);
    info.n_members = meta.value("n_members", 1);
    if (info.format_version >= 2 && meta.contains("provides")) {   // declared, not probed
      const json &provides = meta.at("provides");
      info.declared = true;
      info.written_out = provides.at("written_out").get<bool>();
      info.pair_terms = provides.at("per_layer").get<bool>();
      info.n_features = provides.at("n_features").get<int>();
      info.atom_virial = provides.at("atom_virial").get<bool>();
    }
  } catch (const json::exception &e) {
    throw std::runtime_error(not_export + " (mlpot.json: " + first_line(e.what()) +
                             "): export the model again with `mlpot export`");
  }
  if (info.species.size() != info.symbols.size() || info.species.empty())
    throw std::runtime_error(not_export + " (mlpot.json: species and species_symbols differ in length)");
  if (!(info.cutoff > 0.0) || info.n_interactions < 0)
    throw std::runtime_error(not_export + " (mlpot.json: cutoff must be > 0 and n_interactions >= 0)");
  if (info.dtype != "float32" && info.dtype != "float64")
    throw std::runtime_error(not_export + " (mlpot.json: dtype '" + info.dtype + "' is neither float32 nor float64)");
  return info;
}

// Load mlpot's fused kernels (torch.ops.mlpot.*, compiled by `mlpot lammps build` with the
// plugin) once per process; models exported with "kernels": "fused" call them. Returns "" when
// loaded, else why not. Python processes that loaded the same file already share it.
static const std::string &fused_kernels_error() {
  static const std::string error = [] {
#ifdef MLPOT_OPS_LIBRARY
    if (dlopen(MLPOT_OPS_LIBRARY, RTLD_NOW | RTLD_GLOBAL)) return std::string();
    const char *why = dlerror();
    return std::string("cannot load " MLPOT_OPS_LIBRARY ": ") + (why ? why : "unknown error");
#else
    return std::string("the plugin was built without them");
#endif
  }();
  return error;
}

// The entry names of `path` when it is a zip file of PyTorch's (a TorchScript file or a .pt2
// package), without the archive's top folder; empty otherwise.
static std::vector<std::string> archive_records(const std::string &path) {
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    return reader.getAllRecords();
  } catch (const std::exception &) {
    return {};
  }
}

// Whether one of `records` lies in the folder `prefix`.
static bool has_folder(const std::vector<std::string> &records, const std::string &prefix) {
  return std::any_of(records.begin(), records.end(),
                     [&](const std::string &name) { return name.compare(0, prefix.size(), prefix) == 0; });
}

// out.atom_virial [9n]: −½ r_e ⊗ ∂E/∂r_e to both atoms of every edge e = (edge_i[e], edge_j[e]), of
// the edge vectors vec [3E] and the energy's gradient along them ge [3E].
static void atom_virial_of_edges(const double *vec, const double *ge, const std::vector<int64_t> &edge_i,
                                 const std::vector<int64_t> &edge_j, int64_t n, Result &out) {
  out.atom_virial.assign(9 * n, 0.0);
  for (size_t e = 0; e < edge_i.size(); e++)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) {
        const double half = -0.5 * vec[3 * e + a] * ge[3 * e + b];
        out.atom_virial[9 * edge_i[e] + 3 * a + b] += half;
        out.atom_virial[9 * edge_j[e] + 3 * a + b] += half;
      }
}

// The angle triplets [2, T] of a directed edge list whose centres are idx_i [E]: every unordered
// pair of distinct edges with the same centre, as edge indices (the same as
// mlpot.model.representations.triplets.edge_pairs, which the package's model was checked with).
static torch::Tensor angle_triplets(const torch::Tensor &idx_i, int64_t n_atoms) {
  const torch::Tensor order = torch::argsort(idx_i);
  const torch::Tensor centres = idx_i.index_select(0, order);
  const torch::Tensor counts = torch::bincount(centres, {}, n_atoms);
  const torch::Tensor starts = counts.cumsum(0) - counts;          // first sorted position of each centre
  const torch::Tensor position = torch::arange(order.size(0), idx_i.options());
  const torch::Tensor partners = counts.index_select(0, centres) - (position - starts.index_select(0, centres)) - 1;
  const torch::Tensor first = torch::repeat_interleave(position, partners);
  const torch::Tensor block_start = partners.cumsum(0) - partners;
  const torch::Tensor offset = torch::arange(first.size(0), idx_i.options()) - block_start.index_select(0, first);
  const torch::Tensor second = first + 1 + offset;
  return torch::stack({order.index_select(0, first), order.index_select(0, second)});
}

void Model::load_pt2(const std::string &path, const std::vector<std::string> &records, int member) {
  const std::string again = "export it again with `mlpot export CHECKPOINT -o model.pt2` (or give pair_coeff a .pt file)";
  // a single model's "lammps", or a committee package's member models "lammps_0", "lammps_1", ...
  const bool committee = !has_folder(records, AOTI_FOLDER + PT2_MODEL + "/");
  const std::string model_name = committee ? PT2_MODEL + ("_" + std::to_string(member)) : PT2_MODEL;
  if (!has_folder(records, AOTI_FOLDER + model_name + "/"))
    throw std::runtime_error(path + " is a .pt2 package without a LAMMPS model (exported for ASE only, with "
                             "export_pt2(..., lammps=False), or before the plugin read .pt2 files, or a committee "
                             "package written before it held its members' LAMMPS models): give "
                             "pair_coeff the members' own files (`mlpot export RUN -o model.pt` writes model_0.pt, "
                             "model_1.pt, ...), or " + again);
  std::unordered_map<std::string, std::string> metadata;
  try {
    // one thread calls it at a time: no runner pool, no locks
    impl_->package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, model_name, true, 1);
    metadata = impl_->package->get_metadata();
  } catch (const c10::Error &e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("mlpot::") != std::string::npos && !fused_kernels_error().empty())
      throw std::runtime_error(path + " uses mlpot's fused kernels, which this plugin cannot load (" +
                               fused_kernels_error() + "): rebuild it with `mlpot lammps build --force`");
    throw std::runtime_error("cannot load " + path + " as an AOTInductor package (" + first_line(what) +
                             "); a .pt2 runs only on the kind of machine it was compiled for: " + again + " here");
  }
  const auto found = metadata.find(METADATA_NAME);
  info_ = parse_metadata(path, found == metadata.end() ? std::string() : found->second);
  // what the package offers: the whole graph (evaluate), the layers one at a time where it holds
  // their models (evaluate_per_layer; the pair terms inside layer_0_forward), the global virial
  info_.pt2 = true;
  info_.declared = true;
  if (committee != (info_.n_members > 1) || member >= info_.n_members)
    throw std::runtime_error(path + " is not an mlpot export (its LAMMPS models do not match n_members " +
                             std::to_string(info_.n_members) + " in mlpot.json): " + again);
  info_.per_layer = has_folder(records, AOTI_FOLDER + "layer_0_forward/");
  info_.written_out = true;
  info_.pair_terms = false;
  if (!info_.per_layer) info_.n_features = 0;
  if (info_.per_layer && info_.n_features <= 0)
    throw std::runtime_error(path + " is not an mlpot export (mlpot.json: layer models without n_features)");
  // info_.atom_virial as declared: from the lammps model's fifth output, the gradient along the edges
  // (packages written before it lack it)
  for (int t = 0; info_.per_layer && t < info_.n_interactions; t++)
    for (const char *step : {"forward", "backward"}) {
      const std::string name = "layer_" + std::to_string(t) + "_" + step;
      if (!has_folder(records, AOTI_FOLDER + name + "/"))
        throw std::runtime_error(path + " lacks its layer model " + name + ": " + again);
      auto &loaders = std::string(step) == "forward" ? impl_->forward_layers : impl_->backward_layers;
      loaders.push_back(std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, name, true, 1));
    }
  impl_->dtype = info_.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
}

Model::Model(const std::string &path, int member) : impl_(std::make_unique<Impl>()) {
  fused_kernels_error();  // loads them if it can; a model that needs them reports the reason below
  const std::vector<std::string> records = archive_records(path);
  if (has_folder(records, AOTI_FOLDER)) {
    load_pt2(path, records, member);
    return;
  }
  if (path.ends_with(".pt2"))
    throw std::runtime_error("cannot read " + path + " as a .pt2 package (" +
                             (records.empty() ? "no such file, or not a zip file" : "no data/aotinductor/ inside") +
                             "): give pair_coeff a file written by `mlpot export CHECKPOINT -o model.pt2`");
  // The profiling executor re-specialises the graph for every new atom or edge count, which
  // changes at every neighbour-list rebuild in MD (measured: ~7x slower steps, seconds-long
  // stalls). Plain execution of the scripted graph is steady. Process-wide setting.
  torch::jit::setGraphExecutorOptimize(false);
  torch::jit::ExtraFilesMap extra{{METADATA_NAME, ""}};
  try {
    impl_->module = torch::jit::load(path, torch::kCPU, extra);
  } catch (const c10::Error &e) {
    const std::string what = e.what_without_backtrace();
    if (what.find("mlpot::") != std::string::npos && !fused_kernels_error().empty())
      throw std::runtime_error(path + " uses mlpot's fused kernels, which this plugin cannot load (" +
                               fused_kernels_error() + "): rebuild it with `mlpot lammps build --force`, "
                               "or export the model with `mlpot export --kernels reference`");
    throw std::runtime_error("cannot read " + path + " as a TorchScript model (" +
                             first_line(e.what_without_backtrace()) + "): give pair_coeff a file written by `mlpot export`");
  }
  info_ = parse_metadata(path, extra[METADATA_NAME]);
  impl_->dtype = info_.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  impl_->module.eval();
  if (info_.declared) {   // format version 2: mlpot.json says what the file provides
    if (info_.per_layer && info_.n_features <= 0)
      throw std::runtime_error(path + " is not an mlpot export (mlpot.json: per_layer without n_features)");
    return;
  }
  // version-1 files: probe the module
  info_.atom_virial = impl_->module.get_method("forward").function().getSchema()
                          .argumentIndexWithName("compute_atom_virial").has_value();
  if (info_.per_layer) {
    for (const char *name : {"embed", "interaction", "readout"})
      if (!impl_->module.find_method(name))
        throw std::runtime_error(path + " is not an mlpot export (mlpot.json says per_layer but it has no method " +
                                 name + "): export the model again with `mlpot export`");
    info_.written_out = impl_->module.find_method("interaction_forward").has_value() &&
                        impl_->module.find_method("interaction_backward").has_value() &&
                        impl_->module.find_method("readout_gradient").has_value();
    info_.pair_terms = impl_->module.find_method("pair_terms").has_value();
    torch::NoGradGuard no_grad;
    torch::Tensor probe = torch::full({1}, info_.species[0], torch::TensorOptions().dtype(torch::kInt64));
    info_.n_features = static_cast<int>(impl_->module.get_method("embed")({probe}).toTensor().size(1));
  }
}

// [rows, F] tensor in `dtype` of the first `rows` rows of a [*, F] float64 buffer (a copy).
static torch::Tensor rows_to_tensor(std::vector<double> &buffer, int64_t rows, int64_t width, torch::Dtype dtype) {
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  return torch::from_blob(buffer.data(), {rows, width}, f64).to(dtype, false, true);
}

void Model::evaluate_per_layer(const double *positions, const int64_t *numbers, int64_t n,
                               const std::vector<int64_t> &edge_i, const std::vector<int64_t> &edge_j,
                               const std::vector<int64_t> &feature_j, int64_t n_two_way, int64_t n_local,
                               bool want_virial, bool want_energies, FeatureExchange &exchange, Result &out,
                               bool want_atom_virial) {
  torch::AutoGradMode grad_enabled(true);
  const torch::Dtype dtype = impl_->dtype;
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  const int64_t n_edges = static_cast<int64_t>(edge_i.size());
  const int64_t width = info_.n_features;
  const int n_layers = info_.n_interactions;

  // The layers read the rows of the local atoms and of the ghosts whose features an edge carries
  // (other ranks' atoms; a periodic image of a local atom carries its owner's row): those rows
  // only, compact — local atoms first, then those ghosts (`row_atom` gives each row's atom).
  // Embeddings and atom-wise products then skip the rest of the ghost shell (on one rank, all of it).
  std::vector<int64_t> row_atom(static_cast<size_t>(n_local));
  for (int64_t i = 0; i < n_local; i++) row_atom[i] = i;
  std::vector<int64_t> row_of_ghost(static_cast<size_t>(n - n_local), -1);
  torch::Tensor edges = torch::empty({2, n_edges}, i64);
  int64_t *edge_rows = edges.data_ptr<int64_t>();
  std::vector<double> vec(3 * n_edges);
  for (int64_t e = 0; e < n_edges; e++) {
    for (int k = 0; k < 3; k++) vec[3 * e + k] = positions[3 * edge_j[e] + k] - positions[3 * edge_i[e] + k];
    int64_t row = feature_j[e];
    if (row >= n_local) {
      int64_t &slot = row_of_ghost[row - n_local];
      if (slot < 0) {
        slot = static_cast<int64_t>(row_atom.size());
        row_atom.push_back(row);
      }
      row = slot;
    }
    edge_rows[e] = edge_i[e];
    edge_rows[n_edges + e] = row;
  }
  const int64_t n_rows = static_cast<int64_t>(row_atom.size());
  torch::Tensor rows_index = torch::from_blob(row_atom.data(), {n_rows}, i64).clone();
  torch::Tensor z = torch::from_blob(const_cast<int64_t *>(numbers), {n}, i64).index_select(0, rows_index);

  // LAMMPS-ordered rows [n, F] of one feature exchange, in the model's dtype (a buffer kept
  // between calls: no page faults on every layer); none needed when every row the layers read is
  // a local atom's and no other rank waits for this one's exchange
  const bool exchanged = n_rows > n_local || exchange.across_ranks();
  const bool single = dtype == torch::kFloat32;
  std::vector<double> &buffer = impl_->exchange_rows;   // doubles: aligned for either dtype
  if (exchanged) buffer.resize(static_cast<size_t>(single ? (n * width + 1) / 2 : n * width));
  torch::Tensor all_rows = torch::from_blob(buffer.data(), {exchanged ? n : 0, width}, torch::TensorOptions().dtype(dtype));
  torch::Tensor local_rows = all_rows.narrow(0, 0, exchanged ? n_local : 0);
  torch::Tensor ghost_rows = all_rows.narrow(0, exchanged ? n_local : 0, exchanged ? n - n_local : 0);
  torch::Tensor ghost_index = rows_index.narrow(0, n_local, n_rows - n_local);   // their LAMMPS rows
  auto communicate = [&](bool forward) {
    const int w = static_cast<int>(width);
    if (single) {
      float *rows = reinterpret_cast<float *>(buffer.data());
      forward ? exchange.owned_to_ghosts(rows, w) : exchange.ghosts_to_owned(rows, w);
    } else {
      forward ? exchange.owned_to_ghosts(buffer.data(), w) : exchange.ghosts_to_owned(buffer.data(), w);
    }
  };
  // h_{t+1} of the local atoms -> their ghosts through LAMMPS -> the compact rows of the next layer
  // (the local rows as they are, then the ghosts an edge reads)
  auto next_layer_rows = [&](const torch::Tensor &local) {
    if (!exchanged) return local;
    local_rows.copy_(local);
    communicate(true);
    if (n_rows == n_local) return local;
    return torch::cat({local, all_rows.index_select(0, ghost_index)});
  };
  // ∂E/∂h_t of the compact rows -> ghosts' rows summed to their owners -> those of the local atoms
  auto local_gradient = [&](const torch::Tensor &compact) {
    if (!exchanged) return compact.detach();
    local_rows.copy_(compact.narrow(0, 0, n_local));
    ghost_rows.zero_();
    if (n_rows > n_local) all_rows.index_copy_(0, ghost_index, compact.narrow(0, n_local, n_rows - n_local).detach());
    communicate(false);
    return local_rows.clone();
  };

  torch::Tensor vector_grad;
  torch::Tensor energies;
  torch::Tensor pair_energies;   // a package's layer_0_forward gives the pair terms
  if (impl_->package) {
    // the package's layer models (mlpot.deploy.pt2_exchange): n_local and n_two_way as the
    // lengths of marker tensors, the readout inside the last backward step
    const auto u8 = torch::TensorOptions().dtype(torch::kUInt8);
    const std::vector<torch::Tensor> edge_inputs{rows_to_tensor(vec, n_edges, 3, dtype), edges,
                                                 torch::zeros({n_local}, u8), torch::zeros({n_two_way}, u8)};
    auto with_edges = [&](std::vector<torch::Tensor> inputs) {
      inputs.insert(inputs.end(), edge_inputs.begin(), edge_inputs.end());
      return inputs;
    };
    std::vector<std::vector<torch::Tensor>> saved;     // per layer: x, a, filter, slope
    torch::Tensor h = z;                              // layer_0_forward embeds the atomic numbers
    for (int t = 0; t < n_layers; t++) {
      std::vector<torch::Tensor> out = impl_->forward_layers[t]->run(with_edges({h}));
      saved.emplace_back(out.begin() + 1, out.begin() + 5);
      if (t == 0) {
        pair_energies = out.at(5);
        vector_grad = out.at(6);
      }
      h = t + 1 < n_layers ? next_layer_rows(out[0]) : out[0];
    }
    torch::Tensor seed;
    for (int t = n_layers - 1; t >= 0; t--) {
      std::vector<torch::Tensor> inputs = t == n_layers - 1 ? std::vector<torch::Tensor>{h, z.narrow(0, 0, n_local)}
                                                            : std::vector<torch::Tensor>{seed};
      inputs.insert(inputs.end(), saved[t].begin(), saved[t].end());
      std::vector<torch::Tensor> grads = impl_->backward_layers[t]->run(with_edges(inputs));
      if (t == n_layers - 1) {
        energies = grads[0];
        grads.erase(grads.begin());
      }
      vector_grad = vector_grad + grads[1];
      if (t > 0) seed = local_gradient(grads[0]);
    }
    energies = energies + pair_energies;
  } else if (info_.written_out) {
    // the chain rule written out in the model file (mlpot.kernels.written_out): no autograd graph
    torch::NoGradGuard no_grad;
    torch::Tensor vectors = rows_to_tensor(vec, n_edges, 3, dtype);
    torch::jit::Method forward_layer = impl_->module.get_method("interaction_forward");
    torch::jit::Method backward_layer = impl_->module.get_method("interaction_backward");
    std::vector<c10::IValue> saved;                    // per layer: x, a, filter, slope
    torch::Tensor h = impl_->module.get_method("embed")({z}).toTensor();
    for (int t = 0; t < n_layers; t++) {
      auto out = forward_layer({t, h, vectors, edges, n_local, n_two_way}).toTensorVector();
      saved.emplace_back(std::vector<torch::Tensor>(out.begin() + 1, out.end()));
      h = t + 1 < n_layers ? next_layer_rows(out[0]) : out[0];
    }
    auto head = impl_->module.get_method("readout_gradient")({h, z.narrow(0, 0, n_local)}).toTensorVector();
    energies = head[0];
    torch::Tensor seed = head[1];
    vector_grad = torch::zeros({n_edges, 3}, torch::TensorOptions().dtype(dtype));
    for (int t = n_layers - 1; t >= 0; t--) {
      auto grads =
          backward_layer({t, seed, saved[t], vectors, edges, n_local, n_two_way, n_rows, t > 0}).toTensorVector();
      vector_grad = vector_grad + grads[1];
      if (t > 0) seed = local_gradient(grads[0]);
    }
  } else {
    // files without them (reference kernels, older exports): autograd through each layer
    torch::Tensor vectors = rows_to_tensor(vec, n_edges, 3, dtype).requires_grad_(true);
    torch::jit::Method interaction = impl_->module.get_method("interaction");
    std::vector<torch::Tensor> inputs, outputs;        // h_t [n_rows, F] (leaves) and h_{t+1} [n_local, F]
    torch::Tensor h = impl_->module.get_method("embed")({z}).toTensor().detach().requires_grad_(true);
    for (int t = 0; t < n_layers; t++) {
      torch::Tensor next = interaction({t, h, vectors, edges, n_local, n_two_way}).toTensor();
      inputs.push_back(h);
      outputs.push_back(next);
      if (t + 1 < n_layers) h = next_layer_rows(next.detach()).requires_grad_(true);
    }
    torch::Tensor last = outputs.back().detach().requires_grad_(true);
    energies = impl_->module.get_method("readout")({last, z.narrow(0, 0, n_local)}).toTensor();
    torch::Tensor seed = torch::autograd::grad({energies.sum()}, {last})[0];
    vector_grad = torch::zeros({n_edges, 3}, torch::TensorOptions().dtype(dtype));
    for (int t = n_layers - 1; t >= 0; t--) {
      auto grads = torch::autograd::grad({outputs[t]}, {inputs[t], vectors}, {seed}, false, false, true);
      if (grads[1].defined()) vector_grad = vector_grad + grads[1];
      if (t > 0) seed = local_gradient(grads[0]);
    }
  }

  if (info_.pair_terms) {   // the pair repulsion below the training data's shortest contacts: no layers
    torch::NoGradGuard no_grad;
    torch::Tensor plain = rows_to_tensor(vec, n_edges, 3, dtype);
    auto pair = impl_->module.get_method("pair_terms")({plain, edges, z, n_local, n_two_way}).toTensorVector();
    energies = energies.detach() + pair[0];
    vector_grad = vector_grad + pair[1];
  }
  out.energy = energies.sum().item<double>();
  torch::Tensor g = vector_grad.to(torch::kFloat64).contiguous();
  const double *ge = g.data_ptr<double>();
  out.forces.assign(3 * n, 0.0);
  double virial[9] = {0};
  for (int64_t e = 0; e < n_edges; e++)
    for (int a = 0; a < 3; a++) {
      out.forces[3 * edge_i[e] + a] += ge[3 * e + a];   // r_e = x_j − x_i: −∂E/∂x_i = +∂E/∂r_e
      out.forces[3 * edge_j[e] + a] -= ge[3 * e + a];
      for (int b = 0; b < 3; b++) virial[3 * a + b] += vec[3 * e + a] * ge[3 * e + b];
    }
  if (want_virial)
    for (int a = 0; a < 3; a++)
      for (int b = 0; b < 3; b++) out.virial[3 * a + b] = -0.5 * (virial[3 * a + b] + virial[3 * b + a]);
  if (want_atom_virial) atom_virial_of_edges(vec.data(), ge, edge_i, edge_j, n, out);
  if (want_energies) {
    torch::Tensor e = energies.detach().to(torch::kFloat64).contiguous();
    out.energies.assign(n, 0.0);
    std::copy(e.data_ptr<double>(), e.data_ptr<double>() + n_local, out.energies.begin());
  }
}

Model::~Model() = default;

// The outputs of either kind of file into `out`: energy [] or [1], forces [n, 3], energies [n],
// virial [3, 3] (tensors of the model's dtype).
static void fill_result(const torch::Tensor &energy, const torch::Tensor &forces_out, const torch::Tensor &energies_out,
                        const torch::Tensor &virial_out, int64_t n, bool want_virial, bool want_energies, Result &out) {
  out.energy = energy.to(torch::kFloat64).sum().item<double>();
  torch::Tensor forces = forces_out.to(torch::kFloat64).contiguous();
  out.forces.assign(forces.data_ptr<double>(), forces.data_ptr<double>() + n * 3);
  if (want_energies) {
    torch::Tensor energies = energies_out.to(torch::kFloat64).contiguous();
    out.energies.assign(energies.data_ptr<double>(), energies.data_ptr<double>() + n);
  }
  if (want_virial) {
    torch::Tensor virial = virial_out.to(torch::kFloat64).contiguous();
    std::copy(virial.data_ptr<double>(), virial.data_ptr<double>() + 9, out.virial);
  }
}

// out.atom_virial [9n] from a model's per-atom virial [n, 3, 3].
static void fill_atom_virial(const torch::Tensor &atom_virial_out, int64_t n, Result &out) {
  torch::Tensor atom_virial = atom_virial_out.to(torch::kFloat64).contiguous();
  out.atom_virial.assign(atom_virial.data_ptr<double>(), atom_virial.data_ptr<double>() + 9 * n);
}

void Model::evaluate(const double *positions, const int64_t *numbers, int64_t n,
                     const std::vector<int64_t> &edge_i, const std::vector<int64_t> &edge_j,
                     const double *cell, int64_t n_local, bool want_virial, bool want_energies,
                     Result &out, bool want_atom_virial) {
  if (want_atom_virial && !info_.atom_virial && impl_->package)
    throw std::runtime_error("this .pt2 file has no per-atom virial (compute stress/atom) on the whole-model path "
                             "(written before its lammps model had one): export it again, or use the exchange path");
  if (want_atom_virial && !info_.atom_virial)
    throw std::runtime_error("the model file's forward has no per-atom virial (exported before it existed): "
                             "export it again with `mlpot export`");
  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  const int64_t n_edges = static_cast<int64_t>(edge_i.size());

  torch::Tensor pos = torch::from_blob(const_cast<double *>(positions), {n, 3}, f64).to(impl_->dtype).clone();
  torch::Tensor z = torch::from_blob(const_cast<int64_t *>(numbers), {n}, i64).clone();
  torch::Tensor edges = torch::empty({2, n_edges}, i64);
  if (n_edges > 0) {
    std::copy(edge_i.begin(), edge_i.end(), edges.data_ptr<int64_t>());
    std::copy(edge_j.begin(), edge_j.end(), edges.data_ptr<int64_t>() + n_edges);
  }
  if (impl_->package) {   // mlpot.deploy.pt2_lammps: n_local is the length of the last input
    torch::Tensor local = torch::zeros({n_local}, torch::TensorOptions().dtype(torch::kUInt8));
    std::vector<torch::Tensor> inputs{pos, z, edges, local};
    if (info_.angle_triplets) inputs.push_back(angle_triplets(edges[0], n));
    std::vector<torch::Tensor> result = impl_->package->run(inputs);
    fill_result(result.at(0), result.at(1), result.at(2), result.at(3), n, want_virial, want_energies, out);
    if (want_atom_virial) {   // from the lammps model's gradient along the edges [E, 3]
      const torch::Tensor vec = (pos.index_select(0, edges[1]) - pos.index_select(0, edges[0])).to(torch::kFloat64)
                                    .contiguous();
      const torch::Tensor ge = result.at(4).to(torch::kFloat64).contiguous();
      atom_virial_of_edges(vec.data_ptr<double>(), ge.data_ptr<double>(), edge_i, edge_j, n, out);
    }
    return;
  }
  torch::AutoGradMode grad_enabled(true);  // the model takes forces and virial by autograd
  torch::Tensor shifts = torch::zeros({n_edges, 3}, torch::TensorOptions().dtype(impl_->dtype));
  torch::Tensor box = torch::from_blob(const_cast<double *>(cell), {3, 3}, f64).to(impl_->dtype).clone();

  std::vector<torch::jit::IValue> inputs{pos, z, edges, shifts, box, n_local, want_virial};
  if (want_atom_virial) inputs.emplace_back(true);   // older files' forward has no such argument
  auto result = impl_->module.forward(inputs).toGenericDict();
  fill_result(result.at("energy").toTensor(), result.at("forces").toTensor(), result.at("energies").toTensor(),
              result.at("virial").toTensor(), n, want_virial, want_energies, out);
  if (want_atom_virial) fill_atom_virial(result.at("atom_virial").toTensor(), n, out);
}

}  // namespace mlpot
